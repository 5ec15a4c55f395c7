// Issue 23: an app image's SBOM and `image verify`, on a real closure — the wheels this machine's pip configuration
// (its local mirror) gives for the image benchmark's 16 requirements (34 wheels), plus pip, plus one package built
// here from an sdist. The SBOM validates against CycloneDX 1.6's official schema and lists every distribution
// with its wheel's sha256; verify passes on the image and names the file on one with an installed file changed;
// pushed to the private registry (distribution 2.8: no referrers API), the SBOM is found through the tag fallback.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BlobCache,
  CYCLONEDX_MEDIA_TYPE,
  Image,
  appendLayers,
  emptyImage,
  findReferrers,
  openImage,
  parseImageSpec,
  readArtifact,
  referrersTag,
  writeImage,
  writeLayer,
  type LayerEntry,
} from '@dstack/image';
import { RegistryClient, parseReference } from '@dstack/oci';
import { parseLock } from '@dstack/recipe';
import { bootstrapWheelhouse, isolatedPipEnv, makeSdist, sharedRegistry, testPython, writePurePackage } from '@dstack/testing';
import { cli, dir, sha256, useImageFixture, validated } from './image.test-support.js';

useImageFixture();
const exec = promisify(execFile);

// The image benchmark's requirements (tools/bench/scenarios/image.ts): 34 wheels with their dependencies.
const REQUIREMENTS = [
  'django', 'flask', 'requests', 'pyyaml', 'sqlalchemy', 'pygments', 'docutils', 'babel', 'python-dateutil',
  'pytz', 'attrs', 'click', 'packaging', 'rich', 'jsonschema', 'gunicorn',
];
const DEBIAN_PYTHON = '/usr/bin/python3.11'; // 3.11.2, the fixture base's version
let wheelhouse: string;
let sdist: string;
let env: NodeJS.ProcessEnv;

interface Component {
  name: string;
  version: string;
  purl: string;
  hashes: { alg: string; content: string }[];
  externalReferences?: { type: string; url: string; hashes?: { alg: string; content: string }[] }[];
  properties: { name: string; value: string }[];
}
const prop = (c: Component, name: string): string | undefined => c.properties.find((p) => p.name === name)?.value;

beforeAll(async () => {
  wheelhouse = path.join(dir, 'closure');
  await mkdir(wheelhouse, { recursive: true });
  // Real wheels from the machine's pip configuration (no index retries: the mirror is local).
  await exec(DEBIAN_PYTHON, ['-m', 'pip', 'download', '-q', '--retries', '0', '--only-binary', ':all:', '-d', wheelhouse, ...REQUIREMENTS, 'pip'], {
    maxBuffer: 16 * 1024 * 1024,
  });
  // One package built here from an sdist (its wheel's source and builder are recorded), with the build backends.
  await bootstrapWheelhouse(testPython('3.11'), wheelhouse);
  const spec = { name: 'provdemo', version: '1.0', dependencies: ['six'] };
  sdist = await makeSdist(await writePurePackage(path.join(dir, 'provdemo-src'), spec), path.join(dir, 'sdists'), spec);
  await writeFile(path.join(dir, 'closure.txt'), `--find-links ./sdists\n${[...REQUIREMENTS, 'provdemo==1.0'].join('\n')}\n`);
  env = isolatedPipEnv({ NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'cache') });
  // A base made in code like the fixture's, with glibc 2.36 (the manylinux wheels need to know it).
  const cache = new BlobCache(path.join(dir, 'base-cache'));
  const layer = await writeLayer(
    [
      { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
      { path: 'lib/x86_64-linux-gnu/libc.so.6', type: 'file', data: Buffer.from('GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n') },
      { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/bash\n') },
      { path: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\n') },
      { path: 'var/lib/dpkg/status', type: 'file', data: Buffer.from('Package: python3.11-minimal\nVersion: 3.11.2-6+deb12u6\n\n') },
    ],
    { cache },
  );
  await writeImage(appendLayers(emptyImage(), [{ layer }]), { kind: 'oci', dir: path.join(dir, 'glibc-base'), ref: 'bookworm' });
}, 600_000);

/** The same image with one file of its dependencies layer changed (appended to), as a tampered rebuild would be. */
async function withChangedFile(spec: string, out: string, file: string): Promise<{ sha256: string; size: number }> {
  let changed = { sha256: '', size: 0 };
  const cache = new BlobCache(path.join(dir, 'tamper-cache'));
  const image = await openImage(parseImageSpec(spec), { cache });
  const history = (image.config.history ?? []).filter((h) => h.empty_layer !== true);
  const i = history.findIndex((h) => /^dstack-factory: install \d+ wheels/.test(h.created_by ?? ''));
  const entries: LayerEntry[] = [];
  const extract = tar.extract();
  extract.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const name = h.name.replace(/\/$/, '');
      if (h.type === 'directory') entries.push({ path: name, type: 'directory', mode: h.mode ?? 0o755 });
      else {
        let data = Buffer.concat(chunks);
        if (name === file) {
          data = Buffer.concat([data, Buffer.from('# changed\n')]);
          changed = { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
        }
        entries.push({ path: name, type: 'file', data, mode: h.mode ?? 0o644 });
      }
      next();
    });
  });
  const src = await image.layers[i]!.uncompressed();
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    src.pipe(extract);
  });
  const layer = await writeLayer(entries, { cache });
  const layers = image.layers.map((l, j) => (j === i ? layer : l));
  const config = { ...image.config, rootfs: { type: 'layers' as const, diff_ids: layers.map((l) => l.diffId) } };
  await writeImage(new Image(config, layers), parseImageSpec(out));
  return changed;
}

describe('the SBOM and image verify on a real closure', () => {
  it('an SBOM beside the OCI layout validates against CycloneDX 1.6 and lists every distribution with its wheel sha256, source, builder and layer; verify passes, and names the file on a changed image', async () => {
    const built = await cli(
      ['image', 'app', '--base', 'oci:glibc-base:bookworm', '--requirements', 'closure.txt', '--python', DEBIAN_PYTHON, '--wheelhouse', 'closure', '--output', 'oci:out-closure:app', '--no-check-libs', '--json'],
      env,
    );
    expect(built.stderr).toBe('');
    expect(built.code).toBe(0);
    const out = JSON.parse(built.stdout) as { output: { digest: string }; layers: { role: string; digest: string }[]; sbom: { files: string[] } };
    await validated(`oci:${dir}/out-closure:app`);
    const sbomFile = path.join(dir, 'out-closure.cdx.json');
    expect(out.sbom.files).toEqual([sbomFile]);
    // The layout keeps one image: the SBOM is beside it, not in index.json (skopeo refuses a layout with two).
    expect((JSON.parse(await readFile(path.join(dir, 'out-closure', 'index.json'), 'utf8')) as { manifests: unknown[] }).manifests).toHaveLength(1);

    const text = await readFile(sbomFile, 'utf8');
    const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot6);
    expect(await validator.validate(text)).toBeNull();
    const bom = JSON.parse(text) as { specVersion: string; metadata: { component: { version: string; type: string } }; components: Component[] };
    expect(bom.specVersion).toBe('1.6');
    expect(bom.metadata.component).toMatchObject({ type: 'container', version: out.output.digest });

    // Every distribution of the lock, and the venv's pip, with the sha256 of its wheel in the wheelhouse.
    const lockFile = path.join(dir, 'locks', 'closure', 'pylock.cp3_11_2-manylinux_2_36_x86_64.toml');
    const lock = parseLock(await readFile(lockFile, 'utf8'), lockFile);
    expect(lock.packages.length).toBe(35); // the 34 downloaded wheels' distributions and provdemo
    const pipWheel = (await readdir(wheelhouse)).find((f) => /^pip-[^-]+-py3-none-any\.whl$/.test(f))!;
    const expected = [
      ...lock.packages.map((p) => ({ name: p.name, version: p.version, sha256: p.wheels[0]!.hashes.sha256! })),
      { name: 'pip', version: pipWheel.split('-')[1]!, sha256: await sha256(path.join(wheelhouse, pipWheel)) },
    ].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of expected) expect(e.sha256).toBe(await sha256(path.join(wheelhouse, lock.packages.find((p) => p.name === e.name)?.wheels[0]!.name ?? pipWheel)));
    expect(bom.components.map((c) => ({ name: c.name, version: c.version, sha256: c.hashes.find((h) => h.alg === 'SHA-256')!.content }))).toEqual(expected);
    const deps = out.layers.find((l) => l.role === 'dependencies')!.digest;
    for (const c of bom.components) {
      expect(c.purl).toBe(`pkg:pypi/${c.name}@${c.version}`);
      expect([c.name, prop(c, 'dstack-factory:layer'), prop(c, 'dstack-factory:layer.role')]).toEqual([c.name, deps, 'dependencies']);
    }
    // The wheel built here: its sdist (URL and sha256) and its builder.
    const demo = bom.components.find((c) => c.name === 'provdemo')!;
    expect(demo.externalReferences).toEqual([{ type: 'source-distribution', url: `file://${sdist}`, hashes: [{ alg: 'SHA-256', content: await sha256(sdist) }] }]);
    expect([prop(demo, 'dstack-factory:source.kind'), prop(demo, 'dstack-factory:built-by.executor')]).toEqual(['sdist', 'local']);
    expect(prop(demo, 'dstack-factory:built-by.interpreter')).toMatch(/\(cp 3\.11\.2\)$/);

    // image verify: unbroken.
    const ok = await cli(['image', 'verify', 'oci:out-closure:app', '--lock', lockFile, '--wheelhouse', 'closure'], env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`oci:out-closure:app: unbroken — 36 distributions,`);
    expect(ok.stdout).toContain(`pip ${expected.find((e) => e.name === 'pip')!.version}  ${pipWheel}  sha256:`);

    // One installed file changed: verify names it.
    const changed = 'env/lib/python3.11/site-packages/flask/__init__.py';
    const now = await withChangedFile(`oci:${dir}/out-closure:app`, `oci:${dir}/out-changed:app`, changed);
    const broken = await cli(['image', 'verify', 'oci:out-changed:app', '--lock', lockFile, '--wheelhouse', 'closure'], env);
    expect(broken.code).toBe(1);
    const img = await openImage(parseImageSpec(`oci:${dir}/out-changed:app`), { cache: new BlobCache(path.join(dir, 'tamper-cache')) });
    expect(img.config.config.Labels?.['org.dstack-factory.lock.digest']).toBe(`sha256:${await sha256(lockFile)}`);
    const flask = lock.packages.find((p) => p.name === 'flask')!.wheels[0]!.name;
    const why = `/${changed}: sha256 ${now.sha256} (${now.size} bytes) is not what ${flask}'s RECORD gives it`;
    expect(broken.stdout).toContain(`\nBROKEN ${why}\n`);
    expect(broken.stdout.match(/^BROKEN /gm)).toHaveLength(1);
    expect(broken.stderr).toContain(`error[IMAGE_VERIFY_FAILED]: oci:out-changed:app: ${why}\n`);

    // Another lock than the image's: the label names it.
    const otherLock = path.join(dir, 'other-lock.toml');
    await writeFile(otherLock, `${await readFile(lockFile, 'utf8')}\n`);
    const wrongLock = await cli(['image', 'verify', 'oci:out-closure:app', '--lock', otherLock, '--wheelhouse', 'closure'], env);
    expect(wrongLock.code).toBe(1);
    expect(wrongLock.stderr).toContain(
      `error[IMAGE_VERIFY_FAILED]: oci:out-closure:app: ${otherLock}: its sha256 is sha256:${await sha256(otherLock)}, the image was made from the lock sha256:${await sha256(lockFile)}\n`,
    );

    // Pushed to the private registry (distribution 2.8: the referrers API answers 404): found through the tag.
    const registry = await sharedRegistry();
    const host = new URL(registry.url).host;
    const ref = `${host}/dstack-test/provenance-${randomBytes(4).toString('hex')}:app`;
    const pushed = await cli(['image', 'app', '--base', 'oci:glibc-base:bookworm', '--lock', lockFile, '--wheelhouse', 'closure', '--output', `registry:${ref}`, '--no-check-libs', '--json'], env);
    expect(pushed.stderr).toBe('');
    expect(pushed.code).toBe(0);
    const p = JSON.parse(pushed.stdout) as { output: { digest: `sha256:${string}` }; sbom: { files: string[]; referrer: { digest: string; via: string; tag: string } } };
    expect(p.sbom.referrer).toEqual({ digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), via: 'tag', tag: referrersTag(p.output.digest) });
    const r = parseReference(ref);
    const api = await fetch(`${registry.url}/v2/${r.repository}/referrers/${p.output.digest}`);
    expect(api.status).toBe(404);
    const client = new RegistryClient();
    const found = await findReferrers(client, r, p.output.digest, CYCLONEDX_MEDIA_TYPE);
    expect(found.map((f) => [f.descriptor.digest, f.via])).toEqual([[p.sbom.referrer.digest, 'tag']]);
    const artifact = await readArtifact(client, r, found[0]!.descriptor.digest as `sha256:${string}`);
    expect(artifact.subject).toBe(p.output.digest);
    expect(artifact.mediaType).toBe(CYCLONEDX_MEDIA_TYPE);
    expect(await validator.validate(artifact.content.toString('utf8'))).toBeNull();
    const pushedBom = JSON.parse(artifact.content.toString('utf8')) as typeof bom;
    expect(pushedBom.metadata.component.version).toBe(p.output.digest);
    expect(pushedBom.components.map((c) => [c.name, c.hashes[0]!.content])).toEqual(bom.components.map((c) => [c.name, c.hashes[0]!.content]));
    // And verify reads the pushed image from the registry.
    const remote = await cli(['image', 'verify', `registry:${ref}`, '--lock', lockFile, '--wheelhouse', 'closure'], env);
    expect(remote.stderr).toBe('');
    expect(remote.code).toBe(0);
  }, 900_000);
});

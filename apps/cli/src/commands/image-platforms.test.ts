// `image app --platform`: one image per platform from a base index (made in code), an OCI index over them,
// reproducible, with one lock per platform; docker: and archive: take one platform. Daemonless, nothing run.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseLock, stringifyLock } from '@dstack/recipe';
import { BlobCache, Image, ImageIndex, openImage, parseImageSpec, parsePlatform, writeImageIndex } from '@dstack/image';
import { EXIT_USAGE } from '../errors.js';
import { cli, dir, useImageFixture, validated } from './image.test-support.js';

const exec = promisify(execFile);
useImageFixture();

const ARM_LOCK = 'pylock.cp311-linux_aarch64.toml';
const AMD_LOCK = 'pylock.cp311-linux_x86_64.toml';
const both = ['--platform', 'linux/amd64,linux/arm64', '--lock', `linux/amd64=${AMD_LOCK}`, '--lock', `linux/arm64=${ARM_LOCK}`];
const app = (base = 'oci:multi:bookworm') => ['image', 'app', '--base', base, '--source', 'src'];

beforeAll(async () => {
  // The fixture's amd64 base and the same files as an arm64 image, under one OCI index.
  const cache = new BlobCache(path.join(dir, 'base-cache'));
  const amd = await openImage(parseImageSpec(`oci:${dir}/base:bookworm`), { cache });
  const arm = new Image({ ...amd.config, architecture: 'arm64', variant: 'v8' }, amd.layers);
  await writeImageIndex(new ImageIndex([amd, arm]), { kind: 'oci', dir: path.join(dir, 'multi'), ref: 'bookworm' });
  // The arm64 lock: the same pure-Python wheel, for aarch64.
  const lock = parseLock(await readFile(path.join(dir, AMD_LOCK), 'utf8'));
  lock.environments = lock.environments!.map((m) => m.replace('x86_64', 'aarch64'));
  await writeFile(path.join(dir, ARM_LOCK), stringifyLock(lock));
});

describe('image app --platform', () => {
  it('builds one image per platform and an OCI index over them; the same inputs give the same index digest', async () => {
    const first = await cli([...app(), ...both, '--output', 'oci:out-multi:app', '--json']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const r = JSON.parse(first.stdout) as { digest: string; images: { platform: string; digest: string }[] };
    expect(r.images.map((i) => i.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    // An SBOM per platform's image, beside the layout (its index.json keeps the images only), each naming its image.
    for (const [i, name] of ['linux-amd64', 'linux-arm64-v8'].entries()) {
      const bom = JSON.parse(await readFile(path.join(dir, `out-multi.${name}.cdx.json`), 'utf8')) as { metadata: { component: { version: string } }; components: { name: string }[] };
      expect([name, bom.metadata.component.version, bom.components.map((c) => c.name)]).toEqual([name, r.images[i]!.digest, ['tool']]);
    }
    const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${dir}/out-multi:app`])).stdout) as { mediaType: string; manifests: { digest: string; platform: object }[] };
    expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(raw.manifests.map((m) => [m.digest, m.platform])).toEqual([
      [r.images[0]!.digest, { os: 'linux', architecture: 'amd64' }],
      [r.images[1]!.digest, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ]);
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      const image = await openImage(parseImageSpec(`oci:${dir}/out-multi:app`), { cache: new BlobCache(path.join(dir, 'c2')), platform: parsePlatform(platform) });
      expect(image.config.config.WorkingDir).toBe('/app');
    }
    const cfg = JSON.parse((await exec('skopeo', ['inspect', '--config', '--override-arch', 'arm64', `oci:${dir}/out-multi:app`])).stdout);
    expect(cfg.architecture).toBe('arm64');
    // Named in the other order, written elsewhere: the same index.
    const again = await cli([...app(), '--platform', 'linux/arm64,linux/amd64', '--lock', `linux/arm64=${ARM_LOCK}`, '--lock', `linux/amd64=${AMD_LOCK}`, '--output', 'oci:out-multi2:app']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^linux\/amd64\n {2}runtime/);
    expect(again.stdout).toContain(`index ${r.digest} -> OCI layout ${dir}/out-multi2:app  ${r.digest}\n`);
  });

  it('--platform all takes the base index\'s platforms; docker:/archive: take one of them', async () => {
    const all = await cli([...app(), '--platform', 'all', ...both.slice(2), '--output', 'oci:out-all:app', '--json']);
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { images: { platform: string }[] }).images.map((i) => i.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const one = await cli([...app(), '--platform', 'linux/arm64', '--lock', `linux/arm64=${ARM_LOCK}`, '--output', 'archive:arm.tar']);
    expect(one.code).toBe(0);
    await validated(`archive:${dir}/arm.tar`);
    const cfg = JSON.parse((await exec('skopeo', ['inspect', '--config', `docker-archive:${dir}/arm.tar`])).stdout);
    expect([cfg.architecture, cfg.variant]).toEqual(['arm64', 'v8']);
  });

  it.each([
    [[...both, '--output', 'archive:x.tar'], 'error[IMAGE_PLATFORM]: archive:{dir}/x.tar holds one platform, not 2 (linux/amd64, linux/arm64/v8)\nhint: name one platform (--platform linux/arm64), or write the index to oci:DIR or registry:REF'],
    [['--platform', 'linux/amd64,linux/arm64', '--lock', AMD_LOCK, '--output', 'oci:x'], 'error[USAGE]: one lock is for one platform: give --lock PLATFORM=FILE for each of linux/amd64, linux/arm64'],
    [['--platform', 'linux/amd64,linux/arm64', '--lock', `linux/amd64=${AMD_LOCK}`, '--output', 'oci:x'], 'error[USAGE]: no lock for linux/arm64: give --lock linux/arm64=FILE, or --requirements to lock for each platform'],
    [['--lock', `linux/arm64=${ARM_LOCK}`, '--output', 'oci:x'], `error[USAGE]: --lock linux/arm64=${ARM_LOCK} names a platform: give --platform too (or --lock FILE for the base's only one)`],
    [['--platform', 'arm64', '--lock', ARM_LOCK, '--output', 'oci:x'], 'error[USAGE]: --platform takes os/architecture[/variant] items separated by commas (linux/amd64,linux/arm64) or all, not "arm64"'],
    [['--platform', 'linux/s390x', '--lock', ARM_LOCK, '--output', 'oci:x'], 'error[IMAGE_PLATFORM]: {dir}/multi index sha256:'],
    [[...both, '--sbom', 'x.cdx.json', '--output', 'oci:x'], 'error[USAGE]: --sbom FILE is for one image; with --platform the SBOMs go beside the output, one per platform (<output>.linux-arm64.cdx.json) or to the registry'],
  ])('refuses %j', async (args, message) => {
    const r = await cli([...app(), ...args]);
    const want = message.replaceAll('{dir}', dir);
    expect(r.stderr.slice(0, want.length)).toBe(want);
    expect(r.code).toBe(message.startsWith('error[USAGE]:') ? EXIT_USAGE : 1);
  });

  it('a lock for the other platform is refused with both named', async () => {
    const r = await cli([...app(), '--platform', 'linux/arm64', '--lock', `linux/arm64=${AMD_LOCK}`, '--output', 'oci:x']);
    expect(r.stderr).toContain(`error[LOCK_ENVIRONMENT_MISMATCH]: ${dir}/${AMD_LOCK} was made for`);
    expect(r.stderr).toContain('platform_machine == "x86_64"');
  });
});

// Issue 15 end to end: an index over the amd64 and arm64 debootstrapped bases in the private registry (a Docker
// manifest list), a C extension compiled for each machine (aarch64 cross-compiled), and `image app --platform
// linux/amd64,linux/arm64 --output registry:` assembling both images on this x86 machine with nothing run; the
// engine then runs each platform (arm64 under qemu) and imports its extension.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { BlobCache, CYCLONEDX_MEDIA_TYPE, ImageIndex, findReferrers, openImage, readArtifact, writeImageIndex } from '@dstack/image';
import { RegistryClient, parseReference } from '@dstack/oci';
import { stringifyLock } from '@dstack/recipe';
import { compilePythonExtension, sharedBaseImage, sharedEngine, sharedRegistry, writeWheel } from '@dstack/testing';
import { runCli } from '../run-cli.test-support.js';
import { cli, dir, sha256, useImageFixture } from './image.test-support.js';

const exec = promisify(execFile);
useImageFixture();

const MACHINES = { 'linux/amd64': 'x86_64', 'linux/arm64': 'aarch64' } as const;
let baseRef: string;
let engineEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  // Running the arm64 image needs emulation; building it does not. CI=true fails here rather than skipping.
  if (!existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64')) {
    throw new Error('no arm64 emulation (binfmt_misc qemu-aarch64): run sudo bash tools/system/setup.sh');
  }
  const [{ env, docker }, registry, amd, arm] = await Promise.all([sharedEngine(), sharedRegistry(), sharedBaseImage(), sharedBaseImage({ arch: 'arm64' })]);
  engineEnv = { DOCKER_HOST: env.DOCKER_HOST };
  // The two bases as one index in the registry, its children Docker v2 manifests (as `docker manifest push` makes).
  const cache = new BlobCache(path.join(dir, 'engine-cache'));
  const bases = await Promise.all([amd, arm].map((name) => openImage({ kind: 'docker', name }, { cache, docker: () => docker })));
  baseRef = `${registry.host}/dstack-test/base-multi:bookworm`;
  await writeImageIndex(new ImageIndex(bases), { kind: 'registry', ref: baseRef }, { format: 'docker' });

  // One C extension per machine, each in its own wheel, and one lock per platform.
  const wheelhouse = path.join(dir, 'multi-wheelhouse');
  await mkdir(path.join(dir, 'ext'), { recursive: true });
  await mkdir(wheelhouse, { recursive: true });
  for (const [platform, machine] of Object.entries(MACHINES)) {
    const so = await compilePythonExtension({ dir: path.join(dir, 'ext'), name: 'hello', machine });
    const wheel = await writeWheel(wheelhouse, { name: 'hello', version: '1.0', tag: `cp311-cp311-linux_${machine}`, files: { [path.basename(so)]: await readFile(so) } });
    const lock = {
      lockVersion: '1.0' as const,
      createdBy: 'dstack-factory',
      environments: [`implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "${machine}"`],
      packages: [{ name: 'hello', version: '1.0', wheels: [{ name: path.basename(wheel), path: `multi-wheelhouse/${path.basename(wheel)}`, hashes: { sha256: await sha256(wheel) } }] }],
    };
    await writeFile(path.join(dir, `pylock.${platform.replace('/', '-')}.toml`), stringifyLock(lock));
  }
}, 600_000);

describe('image app --platform linux/amd64,linux/arm64 (no emulation to assemble)', () => {
  it('pushes an index skopeo shows with both platforms; each runs on the engine and imports its own extension', async () => {
    const id = randomBytes(4).toString('hex');
    const { host } = await sharedRegistry();
    // A repository of its own: the images are reproducible, so a shared one would hold earlier runs' referrers too.
    const out = `${host}/dstack-test/app-multi-${id}:v1`;
    const args = [
      'image', 'app', '--base', `registry:${baseRef}`, '--platform', 'linux/amd64,linux/arm64',
      '--lock', 'linux/amd64=pylock.linux-amd64.toml', '--lock', 'linux/arm64=pylock.linux-arm64.toml', '--wheelhouse', 'multi-wheelhouse',
    ];
    const pushed = await cli([...args, '--output', `registry:${out}`, '--json'], engineEnv);
    expect(pushed.stderr).toBe('');
    expect(pushed.code).toBe(0);
    const result = JSON.parse(pushed.stdout) as { digest: string; images: { platform: string; digest: string }[] };

    const raw = JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${out}`])).stdout) as {
      mediaType: string;
      manifests: { mediaType: string; digest: string; platform: { os: string; architecture: string; variant?: string } }[];
    };
    expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(raw.manifests.map((m) => [m.mediaType, m.digest, m.platform])).toEqual([
      ['application/vnd.oci.image.manifest.v1+json', result.images[0]!.digest, { os: 'linux', architecture: 'amd64' }],
      ['application/vnd.oci.image.manifest.v1+json', result.images[1]!.digest, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ]);

    // Each platform's image has its SBOM as a referrer, found through the sha256-<hex> tag (distribution 2.8).
    const client = new RegistryClient();
    for (const image of result.images) {
      const found = await findReferrers(client, parseReference(out), image.digest as `sha256:${string}`, CYCLONEDX_MEDIA_TYPE);
      expect(found.map((f) => f.via)).toEqual(['tag']);
      const sbom = JSON.parse((await readArtifact(client, parseReference(out), found[0]!.descriptor.digest)).content.toString('utf8')) as { metadata: { component: { version: string } } };
      expect([image.platform, sbom.metadata.component.version]).toEqual([image.platform, image.digest]);
    }

    // Reproducible: the same inputs, written to an OCI layout, give the same index digest.
    const again = await cli([...args, '--output', 'oci:multi-out:app', '--json'], engineEnv);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).digest).toBe(result.digest);

    try {
      for (const [platform, machine] of Object.entries(MACHINES)) {
        const { stdout } = await exec(
          'docker',
          ['run', '--rm', '--pull', 'always', '--platform', platform, out, 'python', '-c', 'import hello, platform; print(hello.machine(), platform.machine())'],
          { env: { ...process.env, ...engineEnv } },
        );
        expect([platform, stdout]).toEqual([platform, `${machine} ${machine}\n`]);
      }
    } finally {
      await exec('docker', ['rmi', out], { env: { ...process.env, ...engineEnv } }).catch(() => undefined);
    }
  }, 900_000);
});

describe('doctor on the shared engine', () => {
  it('lists the platforms the engine runs: its own, and arm64 through binfmt_misc', async () => {
    const r = await runCli(['doctor', '--json', '--wheelhouse', path.join(dir, 'multi-wheelhouse')], { env: { ...process.env, ...engineEnv }, cwd: dir });
    const engine = (JSON.parse(r.stdout) as { area: string; ok: boolean; detail: string }[]).find((c) => c.area === 'engine')!;
    expect(engine.ok).toBe(true);
    expect(engine.detail).toMatch(/^Docker 20\.10\.\S+, API 1\.41, linux\/amd64; runs linux\/amd64, .*linux\/arm64 \(emulated\)/);
  }, 120_000);
});

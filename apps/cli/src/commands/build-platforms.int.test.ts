// Issue 15, wheels per platform: `image factory --platform` builds a factory image per platform (tagged apart; the
// arm64 one's RUN under qemu), `build --platform --executor docker` resolves and fills the wheelhouse in each, one
// lock per platform target, and those locks make an index with `image app --platform`. A platform the engine
// cannot run is refused with the remedies.
//
// The factory images here are minimal (the debootstrapped bases, a venv, the factory scripts): the real one
// installs compilers with apt, which under emulation takes many minutes; the path through the engine is the same.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePythonExtension, isolatedPipEnv, sharedBaseImage, sharedEngine, writeWheel } from '@dstack/testing';
import { BlobCache, ImageIndex, openImage, writeImageIndex } from '@dstack/image';
import { IMAGES_DIR } from '../images.js';
import { runCli } from '../run-cli.test-support.js';

const exec = promisify(execFile);
const FACTORY = 'dstack-test/mini-factory:py3.11';
const MACHINES = { 'linux/amd64': 'x86_64', 'linux/arm64': 'aarch64' } as const;
let dir: string;
let env: NodeJS.ProcessEnv;

const cli = (args: string[]) => runCli(['--quiet', ...args], { env, cwd: dir });

beforeAll(async () => {
  if (!existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64')) {
    throw new Error('no arm64 emulation (binfmt_misc qemu-aarch64): run sudo bash tools/system/setup.sh');
  }
  const [{ env: engine }] = await Promise.all([sharedEngine(), sharedBaseImage(), sharedBaseImage({ arch: 'arm64' })]);
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-build-platforms-'));
  env = isolatedPipEnv({ NO_COLOR: '1', DOCKER_HOST: engine.DOCKER_HOST!, XDG_CACHE_HOME: path.join(dir, 'cache'), DSTACK_IMAGE_CACHE: path.join(dir, 'image-cache') });
  // The factory context: the real scripts, a Dockerfile without apt. pip comes from the base's own wheel, unpacked
  // (ensurepip under qemu takes minutes; unzipping and compiling once, about a minute).
  const context = path.join(dir, 'factory');
  await mkdir(context);
  for (const f of await readdir(path.join(IMAGES_DIR, 'factory'))) if (f !== 'Dockerfile') await copyFile(path.join(IMAGES_DIR, 'factory', f), path.join(context, f));
  await writeFile(
    path.join(context, 'Dockerfile'),
    [
      'ARG BASE_IMAGE',
      'FROM ${BASE_IMAGE}',
      // Compiled once here: without .pyc files every pip run under qemu compiles pip again (~50 s each).
      'RUN python3 -m venv --without-pip /env && python3 -m zipfile -e /usr/share/python-wheels/pip-*.whl /env/lib/python3.11/site-packages/ && python3 -m compileall -q -j 0 /env/lib/python3.11/site-packages/pip',
      'ENV PATH=/env/bin:$PATH VIRTUAL_ENV=/env PY_VERSION=3.11 LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1',
      'WORKDIR /app',
      'COPY . /opt/dstack-factory/',
      'RUN chmod 755 /opt/dstack-factory/entrypoint.sh',
      'ENTRYPOINT ["/opt/dstack-factory/entrypoint.sh"]',
      '',
    ].join('\n'),
  );
  // One C extension per machine, both in one find-links folder: each platform's pip takes its own.
  await mkdir(path.join(dir, 'links'));
  await mkdir(path.join(dir, 'ext'));
  for (const machine of Object.values(MACHINES)) {
    const so = await compilePythonExtension({ dir: path.join(dir, 'ext'), name: 'hello', machine });
    await writeWheel(path.join(dir, 'links'), { name: 'hello', version: '1.0', tag: `cp311-cp311-linux_${machine}`, files: { [path.basename(so)]: await readFile(so) } });
  }
  await mkdir(path.join(dir, 'recipes'));
  await writeFile(path.join(dir, 'recipes', 'app.txt'), `--no-index\n--find-links ${path.join(dir, 'links')}\nhello==1.0\n`);
  await mkdir(path.join(dir, 'src'));
  await writeFile(path.join(dir, 'src', 'app.py'), 'import hello\n');
}, 600_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('wheels per platform', () => {
  it('image factory --platform: one image per platform, tagged <tag>-<architecture>, FROM the base of that platform', async () => {
    const r = await cli(['image', 'factory', '--platform', 'linux/amd64,linux/arm64', '--context', path.join(dir, 'factory'), '--base-image', await sharedBaseImage(), '--tag', FACTORY]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${FACTORY}-amd64 sha256:[0-9a-f]{64} linux/amd64\n${FACTORY}-arm64 sha256:[0-9a-f]{64} linux/arm64\n$`));
    const dockerEnv = { ...process.env, DOCKER_HOST: env.DOCKER_HOST };
    for (const [platform, arch] of [['linux/amd64', 'amd64'], ['linux/arm64', 'arm64']] as const) {
      const { stdout } = await exec('docker', ['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', `${FACTORY}-${arch}`], { env: dockerEnv });
      expect(stdout.trim()).toBe(platform);
    }
  }, 900_000);

  it('build --platform --executor docker: a closure and a lock per platform, each wheel its platform\'s; the locks make an index', async () => {
    const r = await cli(['build', 'app', '--platform', 'linux/amd64,linux/arm64', '--executor', 'docker', '--factory-image', FACTORY, '--no-cext', '--jobs', '1']);
    expect(r.code).toBe(0);
    const locks = path.join(dir, 'recipes', 'locks', 'app');
    expect((await readdir(locks)).sort()).toEqual(['pylock.cp3_11_2-manylinux_2_36_aarch64.toml', 'pylock.cp3_11_2-manylinux_2_36_x86_64.toml']);
    for (const machine of Object.values(MACHINES)) {
      const text = await readFile(path.join(locks, `pylock.cp3_11_2-manylinux_2_36_${machine}.toml`), 'utf8');
      expect(text).toContain(`hello-1.0-cp311-cp311-linux_${machine}.whl`);
      expect(text).toContain(`platform_machine == \\"${machine}\\"`);
      expect(existsSync(path.join(dir, 'wheelhouse', `hello-1.0-cp311-cp311-linux_${machine}.whl`))).toBe(true);
    }
    // The two bases as one index in an OCI layout; the locks of the build make one image per platform over it.
    const { docker } = await sharedEngine();
    const cache = new BlobCache(path.join(dir, 'engine-cache'));
    const bases = await Promise.all([sharedBaseImage(), sharedBaseImage({ arch: 'arm64' })].map(async (name) => openImage({ kind: 'docker', name: await name }, { cache, docker: () => docker })));
    await writeImageIndex(new ImageIndex(bases), { kind: 'oci', dir: path.join(dir, 'bases'), ref: 'bookworm' });
    const app = await cli([
      'image', 'app', '--base', 'oci:bases:bookworm', '--platform', 'all', '--source', 'src', '--output', 'oci:app-out:app', '--json',
      '--lock', `linux/amd64=${path.join(locks, 'pylock.cp3_11_2-manylinux_2_36_x86_64.toml')}`,
      '--lock', `linux/arm64=${path.join(locks, 'pylock.cp3_11_2-manylinux_2_36_aarch64.toml')}`,
    ]);
    expect(app.stderr).toBe('');
    expect(app.code).toBe(0);
    expect((JSON.parse(app.stdout) as { images: { platform: string }[] }).images.map((i) => i.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
  }, 900_000);

  it('a platform the engine runs neither natively nor emulated is refused with the remedies', async () => {
    const r = await cli(['build', 'app', '--platform', 'linux/loong64', '--executor', 'docker', '--factory-image', FACTORY, '--no-cext']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error[ENGINE_PLATFORM]: the factory image for linux/loong64 needs a linux/loong64 container, and the Docker engine at ${env.DOCKER_HOST} runs linux/amd64, linux/arm64 only (no emulation of linux/loong64 in binfmt_misc)\n`);
    expect(r.stderr).toContain('hint: enable emulation on this machine (qemu-user-static and binfmt_misc: sudo bash tools/system/setup.sh), point DOCKER_HOST at a linux/loong64 engine, or lock elsewhere and pass --lock linux/loong64=FILE');
  });
});

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type Docker from 'dockerode';
import {
  bootstrapWheelhouse,
  expectValidImage,
  buildSourceWheel,
  followBuild,
  runInContainer,
  sharedBaseImage,
  sharedEngine,
  sharedRegistry,
  sharedRuntimeImage,
  testPython,
  writeCExtPackage,
} from '@dstack/testing';
import { BlobCache } from '../cache/blob-cache.js';
import { loadIntoDaemon } from '../sinks/daemon.js';
import { readDaemonImage } from '../sources/daemon.js';
import { pushImage } from '../sinks/registry.js';
import { buildValidated, installerFixtures, makeWheel } from '../fixtures/wheel.test-support.js';
import { engineBytecodeCompiler, hostBytecodeCompiler } from '../layers/wheels/bytecode.js';

let tmp: string;
let docker: Docker;
let cache: BlobCache;
let wheels: string[];
let src: string;
const id = randomBytes(4).toString('hex');
const tags: string[] = [];

const IMPORTS =
  'import alpha, beta_pkg, zcheck; print(alpha.VALUE, beta_pkg.EXTRA, zcheck.crc())';

beforeAll(async () => {
  ({ docker } = await sharedEngine());
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-engine-'));
  // Content-addressed and shared between runs: the base images are exported and compressed once per machine.
  cache = new BlobCache(path.join(os.tmpdir(), 'dstack-image-test-cache'));
  const wheelDir = path.join(tmp, 'wheels');
  await fs.mkdir(wheelDir);
  wheels = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(wheelDir, w));
  // A C extension linking zlib, built for cp311 by real pip (the base's Python is Debian's 3.11).
  const python = testPython('3.11');
  const boot = path.join(tmp, 'bootstrap');
  await bootstrapWheelhouse(python, boot);
  const pkg = await writeCExtPackage(path.join(tmp, 'pkgsrc'), { name: 'zcheck', version: '1.0', library: 'z' });
  wheels.push(await buildSourceWheel(python, pkg, wheelDir, boot));
  src = path.join(tmp, 'src');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'app.py'), 'import alpha\nprint("app ok", alpha.VALUE)\n');
});

afterAll(async () => {
  for (const t of tags) await docker.getImage(t).remove({ force: true }).catch(() => undefined);
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('daemonless images on a real engine', () => {
  it('builds on the debootstrapped base (venv added), loads, and runs: imports, console script, id -u, /app owner', async () => {
    const base = await readDaemonImage(docker, await sharedBaseImage(), { cache });
    const { image, base: info } = await buildValidated({
      base,
      cache,
      wheels: wheels.map((p) => ({ path: p })),
      app: { kind: 'source', dir: src },
      uid: 4321,
      cmd: ['python', 'app.py'],
    });
    expect(info.venv).toBeNull();
    expect(info.python).toBe('/usr/bin/python3.11');
    expect(info.pythonFullVersion).toMatch(/^3\.11\.\d+$/);
    const tag = `dstack-test/daemonless-src:${id}`;
    tags.push(tag);
    // The base's layers are not streamed again: the engine has them under the base image.
    await loadIntoDaemon(docker, image, tag, { reuseFrom: [await sharedBaseImage()] });
    // The engine's copy, read back and checked (the image on the runtime below is larger; this one shows the load).
    await expectValidImage(tag);
    const r = await runInContainer(tag, ['sh', '-c', `id -u; stat -c %u /app /app/app.py; python -c '${IMPORTS}'; alpha-cli; python app.py`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['4321', '4321', '4321', '42 extra 2771214488', 'alpha says 42', 'app ok 42', '']);
  }, 300_000);

  it('compiles bytecode as pip does, by the base itself on the engine or by the same Python here (one digest); run as its user, imports read the .pyc and write nothing', async () => {
    const baseName = await sharedBaseImage();
    const base = await readDaemonImage(docker, baseName, { cache });
    const build = async (label: string, compiler: ReturnType<typeof hostBytecodeCompiler>) =>
      buildValidated({
        base,
        cache: new BlobCache(path.join(tmp, `cache-pyc-${label}`)), // cold: every wheel compiled
        wheels: wheels.map((p) => ({ path: p })),
        app: { kind: 'source', dir: src },
        compiler: async () => compiler,
      });
    // The base's own /usr/bin/python3.11 in a container, and Debian's python3.11 of this machine (the same 3.11.2).
    const onEngine = await build('engine', engineBytecodeCompiler(docker, baseName, '/usr/bin/python3.11', 'cpython-311'));
    const here = await build('host', hostBytecodeCompiler('/usr/bin/python3.11', 'cpython-311'));
    expect(here.image.digest()).toBe(onEngine.image.digest());
    expect(onEngine.base.pythonFullVersion).toBe('3.11.2');

    const tag = `dstack-test/daemonless-pyc:${id}`;
    tags.push(tag);
    await loadIntoDaemon(docker, here.image, tag, { reuseFrom: [baseName] });
    // As the image's user (4801): -v says where each module's code came from; the container's changes are listed after.
    const container = await docker.createContainer({ Image: tag, Entrypoint: [], Cmd: ['python', '-v', '-c', IMPORTS], Labels: { 'org.dstack-factory.test': 'run' } });
    try {
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      let out = '';
      let err = '';
      const collect = (f: (s: string) => void): Writable => new Writable({ write: (c: Buffer, _e, cb) => (f(c.toString('utf8')), cb()) });
      docker.modem.demuxStream(stream, collect((t) => (out += t)), collect((t) => (err += t)));
      await container.start();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      expect(StatusCode).toBe(0);
      expect(out).toBe('42 extra 2771214488\n');
      const site = '/env/lib/python3.11/site-packages';
      const loaded = [...err.matchAll(/^# code object from '([^']+)'$/gm)].map((m) => m[1]!).filter((f) => f.startsWith('/env/'));
      // Every module of /env from its .pyc, checked against its source ("matches"); none compiled, none written.
      expect(loaded.sort()).toEqual([
        `${site}/__pycache__/beta_extra.cpython-311.pyc`,
        `${site}/alpha/__pycache__/__init__.cpython-311.pyc`,
        `${site}/beta_pkg/__pycache__/__init__.cpython-311.pyc`,
        `${site}/zcheck/__pycache__/__init__.cpython-311.pyc`,
      ]);
      for (const pyc of loaded) expect(err).toContain(`# ${pyc} matches ${pyc.replace('__pycache__/', '').replace('.cpython-311.pyc', '.py')}\n`);
      expect(err).not.toMatch(/could not create|wrote /);
      expect((await container.inspect()).Config.User).toBe('4801:4801');
      // Docker's diff of the container's filesystem against the image: nothing.
      const changes: unknown = await container.changes();
      expect(Buffer.isBuffer(changes) ? JSON.parse(changes.toString('utf8')) : changes).toBeNull();
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }, 600_000);

  it('builds on the runtime image (its venv reused) with an app wheel, pushes, docker pulls and runs', async () => {
    const runtime = await sharedRuntimeImage();
    const base = await readDaemonImage(docker, runtime, { cache });
    const appDir = path.join(tmp, 'appwheel');
    await fs.mkdir(appDir, { recursive: true });
    const appWheel = await makeWheel(appDir, {
      name: 'myapp',
      version: '0.1',
      files: { 'myapp/__init__.py': 'def main():\n    import zcheck\n    print("myapp", zcheck.crc())\n' },
      entryPoints: '[console_scripts]\nmyapp = myapp:main\n',
    });
    const { image, base: info, layers } = await buildValidated({
      base,
      cache,
      wheels: wheels.map((p) => ({ path: p })),
      app: { kind: 'wheel', path: appWheel },
      cmd: ['myapp'],
    });
    expect(info.venv).not.toBeNull();
    expect(layers.map((l) => l.role)).toEqual(['runtime', 'dependencies', 'app']);
    const registry = await sharedRegistry();
    // One repository for every run: the base's blobs are uploaded once, later runs find them with HEAD.
    const ref = `${registry.host}/dstack-test/daemonless-wheel:${id}`;
    tags.push(ref);
    await pushImage(image, ref);
    await followBuild(docker, await docker.pull(ref));
    const r = await runInContainer(ref, ['sh', '-c', `id -un; python -c '${IMPORTS}'; myapp; alpha-cli`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['webapp', '42 extra 2771214488', 'myapp 2771214488', 'alpha says 42', '']);
  }, 600_000);
});

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectBase } from '../layers/base-info.js';
import { BlobCache } from '../cache/blob-cache.js';
import { pruneCache } from '../cache/prune.js';
import type { Digest } from '../core/digest.js';
import type { AppImageOptions } from './build-app-image.js';
import { validateImage } from '../validate/validate-image.js';
import type { Image } from '../core/image.js';
import { writeOciLayout } from '../sinks/oci-layout.js';
import { parseDockerignore } from '../layers/dockerignore.js';
import { umociUnpack } from '@dstack/testing';
import { buildValidated, fakeBase, installerFixtures, makeWheel } from '../fixtures/wheel.test-support.js';
import { buildAppImage, findHostBytecodeCompiler, openImage, parseImageSpec, writeDependenciesLayer, writeImage } from '../index.js';

const run = promisify(execFile);
let tmp: string;
let base: Image;
let wheels: string[];
let src: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-build-'));
  const cache = new BlobCache(path.join(tmp, 'base-cache'));
  base = await fakeBase(cache);
  const wheelDir = path.join(tmp, 'wheels');
  await fs.mkdir(wheelDir);
  wheels = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(wheelDir, w));
  src = path.join(tmp, 'src');
  await fs.mkdir(path.join(src, 'pkg'), { recursive: true });
  await fs.mkdir(path.join(src, 'node_modules', 'x'), { recursive: true });
  await fs.writeFile(path.join(src, 'app.py'), 'print("app v1")\n');
  await fs.writeFile(path.join(src, 'pkg', 'mod.py'), 'X = 1\n');
  await fs.writeFile(path.join(src, 'pkg', 'secret.env'), 'TOKEN=1\n');
  await fs.writeFile(path.join(src, 'node_modules', 'x', 'i.js'), '');
  await fs.writeFile(path.join(src, '.dockerignore'), '# comment\nnode_modules\n**/*.env\n');
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const options = (cacheDir: string, extra: Partial<AppImageOptions> = {}): AppImageOptions => ({
  base,
  cache: new BlobCache(cacheDir),
  wheels: wheels.map((p) => ({ path: p })),
  app: { kind: 'source', dir: src },
  uid: 4801,
  cmd: ['python', 'app.py'],
  labels: { 'org.dstack-factory.lock.digest': 'sha256:abc' },
  ...extra,
});

describe('.dockerignore', () => {
  it.each([
    ['node_modules', 'node_modules/x/i.js', true],
    ['**/*.env', 'pkg/secret.env', true],
    ['**/*.env', 'top.env', true],
    ['*.env', 'pkg/secret.env', false],
    ['pkg\n!pkg/keep.py', 'pkg/keep.py', false],
    ['pkg\n!pkg/keep.py', 'pkg/other.py', true],
    ['/docs/', 'docs/a.md', true],
    ['a?c', 'abc', true],
    ['*.PY', 'app.py', false],
    ['docs\n!docs/keep/**', 'docs/keep/a/b.md', false],
    ['docs\n!docs/keep/**', 'docs/other.md', true],
    ['# comment\n\n*.pyc', 'a.pyc', true],
  ])('%j on %s -> %s', (patterns, file, ignored) => {
    expect(parseDockerignore(patterns).ignores(file)).toBe(ignored);
  });
});

describe('README usage', () => {
  it('builds an app image on a base read from an OCI layout and writes it to another, through the public API', async () => {
    const baseDir = path.join(tmp, 'usage-base');
    await writeOciLayout(await fakeBase(new BlobCache(path.join(tmp, 'usage-base-cache'))), baseDir, { ref: 'bookworm' });
    const out = path.join(tmp, 'usage-out');
    // README usage: begin
    const cache = new BlobCache(path.join(tmp, 'usage-cache'));
    const base = await openImage(parseImageSpec(`oci:${baseDir}:bookworm`), { cache }); // or docker:NAME, registry:REF
    const { image, layers } = await buildAppImage({
      base,
      cache,
      wheels: wheels.map((p) => ({ path: p })), // or (await wheelsFromLock(lockFile, wheelhouse, baseInfo)).wheels
      app: { kind: 'source', dir: src }, // or { kind: 'wheel', path: appWheel }
      uid: 4321,
      cmd: ['python', 'app.py'],
    });
    await validateImage(image);
    const written = await writeImage(image, parseImageSpec(`oci:${out}:myapp`)); // or docker:TAG, archive:FILE, registry:REF
    // README usage: end
    expect(layers.map((l) => [l.role, l.cached])).toEqual([['runtime', false], ['dependencies', false], ['app', false]]);
    expect(written).toEqual({ digest: image.digest(), where: `OCI layout ${out}:myapp` });
    const cfg = JSON.parse((await run('skopeo', ['inspect', '--config', `oci:${out}:myapp`])).stdout);
    expect(cfg.config.User).toBe('4321:4321');
    expect(cfg.config.Cmd).toEqual(['python', 'app.py']);
  });
});

describe('daemonless app image', () => {
  it('reads the base: interpreter, full version from dpkg, users', async () => {
    const info = await inspectBase(base);
    expect(info).toEqual({
      python: '/usr/bin/python3.11',
      pythonVersion: '3.11',
      pythonFullVersion: '3.11.2',
      venv: null,
      passwd: 'root:x:0:0:root:/root:/bin/bash\n',
      group: 'root:x:0:\n',
      // No C library in this made-up base: only pure and linux_<arch> wheels fit it.
      target: expect.objectContaining({ name: 'cp3_11_2-linux_x86_64', architecture: 'x86_64', libc: null, interpreter: 'image:/usr/bin/python3.11' }),
      pipWheel: null,
      venvHasPip: false,
    });
  });

  it('is reproducible, caches the dependencies layer, and an app change changes only the app layer', async () => {
    const first = await buildValidated(options(path.join(tmp, 'c1')));
    await validateImage(first.image);
    expect(first.layers.map((l) => [l.role, l.cached])).toEqual([['runtime', false], ['dependencies', false], ['app', false]]);
    // Another cache, another run: the same digest.
    const second = await buildValidated(options(path.join(tmp, 'c2')));
    expect(second.image.digest()).toBe(first.image.digest());
    // With the wheels' sha256 known (as a lock gives them), a cache hit reads no wheel at all.
    const hashes = await Promise.all(wheels.map(async (w) => (await run('sha256sum', [w])).stdout.split(' ')[0]!));
    const viaLock = (cacheDir: string, extra: Partial<AppImageOptions> = {}): AppImageOptions =>
      options(cacheDir, { wheels: wheels.map((p, i) => ({ path: p, sha256: hashes[i]! })), ...extra });
    const a = await buildValidated(viaLock(path.join(tmp, 'c1')));
    expect(a.image.digest()).toBe(first.image.digest());
    await fs.writeFile(path.join(src, 'app.py'), 'print("app v2")\n');
    try {
      // The wheels are gone now: a cache hit must not need them.
      const renamed = wheels.map((w) => w + '.hidden');
      await Promise.all(wheels.map((w, i) => fs.rename(w, renamed[i]!)));
      const b = await buildValidated(viaLock(path.join(tmp, 'c1')));
      await Promise.all(wheels.map((w, i) => fs.rename(renamed[i]!, w)));
      expect(b.layers.map((l) => [l.role, l.cached])).toEqual([['runtime', false], ['dependencies', true], ['app', false]]);
      const ma = a.image.manifest('oci').manifest.layers.map((l) => l.digest);
      const mb = b.image.manifest('oci').manifest.layers.map((l) => l.digest);
      expect(mb.slice(0, -1)).toEqual(ma.slice(0, -1));
      expect(mb.at(-1)).not.toBe(ma.at(-1));
    } finally {
      await fs.writeFile(path.join(src, 'app.py'), 'print("app v1")\n');
    }
  });

  it('uses a dependencies layer written before the base was read (writeDependenciesLayer, as the CLI starts it from a lock)', async () => {
    const dir = path.join(tmp, 'c-early');
    const seen: string[] = [];
    const early = await writeDependenciesLayer(
      wheels.map((p) => ({ path: p })),
      {
        cache: new BlobCache(dir),
        scheme: { prefix: '/env', pythonVersion: '3.11' },
        onWheel: (w, done, total) => seen.push(`${done}/${total} ${w}`),
        // As the CLI passes it: the .pyc compiled by the interpreter buildAppImage would choose for the base.
        bytecode: { cacheTag: 'cpython-311', pythonFullVersion: '3.11.2', compiler: async () => (await findHostBytecodeCompiler('3.11', '3.11.2'))! },
      },
    );
    expect(early).toMatchObject({ cached: false, segments: { built: wheels.length, reused: 0 } });
    // Written for another patch release of the target, it is another layer (its .pyc may differ).
    const other = await writeDependenciesLayer(wheels.map((p) => ({ path: p })), {
      cache: new BlobCache(dir),
      scheme: { prefix: '/env', pythonVersion: '3.11' },
      bytecode: { cacheTag: 'cpython-311', pythonFullVersion: '3.11.9', compiler: async () => (await findHostBytecodeCompiler('3.11', '3.11.9'))! },
    });
    expect(other).toMatchObject({ cached: false, segments: { built: wheels.length, reused: 0 } });
    // In the layer's order (file names, code-unit order), one call after each wheel.
    expect(seen).toEqual(['1/2 Beta_Pkg-2.0-cp311-cp311-linux_x86_64.whl', '2/2 alpha-1.0-py3-none-any.whl']);
    const later = await buildValidated(options(dir));
    expect(later.layers.find((l) => l.role === 'dependencies')).toMatchObject({ digest: early.layer.digest, cached: true });
    // The same image as one built without it.
    expect(later.image.digest()).toBe((await buildValidated(options(path.join(tmp, 'c-early-none')))).image.digest());
  });

  it('does not take a cut-short dependencies blob for a cache hit: the layer is written again, to the same digest', async () => {
    const dir = path.join(tmp, 'c-short');
    const first = await buildValidated(options(dir));
    const deps = first.layers.find((l) => l.role === 'dependencies')!;
    const blob = new BlobCache(dir).pathOf(deps.digest);
    await fs.truncate(blob, 100);
    const again = await buildValidated(options(dir));
    expect(again.layers.find((l) => l.role === 'dependencies')).toMatchObject({ digest: deps.digest, cached: false });
    expect((await fs.stat(blob)).size).toBe(deps.size);
  });

  it('prunes what was not used lately: an old dependencies layer goes, the one in use stays (its records are touched on hits)', async () => {
    const dir = path.join(tmp, 'c-prune');
    const cache = new BlobCache(dir);
    const old = await buildValidated(options(dir, { wheels: wheels.slice(0, 1).map((p) => ({ path: p })) }));
    const current = await buildValidated(options(dir));
    const depsOf = (r: typeof old): string => r.layers.find((l) => l.role === 'dependencies')!.digest;
    // Everything two days old; then a build of the current image uses (touches) its records.
    const then = new Date(Date.now() - 2 * 86_400_000);
    for (const sub of ['keys/layers', 'keys/segments', 'keys/base', 'blobs/sha256']) {
      for (const f of await fs.readdir(path.join(dir, sub))) await fs.utimes(path.join(dir, sub, f), then, then);
    }
    expect((await buildValidated(options(dir))).layers.find((l) => l.role === 'dependencies')?.cached).toBe(true);
    const pruned = await pruneCache(cache, { olderThanMs: 86_400_000 });
    expect(pruned.blobs).toBeGreaterThan(0);
    expect(pruned.records).toBeGreaterThan(0);
    expect(await cache.has(depsOf(current) as Digest)).toBe(true);
    expect(await cache.has(depsOf(old) as Digest)).toBe(false);
    // The kept cache still serves the current build whole; the pruned one is built again, to the same digest.
    expect((await buildValidated(options(dir))).layers.find((l) => l.role === 'dependencies')?.cached).toBe(true);
    const rebuilt = await buildValidated(options(dir, { wheels: wheels.slice(0, 1).map((p) => ({ path: p })) }));
    expect(rebuilt.layers.find((l) => l.role === 'dependencies')).toMatchObject({ digest: depsOf(old), cached: false });
    // Nothing used within the window: everything goes.
    const all = await pruneCache(cache, { olderThanMs: 0, now: Date.now() + 1000 });
    expect(all.keptBlobs).toBe(0);
  });

  it('writes an OCI layout that skopeo and umoci accept, with the expected files, owners and config', async () => {
    const { image } = await buildValidated(options(path.join(tmp, 'c3')));
    const dir = path.join(tmp, 'oci');
    await writeOciLayout(image, dir, { ref: 'app' });
    const cfg = JSON.parse((await run('skopeo', ['inspect', '--config', `oci:${dir}:app`])).stdout);
    expect(cfg.config).toEqual({
      Env: ['PATH=/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/app', 'VIRTUAL_ENV=/env'],
      WorkingDir: '/app',
      User: '4801:4801',
      Labels: { 'org.dstack-factory.lock.digest': 'sha256:abc' },
      Cmd: ['python', 'app.py'],
    });
    expect(cfg.created).toBe('1970-01-01T00:00:00Z');
    expect(cfg.history.map((h: { created_by: string }) => h.created_by)).toEqual([
      'fake base',
      'dstack-factory: venv /env -> /usr/bin/python3.11, user webapp (4801), /app',
      'dstack-factory: install 2 wheels into /env',
      'dstack-factory: copy src to /app (owner 4801:4801)',
      'dstack-factory: config (env, user, workdir, cmd, labels)',
    ]);
    const unpacked = await umociUnpack(`${dir}:app`, path.join(tmp, 'bundle'));
    const root = unpacked.rootfs;
    expect(await fs.readFile(path.join(root, 'env/pyvenv.cfg'), 'utf8')).toBe(
      'home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\nexecutable = /usr/bin/python3.11\ncommand = /usr/bin/python3.11 -m venv /env\n',
    );
    expect(await fs.readlink(path.join(root, 'env/bin/python'))).toBe('python3.11');
    expect(await fs.readlink(path.join(root, 'env/bin/python3.11'))).toBe('/usr/bin/python3.11');
    expect(await fs.readFile(path.join(root, 'etc/passwd'), 'utf8')).toBe(
      'root:x:0:0:root:/root:/bin/bash\nwebapp:x:4801:4801::/app:/usr/sbin/nologin\n',
    );
    expect(await fs.readFile(path.join(root, 'etc/group'), 'utf8')).toBe('root:x:0:\nwebapp:x:4801:\n');
    expect(unpacked.owner('app/pkg/mod.py')).toEqual([4801, 4801]);
    expect(unpacked.owner('app')).toEqual([4801, 4801]);
    expect(unpacked.owner('env/bin/alpha-cli')).toEqual([0, 0]);
    await expect(fs.access(path.join(root, 'app/pkg/secret.env'))).rejects.toThrow();
    await expect(fs.access(path.join(root, 'app/node_modules'))).rejects.toThrow();
    expect(await fs.readFile(path.join(root, 'app/.dockerignore'), 'utf8')).toContain('node_modules');
    expect((await fs.readFile(path.join(root, 'env/bin/alpha-cli'), 'utf8')).split('\n')[0]).toBe('#!/env/bin/python');
  });

  it('puts pip in the venv: the pip the lock names wins over the wheelhouse one, which wins over the base', async () => {
    const pipDir = path.join(tmp, 'pips');
    await fs.mkdir(pipDir);
    const pip = (version: string) => makeWheel(pipDir, { name: 'pip', version, files: { 'pip/__init__.py': `__version__ = "${version}"\n` } });
    const housePip = await pip('23.0');
    const lockedPip = await pip('24.0');
    const installedPips = async (extra: Partial<AppImageOptions>, name: string): Promise<string[]> => {
      const { image } = await buildValidated(options(path.join(tmp, `pip-${name}`), { compile: false, ...extra }));
      const dir = path.join(tmp, `pip-oci-${name}`);
      await writeOciLayout(image, dir, { ref: 'app' });
      const { rootfs } = await umociUnpack(`${dir}:app`, path.join(tmp, `pip-bundle-${name}`));
      const site = path.join(rootfs, 'env/lib/python3.11/site-packages');
      return (await fs.readdir(site)).filter((f) => /^pip-.*\.dist-info$/.test(f));
    };
    // No pip locked: the wheelhouse's (the made-up base carries none).
    expect(await installedPips({ pipWheel: housePip }, 'house')).toEqual(['pip-23.0.dist-info']);
    // The lock names pip 24.0: that one, and no second pip beside it.
    const locked = [...wheels, lockedPip].map((p) => ({ path: p }));
    expect(await installedPips({ pipWheel: housePip, wheels: locked }, 'locked')).toEqual(['pip-24.0.dist-info']);
    // --no-pip: none, even with one in the wheelhouse.
    expect(await installedPips({ pipWheel: housePip, pip: false }, 'none')).toEqual([]);
  });

  it('installs an app wheel as its own layer', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'appwheel-'));
    const appWheel = await makeWheel(dir, { name: 'myapp', version: '0.1', files: { 'myapp/__init__.py': 'OK = True\n' } });
    const { image, layers } = await buildValidated(options(path.join(tmp, 'c4'), { app: { kind: 'wheel', path: appWheel } }));
    expect(layers.map((l) => l.role)).toEqual(['runtime', 'dependencies', 'app']);
    expect(image.layers).toHaveLength(4);
  });
});

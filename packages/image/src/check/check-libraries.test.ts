import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileElf, writeWheel } from '@dstack/testing';
import { BlobCache } from '../cache/blob-cache.js';
import type { Image } from '../core/image.js';
import { appendLayers, emptyImage, mutateConfig } from '../core/mutate.js';
import { writeLayer, type LayerEntry } from '../layers/write-layer.js';
import { checkWheelLibraries, imagePackageFinder, installedPath, libraryCheckError } from './check-libraries.js';
import { readImageFiles } from './image-files.js';
import { WheelMissingError } from '../layers/wheels/wheel-file.js';
import { validateImage } from '../validate/validate-image.js';

const scheme = { prefix: '/env', pythonVersion: '3.11' };
const EXT = 'cpython-311-x86_64-linux-gnu.so';
let tmp: string;
let cache: BlobCache;
const so: Record<string, Buffer> = {};

/** A Debian-like merged-/usr base: /lib -> usr/lib, libc and zlib in the multiarch folder, ld.so.conf includes. */
async function base(extra: LayerEntry[] = [], more: LayerEntry[][] = [], env: string[] = []): Promise<Image> {
  const lib = 'usr/lib/x86_64-linux-gnu';
  const layer = await writeLayer(
    [
      { path: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { path: 'lib64', type: 'symlink', linkname: 'usr/lib64' },
      { path: 'usr/lib64/ld-linux-x86-64.so.2', type: 'symlink', linkname: `/${lib}/ld-linux-x86-64.so.2` },
      { path: `${lib}/ld-linux-x86-64.so.2`, type: 'file', data: so.libc! },
      { path: `${lib}/libc.so.6`, type: 'file', data: so.libc! },
      { path: `${lib}/libz.so.1.2.13`, type: 'file', data: so.libz! },
      { path: `${lib}/libz.so.1`, type: 'symlink', linkname: 'libz.so.1.2.13' },
      { path: 'etc/ld.so.conf', type: 'file', data: Buffer.from('include /etc/ld.so.conf.d/*.conf\n') },
      { path: 'etc/ld.so.conf.d/x86_64-linux-gnu.conf', type: 'file', data: Buffer.from('# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n') },
      ...extra,
    ],
    { cache },
  );
  const layers = [layer, ...(await Promise.all(more.map((entries) => writeLayer(entries, { cache }))))];
  const img = appendLayers(emptyImage(), layers.map((l) => ({ layer: l, history: { created_by: 'test base' } })));
  const image = env.length ? mutateConfig(img, (c) => ({ ...c, Env: env })) : img;
  await validateImage(image);
  return image;
}

async function wheel(name: string, files: Record<string, Buffer>): Promise<string> {
  return writeWheel(tmp, { name, version: '1.0', tag: 'cp311-cp311-linux_x86_64', files: { [`${name}/__init__.py`]: Buffer.from(''), ...files } });
}

async function check(img: Image, wheels: string[]) {
  return checkWheelLibraries({ base: img, wheels: wheels.map((p) => ({ path: p })), scheme, cache, packages: imagePackageFinder(await readImageFiles(img, { cache }), 'the base') });
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-libcheck-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
  so.libc = await fs.readFile('/lib/x86_64-linux-gnu/libc.so.6');
  so.libz = await fs.readFile(await fs.realpath('/lib/x86_64-linux-gnu/libz.so.1'));
  const c = async (output: string, args: string[] = [], cc?: string) => fs.readFile(await compileElf({ dir: tmp, output, args, ...(cc ? { cc } : {}) }));
  so.pq = await c('libpq.so.5', ['-Wl,-soname,libpq.so.5']);
  so.ssl = await c('libssl-1a2b.so.3', ['-Wl,-soname,libssl-1a2b.so.3']);
  // A bundled libpq that needs the bundled libssl, with no search path of its own (found through the loader's RPATH).
  so.pqBundled = await c('libpq-9f8e.so.5', ['-Wl,-soname,libpq-9f8e.so.5', path.join(tmp, 'libssl-1a2b.so.3')]);
  const pqDir = ['-L', tmp];
  so.extPq = await c(`_pq.${EXT}`, [...pqDir, '-lpq', '-lz']);
  so.extBundledRpath = await c(`_b1.${EXT}`, [path.join(tmp, 'libpq-9f8e.so.5'), '-Wl,--disable-new-dtags,-rpath,$ORIGIN/../bundled.libs']);
  so.extBundledRunpath = await c(`_b2.${EXT}`, [path.join(tmp, 'libpq-9f8e.so.5'), '-Wl,--enable-new-dtags,-rpath,$ORIGIN/../bundled.libs']);
  so.extOpt = await c(`_opt.${EXT}`, ['-L', tmp, '-lpq']);
  so.arm = await c(`_arm.${EXT}`, [], 'aarch64-linux-gnu-gcc');
  so.exe = await fs.readFile(await compileElf({ dir: tmp, output: 'tool', executable: true, source: 'int main(void) { return 0; }\n' }));
}, 120_000);

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('checkWheelLibraries', () => {
  it('refuses a C extension linked to libpq on a base without libpq5; names the package from dpkg lists', async () => {
    const img = await base([{ path: 'var/lib/dpkg/info/libpq-dev:amd64.list', type: 'file', data: Buffer.from('/usr/lib/x86_64-linux-gnu/libpq.so\n/usr/include/postgresql/libpq-fe.h\n') }], [], []);
    // The package index comes from another image (the factory's) in real use: here one without libpq5's list.
    const w = await wheel('pqext', { [`pqext/_pq.${EXT}`]: so.extPq! });
    const report = await check(img, [w]);
    expect(report.problems).toEqual([{ wheel: path.basename(w), file: `pqext/_pq.${EXT}`, kind: 'missing', library: 'libpq.so.5', packages: [] }]);
    const factory = await base([{ path: 'var/lib/dpkg/info/libpq5:amd64.list', type: 'file', data: Buffer.from('/.\n/usr/lib/x86_64-linux-gnu/libpq.so.5\n/usr/lib/x86_64-linux-gnu/libpq.so.5.15\n') }]);
    const named = await checkWheelLibraries({
      base: img,
      wheels: [{ path: w }],
      scheme,
      cache,
      packages: imagePackageFinder(await readImageFiles(factory, { cache }), 'the factory image'),
    });
    expect(named.problems[0]!.packages).toEqual(['libpq5']);
    const error = libraryCheckError(named, { name: 'base:test', architecture: 'amd64' });
    expect(error.code).toBe('IMAGE_LIBRARY_MISSING');
    expect(error.message).toBe(
      `base:test would not load what the wheels install (1 problem):\n  pqext-1.0-cp311-cp311-linux_x86_64.whl\n    pqext/_pq.${EXT}: libpq.so.5 not found (Debian package libpq5)`,
    );
    expect(error.hint).toBe(
      'add the package to the runtime image (EXTRA_PACKAGES="libpq5"; packages from the factory image), or use wheels that bundle them (auditwheel repair); --no-check-libs skips this check',
    );
  });

  it('keyed by sha256, reads no wheel when its ELF list is cached; a wheel in no wheelhouse is named when it must be read', async () => {
    const img = await base();
    const w = await wheel('lazyext', { [`lazyext/_pq.${EXT}`]: so.extPq! });
    const sha256 = createHash('sha256').update(await fs.readFile(w)).digest('hex');
    const own = new BlobCache(path.join(tmp, 'lazy-cache'));
    const first = await checkWheelLibraries({ base: img, wheels: [{ path: w, sha256 }], scheme, cache: own });
    expect(first.problems.map((p) => p.library)).toEqual(['libpq.so.5']);
    // Another base (no cached report): the wheel's ELF list is cached, so `locate` is never called.
    const gone = (name: string) => () => Promise.reject(new WheelMissingError([name], '/x/pylock.toml', '/x/wheelhouse'));
    const other = await base([{ path: 'usr/lib/x86_64-linux-gnu/libpq.so.5', type: 'file', data: so.pq! }]);
    const elsewhere = { path: '/x/wheelhouse/lazyext-1.0-cp311-cp311-linux_x86_64.whl', sha256, locate: gone('lazyext-1.0-cp311-cp311-linux_x86_64.whl') };
    expect((await checkWheelLibraries({ base: other, wheels: [elsewhere], scheme, cache: own })).problems).toEqual([]);
    // Not cached: every wheel that must be read and is nowhere, in one error.
    const missing = ['b-1.0-py3-none-any.whl', 'a-1.0-py3-none-any.whl'].map((n) => ({ path: `/x/wheelhouse/${n}`, sha256: n.slice(0, 1).repeat(64), locate: gone(n) }));
    await expect(checkWheelLibraries({ base: other, wheels: [elsewhere, ...missing], scheme, cache: own })).rejects.toThrow(
      '2 wheels locked in /x/pylock.toml are not in the wheelhouse /x/wheelhouse, and the layer cache has not got what they install: a-1.0-py3-none-any.whl, b-1.0-py3-none-any.whl',
    );
  });

  it('accepts it where the library is (through /lib -> usr/lib and a symlink chain)', async () => {
    const img = await base([
      { path: 'usr/lib/x86_64-linux-gnu/libpq.so.5.15', type: 'file', data: so.pq! },
      { path: 'usr/lib/x86_64-linux-gnu/libpq.so.5', type: 'symlink', linkname: 'libpq.so.5.15' },
    ]);
    const w = await wheel('pqext', { [`pqext/_pq.${EXT}`]: so.extPq! });
    expect((await check(img, [w])).problems).toEqual([]);
  });

  it('honours whiteouts: a later layer that deletes the library makes it missing', async () => {
    const img = await base(
      [{ path: 'usr/lib/x86_64-linux-gnu/libpq.so.5', type: 'file', data: so.pq! }],
      [[{ path: 'usr/lib/x86_64-linux-gnu/.wh.libpq.so.5', type: 'file', data: Buffer.alloc(0) }]],
    );
    const w = await wheel('pqext', { [`pqext/_pq.${EXT}`]: so.extPq! });
    expect((await check(img, [w])).problems.map((p) => p.library)).toEqual(['libpq.so.5']);
  });

  it('finds libraries in ld.so.conf folders and LD_LIBRARY_PATH, not elsewhere', async () => {
    const optLib = [{ path: 'opt/pg/lib/libpq.so.5', type: 'file' as const, data: so.pq! }];
    const w = await wheel('optext', { [`optext/_opt.${EXT}`]: so.extOpt! });
    expect((await check(await base(optLib), [w])).problems.map((p) => p.library)).toEqual(['libpq.so.5']);
    const conf = { path: 'etc/ld.so.conf.d/pg.conf', type: 'file' as const, data: Buffer.from('/opt/pg/lib\n') };
    expect((await check(await base([...optLib, conf]), [w])).problems).toEqual([]);
    expect((await check(await base(optLib, [], ['LD_LIBRARY_PATH=/opt/pg/lib']), [w])).problems).toEqual([]);
  });

  it("accepts a wheel that bundles its libraries in <name>.libs/ with an $ORIGIN RPATH (psycopg2-binary's layout)", async () => {
    const img = await base();
    const w = await wheel('bundled', {
      [`bundled/_b1.${EXT}`]: so.extBundledRpath!,
      'bundled.libs/libpq-9f8e.so.5': so.pqBundled!,
      'bundled.libs/libssl-1a2b.so.3': so.ssl!,
    });
    expect((await check(img, [w])).problems).toEqual([]);
  });

  it('does not let DT_RUNPATH reach the bundled library\'s own needs (ld.so does not inherit it)', async () => {
    const img = await base();
    const w = await wheel('bundled', {
      [`bundled/_b2.${EXT}`]: so.extBundledRunpath!,
      'bundled.libs/libpq-9f8e.so.5': so.pqBundled!,
      'bundled.libs/libssl-1a2b.so.3': so.ssl!,
    });
    expect((await check(img, [w])).problems).toEqual([
      { wheel: path.basename(w), file: 'bundled.libs/libpq-9f8e.so.5', kind: 'missing', library: 'libssl-1a2b.so.3', packages: [] },
    ]);
  });

  it('finds a library another wheel installs', async () => {
    const img = await base([{ path: 'etc/ld.so.conf.d/env.conf', type: 'file', data: Buffer.from('/env/lib\n') }]);
    const provider = await writeWheel(tmp, { name: 'libpq-provider', version: '1.0', tag: 'cp311-cp311-linux_x86_64', files: { 'libpq_provider/__init__.py': '', 'libpq_provider-1.0.data/data/lib/libpq.so.5': so.pq! } });
    const w = await wheel('pqext', { [`pqext/_pq.${EXT}`]: so.extPq! });
    expect((await check(img, [w])).problems).toHaveLength(1);
    expect((await check(img, [w, provider])).problems).toEqual([]);
  });

  it('refuses an aarch64 .so for an amd64 base, and an executable whose interpreter is absent', async () => {
    const img = await base();
    const w = await wheel('armext', { [`armext/_arm.${EXT}`]: so.arm!, 'armext-1.0.data/scripts/tool': so.exe! });
    const report = await check(img, [w]);
    expect(report.problems).toEqual([{ wheel: path.basename(w), file: `armext/_arm.${EXT}`, kind: 'architecture', library: 'aarch64 (64-bit)', packages: [] }]);
    expect(libraryCheckError(report, { name: 'base', architecture: 'amd64' }).message).toBe(
      `base would not load what the wheels install (1 problem):\n  armext-1.0-cp311-cp311-linux_x86_64.whl\n    armext/_arm.${EXT}: built for aarch64 (64-bit), the image is amd64`,
    );
    const noInterp = await base([], [[{ path: 'usr/lib64/.wh.ld-linux-x86-64.so.2', type: 'file', data: Buffer.alloc(0) }]]);
    expect((await check(noInterp, [w])).problems.filter((p) => p.kind === 'interpreter')).toEqual([
      { wheel: path.basename(w), file: 'armext-1.0.data/scripts/tool', kind: 'interpreter', library: '/lib64/ld-linux-x86-64.so.2', packages: [] },
    ]);
  });

  it.each([
    ['pkg/_x.so', '/env/lib/python3.11/site-packages/pkg/_x.so'],
    ['pkg-1.0.data/scripts/tool', '/env/bin/tool'],
    ['pkg-1.0.data/data/lib/libx.so.1', '/env/lib/libx.so.1'],
    ['pkg-1.0.data/platlib/pkg/_y.so', '/env/lib/python3.11/site-packages/pkg/_y.so'],
  ])('installedPath(%s) = %s', (member, expected) => {
    expect(installedPath(member, scheme)).toBe(expected);
  });
});

// A base's target read from its config and layers, never by running it: real C libraries (this machine's
// glibc, Debian's musl package) laid out in made-up layers as a Debian and an Alpine image lay them out.
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Image } from '../core/image.js';
import { appendLayers, emptyImage } from '../core/mutate.js';
import { BlobCache } from '../cache/blob-cache.js';
import { extractBaseFile, inspectBase } from './base-info.js';
import { writeLayer, type LayerEntry } from './write-layer.js';

const GLIBC_FILE = '/lib/x86_64-linux-gnu/libc.so.6';
const MUSL_FILE = '/usr/lib/x86_64-linux-musl/libc.so'; // Debian's musl package (tools/system/setup.sh)

let tmp: string;
let cache: BlobCache;
let hostGlibc: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-base-info-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
  hostGlibc = execFileSync('getconf', ['GNU_LIBC_VERSION'], { encoding: 'utf8' }).trim().split(' ')[1]!.split('.').slice(0, 2).join('.');
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const python: LayerEntry[] = [
  { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
  { path: 'var/lib/dpkg/status', type: 'file', data: Buffer.from('Package: python3.11-minimal\nVersion: 3.11.2-6+deb12u6\n\n') },
];

async function image(layers: LayerEntry[][], platform: { architecture?: string; variant?: string } = {}): Promise<Image> {
  let img = emptyImage(platform.architecture ? { architecture: platform.architecture } : {});
  if (platform.variant) img = new Image({ ...img.config, variant: platform.variant }, img.layers);
  for (const entries of layers) img = appendLayers(img, [{ layer: await writeLayer(entries, { cache }) }]);
  return img;
}

describe('the target of a base image, read without running it', () => {
  it('a Debian layout: glibc from the version libc.so.6 states, the machine from the config', async () => {
    const libc: LayerEntry[] = [
      { path: 'usr/lib/x86_64-linux-gnu/libc.so.6', type: 'file', data: readFileSync(GLIBC_FILE), mode: 0o755 },
      { path: 'lib64/ld-linux-x86-64.so.2', type: 'symlink', linkname: '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' },
    ];
    const info = await inspectBase(await image([libc, python]));
    expect(info.target).toMatchObject({
      name: `cp3_11_2-manylinux_${hostGlibc.replace('.', '_')}_x86_64`,
      interpreter: 'image:/usr/bin/python3.11',
      architecture: 'x86_64',
      libc: { kind: 'glibc', version: hostGlibc },
    });
    expect(info.target.tags[0]).toBe(`cp311-cp311-manylinux_${hostGlibc.replace('.', '_')}_x86_64`);
  });

  it('an old glibc layout: the version from the file name libc-2.31.so; arm64 from the config', async () => {
    const libc: LayerEntry[] = [
      { path: 'lib/aarch64-linux-gnu/libc-2.31.so', type: 'file', data: Buffer.from('not scanned'), mode: 0o755 },
      { path: 'lib/aarch64-linux-gnu/libc.so.6', type: 'symlink', linkname: 'libc-2.31.so' },
      { path: 'lib/ld-linux-aarch64.so.1', type: 'symlink', linkname: 'aarch64-linux-gnu/ld-2.31.so' },
    ];
    const info = await inspectBase(await image([libc, python], { architecture: 'arm64', variant: 'v8' }));
    expect(info.target).toMatchObject({ name: 'cp3_11_2-manylinux_2_31_aarch64', architecture: 'aarch64', libc: { kind: 'glibc', version: '2.31' } });
    expect(info.target.markers.platform_machine).toBe('aarch64');
  });

  it('an Alpine layout: musl from its loader (the version it states), or from apk\'s database', async () => {
    const musl: LayerEntry[] = [{ path: 'lib/ld-musl-x86_64.so.1', type: 'file', data: readFileSync(MUSL_FILE), mode: 0o755 }];
    const fromBinary = await inspectBase(await image([musl, python]));
    expect(fromBinary.target).toMatchObject({ name: 'cp3_11_2-musllinux_1_2_x86_64', libc: { kind: 'musl', version: '1.2' } });
    const apk: LayerEntry[] = [
      { path: 'lib/ld-musl-armhf.so.1', type: 'symlink', linkname: 'libc.musl-armhf.so.1' },
      { path: 'lib/apk/db/installed', type: 'file', data: Buffer.from('C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:armhf\n\n') },
    ];
    const fromApk = await inspectBase(await image([apk, python], { architecture: 'arm', variant: 'v7' }));
    expect(fromApk.target).toMatchObject({ name: 'cp3_11_2-musllinux_1_2_armv7l', architecture: 'armv7l', libc: { kind: 'musl', version: '1.2' } });
  });

  it('glibc wins over a musl loader beside it (Debian\'s musl package); a whiteout removes a C library', async () => {
    const both: LayerEntry[] = [
      { path: 'usr/lib/x86_64-linux-gnu/libc.so.6', type: 'file', data: readFileSync(GLIBC_FILE), mode: 0o755 },
      { path: 'usr/lib/x86_64-linux-musl/libc.so', type: 'file', data: Buffer.from('x') },
      { path: 'lib/ld-musl-x86_64.so.1', type: 'symlink', linkname: '/usr/lib/x86_64-linux-musl/libc.so' },
    ];
    expect((await inspectBase(await image([both, python]))).target.libc).toEqual({ kind: 'glibc', version: hostGlibc });
    const removed: LayerEntry[] = [{ path: 'usr/lib/x86_64-linux-gnu/.wh.libc.so.6', type: 'file', data: Buffer.alloc(0) }];
    expect((await inspectBase(await image([both, removed, python]))).target.libc).toBeNull();
  });

  it('refuses a config that disagrees with the C library (a foreign rootfs imported as amd64)', async () => {
    const libc: LayerEntry[] = [{ path: 'lib/ld-linux-aarch64.so.1', type: 'symlink', linkname: 'aarch64-linux-gnu/ld-linux-aarch64.so.1' }];
    await expect(inspectBase(await image([libc, python]))).rejects.toMatchObject({
      code: 'IMAGE_BASE_PLATFORM',
      message: "the base image's config says linux/amd64 (x86_64), but its C library is for aarch64 (lib/ld-linux-aarch64.so.1)",
    });
  });

  it("finds the base's pip wheel for venvs (Debian's shared wheels first) and copies it out of its layer", async () => {
    const wheels: LayerEntry[] = [
      { path: 'usr/lib/python3.11/ensurepip/_bundled/pip-24.0-py3-none-any.whl', type: 'file', data: Buffer.from('bundled') },
      { path: 'usr/share/python-wheels/pip-23.0.1-py3-none-any.whl', type: 'file', data: Buffer.from('debian pip') },
      { path: 'usr/share/python-wheels/setuptools-66.1.1-py3-none-any.whl', type: 'file', data: Buffer.from('x') },
    ];
    const img = await image([wheels, python]);
    const info = await inspectBase(img);
    expect([info.pipWheel, info.venvHasPip]).toEqual(['/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl', false]);
    const copy = await extractBaseFile(img, info.pipWheel!, path.join(tmp, 'files'));
    expect(copy).toBe(path.join(tmp, 'files', img.layers[0]!.diffId.slice(7), 'pip-23.0.1-py3-none-any.whl'));
    expect(readFileSync(copy!, 'utf8')).toBe('debian pip');
    expect(await extractBaseFile(img, '/usr/share/python-wheels/absent.whl', path.join(tmp, 'files'))).toBeNull();
  });

  it('reads the full Python version from the interpreter\'s binary when nothing else states it (real binaries, not run)', async () => {
    const libc: LayerEntry[] = [{ path: 'usr/lib/x86_64-linux-gnu/libc.so.6', type: 'file', data: readFileSync(GLIBC_FILE), mode: 0o755 }];
    // Debian's python3.11 (libpython linked in; PY_VERSION a string of its own), no dpkg record beside it.
    const debian: LayerEntry[] = [{ path: 'usr/bin/python3.11', type: 'file', data: readFileSync('/usr/bin/python3.11'), mode: 0o755 }];
    expect((await inspectBase(await image([libc, debian]))).pythonFullVersion).toBe('3.11.2');
    // A shared build (pyenv's 3.12.1, as python.org's images are built): a small python3.12 and its libpython,
    // where the linker folded PY_VERSION into the tail of a longer string.
    const pyenv = path.join(process.env.PYENV_ROOT ?? path.join(os.homedir(), '.pyenv'), 'versions', '3.12.1');
    const shared: LayerEntry[] = [
      { path: 'usr/local/bin/python3.12', type: 'file', data: readFileSync(path.join(pyenv, 'bin/python3.12')), mode: 0o755 },
      { path: 'usr/local/lib/libpython3.12.so.1.0', type: 'file', data: readFileSync(path.join(pyenv, 'lib/libpython3.12.so.1.0')), mode: 0o755 },
    ];
    const info = await inspectBase(await image([libc, shared]));
    expect([info.python, info.pythonFullVersion, info.target.name]).toEqual(['/usr/local/bin/python3.12', '3.12.1', `cp3_12_1-manylinux_${hostGlibc.replace('.', '_')}_x86_64`]);
    // Nothing states it: refused, never guessed.
    await expect(inspectBase(await image([libc, [{ path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 }]]))).rejects.toMatchObject({
      code: 'IMAGE_BASE_PYTHON_VERSION',
      message: "the base's /usr/bin/python3.11 states no full Python version (no PYTHON_VERSION, venv, dpkg record, nor a version in its binary)",
    });
  }, 60_000);

  it('refuses a platform without wheel tags', async () => {
    await expect(inspectBase(await image([python], { architecture: 'mips64le' }))).rejects.toMatchObject({
      code: 'IMAGE_BASE_PLATFORM',
      message: "the base image's platform linux/mips64le has no Python wheel tags",
    });
  });
});

import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLock, stringifyLock, type Lock } from '@dstack/recipe';
import type { BaseInfo } from '../layers/base-info.js';
import { describeTarget } from '@dstack/wheelhouse';
import { lockedWheelsBeforeBase, wheelsFromLock } from './lock.js';
import { installerFixtures, makeWheel } from '../fixtures/wheel.test-support.js';
import { wheelFile, wheelFiles, type WheelMissingError } from '../layers/wheels/wheel-file.js';

const parseLockFile = (text: string): Lock => parseLock(text, 'pylock.toml');

let tmp: string;
let lockFile: string;
const bookworm = describeTarget({ pythonFullVersion: '3.11.2', architecture: 'x86_64', libc: { kind: 'glibc', version: '2.36' } });
const base: BaseInfo = { python: '/usr/bin/python3.11', pythonVersion: '3.11', pythonFullVersion: '3.11.2', venv: null, passwd: null, group: null, target: bookworm, pipWheel: null, venvHasPip: false };

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-lock-'));
  const wh = path.join(tmp, 'wheelhouse');
  await fs.mkdir(wh);
  const files: string[] = [];
  for (const w of installerFixtures()) files.push(await makeWheel(wh, w));
  const sha = async (f: string): Promise<string> => createHash('sha256').update(await fs.readFile(f)).digest('hex');
  const lock: Lock = {
    lockVersion: '1.0',
    createdBy: 'dstack-factory',
    environments: ['implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"'],
    packages: [
      { name: 'alpha', version: '1.0', wheels: [{ name: path.basename(files[0]!), path: `../wheelhouse/${path.basename(files[0]!)}`, hashes: { sha256: await sha(files[0]!) } }], dependencies: [{ name: 'beta-pkg' }] },
      { name: 'beta-pkg', version: '2.0', wheels: [{ name: path.basename(files[1]!), path: `../wheelhouse/${path.basename(files[1]!)}`, hashes: { sha256: await sha(files[1]!) } }] },
      { name: 'winonly', version: '1.0', marker: 'sys_platform == "win32"', wheels: [{ name: 'winonly-1.0-py3-none-win_amd64.whl', path: 'x', hashes: { sha256: '00' } }] },
    ],
  };
  await fs.mkdir(path.join(tmp, 'locks'));
  lockFile = path.join(tmp, 'locks', 'pylock.cp311-linux_x86_64.toml');
  await fs.writeFile(lockFile, stringifyLock(lock));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('locks', () => {
  it('gives the locked wheels for the base, with hashes, REQUESTED only for the top level', async () => {
    const r = await wheelsFromLock(lockFile, path.join(tmp, 'wheelhouse'), base);
    expect(r.wheels.map((w) => [path.basename(w.path), w.requested, w.sha256?.length])).toEqual([
      ['alpha-1.0-py3-none-any.whl', true, 64],
      ['Beta_Pkg-2.0-cp311-cp311-linux_x86_64.whl', false, 64],
    ]);
    expect(r.digest).toBe('sha256:' + createHash('sha256').update(await fs.readFile(lockFile)).digest('hex'));
  });

  it('refuses a lock made for another interpreter', async () => {
    const other = describeTarget({ pythonFullVersion: '3.11.7', architecture: 'x86_64', libc: { kind: 'glibc', version: '2.36' } });
    await expect(wheelsFromLock(lockFile, path.join(tmp, 'wheelhouse'), { ...base, pythonFullVersion: '3.11.7', target: other })).rejects.toThrow(
      `${lockFile} was made for implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64", not for the base's Python 3.11.7 (/usr/bin/python3.11)`,
    );
  });

  it('a wheel in no wheelhouse is refused only when it must be read, and then every such wheel is named', async () => {
    const empty = path.join(tmp, 'empty');
    const moved = path.join(tmp, 'wheelhouse-moved');
    await fs.rename(path.join(tmp, 'wheelhouse'), moved);
    try {
      // No wheelhouse folder at all: the lock alone gives names and hashes (what a cached layer is keyed by).
      const r = await wheelsFromLock(lockFile, empty, base);
      expect(r.wheels.map((w) => [w.path, w.sha256?.length, w.requested])).toEqual([
        [path.join(empty, 'alpha-1.0-py3-none-any.whl'), 64, true],
        [path.join(empty, 'Beta_Pkg-2.0-cp311-cp311-linux_x86_64.whl'), 64, false],
      ]);
      await expect(wheelFile(r.wheels[0]!)).rejects.toThrow(
        `alpha-1.0-py3-none-any.whl (locked in ${lockFile}) is not in the wheelhouse ${empty}, and the layer cache has not got what it installs`,
      );
      const err = (await wheelFiles(r.wheels).then(
        () => null,
        (e: unknown) => e,
      )) as WheelMissingError;
      expect([err.code, err.message, err.hint]).toEqual([
        'LOCK_WHEEL_MISSING',
        `2 wheels locked in ${lockFile} are not in the wheelhouse ${empty}, and the layer cache has not got what they install: Beta_Pkg-2.0-cp311-cp311-linux_x86_64.whl, alpha-1.0-py3-none-any.whl`,
        'fill the wheelhouse (dstack-factory wheelhouse pull registry:HOST/REPO, or dstack-factory build for this recipe), or point --wheelhouse at the right folder or at a registry wheelhouse (registry:HOST/REPO)',
      ]);
    } finally {
      await fs.rename(moved, path.join(tmp, 'wheelhouse'));
    }
  });

  it.each([
    ['x-1.0-cp311-cp311-manylinux_2_39_x86_64.whl', bookworm, 'x-1.0-cp311-cp311-manylinux_2_39_x86_64.whl: manylinux_2_39 needs glibc ≥ 2.39; the base has glibc 2.36'],
    ['x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl', bookworm, 'x-1.0-cp311-cp311-musllinux_1_2_x86_64.whl: musllinux_1_2 needs musl; the base has glibc 2.36'],
    [
      'x-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
      describeTarget({ pythonFullVersion: '3.11.2', architecture: 'aarch64', libc: { kind: 'glibc', version: '2.36' } }),
      'x-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl: manylinux_2_17_x86_64 is for x86_64; the base is aarch64',
    ],
  ])('refuses %s naming its tag and the base', async (name, target, why) => {
    const lock: Lock = {
      lockVersion: '1.0',
      createdBy: 'dstack-factory',
      packages: [{ name: 'x', version: '1.0', wheels: [{ name, path: name, hashes: { sha256: '00' } }] }],
    };
    const file = path.join(tmp, 'locks', 'pylock.x.toml');
    await fs.writeFile(file, stringifyLock(lock));
    await expect(wheelsFromLock(file, path.join(tmp, 'wheelhouse'), { ...base, target })).rejects.toMatchObject({
      code: 'LOCK_NO_WHEEL',
      message: `${file}: x 1.0 has no wheel for the base (CPython 3.11.2 on linux ${target.architecture} with glibc 2.36): ${why}`,
    });
  });

  it('takes the best-ranked of the wheels that fit', async () => {
    const fits = ['x-1.0-cp311-cp311-manylinux_2_39_x86_64.whl', 'x-1.0-py3-none-any.whl', 'x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl'];
    const wh = path.join(tmp, 'ranked');
    await fs.mkdir(wh, { recursive: true });
    for (const f of fits) await fs.writeFile(path.join(wh, f), 'x');
    const lock: Lock = {
      lockVersion: '1.0',
      createdBy: 'dstack-factory',
      packages: [{ name: 'x', version: '1.0', wheels: fits.map((name) => ({ name, hashes: { sha256: '00' }, path: name })) }],
    };
    const file = path.join(tmp, 'locks', 'pylock.ranked.toml');
    await fs.writeFile(file, stringifyLock(lock));
    const r = await wheelsFromLock(file, wh, base);
    expect(r.wheels.map((w) => path.basename(w.path))).toEqual(['x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl']);
  });

  it('says before any base is read what a lock installs, when the lock alone can tell (one Python, one wheel a package, no marker)', async () => {
    const wh = path.join(tmp, 'wheelhouse');
    const early = async (edit: (l: Lock) => Lock): Promise<Awaited<ReturnType<typeof lockedWheelsBeforeBase>>> => {
      const lock = parseLockFile(await fs.readFile(lockFile, 'utf8'));
      const file = path.join(tmp, 'locks', `pylock.early-${Math.random().toString(16).slice(2)}.toml`);
      await fs.writeFile(file, stringifyLock(edit(lock)));
      return lockedWheelsBeforeBase(file, wh);
    };
    const noMarker = (l: Lock): Lock => ({ ...l, packages: l.packages.filter((p) => !p.marker) });
    // What wheelsFromLock gives for the base the lock names.
    const r = await early(noMarker);
    expect(r?.pythonVersion).toBe('3.11');
    // The full version from the parsed environments (in the file its quotes are escaped: \"3.11.2\").
    expect(r?.pythonFullVersion).toBe('3.11.2');
    expect(r?.wheels).toEqual((await wheelsFromLock(lockFile, wh, base)).wheels);
    // Only the base can tell: a marker, two wheels to choose from, no or two Pythons named.
    expect(await early((l) => l)).toBeNull();
    const twoWheels = (l: Lock): Lock => ({ ...noMarker(l), packages: noMarker(l).packages.map((p) => ({ ...p, wheels: [...p.wheels, p.wheels[0]!] })) });
    expect(await early(twoWheels)).toBeNull();
    expect(await early((l) => ({ ...noMarker(l), environments: undefined }))).toBeNull();
    expect(await early((l) => ({ ...noMarker(l), environments: ['python_full_version == "3.11.2"', 'python_full_version == "3.12.1"'] }))).toBeNull();
    const twelve = await early((l) => ({ ...noMarker(l), environments: ['python_full_version == "3.12.1" and sys_platform == "linux"'] }));
    expect([twelve?.pythonVersion, twelve?.pythonFullVersion]).toEqual(['3.12', '3.12.1']);
  });
});


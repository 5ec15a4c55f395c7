// verifyAppImage on images built here from code-made wheels (scripts, data, headers, launchers, a platlib
// wheel): unbroken, then each kind of break named by its file.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringifyLock, type Lock } from '@dstack/recipe';
import type { WheelEntry } from '@dstack/wheelhouse';
import { BlobCache } from '../cache/blob-cache.js';
import { appendLayers, emptyImage } from '../core/mutate.js';
import type { Image } from '../core/image.js';
import { writeLayer } from '../layers/write-layer.js';
import { inspectBase } from '../layers/base-info.js';
import { buildAppImage } from '../app/build-app-image.js';
import { wheelsFromLock } from '../app/lock.js';
import { installerFixtures, makeWheel } from '../fixtures/wheel.test-support.js';
import { LOCK_DIGEST_LABEL, verifyAppImage } from './verify.js';

let tmp: string;
let cache: BlobCache;
let base: Image;
let wheelhouse: string;
let lockFile: string;
let wheels: string[];
const sha = async (f: string): Promise<string> => createHash('sha256').update(await fs.readFile(f)).digest('hex');

async function appImage(options: { extra?: string[]; label?: boolean } = {}): Promise<Image> {
  const info = await inspectBase(base, { cache });
  const locked = await wheelsFromLock(lockFile, wheelhouse, info);
  const { image } = await buildAppImage({
    base,
    baseInfo: info,
    cache,
    wheels: [...locked.wheels, ...(options.extra ?? []).map((p) => ({ path: p }))],
    pip: false,
    labels: options.label === false ? {} : { [LOCK_DIGEST_LABEL]: locked.digest },
  });
  return image;
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-verify-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
  const layer = await writeLayer(
    [
      { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
      { path: 'lib/x86_64-linux-gnu/libc.so.6', type: 'file', data: Buffer.from('GNU C Library stable release version 2.36.\n') },
      { path: 'var/lib/dpkg/status', type: 'file', data: Buffer.from('Package: python3.11-minimal\nVersion: 3.11.2-6\n\n') },
    ],
    { cache },
  );
  base = appendLayers(emptyImage(), [{ layer }]);
  wheelhouse = path.join(tmp, 'wheelhouse');
  await fs.mkdir(wheelhouse);
  wheels = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(wheelhouse, w));
  const lock: Lock = {
    lockVersion: '1.0',
    createdBy: 'dstack-factory',
    environments: ['implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"'],
    packages: [
      { name: 'alpha', version: '1.0', dependencies: [{ name: 'beta-pkg' }], wheels: [{ name: path.basename(wheels[0]!), path: `wheelhouse/${path.basename(wheels[0]!)}`, hashes: { sha256: await sha(wheels[0]!) } }] },
      { name: 'beta-pkg', version: '2.0', wheels: [{ name: path.basename(wheels[1]!), path: `wheelhouse/${path.basename(wheels[1]!)}`, hashes: { sha256: await sha(wheels[1]!) } }] },
    ],
  };
  lockFile = path.join(tmp, 'pylock.toml');
  await fs.writeFile(lockFile, stringifyLock(lock));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('verifyAppImage', () => {
  it('passes an image built from the lock: every file each wheel installs (launchers, scripts, data, headers, RECORD), nothing else', async () => {
    const image = await appImage();
    const record = async (f: string): Promise<WheelEntry | null> => ({ sha256: await sha(path.join(wheelhouse, f)) }) as WheelEntry;
    const r = await verifyAppImage({ image, lockFile, wheelhouse, cache, record });
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.distributions.map((d) => [d.name, d.version, d.from])).toEqual([
      ['alpha', '1.0', 'lock'],
      ['beta-pkg', '2.0', 'lock'],
    ]);
    expect(r.files).toBe(r.distributions.reduce((n, d) => n + d.files, 0));
  });

  it('names the files of a wheel the lock does not have, a wheel whose bytes are not the lock\'s, a wheelhouse record that disagrees, a missing label', async () => {
    const extraDir = path.join(tmp, 'extra');
    await fs.mkdir(extraDir, { recursive: true });
    const extra = await makeWheel(extraDir, { name: 'extra', version: '0.1', files: { 'extra/__init__.py': 'X = 1\n' } });
    const withExtra = await verifyAppImage({ image: await appImage({ extra: [extra] }), lockFile, wheelhouse, cache });
    expect(withExtra.ok).toBe(false);
    expect(withExtra.problems).toEqual(
      ['extra-0.1.dist-info/INSTALLER', 'extra-0.1.dist-info/METADATA', 'extra-0.1.dist-info/RECORD', 'extra-0.1.dist-info/REQUESTED', 'extra-0.1.dist-info/WHEEL', 'extra/__init__.py', 'extra/__pycache__/__init__.cpython-311.pyc'].map((f) => ({
        file: `/env/lib/python3.11/site-packages/${f}`,
        message: 'no wheel of the lock accounts for it',
      })),
    );

    const image = await appImage();
    const lie = await verifyAppImage({ image, lockFile, wheelhouse, cache, record: async () => ({ sha256: 'f'.repeat(64) }) as WheelEntry });
    expect(lie.problems).toEqual(
      await Promise.all(wheels.map(async (w) => ({ file: w, message: `the wheelhouse records sha256 ${'f'.repeat(64)}, the lock says ${await sha(w)}` }))),
    );

    const original = await fs.readFile(wheels[0]!);
    const locked = await sha(wheels[0]!);
    await fs.writeFile(wheels[0]!, Buffer.concat([original, Buffer.from('junk')]));
    try {
      const swapped = await verifyAppImage({ image, lockFile, wheelhouse, cache });
      expect(swapped.problems[0]).toEqual({ file: wheels[0], message: `sha256 ${await sha(wheels[0]!)}, the lock says ${locked}` });
    } finally {
      await fs.writeFile(wheels[0]!, original);
    }

    const unlabelled = await verifyAppImage({ image: await appImage({ label: false }), lockFile, wheelhouse, cache });
    expect(unlabelled.problems).toEqual([{ file: lockFile, message: `the image has no ${LOCK_DIGEST_LABEL} label: it was not made from a lock` }]);
  });
});

// The targets of the debootstrapped bases (amd64, and arm64 made under emulation), read from the engine's
// export of their layers and config — never by running them (Decision 18).
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedBaseImage, sharedEngine } from '@dstack/testing';
import { BlobCache } from '../cache/blob-cache.js';
import { readDaemonImage } from '../sources/daemon.js';
import { inspectBase } from './base-info.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-base-target-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function targetOf(name: string) {
  const { docker } = await sharedEngine();
  const image = await readDaemonImage(docker, name, { cache: new BlobCache(path.join(tmp, 'cache')) });
  // inspectBase gets the image's config and layer streams only: no engine, so nothing of it can run.
  return inspectBase(image);
}

describe('the target of a debootstrapped base, read without running it', () => {
  it('amd64: CPython 3.11.2 on linux x86_64 with glibc 2.36', async () => {
    const info = await targetOf(await sharedBaseImage());
    expect(info.target).toMatchObject({
      name: 'cp3_11_2-manylinux_2_36_x86_64',
      interpreter: 'image:/usr/bin/python3.11',
      pythonFullVersion: '3.11.2',
      abi: 'cp311',
      os: 'linux',
      architecture: 'x86_64',
      libc: { kind: 'glibc', version: '2.36' },
    });
  }, 300_000);

  it('arm64: the same Debian, aarch64 from its config and loader', async () => {
    const info = await targetOf(await sharedBaseImage({ arch: 'arm64' }));
    expect(info.target).toMatchObject({
      name: 'cp3_11_2-manylinux_2_36_aarch64',
      pythonFullVersion: '3.11.2',
      architecture: 'aarch64',
      libc: { kind: 'glibc', version: '2.36' },
    });
    expect(info.target.tags[0]).toBe('cp311-cp311-manylinux_2_36_aarch64');
    expect(info.target.markers.platform_machine).toBe('aarch64');
  }, 1_800_000);
});

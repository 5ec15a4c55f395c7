// Multi-platform images: platforms parsed and matched, the index value (one order, one digest), and an OCI
// layout written with an index and read back per platform.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../cache/blob-cache.js';
import { writeLayer } from '../layers/write-layer.js';
import { imagePlatforms, openImage } from '../sources/open-image.js';
import { writeImage, writeImageIndex } from '../sinks/write-image.js';
import { validateImage } from '../validate/validate-image.js';
import { ImageIndex } from './image-index.js';
import { Image } from './image.js';
import { MEDIA_TYPES } from './layer.js';
import { appendLayers, emptyImage } from './mutate.js';
import { formatPlatform, parsePlatform, platformMatches } from './platform.js';

let tmp: string;
let cache: BlobCache;
let amd: Image;
let arm: Image;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-index-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
  const layer = async (text: string) => writeLayer([{ path: 'etc/which', type: 'file', data: Buffer.from(text) }], { cache });
  amd = appendLayers(emptyImage(), [{ layer: await layer('amd64\n') }]);
  const a = appendLayers(emptyImage({ architecture: 'arm64' }), [{ layer: await layer('arm64\n') }]);
  arm = new Image({ ...a.config, variant: 'v8' }, a.layers);
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('platforms', () => {
  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
  ])('parses %s', (text, want) => {
    expect(parsePlatform(text)).toEqual(want);
    expect(formatPlatform(parsePlatform(text))).toBe(text);
  });

  it('refuses what is not os/architecture[/variant]', () => {
    expect(() => parsePlatform('arm64')).toThrow('not a platform: "arm64" (write it as os/architecture[/variant], e.g. linux/arm64)');
  });

  it('matches arm64 with and without its v8 variant, not arm/v7 with arm/v6', () => {
    expect(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, parsePlatform('linux/arm64'))).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm64' }, parsePlatform('linux/arm64/v8'))).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, parsePlatform('linux/arm/v7'))).toBe(false);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, parsePlatform('linux/arm64'))).toBe(false);
  });
});

describe('ImageIndex', () => {
  it('lists one image per platform in one order: the same images give the same digest', () => {
    const a = new ImageIndex([arm, amd]);
    const b = new ImageIndex([amd, arm]);
    expect(a.digest()).toBe(b.digest());
    const oci = a.index('oci');
    expect(JSON.parse(oci.bytes.toString('utf8'))).toEqual({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [
        { mediaType: MEDIA_TYPES.ociManifest, digest: amd.digest(), size: amd.manifest('oci').bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MEDIA_TYPES.ociManifest, digest: arm.digest(), size: arm.manifest('oci').bytes.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    });
    const docker = a.index('docker');
    expect(docker.mediaType).toBe(MEDIA_TYPES.dockerManifestList);
    expect(docker.manifests.map((m) => [m.mediaType, m.digest])).toEqual([
      [MEDIA_TYPES.dockerManifest, amd.manifest('docker').digest],
      [MEDIA_TYPES.dockerManifest, arm.manifest('docker').digest],
    ]);
  });

  it('refuses two images of one platform', () => {
    expect(() => new ImageIndex([amd, amd])).toThrow('an image index holds one image per platform: two for linux/amd64');
  });

  it('goes into an OCI layout and comes back per platform', async () => {
    const dir = path.join(tmp, 'layout');
    const out = await writeImageIndex(new ImageIndex([amd, arm]), { kind: 'oci', dir, ref: 'app' }, {});
    expect(out.digest).toBe(new ImageIndex([amd, arm]).digest());
    const spec = { kind: 'oci' as const, dir, ref: 'app' };
    expect((await imagePlatforms(spec, { cache })).map(formatPlatform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const back = await openImage(spec, { cache, platform: parsePlatform('linux/arm64') });
    expect(back.digest()).toBe(arm.digest());
    await validateImage(back);
    expect((await openImage(spec, { cache, platform: parsePlatform('linux/amd64') })).digest()).toBe(amd.digest());
    await expect(openImage(spec, { cache, platform: parsePlatform('linux/s390x') })).rejects.toThrow(
      `${dir} index ${out.digest} has no linux/s390x image (has: linux/amd64, linux/arm64/v8)`,
    );
  });

  it('a single image must be of the platform asked for; docker: and archive: take one platform', async () => {
    const dir = path.join(tmp, 'single');
    await writeImage(amd, { kind: 'oci', dir, ref: null });
    await expect(openImage({ kind: 'oci', dir, ref: null }, { cache, platform: parsePlatform('linux/arm64') })).rejects.toThrow(
      `oci:${dir} is a linux/amd64 image, not linux/arm64`,
    );
    expect(await imagePlatforms({ kind: 'oci', dir, ref: null }, { cache })).toEqual([{ os: 'linux', architecture: 'amd64' }]);
    const file = path.join(tmp, 'x.tar');
    await expect(writeImageIndex(new ImageIndex([amd, arm]), { kind: 'archive', file })).rejects.toThrow(
      `archive:${file} holds one platform, not 2 (linux/amd64, linux/arm64/v8)`,
    );
    await writeImageIndex(new ImageIndex([arm]), { kind: 'archive', file });
    const one = await openImage({ kind: 'archive', file }, { cache, platform: parsePlatform('linux/arm64') });
    expect(one.config.architecture).toBe('arm64');
  });
});

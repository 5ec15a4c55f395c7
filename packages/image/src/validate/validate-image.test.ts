import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../cache/blob-cache.js';
import { sha256Digest, type Digest } from '../core/digest.js';
import { Image, type SerializedManifest } from '../core/image.js';
import { MEDIA_TYPES, type Layer } from '../core/layer.js';
import { readAll } from '../core/streams.js';
import { appendLayers, emptyImage, mutateConfig } from '../core/mutate.js';
import { writeLayer } from '../layers/write-layer.js';
import { validateImage } from './validate-image.js';

let tmp: string;
let cache: BlobCache;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-validate-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A tar written entry by entry, as given (no sorting, no de-duplication: what a foreign layer may hold). */
async function rawTar(entries: { name: string; data?: string; type?: 'file' | 'directory' }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory', mtime: new Date(0) }, done);
      else pack.entry({ name: e.name, mtime: new Date(0) }, e.data ?? '', done);
    });
  }
  pack.finalize();
  return readAll(pack as unknown as Readable);
}

/** A layer over bytes in memory; `over` falsifies what it claims. */
function memoryLayer(blob: Buffer, tarBytes: Buffer, over: Partial<Pick<Layer, 'digest' | 'diffId' | 'size' | 'mediaType'>> = {}): Layer {
  const gzip = blob !== tarBytes;
  return {
    digest: sha256Digest(blob),
    diffId: sha256Digest(tarBytes),
    size: blob.length,
    mediaType: gzip ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayer,
    ...over,
    compressed: async () => Readable.from([blob]),
    uncompressed: async () => Readable.from([tarBytes]),
  };
}

const imageOf = (...layers: Layer[]): Image => appendLayers(emptyImage(), layers.map((layer) => ({ layer })));

/** The same image answering `manifest()` with other bytes: what a broken serializer would produce. */
function withManifest(image: Image, change: (m: SerializedManifest['manifest']) => object): Image {
  const broken = Object.create(image) as Image;
  broken.manifest = (format = 'oci') => {
    const m = image.manifest(format);
    const bytes = Buffer.from(JSON.stringify(change(structuredClone(m.manifest))));
    return { ...m, bytes, digest: sha256Digest(bytes) };
  };
  return broken;
}

describe('validateImage', () => {
  it('passes images as this package writes them: gzip and plain layers, whiteouts of lower layers, config changes', async () => {
    const a = await writeLayer([{ path: 'app/a.txt', type: 'file', data: Buffer.from('a') }], { cache });
    const b = await writeLayer(
      [
        { path: 'app/.wh.a.txt', type: 'file', data: Buffer.alloc(0) },
        { path: 'etc/.wh..wh..opq', type: 'file', data: Buffer.alloc(0) },
      ],
      { cache, compression: 'none' },
    );
    const image = mutateConfig(imageOf(a, b), (c) => ({ ...c, Cmd: ['sh'] }));
    await expect(validateImage(image)).resolves.toBeUndefined();
    await expect(validateImage(emptyImage())).resolves.toBeUndefined();
  });

  const tarAB = (): Promise<Buffer> => rawTar([{ name: 'a', data: 'x' }, { name: 'b/', type: 'directory' }]);
  const cases: [string, () => Promise<Image>, string][] = [
    [
      'compressed bytes that do not hash to the digest',
      async () => {
        const t = await tarAB();
        return imageOf(memoryLayer(gzipSync(t), t, { digest: sha256Digest('other') }));
      },
      `layer 0: compressed bytes are ${'$COMPRESSED'}, expected ${sha256Digest('other')} ($SIZE B)`,
    ],
    [
      'a size that is not the blob size',
      async () => {
        const t = await tarAB();
        return imageOf(memoryLayer(t, t, { size: 1 }));
      },
      'layer 0: compressed bytes are $DIGEST ($SIZE B), expected $DIGEST (1 B)',
    ],
    [
      'uncompressed bytes that do not hash to the diffID',
      async () => {
        const t = await tarAB();
        const gz = gzipSync(t);
        const layer = memoryLayer(gz, t, { diffId: sha256Digest('other') });
        return imageOf(layer);
      },
      `layer 0: uncompressed bytes are $DIFFID, expected diffID ${sha256Digest('other')}`,
    ],
    [
      'a path twice in one layer',
      async () => {
        const t = await rawTar([{ name: 'app/x', data: '1' }, { name: './app/x', data: '2' }]);
        return imageOf(memoryLayer(t, t));
      },
      'layer 0 ($DIGEST) holds /app/x twice',
    ],
    [
      'a whiteout of a path its own layer writes',
      async () => {
        const t = await rawTar([{ name: 'app/.wh.x' }, { name: 'app/x', data: '1' }]);
        return imageOf(memoryLayer(t, t));
      },
      'layer 0 ($DIGEST) writes /app/x and whites it out (/app/.wh.x)',
    ],
    [
      'a blob that is not a tar',
      async () => {
        const junk = Buffer.alloc(1024, 0x41);
        return imageOf(memoryLayer(junk, junk));
      },
      'layer 0 ($DIGEST) is not a tar: Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?',
    ],
    [
      'a manifest with the other family’s layer media type',
      async () => {
        const t = await tarAB();
        return withManifest(imageOf(memoryLayer(t, t)), (m) => ({ ...m, layers: [{ ...(m as { layers: object[] }).layers[0], mediaType: MEDIA_TYPES.dockerLayer }] }));
      },
      `oci manifest: layer 0 has media type ${MEDIA_TYPES.dockerLayer}, not one of ${MEDIA_TYPES.ociLayerGzip}, ${MEDIA_TYPES.ociLayer}`,
    ],
    [
      'a manifest whose layer is compressed differently from the layer',
      async () => {
        const t = await tarAB();
        return withManifest(imageOf(memoryLayer(t, t)), (m) => ({ ...m, layers: [{ ...(m as { layers: object[] }).layers[0], mediaType: MEDIA_TYPES.ociLayerGzip }] }));
      },
      `oci manifest: layer 0 is ${MEDIA_TYPES.ociLayerGzip}, the layer is ${MEDIA_TYPES.ociLayer}`,
    ],
    [
      'a manifest whose config descriptor is not the config',
      async () => withManifest(imageOf(), (m) => ({ ...m, config: { ...(m as { config: object }).config, size: 1 } })),
      `oci manifest: config is $CONFIG (1 B), its bytes are $CONFIG ($CONFIGSIZE B)`,
    ],
    [
      'a manifest with the wrong media type',
      async () => withManifest(imageOf(), (m) => ({ ...m, mediaType: MEDIA_TYPES.dockerManifest })),
      `oci manifest: media type ${MEDIA_TYPES.dockerManifest}, expected ${MEDIA_TYPES.ociManifest}`,
    ],
    [
      'a manifest that lists fewer layers than the image has',
      async () => {
        const t = await tarAB();
        return withManifest(imageOf(memoryLayer(t, t)), (m) => ({ ...m, layers: [] }));
      },
      'oci manifest lists 0 layers, the image has 1',
    ],
    [
      'a config whose rootfs is not "layers"',
      async () => {
        const image = emptyImage();
        const broken = Object.create(image) as Image;
        broken.configBytes = () => Buffer.from(JSON.stringify({ ...image.config, rootfs: { type: 'zfs', diff_ids: [] } }));
        return broken;
      },
      'config: rootfs.type is "zfs", expected "layers"',
    ],
  ];

  it.each(cases)('refuses %s', async (_name, make, expected) => {
    const image = await make();
    const layer = image.layers[0];
    let message = expected;
    if (layer) {
      const blob = await readAll(await layer.compressed());
      const tarBytes = await readAll(await layer.uncompressed());
      message = message
        .replaceAll('$COMPRESSED', `${sha256Digest(blob)} (${blob.length} B)`)
        .replaceAll('$DIGEST', layer.digest)
        .replaceAll('$SIZE', String(blob.length))
        .replaceAll('$DIFFID', sha256Digest(tarBytes));
    }
    message = message.replaceAll('$CONFIGSIZE', String(image.configBytes().length)).replaceAll('$CONFIG', sha256Digest(image.configBytes()) as Digest);
    await expect(validateImage(image)).rejects.toThrow(message);
  });

  it('refuses an unknown layer media type with IMAGE_MEDIA_TYPE', async () => {
    const t = await tarAB();
    const image = imageOf(memoryLayer(t, t, { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }));
    await expect(validateImage(image)).rejects.toMatchObject({
      code: 'IMAGE_MEDIA_TYPE',
      message: `layer ${image.layers[0]!.digest} has media type application/vnd.oci.image.layer.v1.tar+zstd (only tar and tar+gzip layers are supported)`,
    });
  });
});

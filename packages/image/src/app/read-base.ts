// The base of an app image, read once: its facts, its file index and (for a registry's layers) its blobs, in one
// download and one decompression of each layer, whoever asks for what.
import { PassThrough, Transform, type Readable } from 'node:stream';
import { CachedLayer, type BlobCache } from '../cache/blob-cache.js';
import { blobFileOf } from '../core/file-layer.js';
import { Image } from '../core/image.js';
import type { Layer } from '../core/layer.js';
import { openUncompressed, walkLayers, type LayerVisitor } from '../core/walk-layers.js';
import { baseInfoFromFacts, baseInfoReader, cachedBaseInfo, saveBaseInfo, type BaseInfo } from '../layers/base-info.js';
import { readBaseIndex } from './base-index.js';
import { hasCachedImageFiles, imageFilesReader, saveImageFiles, type ImageFiles } from '../check/image-files.js';

export interface BaseRead {
  /** The same image, its layers read from the blob cache where they were downloaded (or found) there. */
  image: Image;
  info: BaseInfo;
  /** The file index the library check uses, when asked for and read in this walk; null when it is in the cache already. */
  files: ImageFiles | null;
}

export interface ReadBaseOptions {
  cache: BlobCache;
  /** Also the file index (for the library check). */
  files?: boolean;
  /** Told as the walk of each layer starts (a progress line). */
  onLayer?: (index: number, total: number, layer: Layer) => void;
  /**
   * When the base's last layer is an index of the layers below it (base-index.ts), a registry's other layers are
   * still stored in the blob cache, in parallel (default true: oci: and archive: write them from there); false
   * when nothing will need them (a registry sink mounts them).
   */
  blobs?: boolean;
  /** Told whether the base's index answered, and why not (a debug line). */
  onIndex?: (used: boolean, why?: string) => void;
}

/**
 * What `inspectBase` and (with `files`) `readImageFiles` say of a base, from their caches or from one walk over
 * its layers. A layer that is not a file on disk (a registry's) is stored in the blob cache as it is read, its
 * digest checked, so that sinks copy or link it from there instead of downloading it again.
 */
export async function readBase(
  image: Image,
  options: ReadBaseOptions,
): Promise<BaseRead> {
  const { cache } = options;
  const diffIds = image.config.rootfs.diff_ids;
  const layers: Layer[] = [...image.layers];
  await Promise.all(
    layers.map(async (l, i) => {
      if (!blobFileOf(l) && (await cache.has(l.digest, l.size))) layers[i] = cachedLayer(cache, l);
    }),
  );
  let info = await cachedBaseInfo(image, cache);
  // A cached file index is left where it is: the library check reads it only when its own report is not cached.
  let files: ImageFiles | null = null;
  const wantFiles = options.files === true && !(await hasCachedImageFiles(diffIds, cache));
  if (info && !wantFiles) return { image: new Image(image.config, layers), info, files };
  const open = async (layer: Layer, i: number, tell = true): Promise<Readable> => {
    if (tell) options.onLayer?.(i, layers.length, layer);
    if (blobFileOf(layer)) return openUncompressed(layer);
    const stream = await storedWhileRead(layer, cache, () => (layers[i] = cachedLayer(cache, layer)));
    return openUncompressed(layer, stream);
  };
  // The base's own index of the layers below its last one: that small layer is read instead of them all.
  const top = layers.length - 1;
  let why: string | undefined;
  const indexed = await readBaseIndex(new Image(image.config, layers), (layer) => open(layer, top, false), (reason) => (why = reason));
  options.onIndex?.(indexed !== null, why);
  if (indexed) {
    if (!info) await saveBaseInfo(image, cache, (info = baseInfoFromFacts(image, indexed.facts)));
    if (wantFiles) await saveImageFiles(diffIds, cache, (files = indexed.files));
    if (options.blobs !== false) {
      await Promise.all(
        layers.map(async (l, i) => {
          if (blobFileOf(l) || (await cache.has(l.digest, l.size))) return;
          await cache.put(await l.compressed(), l.digest);
          layers[i] = cachedLayer(cache, l);
        }),
      );
    }
    return { image: new Image(image.config, layers), info, files };
  }
  const infoReader = info ? null : baseInfoReader(image);
  const filesReader = wantFiles ? imageFilesReader() : null;
  const visitors = [infoReader?.visitor, filesReader?.visitor].filter((v): v is LayerVisitor => v !== undefined);
  await walkLayers(layers, visitors, open);
  if (infoReader) await saveBaseInfo(image, cache, (info = infoReader.result()));
  if (filesReader) await saveImageFiles(diffIds, cache, (files = filesReader.result()));
  return { image: new Image(image.config, layers), info: info!, files };
}

function cachedLayer(cache: BlobCache, l: Layer): CachedLayer {
  return new CachedLayer(cache, { digest: l.digest, diffId: l.diffId, size: l.size, mediaType: l.mediaType });
}

/**
 * The layer's blob as it is downloaded, written into the cache on the way: the stream ends only once the blob is
 * stored under its digest (a mismatch fails it, and nothing is kept); then `stored` is called.
 */
async function storedWhileRead(layer: Layer, cache: BlobCache, stored: () => void): Promise<Readable> {
  const src = await layer.compressed();
  const toCache = new PassThrough({ highWaterMark: 1 << 20 });
  const put = cache.put(toCache, layer.digest);
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (toCache.write(chunk)) cb(null, chunk);
      else toCache.once('drain', () => cb(null, chunk));
    },
    flush(cb) {
      toCache.end();
      put.then(() => {
        stored();
        cb();
      }, cb);
    },
  });
  put.catch((err: Error) => tee.destroy(err));
  src.on('error', (err) => tee.destroy(err));
  tee.on('close', () => {
    if (!tee.writableFinished) toCache.destroy(new Error('the layer was not read to its end'));
  });
  return src.pipe(tee);
}

// Downloads an image's registry layers into the blob cache, several at once: what an oci:, archive: or docker:
// output then writes from disk.
import type { BlobCache } from '../cache/blob-cache.js';
import { CachedLayer } from '../cache/blob-cache.js';
import { Image } from '../core/image.js';
import type { Layer } from '../core/layer.js';
import { RegistryLayer } from './registry.js';

/**
 * The image with every registry layer replaced by the same layer in `cache`, downloaded `concurrency` at a time
 * (default 4) and verified against its digest; a layer the cache has already is not downloaded again.
 */
export async function fetchRegistryLayers(image: Image, cache: BlobCache, options: { concurrency?: number } = {}): Promise<Image> {
  const layers: Layer[] = [...image.layers];
  const todo = layers.map((l, i) => ({ l, i })).filter(({ l }) => l instanceof RegistryLayer);
  if (todo.length === 0) return image;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const { l, i } = todo[next++]!;
      if (!(await cache.has(l.digest, l.size))) await cache.put(await l.compressed(), l.digest);
      layers[i] = new CachedLayer(cache, { digest: l.digest, diffId: l.diffId, size: l.size, mediaType: l.mediaType });
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, todo.length) }, worker));
  return new Image(image.config, layers);
}

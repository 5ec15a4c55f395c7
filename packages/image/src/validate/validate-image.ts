import { pipeline } from 'node:stream/promises';
import { HashingStream } from '../core/digest.js';
import type { Image } from '../core/image.js';
import { devNull } from '../core/streams.js';
import { ImageError } from '../errors.js';

/**
 * Checks an image the way crane's `validate` does: every layer's compressed bytes hash to its digest and size,
 * and its uncompressed bytes to its diffID. Reads every layer; for tests and `--validate`.
 */
export async function validateImage(image: Image): Promise<void> {
  for (const [i, layer] of image.layers.entries()) {
    const c = new HashingStream();
    await pipeline(await layer.compressed(), c, devNull());
    if (c.digest() !== layer.digest || c.bytes !== layer.size) {
      throw new ImageError('IMAGE_INVALID', `layer ${i}: compressed bytes are ${c.digest()} (${c.bytes} B), expected ${layer.digest} (${layer.size} B)`);
    }
    const u = new HashingStream();
    await pipeline(await layer.uncompressed(), u, devNull());
    if (u.digest() !== layer.diffId) {
      throw new ImageError('IMAGE_INVALID', `layer ${i}: uncompressed bytes are ${u.digest()}, expected diffID ${layer.diffId}`);
    }
  }
}

import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Digest } from './digest.js';
import type { Layer, LayerDescriptor } from './layer.js';

/** A layer whose compressed blob is a file on disk (an OCI layout's blob, a blob cache entry). */
export class FileLayer implements Layer {
  readonly digest: Digest;
  readonly diffId: Digest;
  readonly size: number;
  readonly mediaType: string;
  constructor(
    readonly file: string,
    desc: LayerDescriptor,
  ) {
    this.digest = desc.digest;
    this.diffId = desc.diffId;
    this.size = desc.size;
    this.mediaType = desc.mediaType;
  }
  async compressed(): Promise<Readable> {
    return createReadStream(this.file);
  }
  async uncompressed(): Promise<Readable> {
    const src = createReadStream(this.file);
    const gunzip = createGunzip();
    src.on('error', (e) => gunzip.destroy(e));
    return src.pipe(gunzip);
  }
}

/** The file behind a layer, when there is one (to hard-link instead of copying). */
export function blobFileOf(layer: Layer): string | null {
  if (layer instanceof FileLayer) return layer.file;
  const c = layer as { cache?: { pathOf(d: Digest): string } };
  if (c.cache && typeof c.cache.pathOf === 'function') return c.cache.pathOf(layer.digest);
  return null;
}

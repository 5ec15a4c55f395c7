// A layer whose blob is a file (an OCI layout's blob).
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { BlobLayer, type Layer, type LayerDescriptor } from './layer.js';

/** A layer whose compressed blob is a file on disk (an OCI layout's blob, a blob cache entry). */
export class FileLayer extends BlobLayer {
  constructor(
    readonly file: string,
    desc: LayerDescriptor,
  ) {
    super(desc);
  }
  async compressed(): Promise<Readable> {
    return createReadStream(this.file);
  }
  blobFile(): string {
    return this.file;
  }
}

/** The file behind a layer, when there is one (to hard-link instead of copying). */
export function blobFileOf(layer: Layer): string | null {
  return layer instanceof BlobLayer ? layer.blobFile() : null;
}

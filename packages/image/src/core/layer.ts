// The Layer value (go-containerregistry's v1.Layer), the media types and the blob-backed base class.
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Digest } from './digest.js';
import { MEDIA_TYPES } from '@dstack/oci';
import { ImageError } from '../errors.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export { MEDIA_TYPES } from '@dstack/oci';

/**
 * How new layers are stored: gzip (what registries and OCI layouts usually carry), or none, a plain tar whose
 * digest is its diffID (what a Docker daemon keeps anyway: loading it skips a compress and a decompress).
 */
export type Compression = 'gzip' | 'none';

/** Whether a layer media type (OCI or Docker) is gzip-compressed; throws for compressions not supported. */
export function isGzipMediaType(mediaType: string, where = 'layer'): boolean {
  if (mediaType === MEDIA_TYPES.ociLayerGzip || mediaType === MEDIA_TYPES.dockerLayerGzip) return true;
  if (mediaType === MEDIA_TYPES.ociLayer || mediaType === MEDIA_TYPES.dockerLayer) return false;
  throw new ImageError('IMAGE_MEDIA_TYPE', `${where} has media type ${mediaType} (only tar and tar+gzip layers are supported)`);
}

/** The OCI media type of a layer given in either family (Docker's is translated). */
export function ociLayerMediaType(mediaType: string, where?: string): string {
  return isGzipMediaType(mediaType, where) ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayer;
}

/** An immutable layer: what go-containerregistry's v1.Layer is. */
export interface Layer {
  /** sha256 of the compressed blob. */
  readonly digest: Digest;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids). */
  readonly diffId: Digest;
  /** Bytes of the compressed blob. */
  readonly size: number;
  /** The OCI media type (sinks translate it to Docker's when they need to). */
  readonly mediaType: string;
  compressed(): Promise<Readable>;
  uncompressed(): Promise<Readable>;
}

export interface LayerDescriptor {
  digest: Digest;
  diffId: Digest;
  size: number;
  mediaType: string;
}

/** A layer whose gzip blob can be opened again at will; subclasses say where the blob lives. */
export abstract class BlobLayer implements Layer {
  readonly digest: Digest;
  readonly diffId: Digest;
  readonly size: number;
  readonly mediaType: string;
  constructor(desc: LayerDescriptor) {
    this.digest = desc.digest;
    this.diffId = desc.diffId;
    this.size = desc.size;
    this.mediaType = desc.mediaType;
  }
  abstract compressed(): Promise<Readable>;
  /** The path of the blob on disk (to hard-link instead of copying). */
  abstract blobFile(): string;
  async uncompressed(): Promise<Readable> {
    const src = await this.compressed();
    if (!isGzipMediaType(this.mediaType)) return src;
    const gunzip = createGunzip();
    src.on('error', (e) => gunzip.destroy(e));
    return src.pipe(gunzip);
  }
  descriptor(): LayerDescriptor {
    return { digest: this.digest, diffId: this.diffId, size: this.size, mediaType: this.mediaType };
  }
}


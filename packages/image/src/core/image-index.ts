// The ImageIndex value: one image per platform, serialised to an OCI image index or a Docker manifest list.
import { sha256Digest, type Digest } from './digest.js';
import type { Descriptor, Image, ManifestFormat } from './image.js';
import { MEDIA_TYPES } from './layer.js';
import { comparePlatforms, formatPlatform, platformOf, type Platform } from './platform.js';
import { ImageError } from '../errors.js';

export interface IndexEntry {
  platform: Platform;
  image: Image;
}

export interface SerializedIndex {
  mediaType: string;
  bytes: Buffer;
  digest: Digest;
  manifests: Descriptor[];
}

/**
 * An immutable multi-platform image: one image per platform (each platform read from its image's config), in
 * one order (by platform), so the same images give the same index digest whatever order they came in.
 */
export class ImageIndex {
  readonly entries: readonly IndexEntry[];

  constructor(images: readonly Image[]) {
    if (images.length === 0) throw new ImageError('IMAGE_INVALID', 'an image index needs at least one image');
    const entries = images.map((image) => ({ platform: platformOf(image), image })).sort((a, b) => comparePlatforms(a.platform, b.platform));
    for (let i = 1; i < entries.length; i++) {
      if (comparePlatforms(entries[i - 1]!.platform, entries[i]!.platform) === 0) {
        throw new ImageError('IMAGE_INVALID', `an image index holds one image per platform: two for ${formatPlatform(entries[i]!.platform)}`);
      }
    }
    this.entries = entries;
  }

  /** The index in one manifest family: an OCI index over OCI manifests, or a Docker manifest list over Docker ones. */
  index(format: ManifestFormat = 'oci'): SerializedIndex {
    const manifests: Descriptor[] = this.entries.map(({ platform, image }) => {
      const m = image.manifest(format);
      return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform: { ...platform } };
    });
    const mediaType = format === 'oci' ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerManifestList;
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }));
    return { mediaType, bytes, digest: sha256Digest(bytes), manifests };
  }

  /** The digest of the OCI index: the multi-platform image's identity. */
  digest(): Digest {
    return this.index('oci').digest;
  }
}

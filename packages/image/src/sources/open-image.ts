// openImage: one entry to every source.
import type Docker from 'dockerode';
import type { BlobCache } from '../cache/blob-cache.js';
import type { Image } from '../core/image.js';
import type { Compression } from '../core/layer.js';
import type { ImageSpec } from '../core/image-spec.js';
import { formatPlatform, platformMatches, platformOf, type Platform } from '../core/platform.js';
import { ImageError } from '../errors.js';
import { readDaemonImage } from './daemon.js';
import { readDockerArchive } from './docker-archive.js';
import { ociLayoutPlatforms, readOciLayout } from './oci-layout.js';
import { RegistryClient } from '@dstack/oci';
import { readRegistryImage, readRegistryPlatforms } from './registry.js';

export interface SourceOptions {
  cache: BlobCache;
  docker?: () => Docker;
  registry?: RegistryClient;
  /**
   * The platform wanted: an index (registry:, oci:) resolves to it (default linux/amd64); a single image
   * (docker:, archive:, or a registry/layout image that is not an index) must be for it.
   */
  platform?: Platform;
  /**
   * How layers that come as plain tars (docker:, archive:) are kept: gzip (default; what registries and OCI
   * layouts usually carry), or none (as they come: nothing compressed, their digests are their diffIDs).
   */
  compression?: Compression;
}

function describe(spec: ImageSpec): string {
  switch (spec.kind) {
    case 'docker':
      return `docker:${spec.name}`;
    case 'oci':
      return `oci:${spec.dir}${spec.ref === null ? '' : `:${spec.ref}`}`;
    case 'archive':
      return `archive:${spec.file}`;
    case 'registry':
      return spec.ref;
  }
}

/** Opens an image from any source. */
export async function openImage(spec: ImageSpec, options: SourceOptions): Promise<Image> {
  const platform = options.platform ? { platform: options.platform } : {};
  let image: Image;
  switch (spec.kind) {
    case 'docker':
      if (!options.docker) throw new ImageError('IMAGE_NO_ENGINE', `no Docker engine to read ${spec.name} from`);
      image = await readDaemonImage(options.docker(), spec.name, { cache: options.cache, ...(options.compression ? { compression: options.compression } : {}) });
      break;
    case 'oci':
      image = await readOciLayout(spec.dir, { ...(spec.ref === null ? {} : { ref: spec.ref }), ...platform });
      break;
    case 'archive':
      image = await readDockerArchive(spec.file, { cache: options.cache, ...(options.compression ? { compression: options.compression } : {}) });
      break;
    case 'registry':
      image = await readRegistryImage(spec.ref, options.registry ?? new RegistryClient(), platform);
      break;
  }
  if (options.platform && !platformMatches(platformOf(image), options.platform)) {
    throw new ImageError('IMAGE_PLATFORM', `${describe(spec)} is a ${formatPlatform(platformOf(image))} image, not ${formatPlatform(options.platform)}`, {
      hint: spec.kind === 'docker' || spec.kind === 'archive'
        ? 'a Docker engine or archive holds one platform per tag: name the tag of that platform, or give an index (registry:, oci:)'
        : 'give an image index that has this platform, or build the base for it',
    });
  }
  return image;
}

/**
 * The platforms an image offers: an index's (registry:, oci:), else the one of its single image. What
 * `--platform all` means.
 */
export async function imagePlatforms(spec: ImageSpec, options: SourceOptions): Promise<Platform[]> {
  let listed: Platform[] | null = null;
  if (spec.kind === 'registry') listed = await readRegistryPlatforms(spec.ref, options.registry ?? new RegistryClient());
  else if (spec.kind === 'oci') listed = await ociLayoutPlatforms(spec.dir, spec.ref === null ? {} : { ref: spec.ref });
  if (listed) return listed;
  const { platform: _ignored, ...rest } = options;
  return [platformOf(await openImage(spec, rest))];
}

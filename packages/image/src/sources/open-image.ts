// openImage: one entry to every source.
import type Docker from 'dockerode';
import type { BlobCache } from '../cache/blob-cache.js';
import type { Image } from '../core/image.js';
import type { ImageSpec } from '../core/image-spec.js';
import { ImageError } from '../errors.js';
import { readDaemonImage } from './daemon.js';
import { readDockerArchive } from './docker-archive.js';
import { readOciLayout } from './oci-layout.js';
import { RegistryClient } from '@dstack/oci';
import { readRegistryImage } from './registry.js';

export interface SourceOptions {
  cache: BlobCache;
  docker?: () => Docker;
  registry?: RegistryClient;
}

/** Opens an image from any source. */
export async function openImage(spec: ImageSpec, options: SourceOptions): Promise<Image> {
  switch (spec.kind) {
    case 'docker':
      if (!options.docker) throw new ImageError('IMAGE_NO_ENGINE', `no Docker engine to read ${spec.name} from`);
      return readDaemonImage(options.docker(), spec.name, { cache: options.cache });
    case 'oci':
      return readOciLayout(spec.dir, spec.ref === null ? {} : { ref: spec.ref });
    case 'archive':
      return readDockerArchive(spec.file, { cache: options.cache });
    case 'registry':
      return readRegistryImage(spec.ref, options.registry ?? new RegistryClient());
  }
}


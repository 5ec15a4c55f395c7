// writeImage: one entry to every sink.
import type Docker from 'dockerode';
import { hexOf, type Digest } from '../core/digest.js';
import type { Image, ManifestFormat } from '../core/image.js';
import type { ImageIndex } from '../core/image-index.js';
import { formatPlatform } from '../core/platform.js';
import type { ImageSpec } from '../core/image-spec.js';
import { RegistryClient } from '@dstack/oci';
import { ImageError } from '../errors.js';
import { loadIntoDaemon } from './daemon.js';
import { writeDockerArchive } from './docker-archive.js';
import { writeOciLayout, writeOciLayoutIndex } from './oci-layout.js';
import { DEFAULT_PUSH_FORMAT, pushImage, pushImageIndex, type PushEvent } from './registry.js';

export interface SinkOptions {
  docker?: () => Docker;
  registry?: RegistryClient;
  /** Tag written into archives (docker-save RepoTags). */
  tag?: string;
  onPush?: (e: PushEvent) => void;
  /** Daemon images whose layers a docker: sink need not stream again (the base, when it came from the daemon). */
  reuseFrom?: string[];
}

export interface SinkResult {
  /** The digest the destination knows the image by: manifest digest (OCI, registry) or image id (daemon). */
  digest: Digest;
  where: string;
}

/**
 * The digest `writeImage(image, spec)` will return, without writing: the image id (its config's digest) for a
 * Docker engine, the OCI manifest's for a layout, the Docker manifest's for an archive and a registry push.
 */
export function destinationDigest(image: Image, spec: ImageSpec): Digest {
  switch (spec.kind) {
    case 'docker':
      return image.configDigest();
    case 'oci':
      return image.manifest('oci').digest;
    case 'archive':
      return image.manifest('docker').digest;
    case 'registry':
      return image.manifest(DEFAULT_PUSH_FORMAT).digest;
  }
}

/** Writes an image to any sink. */
export async function writeImage(image: Image, spec: ImageSpec, options: SinkOptions = {}): Promise<SinkResult> {
  switch (spec.kind) {
    case 'docker': {
      if (!options.docker) throw new ImageError('IMAGE_NO_ENGINE', `no Docker engine to load ${spec.name} into`);
      const id = await loadIntoDaemon(options.docker(), image, spec.name, options.reuseFrom ? { reuseFrom: options.reuseFrom } : {});
      return { digest: id as Digest, where: `docker engine as ${spec.name} (id ${hexOf(id as Digest).slice(0, 12)})` };
    }
    case 'oci': {
      const d = await writeOciLayout(image, spec.dir, spec.ref === null ? {} : { ref: spec.ref });
      return { digest: d.digest, where: `OCI layout ${spec.dir}${spec.ref ? `:${spec.ref}` : ''}` };
    }
    case 'archive':
      await writeDockerArchive(image, spec.file, options.tag ? { tags: [options.tag] } : {});
      return { digest: destinationDigest(image, spec), where: `docker archive ${spec.file}` };
    case 'registry': {
      const digest = await pushImage(image, spec.ref, { client: options.registry ?? new RegistryClient(), ...(options.onPush ? { onEvent: options.onPush } : {}) });
      return { digest, where: spec.ref };
    }
  }
}

/**
 * Writes a multi-platform image: an OCI index (or, with `format: 'docker'`, a Docker manifest list) over one
 * image per platform, to an OCI layout or a registry. A Docker engine and a docker archive keep one platform
 * per tag: an index of one image goes there as that image, a larger one is refused.
 */
export async function writeImageIndex(index: ImageIndex, spec: ImageSpec, options: SinkOptions & { format?: ManifestFormat } = {}): Promise<SinkResult> {
  const format = options.format ?? 'oci';
  switch (spec.kind) {
    case 'docker':
    case 'archive': {
      if (index.entries.length === 1) return writeImage(index.entries[0]!.image, spec, options);
      const platforms = index.entries.map((e) => formatPlatform(e.platform)).join(', ');
      throw new ImageError('IMAGE_PLATFORM', `${spec.kind === 'docker' ? `docker:${spec.name}` : `archive:${spec.file}`} holds one platform, not ${index.entries.length} (${platforms})`, {
        hint: 'name one platform (--platform linux/arm64), or write the index to oci:DIR or registry:REF',
      });
    }
    case 'oci': {
      const d = await writeOciLayoutIndex(index, spec.dir, { ...(spec.ref === null ? {} : { ref: spec.ref }), format });
      return { digest: d.digest, where: `OCI layout ${spec.dir}${spec.ref ? `:${spec.ref}` : ''}` };
    }
    case 'registry': {
      const digest = await pushImageIndex(index, spec.ref, { client: options.registry ?? new RegistryClient(), format, ...(options.onPush ? { onEvent: options.onPush } : {}) });
      return { digest, where: spec.ref };
    }
  }
}

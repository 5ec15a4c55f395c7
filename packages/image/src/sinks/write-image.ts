// writeImage: one entry to every sink.
import type Docker from 'dockerode';
import { hexOf, type Digest } from '../core/digest.js';
import type { Image } from '../core/image.js';
import type { ImageSpec } from '../core/image-spec.js';
import { RegistryClient } from '@dstack/oci';
import { ImageError } from '../errors.js';
import { loadIntoDaemon } from './daemon.js';
import { writeDockerArchive } from './docker-archive.js';
import { writeOciLayout } from './oci-layout.js';
import { pushImage, type PushEvent } from './registry.js';

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
      return { digest: image.manifest('docker').digest, where: `docker archive ${spec.file}` };
    case 'registry': {
      const digest = await pushImage(image, spec.ref, { client: options.registry ?? new RegistryClient(), ...(options.onPush ? { onEvent: options.onPush } : {}) });
      return { digest, where: spec.ref };
    }
  }
}

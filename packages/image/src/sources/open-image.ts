import type Docker from 'dockerode';
import type { BlobCache } from '../cache/blob-cache.js';
import { hexOf, type Digest } from '../core/digest.js';
import { readDockerArchive, writeDockerArchive } from './docker-archive.js';
import { loadIntoEngine, readEngineImage } from './daemon.js';
import { ImageError } from '../errors.js';
import type { Image } from '../core/image.js';
import { readOciLayout, writeOciLayout } from './oci-layout.js';
import { pushImage, readRegistryImage, RegistryClient, type PushEvent } from '../distribution/client.js';

/** Where an image comes from or goes: `docker:NAME`, `oci:DIR[:REF]`, `archive:FILE`, `registry:REF` (or a bare REF). */
export type ImageSpec =
  | { kind: 'docker'; name: string }
  | { kind: 'oci'; dir: string; ref: string | null }
  | { kind: 'archive'; file: string }
  | { kind: 'registry'; ref: string };

export function parseImageSpec(spec: string): ImageSpec {
  const m = /^(docker|docker-daemon|oci|archive|docker-archive|registry|docker-registry):(.*)$/.exec(spec);
  if (!m) return { kind: 'registry', ref: spec };
  const [, kind, rest] = m as unknown as [string, string, string];
  if (rest === '') throw new ImageError('IMAGE_SPEC_INVALID', `nothing after "${kind}:" in ${spec}`);
  switch (kind) {
    case 'docker':
    case 'docker-daemon':
      return { kind: 'docker', name: rest };
    case 'oci': {
      const colon = rest.lastIndexOf(':');
      return colon > 0 ? { kind: 'oci', dir: rest.slice(0, colon), ref: rest.slice(colon + 1) } : { kind: 'oci', dir: rest, ref: null };
    }
    case 'archive':
    case 'docker-archive':
      return { kind: 'archive', file: rest };
    default:
      return { kind: 'registry', ref: rest.replace(/^\/\//, '') };
  }
}

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
      return readEngineImage(options.docker(), spec.name, { cache: options.cache });
    case 'oci':
      return readOciLayout(spec.dir, spec.ref === null ? {} : { ref: spec.ref });
    case 'archive':
      return readDockerArchive(spec.file, { cache: options.cache });
    case 'registry':
      return readRegistryImage(spec.ref, options.registry ?? new RegistryClient());
  }
}

export interface SinkOptions {
  docker?: () => Docker;
  registry?: RegistryClient;
  /** Tag written into archives (docker-save RepoTags). */
  tag?: string;
  onPush?: (e: PushEvent) => void;
  /** Engine images whose layers a docker: sink need not stream again (the base, when it came from the engine). */
  reuseFrom?: string[];
}

export interface SinkResult {
  /** The digest the destination knows the image by: manifest digest (OCI, registry) or image id (engine). */
  digest: Digest;
  where: string;
}

/** Writes an image to any sink. */
export async function writeImage(image: Image, spec: ImageSpec, options: SinkOptions = {}): Promise<SinkResult> {
  switch (spec.kind) {
    case 'docker': {
      if (!options.docker) throw new ImageError('IMAGE_NO_ENGINE', `no Docker engine to load ${spec.name} into`);
      const id = await loadIntoEngine(options.docker(), image, spec.name, options.reuseFrom ? { reuseFrom: options.reuseFrom } : {});
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

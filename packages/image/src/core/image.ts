// The Image value: a config and its layers, serialised to an OCI or a Docker manifest on demand.
import { sha256Digest, type Digest } from './digest.js';
import { ImageError } from '../errors.js';
import { isGzipMediaType, MEDIA_TYPES, type Layer } from './layer.js';

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The OCI image configuration (also Docker's, which is a superset). */
export interface ImageConfigFile {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
  [extra: string]: unknown;
}

export interface ContainerConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  StopSignal?: string;
  [extra: string]: unknown;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export type ManifestFormat = 'oci' | 'docker';

export interface SerializedManifest {
  mediaType: string;
  bytes: Buffer;
  digest: Digest;
  manifest: Manifest;
}

/** Translates a layer's media type to the manifest family being written. */
export function layerMediaType(layer: Layer, format: ManifestFormat): string {
  const gz = isGzipMediaType(layer.mediaType, `layer ${layer.digest}`);
  if (format === 'oci') return gz ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayer;
  return gz ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.dockerLayer;
}

/**
 * An immutable image: a config and its layers. Mutations return new images; nothing is written until a sink
 * writes it. The config's rootfs.diff_ids always follow the layers.
 */
export class Image {
  readonly config: ImageConfigFile;
  readonly layers: readonly Layer[];
  private configCache?: Buffer;
  private readonly manifests = new Map<ManifestFormat, SerializedManifest>();

  constructor(config: ImageConfigFile, layers: readonly Layer[]) {
    if (config.rootfs.diff_ids.length !== layers.length) {
      throw new ImageError(
        'IMAGE_INVALID',
        `config lists ${config.rootfs.diff_ids.length} diff_ids for ${layers.length} layers`,
      );
    }
    layers.forEach((l, i) => {
      if (config.rootfs.diff_ids[i] !== l.diffId) {
        throw new ImageError('IMAGE_INVALID', `layer ${i} has diffID ${l.diffId}, config says ${config.rootfs.diff_ids[i]}`);
      }
    });
    this.config = config;
    this.layers = layers;
  }

  /** The config exactly as it is written (JSON, keys in insertion order). */
  configBytes(): Buffer {
    return (this.configCache ??= Buffer.from(JSON.stringify(this.config)));
  }

  configDigest(): Digest {
    return sha256Digest(this.configBytes());
  }

  manifest(format: ManifestFormat = 'oci'): SerializedManifest {
    const cached = this.manifests.get(format);
    if (cached) return cached;
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: format === 'oci' ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest,
      config: {
        mediaType: format === 'oci' ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig,
        digest: this.configDigest(),
        size: this.configBytes().length,
      },
      layers: this.layers.map((l) => ({ mediaType: layerMediaType(l, format), digest: l.digest, size: l.size })),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const out = { mediaType: manifest.mediaType, bytes, digest: sha256Digest(bytes), manifest };
    this.manifests.set(format, out);
    return out;
  }

  /** The digest of the OCI manifest: the image's identity. */
  digest(): Digest {
    return this.manifest('oci').digest;
  }
}

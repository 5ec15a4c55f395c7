import { createHash } from 'node:crypto';
import { sha256Digest, HashingStream, type Digest } from './digest.js';
import { ImageError } from '../errors.js';
import { isGzipMediaType, MEDIA_TYPES, type Layer } from '../layers/write-layer.js';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';

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

export interface Addendum {
  layer: Layer;
  history?: HistoryEntry;
}

/** Appends layers (with their history entries) to an image. */
export function appendLayers(image: Image, additions: Addendum[]): Image {
  const config: ImageConfigFile = structuredClone(image.config);
  config.rootfs = { type: 'layers', diff_ids: [...image.config.rootfs.diff_ids, ...additions.map((a) => a.layer.diffId)] };
  const history = [...(image.config.history ?? [])];
  for (const a of additions) history.push({ ...(a.history ?? {}), empty_layer: undefined });
  config.history = history.map(stripUndefined);
  return new Image(config, [...image.layers, ...additions.map((a) => a.layer)]);
}

/** Changes the container config (env, user, cmd, labels, …) and optionally appends an empty-layer history entry. */
export function mutateConfig(
  image: Image,
  change: (config: ContainerConfig) => ContainerConfig,
  options: { created?: string; history?: HistoryEntry } = {},
): Image {
  const config: ImageConfigFile = structuredClone(image.config);
  config.config = change(structuredClone(image.config.config ?? {}));
  if (options.created !== undefined) config.created = options.created;
  if (options.history) config.history = [...(config.history ?? []), stripUndefined({ ...options.history, empty_layer: true })];
  return new Image(config, image.layers);
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** An image with no layers: the start of an image "FROM scratch". */
export function emptyImage(options: { architecture?: string; os?: string; created?: string } = {}): Image {
  return new Image(
    {
      ...(options.created !== undefined ? { created: options.created } : {}),
      architecture: options.architecture ?? 'amd64',
      os: options.os ?? 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    },
    [],
  );
}

/**
 * Checks an image the way crane's `validate` does: every layer's compressed bytes hash to its digest and size,
 * and its uncompressed bytes to its diffID. Reads every layer; for tests and `--validate`.
 */
export async function validateImage(image: Image): Promise<void> {
  for (const [i, layer] of image.layers.entries()) {
    const c = new HashingStream();
    await pipeline(await layer.compressed(), c, devNull());
    if (c.digest() !== layer.digest || c.bytes !== layer.size) {
      throw new ImageError('IMAGE_INVALID', `layer ${i}: compressed bytes are ${c.digest()} (${c.bytes} B), expected ${layer.digest} (${layer.size} B)`);
    }
    const u = new HashingStream();
    await pipeline(await layer.uncompressed(), u, devNull());
    if (u.digest() !== layer.diffId) {
      throw new ImageError('IMAGE_INVALID', `layer ${i}: uncompressed bytes are ${u.digest()}, expected diffID ${layer.diffId}`);
    }
  }
}

function devNull(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

// The layer cache in a registry (`image app --cache-from/--cache-to registry:REF`): the blob cache's records —
// dependency layers, per-wheel segments, the base's inspected facts, the wheels' ELF files — in the config of one
// OCI image manifest whose layers are the blobs those records name. An image manifest, not an index: ECR and GCR
// refuse an index of plain blobs; a manifest keeps its blobs from the registry's garbage collector too.
import { Readable } from 'node:stream';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { sha256Digest, type Digest } from '../core/digest.js';
import { Image, type Descriptor } from '../core/image.js';
import { MEDIA_TYPES, type Layer, type LayerDescriptor } from '../core/layer.js';
import { formatReference, parseReference, RegistryError, type ImageReference, type RegistryClient } from '@dstack/oci';
import { ImageError } from '../errors.js';
import { RegistryLayer } from '../sources/registry.js';
import { type BlobCache, type BlobRemote, CachedLayer } from '../cache/blob-cache.js';

/** The config media type of a layer cache manifest: what tells it from an image. */
export const LAYER_CACHE_CONFIG = 'application/vnd.dstack-factory.layer-cache.v1+json';

/**
 * The record namespaces a registry cache carries, keyed as on disk: `layers` (dependency layers by their inputs),
 * `segments` (per-wheel byte ranges of those layers), `base` (a base's Target, Python, users: by its layers),
 * `image-files` (the library index of the runtime check: by the base's layers), `wheel-elf` (by wheel sha256),
 * and `blobs` (further layers kept for mounting: the runtime layer).
 */
export const CACHE_NAMESPACES = ['layers', 'segments', 'base', 'image-files', 'wheel-elf', 'blobs'] as const;
const EXPORTED = new Set<string>(CACHE_NAMESPACES);

export interface CacheRecord {
  namespace: string;
  key: string;
  /**
   * What the record competes with for a place (`--cache-keep` per family): `layers`, `segments:<project>`,
   * `wheel-elf:<project>`, `base`, `image-files`, `blobs`.
   */
  family: string;
  /** When a build last used it (ISO 8601). */
  used: string;
  value: unknown;
}

interface CacheConfigFile {
  schemaVersion: 1;
  records: CacheRecord[];
}

/** A record a build read or wrote, as `recordUse` collects them. */
export interface UsedRecord {
  namespace: string;
  key: string;
  value: unknown;
}

/** Collects the records `cache` serves or stores from now on (what `exportLayerCache` writes). */
export function recordUse(cache: BlobCache): Map<string, UsedRecord> {
  const used = new Map<string, UsedRecord>();
  cache.onRecord = (namespace, key, value) => {
    if (EXPORTED.has(namespace)) used.set(`${namespace}\0${key}`, { namespace, key, value });
  };
  return used;
}

const canonical = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, '-');

/** The project a segment belongs to, from the `*.dist-info/RECORD` among its paths. */
function segmentProject(value: unknown): string | null {
  const paths = (value as { paths?: string[] }).paths ?? [];
  for (const p of paths) {
    const m = /(?:^|\/)([^/]+)-[^/-]+\.dist-info\/RECORD$/.exec(p);
    if (m) return canonical(m[1]!);
  }
  return null;
}

function familyOf(namespace: string, key: string, value: unknown, wheelNames: Map<string, string>): string {
  if (namespace === 'segments') {
    const project = segmentProject(value);
    return project ? `segments:${project}` : 'segments';
  }
  if (namespace === 'wheel-elf') {
    const name = wheelNames.get(key);
    return name ? `wheel-elf:${canonical(name.split('-')[0]!)}` : 'wheel-elf';
  }
  return namespace;
}

const isNotFound = (err: unknown): boolean => err instanceof RegistryError && err.status === 404;

export interface RegistryCacheOptions {
  client: RegistryClient;
  logger?: Logger;
  /**
   * How a recorded dependency layer is used: `mount` (the image goes to a repository of the same registry: the
   * blob is mounted there, never downloaded) or `download` (into the local cache, in parallel with the base's
   * layers, for oci:, archive: and docker: outputs). Default download.
   */
  mode?: 'mount' | 'download';
}

/**
 * A layer cache read from a registry. `importInto` writes its records into a local blob cache (keeping any
 * the cache has already) and becomes that cache's remote: a recorded layer whose blob is not on disk is then
 * mounted or downloaded, a recorded segment downloaded. A blob the registry lacks, or sends wrong, is a miss:
 * the build rebuilds what it held.
 */
export class RegistryLayerCache implements BlobRemote {
  readonly ref: ImageReference;
  mode: 'mount' | 'download';
  private readonly heads = new Map<Digest, Promise<boolean>>();
  private readonly fetches = new Map<Digest, Promise<boolean>>();

  private constructor(
    readonly reference: string,
    readonly client: RegistryClient,
    /** The records, and the blobs (the manifest's layers) by digest. */
    readonly records: CacheRecord[],
    readonly blobs: Map<Digest, Descriptor>,
    /** The manifest's digest (null: nothing under that tag yet). */
    readonly digest: Digest | null,
    private readonly logger: Logger | undefined,
    mode: 'mount' | 'download',
  ) {
    this.ref = parseReference(reference);
    this.mode = mode;
  }

  /**
   * Reads the cache manifest under `reference` (an empty cache when the tag or repository does not exist yet).
   * A manifest that is not a layer cache is refused (IMAGE_LAYER_CACHE_INVALID): `--cache-to` would overwrite it.
   */
  static async open(reference: string, options: RegistryCacheOptions): Promise<RegistryLayerCache> {
    const ref = parseReference(reference);
    const client = options.client;
    const where = formatReference(ref);
    const mode = options.mode ?? 'download';
    let manifest: { config?: Descriptor; layers?: Descriptor[] };
    let digest: Digest;
    let mediaType = '';
    try {
      const m = await client.getManifest(ref, ref.digest ?? ref.tag!);
      mediaType = m.mediaType;
      manifest = JSON.parse(m.bytes.toString('utf8')) as typeof manifest;
      digest = m.digest;
    } catch (err) {
      if (isNotFound(err)) return new RegistryLayerCache(reference, options.client, [], new Map(), null, options.logger, mode);
      throw err;
    }
    if (manifest.config?.mediaType !== LAYER_CACHE_CONFIG) {
      const what = manifest.config ? `its config is ${manifest.config.mediaType}` : `it is ${mediaType || 'not an image manifest'}`;
      throw new ImageError('IMAGE_LAYER_CACHE_INVALID', `${where} is not a dstack-factory layer cache: ${what}, not ${LAYER_CACHE_CONFIG}`, {
        hint: 'give the cache its own tag or repository (e.g. REPO:cache), not an image',
      });
    }
    const bytes = await client.readBlob(ref, manifest.config.digest, 'layer cache config');
    let config: CacheConfigFile;
    try {
      config = JSON.parse(bytes.toString('utf8')) as CacheConfigFile;
    } catch (err) {
      throw new ImageError('IMAGE_LAYER_CACHE_INVALID', `${where}: the layer cache config ${manifest.config.digest} is not JSON`, { cause: err });
    }
    if (config.schemaVersion !== 1 || !Array.isArray(config.records)) {
      throw new ImageError('IMAGE_LAYER_CACHE_INVALID', `${where}: layer cache schema ${String(config.schemaVersion)} is not one this version reads (1)`, {
        hint: 'write the cache again with --cache-to from this version',
      });
    }
    const blobs = new Map((manifest.layers ?? []).map((d) => [d.digest, d] as const));
    return new RegistryLayerCache(reference, options.client, config.records, blobs, digest, options.logger, mode);
  }

  /**
   * Writes the records into `cache` (a record the cache has already stays: it may name a blob on disk) and
   * makes this the cache's remote. Returns how many were written.
   */
  async importInto(cache: BlobCache): Promise<number> {
    const listener = cache.onRecord;
    cache.onRecord = null; // imported is not used
    let written = 0;
    try {
      await Promise.all(
        this.records
          .filter((r) => EXPORTED.has(r.namespace) && /^[0-9a-zA-Z:_.-]+$/.test(r.key))
          .map(async (r) => {
            const file = path.join(cache.dir, 'keys', r.namespace, `${r.key}.json`);
            if (await fs.access(file).then(() => true, () => false)) return;
            await cache.writeKey(r.namespace, r.key, r.value);
            written++;
          }),
      );
    } finally {
      cache.onRecord = listener;
    }
    cache.remote = this;
    return written;
  }

  /** Whether `reference` (an image's) is in the cache's registry: its blobs can be mounted there. */
  sameRegistry(reference: string): boolean {
    return parseReference(reference).registry === this.ref.registry;
  }

  /** Whether the cache repository has the blob intact enough to be mounted (HEAD, once per digest). */
  has(digest: Digest): Promise<boolean> {
    let p = this.heads.get(digest);
    if (!p) {
      p = this.blobs.has(digest)
        ? this.client.blobExists(this.ref, digest).catch((err: Error) => {
            this.logger?.warn({ digest, err: err.message }, 'layer cache: blob not reachable (HEAD failed)');
            return false;
          })
        : Promise.resolve(false);
      this.heads.set(digest, p);
    }
    return p;
  }

  async layer(desc: LayerDescriptor, cache: BlobCache): Promise<Layer | null> {
    if (!this.blobs.has(desc.digest)) return null;
    if (this.mode === 'mount') {
      if (!(await this.has(desc.digest))) {
        this.logger?.warn({ digest: desc.digest }, 'layer cache: blob missing from the registry, the layer is rebuilt');
        return null;
      }
      return new RegistryLayer(this.client, this.ref, desc.digest, desc.diffId, desc.size, desc.mediaType);
    }
    return (await this.fetch(desc.digest, cache)) ? new CachedLayer(cache, desc) : null;
  }

  fetch(digest: Digest, cache: BlobCache): Promise<boolean> {
    let p = this.fetches.get(digest);
    if (!p) {
      p = this.download(digest, cache);
      this.fetches.set(digest, p);
    }
    return p;
  }

  private async download(digest: Digest, cache: BlobCache): Promise<boolean> {
    const desc = this.blobs.get(digest);
    if (!desc) return false;
    if (await cache.has(digest, desc.size)) return true;
    // The request is retried by the client; a body cut short is tried once more, then it is a miss.
    for (let attempt = 1; ; attempt++) {
      try {
        await cache.put(await this.client.openBlob(this.ref, digest, 'cached layer'), digest);
        return true;
      } catch (err) {
        const last = attempt >= 2 || isNotFound(err) || (err as { code?: string }).code === 'IMAGE_DIGEST_MISMATCH';
        if (last) {
          this.logger?.warn({ digest, err: (err as Error).message }, 'layer cache: blob not usable, the layer is rebuilt');
          return false;
        }
      }
    }
  }
}

/** A local layer that a push mounts from the cache repository (reading it from disk when the mount is refused). */
class MountableLayer extends RegistryLayer {
  constructor(
    private readonly local: Layer,
    cache: RegistryLayerCache,
  ) {
    super(cache.client, cache.ref, local.digest, local.diffId, local.size, local.mediaType);
  }
  override compressed(): Promise<Readable> {
    return this.local.compressed();
  }
}

/**
 * The image with each local layer the registry cache holds (the runtime layer) made mountable from it: a push to
 * another repository of the same registry then mounts it instead of uploading.
 */
export function mountFromCache(image: Image, remote: RegistryLayerCache, target: string): Image {
  const ref = parseReference(target);
  if (ref.registry !== remote.ref.registry) return image;
  const layers = image.layers.map((l) => (!(l instanceof RegistryLayer) && remote.blobs.has(l.digest) ? new MountableLayer(l, remote) : l));
  return new Image(image.config, layers);
}

export interface ExportOptions {
  client: RegistryClient;
  cache: BlobCache;
  /** The records this build used (`recordUse`). */
  used: Map<string, UsedRecord>;
  /** What the cache held before (its records are kept, bounded); null: start afresh. */
  previous: RegistryLayerCache | null;
  /** Records kept per family (default 3): older ones are dropped from the manifest. */
  keep?: number;
  /** Wheel file names by sha256 (hex): the family of their `wheel-elf` records. */
  wheelNames?: Map<string, string>;
  /** More layers to keep (recorded in `blobs`): the runtime layer, which a cold runner then mounts. */
  layers?: Layer[];
  /** Where the image was just pushed: in the same registry, the blobs it has are mounted from there. */
  pushedTo?: string;
  now?: Date;
  logger?: Logger;
}

export interface ExportResult {
  digest: Digest;
  records: number;
  dropped: number;
  blobs: { present: number; mounted: number; uploaded: number };
}

/**
 * Writes the layer cache: the records this build used (now) and the ones the cache held, at most `keep` per
 * family, newest first; the blobs they name are checked (HEAD), and missing ones mounted from `pushedTo` or
 * uploaded from the local cache; a record whose blob is nowhere is dropped. Then the config, then the manifest.
 */
export async function exportLayerCache(reference: string, options: ExportOptions): Promise<ExportResult> {
  const ref = parseReference(reference);
  const pushed = options.pushedTo ? parseReference(options.pushedTo) : null;
  const mountFrom = pushed && pushed.registry === ref.registry && pushed.repository !== ref.repository ? pushed.repository : null;
  const client = options.client;
  const keep = options.keep ?? 3;
  const now = (options.now ?? new Date()).toISOString();
  const names = options.wheelNames ?? new Map<string, string>();
  const merged = new Map<string, CacheRecord>();
  for (const r of options.previous?.records ?? []) if (EXPORTED.has(r.namespace)) merged.set(`${r.namespace}\0${r.key}`, r);
  for (const [id, u] of options.used) merged.set(id, { namespace: u.namespace, key: u.key, family: familyOf(u.namespace, u.key, u.value, names), used: now, value: u.value });
  for (const l of options.layers ?? []) {
    const desc: LayerDescriptor = { digest: l.digest, diffId: l.diffId, size: l.size, mediaType: l.mediaType };
    merged.set(`blobs\0${hexKey(l.digest)}`, { namespace: 'blobs', key: hexKey(l.digest), family: 'blobs', used: now, value: desc });
  }
  // A layer used now keeps its segments (a one-wheel change later copies the others from it).
  const usedLayers = new Set([...options.used.values()].filter((u) => u.namespace === 'layers').map((u) => (u.value as LayerDescriptor).digest));
  for (const r of merged.values()) if (r.namespace === 'segments' && usedLayers.has((r.value as { blob: Digest }).blob)) r.used = now;

  // Each blob's descriptor: from layer records, the cache's manifest, else the local file.
  const descriptors = new Map<Digest, Descriptor>(options.previous?.blobs ?? []);
  for (const r of merged.values()) {
    if (r.namespace === 'layers' || r.namespace === 'blobs') {
      const d = r.value as LayerDescriptor;
      descriptors.set(d.digest, { mediaType: d.mediaType, digest: d.digest, size: d.size });
    }
  }
  const blobOf = (r: CacheRecord): Digest | null =>
    r.namespace === 'layers' || r.namespace === 'blobs' ? (r.value as LayerDescriptor).digest : r.namespace === 'segments' ? (r.value as { blob: Digest }).blob : null;

  // Bounded: per family, the newest `keep`.
  const families = new Map<string, CacheRecord[]>();
  for (const r of merged.values()) families.set(r.family, [...(families.get(r.family) ?? []), r]);
  let kept: CacheRecord[] = [];
  let dropped = 0;
  for (const list of families.values()) {
    list.sort((a, b) => (a.used === b.used ? (a.key < b.key ? -1 : 1) : a.used < b.used ? 1 : -1));
    kept.push(...list.slice(0, keep));
    dropped += Math.max(0, list.length - keep);
  }

  const counts = { present: 0, mounted: 0, uploaded: 0 };
  const needed = [...new Set(kept.map(blobOf).filter((d): d is Digest => d !== null))];
  const missing = new Set<Digest>();
  await Promise.all(
    needed.map(async (digest) => {
      const local = await fs.stat(options.cache.pathOf(digest)).catch(() => null);
      if (!descriptors.has(digest) && local) descriptors.set(digest, { mediaType: MEDIA_TYPES.ociLayerGzip, digest, size: local.size });
      const desc = descriptors.get(digest);
      if (!desc) {
        missing.add(digest);
        return;
      }
      if (await client.blobExists(ref, digest, { push: true })) {
        counts.present++;
        return;
      }
      if (!local && !mountFrom) {
        missing.add(digest);
        return;
      }
      try {
        const open = async (): Promise<Readable> => {
          if (!local) throw new Error(`${digest} is not on disk to upload`); // not retried: the record is dropped
          return options.cache.open(digest);
        };
        const how = await client.uploadBlob(ref, digest, desc.size, open, { mountFrom });
        counts[how]++;
      } catch (err) {
        if (local) throw err;
        missing.add(digest); // not mountable, not on disk
      }
    }),
  );
  if (missing.size > 0) {
    options.logger?.warn({ blobs: [...missing] }, 'layer cache: blobs neither in the registry nor on disk, their records dropped');
    const before = kept.length;
    kept = kept.filter((r) => {
      const d = blobOf(r);
      return d === null || !missing.has(d);
    });
    dropped += before - kept.length;
  }
  kept.sort((a, b) => (a.namespace === b.namespace ? (a.key < b.key ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
  const config = Buffer.from(JSON.stringify({ schemaVersion: 1, records: kept } satisfies CacheConfigFile));
  const configDigest = sha256Digest(config);
  if (!(await client.blobExists(ref, configDigest, { push: true }))) {
    await client.uploadBlob(ref, configDigest, config.length, async () => Readable.from([config]));
  }
  const layers = [...new Set(kept.map(blobOf).filter((d): d is Digest => d !== null))]
    .sort()
    .map((d) => descriptors.get(d)!);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: LAYER_CACHE_CONFIG, digest: configDigest, size: config.length },
      layers,
    }),
  );
  const digest = await client.putManifest(ref, ref.tag ?? 'cache', { mediaType: MEDIA_TYPES.ociManifest, bytes: manifest });
  return { digest, records: kept.length, dropped, blobs: counts };
}

const hexKey = (d: Digest): string => d.slice('sha256:'.length);

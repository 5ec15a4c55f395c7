// The layer cache in a registry (`image app --cache-from/--cache-to registry:REF`): the blob cache's records —
// dependency layers, per-wheel segments, the base's inspected facts, the wheels' ELF files — listed in the config
// of one OCI image manifest whose layers are the blobs those records name. An image manifest, not an index: ECR
// and GCR refuse an index of plain blobs; a manifest keeps its blobs from the registry's garbage collector too.
// The config stays small (what a cold runner reads first): large values (a base's file index, segments' path
// lists) sit in one gzipped values blob, read only when a record in it is asked for.
import { Readable } from 'node:stream';
import { promises as fs } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
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
/** The values blob: a gzipped JSON object of the large record values, by `namespace\0key`. */
const VALUES_MEDIA_TYPE = 'application/vnd.dstack-factory.layer-cache.values.v1+json+gzip';
/** Values whose JSON is longer go into the values blob. */
const INLINE_MAX = 2048;

/**
 * The record namespaces a registry cache carries, keyed as on disk: `layers` (dependency layers by their inputs),
 * `segments` (per-wheel byte ranges of those layers), `base` (a base's Target, Python, users: by its layers),
 * `image-files` (the library index of the runtime check: by the base's layers), `wheel-elf` (by wheel sha256),
 * `wheel-check` (the runtime check's report for a lock's wheels on a base), and `blobs` (further layers kept for
 * mounting: the runtime layer).
 */
export const CACHE_NAMESPACES = ['layers', 'segments', 'base', 'image-files', 'wheel-elf', 'wheel-check', 'blobs'] as const;
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
  /** The layer blob the record names (a layer's, a segment's), which the manifest then lists. */
  blob?: Digest;
  /** The value, unless it sits in the values blob. */
  value?: unknown;
}

interface CacheConfigFile {
  schemaVersion: 1;
  records: CacheRecord[];
  /** The values blob, when there is one. */
  values?: Descriptor;
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

/** The layer blob a record's value names: a dependency or runtime layer's digest, a segment's blob. */
function blobOf(namespace: string, value: unknown): Digest | undefined {
  if (namespace === 'layers' || namespace === 'blobs') return (value as LayerDescriptor).digest;
  if (namespace === 'segments') return (value as { blob: Digest }).blob;
  return undefined;
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
 * A layer cache read from a registry. `attachTo` makes it a local blob cache's remote: a record the disk lacks is
 * answered from it, a recorded layer whose blob is not on disk is mounted or downloaded, a recorded segment
 * downloaded. A blob the registry lacks, or sends wrong, is a miss:
 * the build rebuilds what it held.
 */
export class RegistryLayerCache implements BlobRemote {
  readonly ref: ImageReference;
  mode: 'mount' | 'download';
  private readonly heads = new Map<Digest, Promise<boolean>>();
  private readonly byKey: Map<string, CacheRecord>;
  private readonly fetches = new Map<Digest, Promise<boolean>>();
  private valuesRead: Promise<Map<string, unknown>> | null = null;

  private constructor(
    readonly reference: string,
    readonly client: RegistryClient,
    /** The records, and the blobs (the manifest's layers) by digest. */
    readonly records: CacheRecord[],
    readonly blobs: Map<Digest, Descriptor>,
    /** The values blob (null: every value is in the config). */
    readonly values: Descriptor | null,
    /** The manifest's digest (null: nothing under that tag yet). */
    readonly digest: Digest | null,
    private readonly logger: Logger | undefined,
    mode: 'mount' | 'download',
  ) {
    this.ref = parseReference(reference);
    this.mode = mode;
    this.byKey = new Map(records.filter((r) => EXPORTED.has(r.namespace)).map((r) => [`${r.namespace}\0${r.key}`, r]));
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
      if (isNotFound(err)) return new RegistryLayerCache(reference, options.client, [], new Map(), null, null, options.logger, mode);
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
    const blobs = new Map((manifest.layers ?? []).filter((d) => d.mediaType !== VALUES_MEDIA_TYPE).map((d) => [d.digest, d] as const));
    return new RegistryLayerCache(reference, options.client, config.records, blobs, config.values ?? null, digest, options.logger, mode);
  }

  /**
   * Makes this the remote of `cache`: a record the cache lacks on disk is then answered from this one (in memory,
   * nothing is written), a layer or segment blob it lacks is mounted or downloaded. Returns how many records.
   */
  attachTo(cache: BlobCache): number {
    cache.remote = this;
    return this.byKey.size;
  }

  async record(namespace: string, key: string): Promise<unknown> {
    const r = this.byKey.get(`${namespace}\0${key}`);
    if (!r) return null;
    if (r.value !== undefined) return r.value;
    return (await this.largeValues()).get(`${namespace}\0${key}`) ?? null;
  }

  /** The values blob's contents (read once); unreadable, it is empty: its records are misses, rebuilt. */
  largeValues(): Promise<Map<string, unknown>> {
    this.valuesRead ??= (async () => {
      if (!this.values) return new Map<string, unknown>();
      try {
        const bytes = await this.client.readBlob(this.ref, this.values.digest, 'layer cache values');
        return new Map(Object.entries(JSON.parse(gunzipSync(bytes).toString('utf8')) as Record<string, unknown>));
      } catch (err) {
        this.logger?.warn({ digest: this.values.digest, err: (err as Error).message }, 'layer cache: values blob not usable, its records are misses');
        return new Map<string, unknown>();
      }
    })();
    return this.valuesRead;
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
  /**
   * Images or caches that may hold the blobs already (where the image is pushed, the --cache-from cache): those
   * in the same registry are asked for a mount, in this order, before an upload from disk.
   */
  mountFrom?: string[];
  /**
   * The push of the image, when it runs meanwhile: a blob the cache lacks waits for it (then it is mounted from
   * the image's repository rather than uploaded twice); the rest of the export does not.
   */
  pushing?: Promise<unknown>;
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
  const mountFrom = [
    ...new Set(
      (options.mountFrom ?? [])
        .map((r) => parseReference(r))
        .filter((r) => r.registry === ref.registry && r.repository !== ref.repository)
        .map((r) => r.repository),
    ),
  ];
  const client = options.client;
  const keep = options.keep ?? 3;
  const now = (options.now ?? new Date()).toISOString();
  const names = options.wheelNames ?? new Map<string, string>();
  const merged = new Map<string, CacheRecord>();
  const fresh = (namespace: string, key: string, value: unknown, family: string): CacheRecord => {
    const blob = blobOf(namespace, value);
    return { namespace, key, family, used: now, ...(blob ? { blob } : {}), value };
  };
  for (const r of options.previous?.records ?? []) {
    if (!EXPORTED.has(r.namespace)) continue;
    const blob = r.blob ?? (r.value !== undefined ? blobOf(r.namespace, r.value) : undefined);
    merged.set(`${r.namespace}\0${r.key}`, { ...r, ...(blob ? { blob } : {}) });
  }
  for (const [id, u] of options.used) merged.set(id, fresh(u.namespace, u.key, u.value, familyOf(u.namespace, u.key, u.value, names)));
  for (const l of options.layers ?? []) {
    const desc: LayerDescriptor = { digest: l.digest, diffId: l.diffId, size: l.size, mediaType: l.mediaType };
    merged.set(`blobs\0${hexKey(l.digest)}`, fresh('blobs', hexKey(l.digest), desc, 'blobs'));
  }
  // A layer used now keeps its segments (a one-wheel change later copies the others from it).
  const usedLayers = new Set([...options.used.values()].filter((u) => u.namespace === 'layers').map((u) => (u.value as LayerDescriptor).digest));
  for (const r of merged.values()) if (r.namespace === 'segments' && r.blob && usedLayers.has(r.blob)) r.used = now;

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
  // Values kept from before that sit in the old values blob are read back from it (once).
  if (kept.some((r) => r.value === undefined)) {
    const old = (await options.previous?.largeValues()) ?? new Map<string, unknown>();
    kept = kept.filter((r) => {
      if (r.value !== undefined) return true;
      r.value = old.get(`${r.namespace}\0${r.key}`);
      if (r.value === undefined) dropped++;
      return r.value !== undefined;
    });
  }

  // Each blob's descriptor: from layer records, the cache's manifest, else the local file.
  const descriptors = new Map<Digest, Descriptor>(options.previous?.blobs ?? []);
  for (const r of kept) {
    if (r.namespace === 'layers' || r.namespace === 'blobs') {
      const d = r.value as LayerDescriptor;
      descriptors.set(d.digest, { mediaType: d.mediaType, digest: d.digest, size: d.size });
    }
  }
  const counts = { present: 0, mounted: 0, uploaded: 0 };
  const needed = [...new Set(kept.map((r) => r.blob).filter((d): d is Digest => d !== undefined))];
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
      await options.pushing?.catch(() => undefined);
      // Mounted from the first repository that has it, else uploaded from disk; neither: its records go.
      const open = async (): Promise<Readable> => {
        if (!local) throw new NotOnDisk(); // not retried
        return options.cache.open(digest);
      };
      for (const from of [...mountFrom, null]) {
        try {
          counts[await client.uploadBlob(ref, digest, desc.size, open, { mountFrom: from })]++;
          return;
        } catch (err) {
          if (!(err instanceof NotOnDisk)) throw err;
        }
      }
      missing.add(digest);
    }),
  );
  if (missing.size > 0) {
    options.logger?.warn({ blobs: [...missing] }, 'layer cache: blobs neither in the registry nor on disk, their records dropped');
    const before = kept.length;
    kept = kept.filter((r) => r.blob === undefined || !missing.has(r.blob));
    dropped += before - kept.length;
  }
  kept.sort((a, b) => (a.namespace === b.namespace ? (a.key < b.key ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));

  // Small values in the config, large ones in the values blob.
  const large: Record<string, unknown> = {};
  const records = kept.map((r) => {
    if (JSON.stringify(r.value).length <= INLINE_MAX) return r;
    large[`${r.namespace}\0${r.key}`] = r.value;
    const { value: _value, ...rest } = r;
    return rest;
  });
  const upload = async (bytes: Buffer): Promise<Digest> => {
    const digest = sha256Digest(bytes);
    if (!(await client.blobExists(ref, digest, { push: true }))) await client.uploadBlob(ref, digest, bytes.length, async () => Readable.from([bytes]));
    return digest;
  };
  let values: Descriptor | null = null;
  if (Object.keys(large).length > 0) {
    const bytes = gzipSync(JSON.stringify(large), { level: 6 });
    values = { mediaType: VALUES_MEDIA_TYPE, digest: await upload(bytes), size: bytes.length };
  }
  const config = Buffer.from(JSON.stringify({ schemaVersion: 1, records, ...(values ? { values } : {}) } satisfies CacheConfigFile));
  const configDigest = await upload(config);
  const layers = [...new Set(kept.map((r) => r.blob).filter((d): d is Digest => d !== undefined))]
    .sort()
    .map((d) => descriptors.get(d)!);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: LAYER_CACHE_CONFIG, digest: configDigest, size: config.length },
      layers: [...layers, ...(values ? [values] : [])],
    }),
  );
  const digest = await client.putManifest(ref, ref.tag ?? 'cache', { mediaType: MEDIA_TYPES.ociManifest, bytes: manifest });
  return { digest, records: kept.length, dropped, blobs: counts };
}

/** An upload that found neither a mount nor the blob on disk. */
class NotOnDisk extends Error {}

const hexKey = (d: Digest): string => d.slice('sha256:'.length);

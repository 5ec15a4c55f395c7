// The registry store: a WheelStore in an OCI registry. One manifest per wheel, under a tag that names its release
// and its bytes (tags.ts); the listing is rebuilt from the tag list. See README.md for why this design.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { EMPTY_DIGEST, MEDIA_TYPES, OciError, parseReference, RegistryClient, type Digest, type ImageReference } from '@dstack/oci';
import {
  FsWheelStore,
  WheelError,
  canonicalizeName,
  compareEntries,
  isWheelFilename,
  parseWheelFilename,
  type AddOptions,
  type AddResult,
  type NormalizedName,
  type WheelEntry,
  type WheelLimits,
  type WheelStore,
} from '@dstack/wheelhouse';
import type { Logger } from 'pino';
import { readWheelManifest, wheelManifest } from './manifest.js';
import { parseWheelTag, releaseHash, stemMayBeProject, wheelTag, type WheelTag } from './tags.js';

export interface RegistryWheelStoreOptions {
  /** The registry client (credentials, insecure hosts, retries, a logger); default an anonymous one. */
  client?: RegistryClient;
  /** How long a listing (the repository's tag list) is reused before the registry is asked again, in ms (default 5000). */
  cacheMs?: number;
  /** Another repository of the same registry: blobs it holds are mounted from it instead of uploaded. */
  mountFrom?: string;
  /** Where an added wheel is validated before it is pushed (a temp folder under it; default the OS's). */
  stagingDir?: string;
  limits?: WheelLimits;
  /** Manifests read at once when listing (default 16). */
  concurrency?: number;
  /** Each blob of an add: found (HEAD), mounted or uploaded. */
  onBlob?: (event: { digest: Digest; size: number; how: 'exists' | 'mounted' | 'uploaded' }) => void;
  logger?: Logger;
}

/** One wheel manifest as read: its entry and blobs, or why it is not a wheel. */
type Read =
  | { tag: WheelTag; digest: Digest; entry: WheelEntry; wheel: Digest; metadata: Digest; metadataSize: number }
  | { tag: WheelTag; invalid: string };
type Wheel = Extract<Read, { entry: WheelEntry }>;

const isWheel = (r: Read): r is Wheel => 'entry' in r;

/** Which of several manifests of one release stands: the one added first (then the smaller digest). */
function firstAdded(a: Wheel, b: Wheel): number {
  if (a.entry.addedAt !== b.entry.addedAt) return a.entry.addedAt < b.entry.addedAt ? -1 : 1;
  return a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0;
}

/** Runs `fn` over `items`, at most `limit` at once; results in order. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Parses a store location: `registry:HOST/REPO` (or `HOST/REPO`), a repository without tag or digest.
 * Throws OciError IMAGE_REFERENCE_INVALID for a bad one.
 */
export function parseRegistryLocation(location: string): ImageReference {
  const rest = location.startsWith('registry:') ? location.slice('registry:'.length) : location;
  const ref = parseReference(rest);
  const lastSlash = rest.lastIndexOf('/');
  if (ref.digest !== null || rest.slice(lastSlash + 1).includes(':') || lastSlash < 0) {
    throw new OciError('IMAGE_REFERENCE_INVALID', `registry:${rest} is not a registry store: write registry:HOST/REPOSITORY, without a tag or digest`, {
      hint: 'e.g. registry:ghcr.io/team/wheels or registry:127.0.0.1:5000/wheels',
    });
  }
  return { ...ref, tag: null };
}

export class RegistryWheelStore implements WheelStore {
  readonly ref: ImageReference;
  /** `registry:HOST/REPO`, as messages name it. */
  readonly location: string;
  readonly client: RegistryClient;
  private readonly options: RegistryWheelStoreOptions;
  #tags: { at: number; tags: string[] } | null = null;
  #pendingTags: Promise<string[]> | null = null;
  readonly #reads = new Map<string, Promise<Read>>();
  readonly #metadata = new Map<Digest, Buffer>();
  readonly #releaseLocks = new Map<string, Promise<unknown>>();
  #config: Promise<void> | null = null;

  constructor(location: string, options: RegistryWheelStoreOptions = {}) {
    this.ref = parseRegistryLocation(location);
    this.location = `registry:${this.ref.registry}/${this.ref.repository}`;
    this.client = options.client ?? new RegistryClient();
    this.options = options;
  }

  /** The repository's tags: the cached list while younger than `cacheMs`, else (or with `fresh`) asked again. */
  private async tags(fresh = false): Promise<string[]> {
    const cacheMs = this.options.cacheMs ?? 5000;
    if (!fresh && this.#tags && Date.now() - this.#tags.at < cacheMs) return this.#tags.tags;
    if (!fresh && this.#pendingTags) return this.#pendingTags;
    const started = Date.now();
    const pending = this.client.listTags(this.ref).then((tags) => {
      this.#tags = { at: started, tags };
      return tags;
    });
    if (!fresh) {
      this.#pendingTags = pending;
      void pending.finally(() => {
        if (this.#pendingTags === pending) this.#pendingTags = null;
      }).catch(() => {});
    }
    return pending;
  }

  /** A manifest read once per tag (a tag of this scheme never changes what it points at). */
  private read(tag: WheelTag): Promise<Read> {
    let read = this.#reads.get(tag.tag);
    if (!read) {
      read = (async (): Promise<Read> => {
        const m = await this.client.getManifest(this.ref, tag.tag, MEDIA_TYPES.ociManifest);
        try {
          return { tag, digest: m.digest, ...readWheelManifest(m.bytes) };
        } catch (err) {
          return { tag, invalid: (err as Error).message };
        }
      })();
      read.catch(() => this.#reads.delete(tag.tag));
      this.#reads.set(tag.tag, read);
    }
    return read;
  }

  /** The wheel manifests among `tags`, read; with `all`, every manifest of a release, else the one that stands. */
  private async wheels(tags: WheelTag[], all = false): Promise<Wheel[]> {
    const reads = await pool(tags, this.options.concurrency ?? 16, async (t) => {
      try {
        return await this.read(t);
      } catch (err) {
        // Deleted between the listing and the read: not there.
        if ((err as { code?: string }).code === 'REGISTRY_NOT_FOUND') return null;
        throw err;
      }
    });
    const wheels = reads.filter((r): r is Wheel => r !== null && isWheel(r));
    if (all) return wheels;
    const byRelease = new Map<string, Wheel>();
    for (const w of wheels) {
      const seen = byRelease.get(w.tag.release);
      if (!seen || firstAdded(w, seen) < 0) byRelease.set(w.tag.release, w);
    }
    return [...byRelease.values()];
  }

  private async wheelTags(fresh = false): Promise<WheelTag[]> {
    return (await this.tags(fresh)).map(parseWheelTag).filter((t): t is WheelTag => t !== null);
  }

  /** The manifests of one release (every one, freshly listed with `fresh`). */
  private async release(filename: string, fresh: boolean, all: boolean): Promise<Wheel[]> {
    const release = releaseHash(filename);
    return this.wheels((await this.wheelTags(fresh)).filter((t) => t.release === release), all);
  }

  private async find(filename: string): Promise<Wheel | null> {
    if (!isWheelFilename(filename)) return null;
    return (await this.release(filename, false, false)).find((w) => w.entry.filename === filename) ?? null;
  }

  async list(project?: string): Promise<WheelEntry[]> {
    let tags = await this.wheelTags();
    let wanted: NormalizedName | null = null;
    if (project !== undefined) {
      wanted = canonicalizeName(project);
      const escaped = wanted.replace(/-/g, '_');
      tags = tags.filter((t) => stemMayBeProject(t.stem, escaped));
    }
    return (await this.wheels(tags))
      .map((w) => w.entry)
      .filter((e) => wanted === null || e.name === wanted)
      .sort(compareEntries);
  }

  async projects(): Promise<NormalizedName[]> {
    return [...new Set((await this.list()).map((e) => e.name))].sort();
  }

  async get(filename: string): Promise<WheelEntry | null> {
    return (await this.find(filename))?.entry ?? null;
  }

  private notFound(filename: string): WheelError {
    return new WheelError('WHEEL_NOT_FOUND', `${filename} is not in ${this.location}`);
  }

  async openRead(filename: string, range?: { start: number; end?: number }): Promise<NodeJS.ReadableStream> {
    const w = await this.find(filename);
    if (!w) throw this.notFound(filename);
    return this.client.openBlob(this.ref, w.wheel, 'wheel', range);
  }

  /** METADATA's exact bytes (PEP 658), checked against their digest; kept in memory once read. */
  async metadataBytes(filename: string): Promise<Buffer> {
    const w = await this.find(filename);
    if (!w) throw this.notFound(filename);
    let bytes = this.#metadata.get(w.metadata);
    if (!bytes) {
      bytes = await this.client.readBlob(this.ref, w.metadata, 'METADATA');
      if (this.#metadata.size >= 4096) this.#metadata.delete(this.#metadata.keys().next().value!);
      this.#metadata.set(w.metadata, bytes);
    }
    return bytes;
  }

  async metadata(filename: string): Promise<string> {
    return (await this.metadataBytes(filename)).toString('utf8');
  }

  /** Deletes the wheel's manifest (its tag goes with it); the blobs stay until the registry's garbage collection. */
  async remove(filename: string): Promise<boolean> {
    if (!isWheelFilename(filename)) return false;
    const mine = (await this.release(filename, true, true)).filter((w) => w.entry.filename === filename);
    let removed = false;
    for (const w of mine) {
      if (await this.client.deleteManifest(this.ref, w.digest)) removed = true;
      this.forget(w.tag.tag);
    }
    return removed;
  }

  private forget(tag: string): void {
    this.#reads.delete(tag);
    if (this.#tags) this.#tags = { at: this.#tags.at, tags: this.#tags.tags.filter((t) => t !== tag) };
  }

  /**
   * Reads every wheel's blobs back and checks their sha256 and size, and METADATA's; a manifest that is not a
   * wheel's, or a second manifest of a release, is reported as corrupt.
   */
  async verify(): Promise<{ ok: WheelEntry[]; corrupt: { filename: string; reason: string }[] }> {
    const tags = await this.wheelTags(true);
    const reads = await pool(tags, 4, (t) => this.read(t));
    const standing = new Set((await this.wheels(tags)).map((w) => w.digest));
    const ok: WheelEntry[] = [];
    const corrupt: { filename: string; reason: string }[] = [];
    await pool(reads, 4, async (r) => {
      if (!isWheel(r)) {
        corrupt.push({ filename: r.tag.tag, reason: `the manifest under tag ${r.tag.tag} is not a wheel's: ${r.invalid}` });
        return;
      }
      if (!standing.has(r.digest)) {
        corrupt.push({ filename: r.entry.filename, reason: `tag ${r.tag.tag} holds a second wheel of this release (sha256 ${r.entry.sha256}); another was added first` });
        return;
      }
      const hash = createHash('sha256');
      let size = 0;
      try {
        for await (const chunk of await this.client.openBlob(this.ref, r.wheel, 'wheel')) {
          hash.update(chunk as Buffer);
          size += (chunk as Buffer).length;
        }
        const sha256 = hash.digest('hex');
        if (sha256 !== r.entry.sha256 || size !== r.entry.size) {
          corrupt.push({ filename: r.entry.filename, reason: `sha256 ${sha256} (${size} bytes) differs from the recorded ${r.entry.sha256} (${r.entry.size} bytes)` });
          return;
        }
        await this.client.readBlob(this.ref, r.metadata, 'METADATA');
        ok.push(r.entry);
      } catch (err) {
        corrupt.push({ filename: r.entry.filename, reason: (err as Error).message });
      }
    });
    return { ok: ok.sort(compareEntries), corrupt: corrupt.sort((a, b) => (a.filename < b.filename ? -1 : 1)) };
  }

  /** Runs `fn` after every earlier call for release `key` in this process has finished. */
  private async withReleaseLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#releaseLocks.get(key) ?? Promise.resolve();
    const run = before.catch(() => {}).then(fn);
    this.#releaseLocks.set(key, run);
    try {
      return await run;
    } finally {
      if (this.#releaseLocks.get(key) === run) this.#releaseLocks.delete(key);
    }
  }

  private conflict(given: string, existing: WheelEntry, sha256: string, racing = false): WheelError {
    const which = existing.filename === given ? `${given} is already in ${this.location}` : `${given} is the release ${this.location} holds as ${existing.filename}`;
    return new WheelError('WHEEL_CONFLICT', `${which} with different bytes (sha256 ${existing.sha256}, new ${sha256})`, {
      hint: racing
        ? 'another writer pushed other bytes for this release at the same moment; its wheel stands, this one was withdrawn'
        : 'one release, one wheel: remove the existing wheel first, or add with overwrite',
    });
  }

  private async ensureBlob(digest: Digest, size: number, open: () => Promise<Readable>): Promise<void> {
    if (await this.client.blobExists(this.ref, digest, { push: true })) {
      this.options.onBlob?.({ digest, size, how: 'exists' });
      this.options.logger?.debug({ digest, size, how: 'exists' }, 'blob');
      return;
    }
    const how = await this.client.uploadBlob(this.ref, digest, size, open, { mountFrom: this.options.mountFrom ?? null });
    this.options.onBlob?.({ digest, size, how });
    this.options.logger?.debug({ digest, size, how }, 'blob');
  }

  /**
   * Adds a wheel: validated and hashed in a staging folder first (the folder store's checks, limits and
   * errors), then, under the release's lock, refused when the registry holds other bytes for its release
   * (WHEEL_CONFLICT naming both sha256s), `present` when it holds these; else its blobs (skipped when the
   * registry has them, mounted from `mountFrom` when it can) and its manifest are pushed, and the release is
   * listed again: when another writer pushed other bytes for it meanwhile, this one withdraws its manifest and
   * fails with WHEEL_CONFLICT (the first one seen stands: no writer is told "added" for a wheel that is not served).
   */
  async add(source: string | NodeJS.ReadableStream, options: AddOptions = {}): Promise<AddResult> {
    const given = options.filename ?? (typeof source === 'string' ? basename(source) : undefined);
    if (given === undefined) throw new Error('RegistryWheelStore.add: options.filename is required for a stream');
    parseWheelFilename(given);
    const stagingRoot = await mkdtemp(join(this.options.stagingDir ?? tmpdir(), 'dstack-wheel-push-'));
    try {
      const staging = new FsWheelStore(stagingRoot, { ...(this.options.limits ? { limits: this.options.limits } : {}) });
      const { beforePublish, signal, builtBy, expectedSha256, refuseBuildTag } = options;
      const { entry } = await staging.add(source, {
        filename: given,
        ...(builtBy ? { builtBy } : {}),
        ...(expectedSha256 ? { expectedSha256 } : {}),
        ...(refuseBuildTag !== undefined ? { refuseBuildTag } : {}),
        ...(beforePublish ? { beforePublish } : {}),
        ...(signal ? { signal } : {}),
      });
      const metadata = await staging.metadataBytes(entry.filename);
      return await this.withReleaseLock(releaseHash(entry.filename), () =>
        this.publish(entry, metadata, given, staging.pathOf(entry.filename), options),
      );
    } finally {
      await rm(stagingRoot, { recursive: true, force: true });
    }
  }

  private async publish(entry: WheelEntry, metadata: Buffer, given: string, file: string, options: AddOptions): Promise<AddResult> {
    const before = await this.release(entry.filename, true, true);
    const same = before.find((w) => w.entry.sha256 === entry.sha256);
    if (same) return { status: 'present', entry: same.entry };
    const first = before.sort(firstAdded)[0];
    if (first && options.overwrite !== true) throw this.conflict(given, first.entry, entry.sha256);
    options.signal?.throwIfAborted();

    this.#config ??= this.ensureBlob(EMPTY_DIGEST, 2, async () => Readable.from([Buffer.from('{}')])).catch((err: unknown) => {
      this.#config = null;
      throw err;
    });
    await this.#config;
    await Promise.all([
      this.ensureBlob(`sha256:${entry.sha256}`, entry.size, async () => createReadStream(file)),
      this.ensureBlob(`sha256:${entry.metadataSha256}`, metadata.length, async () => Readable.from([metadata])),
    ]);
    const tag = parseWheelTag(wheelTag(entry.filename, entry.sha256))!;
    const bytes = wheelManifest(entry, metadata.length);
    const digest = await this.client.putManifest(this.ref, tag.tag, { mediaType: MEDIA_TYPES.ociManifest, bytes });

    // No compare-and-swap in the distribution API: look again for a rival that landed meanwhile.
    const replaced = new Set(before.map((w) => w.digest));
    const rival = (await this.release(entry.filename, true, true))
      .filter((w) => w.entry.sha256 !== entry.sha256 && !replaced.has(w.digest))
      .sort(firstAdded)[0];
    if (rival) {
      await this.client.deleteManifest(this.ref, digest);
      this.forget(tag.tag);
      this.options.logger?.warn({ filename: entry.filename, rival: rival.entry.sha256 }, 'another writer pushed this release meanwhile; withdrawn');
      throw this.conflict(given, rival.entry, entry.sha256, true);
    }
    for (const old of before) {
      await this.client.deleteManifest(this.ref, old.digest);
      this.forget(old.tag.tag);
    }
    this.#reads.set(tag.tag, Promise.resolve({ tag, digest, entry, wheel: `sha256:${entry.sha256}`, metadata: `sha256:${entry.metadataSha256}`, metadataSize: metadata.length }));
    if (this.#tags && !this.#tags.tags.includes(tag.tag)) this.#tags = { at: this.#tags.at, tags: [...this.#tags.tags, tag.tag] };
    this.options.logger?.info({ filename: entry.filename, sha256: entry.sha256, tag: tag.tag }, 'wheel pushed');
    return { status: 'added', entry };
  }
}

// The registry store: a WheelStore in an OCI registry. One manifest per wheel, under a tag that names its release
// and its bytes (tags.ts): the record writers never share; the listing is rebuilt from the tag list. Over them,
// one manifest per project (Decision 21), rebuilt from the project's wheel tags by every writer that changes them
// and verified against a second listing: readers read it instead of one manifest per wheel, and fall back to the
// wheels' own manifests where it is missing or disagrees with the tags. See README.md for why this design.
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
import { projectManifest, readProjectManifest, readWheelManifest, wheelManifest, type ProjectWheel } from './manifest.js';
import { parseWheelTag, projectTag, releaseHash, stemMayBeProject, tagProject, wheelTag, type WheelTag } from './tags.js';

/** How many times a writer rebuilds a project's manifest while other writers keep changing the project's tags. */
const PROJECT_ATTEMPTS = 8;

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
  /** Per project: the rebuild of its manifest running in this process, and the one queued after it. */
  readonly #settling = new Map<string, Promise<void>>();
  readonly #settleQueued = new Map<string, Promise<void>>();

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

  /**
   * Reads the manifests of the projects of those `tags` not read yet (one GET per project), and keeps each wheel
   * it holds that the last listing has, as if its own manifest had been read (a wheel tag never changes what it
   * points at). A project without one, or a wheel it lacks, is read from the wheels' own manifests (said at debug).
   */
  private async viaProjects(tags: WheelTag[]): Promise<void> {
    const listing = this.#tags?.tags ?? [];
    const projects = new Set<string>();
    for (const t of tags) {
      const p = this.#reads.has(t.tag) ? null : tagProject(t);
      if (p !== null && projectTag(p) !== null) projects.add(p);
    }
    if (projects.size === 0) return;
    const listed = new Set(listing);
    const byProject = new Map<string, string[]>();
    for (const t of listing.map(parseWheelTag)) {
      const p = t && tagProject(t);
      if (p && projects.has(p)) byProject.set(p, [...(byProject.get(p) ?? []), t.tag]);
    }
    await pool([...projects], this.options.concurrency ?? 16, async (project) => {
      const ptag = projectTag(project)!;
      const wheelTags = byProject.get(project) ?? [];
      const log = this.options.logger;
      if (!listed.has(ptag)) {
        log?.debug({ project, tag: ptag, wheels: wheelTags.length }, "no project manifest: reading the wheels' own manifests");
        return;
      }
      let read: ReturnType<typeof readProjectManifest>;
      try {
        read = readProjectManifest((await this.client.getManifest(this.ref, ptag, MEDIA_TYPES.ociManifest)).bytes);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== undefined && code !== 'REGISTRY_NOT_FOUND') throw err;
        log?.debug({ project, tag: ptag, err: (err as Error).message }, "project manifest gone or unreadable: reading the wheels' own manifests");
        return;
      }
      const inListing = new Set(wheelTags);
      const held = new Set(read.tags);
      for (const w of read.wheels) {
        const tag = parseWheelTag(w.tag);
        if (tag && inListing.has(w.tag) && !this.#reads.has(w.tag)) {
          this.#reads.set(w.tag, Promise.resolve({ tag, digest: w.digest, entry: w.entry, wheel: w.wheel, metadata: w.metadata, metadataSize: w.metadataSize }));
        }
      }
      const lacking = wheelTags.filter((t) => !held.has(t));
      const extra = read.tags.filter((t) => !inListing.has(t));
      if (lacking.length > 0 || extra.length > 0) {
        log?.debug({ project, tag: ptag, lacking: lacking.length, extra: extra.length }, "project manifest disagrees with the tags: the wheels it lacks are read from their own manifests");
      }
    });
  }

  /** The manifests of `tags`, read (through their projects' manifests first); null for one deleted since the listing. */
  private async reads(tags: WheelTag[]): Promise<(Read | null)[]> {
    await this.viaProjects(tags);
    return pool(tags, this.options.concurrency ?? 16, async (t) => {
      try {
        return await this.read(t);
      } catch (err) {
        // Deleted between the listing and the read: not there.
        if ((err as { code?: string }).code === 'REGISTRY_NOT_FOUND') return null;
        throw err;
      }
    });
  }

  /** The wheel manifests among `tags`, read; with `all`, every manifest of a release, else the one that stands. */
  private async wheels(tags: WheelTag[], all = false): Promise<Wheel[]> {
    const reads = await this.reads(tags);
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
    if (mine.length > 0) await this.settleProject(mine[0]!.entry.name);
    return removed;
  }

  /**
   * Rebuilds the manifest of `project` after this writer changed its wheel tags: joins a rebuild queued in this
   * process and not started yet (its listing comes after this writer's change), else queues one after the running one.
   */
  private settleProject(project: string): Promise<void> {
    const queued = this.#settleQueued.get(project);
    if (queued) return queued;
    const before = this.#settling.get(project) ?? Promise.resolve();
    const run: Promise<void> = before
      .catch(() => {})
      .then(() => {
        this.#settleQueued.delete(project);
        this.#settling.set(project, run);
        return this.rebuildProject(project);
      })
      .finally(() => {
        if (this.#settling.get(project) === run) this.#settling.delete(project);
      });
    this.#settleQueued.set(project, run);
    return run;
  }

  /**
   * The project's manifest made from its wheel tags, freshly listed (never merged into the one there): PUT (or
   * deleted when the project has no wheel left), then the tags listed again; while they differ from those it was
   * built from, built again, at most PROJECT_ATTEMPTS times (WHEEL_PROJECT_UNSETTLED). Why this converges: docs/scale.md.
   */
  private async rebuildProject(project: string): Promise<void> {
    const ptag = projectTag(project);
    if (ptag === null) return;
    const ofProject = (tags: WheelTag[]): WheelTag[] => tags.filter((t) => tagProject(t) === project);
    let listed = ofProject(await this.wheelTags(true));
    for (let attempt = 1; ; attempt++) {
      const reads = (await this.reads(listed)).filter((r): r is Read => r !== null);
      const built = reads.map((r) => r.tag.tag);
      if (built.length === 0) {
        const digest = await this.client.resolveManifest(this.ref, ptag, MEDIA_TYPES.ociManifest);
        if (digest) await this.client.deleteManifest(this.ref, digest);
      } else {
        const wheels: ProjectWheel[] = reads.filter(isWheel).map((w) => ({ tag: w.tag.tag, digest: w.digest, entry: w.entry, wheel: w.wheel, metadata: w.metadata, metadataSize: w.metadataSize }));
        await this.client.putManifest(this.ref, ptag, { mediaType: MEDIA_TYPES.ociManifest, bytes: projectManifest(project, built, wheels) });
      }
      listed = ofProject(await this.wheelTags(true));
      const now = new Set(listed.map((t) => t.tag));
      const was = new Set(built);
      const added = [...now].filter((t) => !was.has(t));
      const gone = built.filter((t) => !now.has(t));
      if (added.length === 0 && gone.length === 0) {
        this.options.logger?.debug({ project, tag: ptag, wheels: built.length, attempt }, 'project manifest rebuilt');
        return;
      }
      this.options.logger?.debug({ project, tag: ptag, attempt, added, gone }, "the project's wheel tags changed while its manifest was put: rebuilding it");
      if (attempt >= PROJECT_ATTEMPTS) {
        throw new WheelError(
          'WHEEL_PROJECT_UNSETTLED',
          `the manifest of project ${project} in ${this.location} (tag ${ptag}) still disagreed with its wheel tags after ${PROJECT_ATTEMPTS} rebuilds: ${added.length} listed that it lacks, ${gone.length} it holds no longer listed`,
          { hint: "the wheel is stored and readers read the project's wheels from their own manifests; the project's next add or remove rebuilds its manifest" },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt + Math.floor(Math.random() * 50)));
    }
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
   * An added wheel's project manifest is then rebuilt (rebuildProject); when other writers keep changing the
   * project's tags through every rebuild, the add fails with WHEEL_PROJECT_UNSETTLED, the wheel itself stored.
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
      const result = await this.withReleaseLock(releaseHash(entry.filename), () =>
        this.publish(entry, metadata, given, staging.pathOf(entry.filename), options),
      );
      if (result.status === 'added') await this.settleProject(entry.name);
      return result;
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
      // A rebuild may have taken the withdrawn tag in meanwhile.
      await this.settleProject(entry.name).catch((err: unknown) => this.options.logger?.warn({ project: entry.name, err: (err as Error).message }, 'project manifest not settled'));
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

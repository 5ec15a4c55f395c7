import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { canonicalizeName, compareVersions, type NormalizedName } from '@dstack/recipe';
import type { Logger } from 'pino';
import { WheelError } from './errors.js';
import { escapedFilename, isWheelFilename, parseWheelFilename, releaseKey } from './filename.js';
import { IN_MEMORY_BYTES, hashFile, inspectWheel, type InspectedWheel, type WheelLimits } from './validate.js';
import { externalNeeds, readWheelElfFiles } from './elf.js';

/** What a wheel's ELF files need from the system; a pure wheel (every platform tag `any`) is not opened. */
async function wheelNeeds(filename: string, source: string | Buffer, logger: Logger | undefined): Promise<string[] | undefined> {
  if (parseWheelFilename(filename).platformTags.every((t) => t === 'any')) return [];
  try {
    return externalNeeds(await readWheelElfFiles(source, filename));
  } catch (err) {
    // An unreadable ELF member does not make the wheel invalid: its needs are then unknown.
    if (!(err instanceof WheelError) || err.code !== 'ELF_INVALID') throw err;
    logger?.warn({ filename, err: err.message }, 'needed libraries unknown');
    return undefined;
  }
}

/**
 * What a wheel was made from, as pip's installation report said (PEP 610's download_info): an sdist or other
 * source archive (its URL and sha256), a VCS checkout (URL and the commit built), a local folder, or — for a wheel
 * fetched rather than built — the wheel's own URL. The lock carries the same under `[packages.tool.dstack-factory]`.
 */
export type WheelSource =
  | {
      kind: 'sdist';
      url: string;
      /** Hex sha256 of the archive; null when pip reported none and the archive was not a local file. */
      sha256: string | null;
    }
  | { kind: 'vcs'; vcs: string; url: string; commit: string; requestedRevision?: string; subdirectory?: string }
  | { kind: 'directory'; path: string; subdirectory?: string }
  | { kind: 'wheel'; url: string };

/** One wheel in a wheelhouse. */
export interface WheelEntry {
  filename: string;
  name: NormalizedName;
  version: string;
  /** Hex sha256 of the file. */
  sha256: string;
  size: number;
  requiresPython: string | null;
  /** Hex sha256 of its METADATA (PEP 658 / 714). */
  metadataSha256: string;
  /** ISO 8601: when the wheelhouse recorded it. */
  addedAt: string;
  /** Which builder made it (executor, image digest, interpreter), when known. */
  builtBy: Record<string, string> | null;
  /** What it was built (or fetched) from, when a build recorded it; absent otherwise. */
  source?: WheelSource;
  /**
   * The shared libraries its ELF files need that it does not carry (DT_NEEDED by name, e.g. libpq.so.5):
   * what the system must provide. Absent in records written before it was recorded.
   */
  needs?: string[];
}

export type AddResult = { status: 'added' | 'present'; entry: WheelEntry };

export interface AddOptions {
  /** The wheel's file name: required for streams; default the source path's base name. */
  filename?: string;
  builtBy?: Record<string, string>;
  /** What the wheel was built or fetched from (recorded with it). */
  source?: WheelSource;
  /** Refuse (WHEEL_HASH_MISMATCH) unless the bytes have this hex sha256. */
  expectedSha256?: string;
  /**
   * Replace the wheel of the same release (name, version, build tag, tags: whatever the file name's spelling)
   * with different bytes instead of refusing (WHEEL_CONFLICT).
   */
  overwrite?: boolean;
  /**
   * Refuse a wheel whose file name has a build tag (WHEEL_BUILD_TAG): uploads and `wheelhouse add` do unless
   * the operator allows build tags; a build's own wheels (pip's) are taken as they come.
   */
  refuseBuildTag?: boolean;
  /**
   * Awaited once the wheel is copied, hashed and validated, before anything is published: throwing refuses
   * the wheel (the server uses it to read the rest of an upload's form first).
   */
  beforePublish?: (wheel: { sha256: string; size: number }) => Promise<void>;
  signal?: AbortSignal;
}

export interface WheelhouseStats {
  projects: number;
  wheels: number;
  bytes: number;
}

/** Where wheels live. The filesystem store is the default; the contract suite runs against any implementation. */
export interface WheelStore {
  add(source: string | NodeJS.ReadableStream, options?: AddOptions): Promise<AddResult>;
  list(project?: string): Promise<WheelEntry[]>;
  projects(): Promise<NormalizedName[]>;
  get(filename: string): Promise<WheelEntry | null>;
  /** The file's bytes; `range.end` is inclusive (as in HTTP Range). */
  openRead(filename: string, range?: { start: number; end?: number }): Promise<NodeJS.ReadableStream>;
  /** METADATA text (PEP 658). */
  metadata(filename: string): Promise<string>;
  remove(filename: string): Promise<boolean>;
  verify(): Promise<{ ok: WheelEntry[]; corrupt: { filename: string; reason: string }[] }>;
}

interface StatKey {
  size: number;
  mtimeMs: number;
  ino: number;
}

interface RecordFile {
  entry?: WheelEntry;
  /** A wheel found in the folder that does not validate. */
  invalid?: { code: string; message: string };
  stat: StatKey;
}

const STATE_DIR = '.dstack';
const TEMP_RE = /^\..+\.tmp$/;
const DEFAULT_GRACE_MS = 60 * 60 * 1000;


/** A wheel's record entry: what its name and METADATA say, its bytes' digest, and where it came from. */
function wheelEntry(
  filename: string,
  inspected: InspectedWheel,
  file: { sha256: string; size: number },
  origin: { addedAt: string; builtBy: WheelEntry['builtBy']; source?: WheelSource | undefined; needs: string[] | undefined },
): WheelEntry {
  return {
    filename,
    name: inspected.filename.normalizedName,
    version: inspected.filename.version,
    sha256: file.sha256,
    size: file.size,
    requiresPython: inspected.metadata.requiresPython,
    metadataSha256: createHash('sha256').update(inspected.metadataBytes).digest('hex'),
    addedAt: origin.addedAt,
    builtBy: origin.builtBy,
    ...(origin.source ? { source: origin.source } : {}),
    ...(origin.needs ? { needs: origin.needs } : {}),
  };
}

function statKey(s: { size: number; mtimeMs: number; ino: number }): StatKey {
  return { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino };
}
const sameStat = (a: StatKey, b: StatKey): boolean => a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** fsync through a new descriptor (it flushes the file, whichever descriptor wrote it); returns its stat. */
async function fsyncFile(path: string): Promise<StatKey> {
  const h = await open(path, 'r');
  try {
    await h.sync();
    return statKey(await h.stat());
  } finally {
    await h.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function tempName(dir: string, base: string): string {
  return join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Orders entries by project, then PEP 440 version, then file name. */
export function compareEntries(a: WheelEntry, b: WheelEntry): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  const v = compareVersions(a.version, b.version);
  if (v !== 0) return v;
  return a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0;
}

/**
 * The filesystem wheelhouse: a flat folder of `*.whl` under their PEP 427 names (what pip's `--find-links` reads),
 * with the store's records in `.dstack/` (sha256, size, addedAt, builtBy, and each wheel's METADATA).
 * Wheels put into the folder by other tools (`pip wheel -w`) are validated and recorded when first seen.
 */
/** Error messages name file names, never the wheelhouse's folder (an HTTP 409 body shows them). */
function conflict(given: string, existing: string, existingSha256: string, sha256: string): WheelError {
  const which = existing === given ? `${given} is already in the wheelhouse` : `${given} is the release the wheelhouse holds as ${existing}`;
  return new WheelError('WHEEL_CONFLICT', `${which} with different bytes (sha256 ${existingSha256}, new ${sha256})`, {
    hint: 'one release, one wheel: remove the existing wheel first, or add with overwrite',
  });
}

export class FsWheelStore implements WheelStore {
  readonly dir: string;
  /** pino's; silent when absent. */
  private readonly logger: Logger | undefined;
  private readonly limits: WheelLimits;
  private readonly cache = new Map<string, { stat: StatKey; record: RecordFile }>();
  private swept = false;
  private dirsReady = false;
  private readonly volatileMetadata = new Map<string, Buffer>();

  constructor(dir: string, options: { logger?: Logger; limits?: WheelLimits } = {}) {
    this.dir = resolve(dir);
    this.logger = options.logger;
    this.limits = options.limits ?? {};
  }

  /** The wheel's file in the flat folder. */
  pathOf(filename: string): string {
    parseWheelFilename(filename);
    return join(this.dir, filename);
  }

  private recordPath(filename: string): string {
    return join(this.dir, STATE_DIR, 'wheels', `${filename}.json`);
  }

  /** Where the store keeps a recorded wheel's METADATA (for copying it as `<wheel>.metadata`). */
  metadataFile(filename: string): string {
    parseWheelFilename(filename);
    return this.metadataPath(filename);
  }

  private metadataPath(filename: string): string {
    return join(this.dir, STATE_DIR, 'metadata', `${filename}.metadata`);
  }

  private async ensureDirs(): Promise<void> {
    if (this.dirsReady) return;
    await mkdir(join(this.dir, STATE_DIR, 'wheels'), { recursive: true });
    await mkdir(join(this.dir, STATE_DIR, 'metadata'), { recursive: true });
    this.dirsReady = true;
  }

  /** Writes a state file atomically; with `exclusive`, keeps an existing one (returns false). */
  private async writeState(path: string, data: string | Buffer, exclusive = false): Promise<boolean> {
    const dir = join(path, '..');
    const tmp = tempName(dir, basename(path));
    await writeFile(tmp, data, { flag: 'wx' });
    if (!exclusive) {
      try {
        await rename(tmp, path);
        return true;
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    }
    try {
      await link(tmp, path);
      return true;
    } catch (err) {
      if (errno(err) === 'EEXIST') return false;
      throw err;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Validates the file at its final path and records it. */
  private async index(filename: string, st: StatKey, previous: RecordFile | null, exclusive: boolean): Promise<RecordFile> {
    const path = join(this.dir, filename);
    let record: RecordFile;
    let metadataBytes: Buffer | null = null;
    try {
      const inspected = await inspectWheel(path, { filename, limits: this.limits });
      const { sha256, size } = await hashFile(path);
      const keep = previous?.entry?.sha256 === sha256 ? previous.entry : null;
      metadataBytes = inspected.metadataBytes;
      record = {
        entry: wheelEntry(filename, inspected, { sha256, size }, {
          addedAt: keep?.addedAt ?? new Date().toISOString(),
          builtBy: keep?.builtBy ?? null,
          source: keep?.source,
          needs: await wheelNeeds(filename, path, this.logger),
        }),
        stat: st,
      };
      if (previous?.entry && !keep) {
        this.logger?.warn({ filename, was: previous.entry.sha256, now: sha256 }, 'wheel changed on disk; re-recorded');
      }
    } catch (err) {
      if (!(err instanceof WheelError)) throw err;
      this.logger?.warn({ filename, code: err.code, err: err.message }, 'invalid wheel in the wheelhouse folder; not listed');
      record = { invalid: { code: err.code, message: err.message }, stat: st };
    }
    try {
      await this.ensureDirs();
      if (metadataBytes) await this.writeState(this.metadataPath(filename), metadataBytes);
      const written = await this.writeState(this.recordPath(filename), JSON.stringify(record, null, 1), exclusive);
      if (!written) {
        // Another writer recorded it first: theirs stands (it may carry builtBy).
        return JSON.parse(await readFile(this.recordPath(filename), 'utf8')) as RecordFile;
      }
    } catch (err) {
      // A wheelhouse mounted read-only still lists and serves: its records then live in memory only.
      if (!['EACCES', 'EROFS', 'EPERM'].includes(errno(err) ?? '')) throw err;
      this.logger?.warn({ filename, err: (err as Error).message }, 'cannot write the wheelhouse records; kept in memory');
      if (metadataBytes) this.volatileMetadata.set(filename, metadataBytes);
    }
    return record;
  }

  /**
   * The record of a wheel at its current state on disk, indexing it when new or changed. Null if absent. With
   * `sync`, the wheel's stat and its record (under 1 KB) are read synchronously: two syscalls, some 20 µs of
   * blocked loop, against five promise round trips through the thread pool. get() reads so; a warm build checks
   * every wheel of its lock through it (57 wheels: ~5 ms less for the whole process). list() stays asynchronous.
   */
  private async recordOf(filename: string, sync = false): Promise<RecordFile | null> {
    let st: StatKey;
    try {
      const path = join(this.dir, filename);
      st = statKey(sync ? statSync(path) : await stat(path));
    } catch (err) {
      if (errno(err) === 'ENOENT') {
        this.cache.delete(filename);
        return null;
      }
      throw err;
    }
    const cached = this.cache.get(filename);
    if (cached && sameStat(cached.stat, st)) return cached.record;
    let previous: RecordFile | null = null;
    try {
      const text = sync ? readFileSync(this.recordPath(filename), 'utf8') : await readFile(this.recordPath(filename), 'utf8');
      previous = JSON.parse(text) as RecordFile;
    } catch (err) {
      if (errno(err) !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    const record =
      previous && sameStat(previous.stat, st) ? previous : await this.index(filename, st, previous, previous === null);
    this.cache.set(filename, { stat: st, record });
    return record;
  }

  /** Checks and publishes of one release key run one at a time in this process (see `add`). */
  private readonly releaseLocks = new Map<string, Promise<unknown>>();

  /**
   * Adds a wheel. One release, one set of bytes (Decision 5): a wheel whose release (canonical name, equal
   * version, build tag, tag set) is already here under any spelling is `present` when the bytes are the same,
   * WHEEL_CONFLICT otherwise. A new wheel is stored under its PEP 427 escaped name.
   */
  async add(source: string | NodeJS.ReadableStream, options: AddOptions = {}): Promise<AddResult> {
    const given = options.filename ?? (typeof source === 'string' ? basename(source) : undefined);
    if (given === undefined) throw new Error('FsWheelStore.add: options.filename is required for a stream');
    const parsed = parseWheelFilename(given);
    if (parsed.build !== null && options.refuseBuildTag === true) {
      throw new WheelError('WHEEL_BUILD_TAG', `${given}: the build tag "${parsed.build}" is not taken here`, {
        hint: 'a build tag lets two different wheels of one release coexist; upload the wheel without it, or allow build tags (server: allow_build_tags = true; wheelhouse add --allow-build-tag)',
      });
    }
    return this.addRelease(source, given, parsed, releaseKey(parsed), options);
  }

  /** Runs `fn` after every earlier call for release `key` in this process has finished. */
  private async withReleaseLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.releaseLocks.get(key) ?? Promise.resolve();
    const run = before.catch(() => {}).then(fn);
    this.releaseLocks.set(key, run);
    try {
      return await run;
    } finally {
      if (this.releaseLocks.get(key) === run) this.releaseLocks.delete(key);
    }
  }

  /** The wheels here of release `key`, under any spelling. */
  private async sameRelease(key: string): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errno(err) === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => isWheelFilename(n) && releaseKey(parseWheelFilename(n)) === key);
  }

  private async addRelease(
    source: string | NodeJS.ReadableStream,
    given: string,
    parsed: ReturnType<typeof parseWheelFilename>,
    key: string,
    options: AddOptions,
  ): Promise<AddResult> {
    const filename = escapedFilename(parsed);
    await this.ensureDirs();
    if (!this.swept) {
      this.swept = true;
      await this.sweep();
    }
    const final = join(this.dir, filename);
    // The temp file is in the same folder (rename stays atomic) and never ends in .whl (never listed).
    const tmp = tempName(this.dir, filename);
    try {
      const hash = createHash('sha256');
      let size = 0;
      // Small wheels are also kept in memory while copying, to be validated without reading them back.
      let kept: Buffer[] | null = [];
      const input = typeof source === 'string' ? createReadStream(source) : source;
      this.logger?.debug({ filename, tmp }, 'copying');
      await pipeline(
        input,
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            size += chunk.length;
            if (kept && size <= IN_MEMORY_BYTES) kept.push(chunk);
            else kept = null;
            cb(null, chunk);
          },
        }),
        createWriteStream(tmp, { flags: 'wx', mode: 0o644 }),
        ...(options.signal ? [{ signal: options.signal }] : []),
      );
      // A hard link or rename keeps the inode, size and mtime: this is the published file's stat too.
      const written = await fsyncFile(tmp);
      const sha256 = hash.digest('hex');
      if (options.expectedSha256 && options.expectedSha256.toLowerCase() !== sha256) {
        throw new WheelError('WHEEL_HASH_MISMATCH', `${filename}: sha256 is ${sha256}, expected ${options.expectedSha256}`);
      }
      this.logger?.debug({ filename, size, sha256 }, 'validating');
      const bytes = kept ? Buffer.concat(kept, size) : null;
      const inspected = await inspectWheel(tmp, { filename: given, limits: this.limits, ...(bytes ? { bytes } : {}) });
      const needs = await wheelNeeds(filename, bytes ?? tmp, this.logger);
      kept = null;
      options.signal?.throwIfAborted();
      if (options.beforePublish) await options.beforePublish({ sha256, size });
      options.signal?.throwIfAborted();
      // Checked and published under the release's lock: two spellings of one release never both land.
      return await this.withReleaseLock(key, async () => {
        // The same release under another spelling (Demo_Pkg-1.0.0-…, demo.pkg-1.0.0.0-…, PyYAML-…).
        const others = (await this.sameRelease(key)).filter((n) => n !== filename);
        const replaced: string[] = [];
        for (const other of others) {
          const entry = (await this.recordOf(other))?.entry;
          if (!entry) continue; // not a valid wheel: not listed, not a release
          if (entry.sha256 === sha256) return { status: 'present', entry };
          if (options.overwrite !== true) throw conflict(given, other, entry.sha256, sha256);
          replaced.push(other);
        }
        this.logger?.debug({ filename }, 'publishing');
        const status = await this.publish(tmp, final, filename, sha256, options.overwrite === true, given);
        for (const other of replaced) await this.remove(other);
        if (status === 'present') {
          const record = await this.recordOf(filename);
          if (record?.entry) return { status, entry: record.entry };
          throw new WheelError('WHEEL_NOT_FOUND', `${filename} vanished from ${this.dir} while being added`);
        }
        const entry = wheelEntry(filename, inspected, { sha256, size }, {
          addedAt: new Date().toISOString(),
          builtBy: options.builtBy ?? null,
          source: options.source,
          needs,
        });
        await this.writeState(this.metadataPath(filename), inspected.metadataBytes);
        const record: RecordFile = { entry, stat: written };
        await this.writeState(this.recordPath(filename), JSON.stringify(record, null, 1));
        this.cache.set(filename, { stat: record.stat, record });
        this.logger?.info({ filename, sha256, size }, 'wheel added');
        return { status, entry };
      });
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Puts the validated temp file in place: exclusive (link), so concurrent writers never clobber each other. */
  private async publish(
    tmp: string,
    final: string,
    filename: string,
    sha256: string,
    overwrite: boolean,
    given = filename,
  ) {
    let exists = false;
    try {
      await link(tmp, final);
    } catch (err) {
      const code = errno(err);
      if (code === 'EEXIST') exists = true;
      else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK') {
        // No hard links on this filesystem: check then rename (not exclusive, but never partial).
        exists = await stat(final).then(
          () => true,
          (e: unknown) => (errno(e) === 'ENOENT' ? false : Promise.reject(e)),
        );
        if (!exists) await rename(tmp, final);
      } else throw err;
    }
    if (exists) {
      const current = await hashFile(final);
      if (current.sha256 === sha256) return 'present' as const;
      if (!overwrite) throw conflict(given, filename, current.sha256, sha256);
      await rename(tmp, final);
      this.cache.delete(filename);
    }
    await this.syncDir();
    return 'added' as const;
  }

  private dirSync: Promise<void> | null = null;
  private nextDirSync: Promise<void> | null = null;

  /**
   * fsyncs the folder. Concurrent adds share syncs: a caller arriving while one runs waits for the next one,
   * which starts after it and so covers every link made before it started.
   */
  private syncDir(): Promise<void> {
    if (!this.dirSync) {
      this.dirSync = fsyncDir(this.dir).finally(() => {
        this.dirSync = null;
      });
      return this.dirSync;
    }
    this.nextDirSync ??= this.dirSync
      .catch(() => {})
      .then(() => {
        this.nextDirSync = null;
        return this.syncDir();
      });
    return this.nextDirSync;
  }

  /** Removes temp files older than `graceMs` left by writers that died. Returns how many. */
  async sweep(graceMs = DEFAULT_GRACE_MS): Promise<number> {
    let removed = 0;
    const now = Date.now();
    for (const dir of [this.dir, join(this.dir, STATE_DIR, 'wheels'), join(this.dir, STATE_DIR, 'metadata')]) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        if (errno(err) === 'ENOENT') continue;
        throw err;
      }
      for (const name of names) {
        if (!TEMP_RE.test(name)) continue;
        try {
          const st = await stat(join(dir, name));
          if (now - st.mtimeMs < graceMs) continue;
          await unlink(join(dir, name));
          removed++;
          this.logger?.info({ file: name }, 'swept a leftover temp file');
        } catch (err) {
          if (errno(err) !== 'ENOENT') throw err;
        }
      }
    }
    return removed;
  }

  private async wheelFiles(project?: string): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errno(err) === 'ENOENT') return [];
      throw err;
    }
    const wanted = project === undefined ? null : canonicalizeName(project);
    return names
      .filter((n) => n.endsWith('.whl') && !n.startsWith('.') && isWheelFilename(n))
      .filter((n) => wanted === null || parseWheelFilename(n).normalizedName === wanted)
      .sort();
  }

  async list(project?: string): Promise<WheelEntry[]> {
    const files = await this.wheelFiles(project);
    const entries: WheelEntry[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < files.length) {
        const record = await this.recordOf(files[next++]!);
        if (record?.entry) entries.push(record.entry);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, files.length) }, worker));
    return entries.sort(compareEntries);
  }

  async projects(): Promise<NormalizedName[]> {
    return [...new Set((await this.list()).map((e) => e.name))].sort();
  }

  async get(filename: string): Promise<WheelEntry | null> {
    if (!isWheelFilename(filename)) return null;
    return (await this.recordOf(filename, true))?.entry ?? null;
  }

  async openRead(filename: string, range?: { start: number; end?: number }): Promise<NodeJS.ReadableStream> {
    if (!(await this.get(filename))) throw new WheelError('WHEEL_NOT_FOUND', `${filename} is not in ${this.dir}`);
    return createReadStream(join(this.dir, filename), range ? { start: range.start, ...(range.end !== undefined ? { end: range.end } : {}) } : {});
  }

  /** METADATA's exact bytes (PEP 658). */
  async metadataBytes(filename: string): Promise<Buffer> {
    if (!(await this.get(filename))) throw new WheelError('WHEEL_NOT_FOUND', `${filename} is not in ${this.dir}`);
    const volatile = this.volatileMetadata.get(filename);
    return volatile ?? readFile(this.metadataPath(filename));
  }

  async metadata(filename: string): Promise<string> {
    return (await this.metadataBytes(filename)).toString('utf8');
  }

  async remove(filename: string): Promise<boolean> {
    if (!isWheelFilename(filename)) return false;
    let existed = true;
    try {
      await unlink(join(this.dir, filename));
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
      existed = false;
    }
    await rm(this.recordPath(filename), { force: true });
    await rm(this.metadataPath(filename), { force: true });
    this.cache.delete(filename);
    if (existed) await fsyncDir(this.dir);
    return existed;
  }

  async verify(): Promise<{ ok: WheelEntry[]; corrupt: { filename: string; reason: string }[] }> {
    const ok: WheelEntry[] = [];
    const corrupt: { filename: string; reason: string }[] = [];
    for (const filename of await this.wheelFiles()) {
      let recorded: RecordFile | null = null;
      try {
        recorded = JSON.parse(await readFile(this.recordPath(filename), 'utf8')) as RecordFile;
      } catch {
        recorded = null;
      }
      if (recorded?.entry) {
        const { sha256, size } = await hashFile(join(this.dir, filename));
        if (sha256 !== recorded.entry.sha256 || size !== recorded.entry.size) {
          corrupt.push({ filename, reason: `sha256 ${sha256} (${size} bytes) differs from the recorded ${recorded.entry.sha256} (${recorded.entry.size} bytes)` });
          continue;
        }
        try {
          const meta = await readFile(this.metadataPath(filename));
          if (createHash('sha256').update(meta).digest('hex') !== recorded.entry.metadataSha256) {
            corrupt.push({ filename, reason: 'its recorded METADATA differs from the recorded hash' });
            continue;
          }
        } catch {
          corrupt.push({ filename, reason: 'its recorded METADATA is missing' });
          continue;
        }
        ok.push(recorded.entry);
        continue;
      }
      const record = await this.recordOf(filename);
      if (record?.entry) ok.push(record.entry);
      else if (record?.invalid) corrupt.push({ filename, reason: `${record.invalid.code}: ${record.invalid.message}` });
    }
    return { ok: ok.sort(compareEntries), corrupt };
  }

  async stats(): Promise<WheelhouseStats> {
    return wheelhouseStats(await this.list());
  }
}

export function wheelhouseStats(entries: WheelEntry[]): WheelhouseStats {
  return {
    projects: new Set(entries.map((e) => e.name)).size,
    wheels: entries.length,
    bytes: entries.reduce((n, e) => n + e.size, 0),
  };
}

/** The wheelhouse at `dir`, or `$WHEELHOUSE`, or `./wheelhouse`. */
export function openWheelhouse(dir?: string, options: { logger?: Logger; limits?: WheelLimits } = {}): FsWheelStore {
  return new FsWheelStore(dir ?? process.env.WHEELHOUSE ?? 'wheelhouse', options);
}

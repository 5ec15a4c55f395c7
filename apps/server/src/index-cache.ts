/**
 * The wheelhouse as the server last saw it, and its rendered pages. Listing a wheelhouse means reading a
 * directory and a record per wheel; doing that on every index request caps the server far below a static
 * web server. A snapshot stays valid while the wheelhouse folder's mtime and inode are unchanged (every
 * add, rename or removal of a wheel changes them, from this process or another, e.g. the CLI) and for at
 * most `maxAgeMs`; the server also drops it after its own uploads and builds. A store without a folder
 * (a registry) is listed again once its snapshot is older than `storeMaxAgeMs` (the server's
 * `index_cache_seconds`): replicas over one registry agree within that time.
 */
import { statSync } from 'node:fs';
import {
  renderProjectList,
  renderProjectPage,
  type NormalizedName,
  type WheelEntry,
  type WheelStore,
} from '@dstack/wheelhouse';

export interface Snapshot {
  entries: WheelEntry[];
  byProject: Map<string, WheelEntry[]>;
  byFile: Map<string, WheelEntry>;
  projects: NormalizedName[];
  /** Rendered pages by `<project or "">\0<format>`. */
  pages: Map<string, Buffer>;
}

export class IndexCache {
  #snapshot: { key: string; at: number; value: Snapshot } | null = null;
  #pending: Promise<Snapshot> | null = null;
  #generation = 0;
  readonly #dir: string | null;

  constructor(
    private readonly store: WheelStore,
    private readonly options: { fileUrl: (e: WheelEntry) => string; maxAgeMs?: number; storeMaxAgeMs?: number },
  ) {
    const dir = (store as WheelStore & { dir?: unknown }).dir;
    this.#dir = typeof dir === 'string' ? dir : null;
  }

  /** Forget the snapshot (after an upload or a build). */
  invalidate(): void {
    this.#generation++;
    this.#snapshot = null;
  }

  #key(): string | null {
    if (this.#dir === null) return this.options.storeMaxAgeMs ? 'store' : null;
    try {
      // Synchronous on purpose: a stat of a cached local directory takes about a microsecond, an async
      // one a round trip through libuv's thread pool on every index request.
      const st = statSync(this.#dir);
      return `${st.ino}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  async snapshot(): Promise<Snapshot> {
    const key = this.#key();
    const current = this.#snapshot;
    if (key === 'store' && this.#dir === null) {
      // No folder to watch: the snapshot holds for storeMaxAgeMs, then the store is listed again (awaited).
      if (current !== null && Date.now() - current.at < this.options.storeMaxAgeMs!) return current.value;
      try {
        return await (this.#pending ?? this.#refresh(key));
      } catch (err) {
        // The registry is down or slow past its retries: the last listing is better than no index (kept for
        // another storeMaxAgeMs, so that requests do not each wait for the retries).
        if (current !== null) {
          this.#snapshot = { ...current, at: Date.now() };
          return current.value;
        }
        throw err;
      }
    }
    if (key !== null && current !== null && current.key === key) {
      // Unchanged folder: serve it; past its age, refresh in the background (records may have changed).
      if (Date.now() - current.at >= (this.options.maxAgeMs ?? 30_000) && this.#pending === null) {
        void this.#refresh(key).catch(() => {});
      }
      return current.value;
    }
    return this.#pending ?? this.#refresh(key);
  }

  #refresh(key: string | null): Promise<Snapshot> {
    const generation = this.#generation;
    this.#pending = (async () => {
      try {
        const entries = await this.store.list();
        const value = build(entries);
        if (key !== null && generation === this.#generation) this.#snapshot = { key, at: Date.now(), value };
        return value;
      } finally {
        this.#pending = null;
      }
    })();
    return this.#pending;
  }

  async projectList(format: 'html' | 'json'): Promise<Buffer> {
    const snap = await this.snapshot();
    const k = `\0${format}`;
    let page = snap.pages.get(k);
    if (page === undefined) {
      page = Buffer.from(renderProjectList(snap.projects, format), 'utf8');
      snap.pages.set(k, page);
    }
    return page;
  }

  /** The project's page, or null when the project has no wheels here. */
  async projectPage(project: string, format: 'html' | 'json'): Promise<Buffer | null> {
    const snap = await this.snapshot();
    const entries = snap.byProject.get(project);
    if (entries === undefined) return null;
    const k = `${project}\0${format}`;
    let page = snap.pages.get(k);
    if (page === undefined) {
      page = Buffer.from(
        renderProjectPage(project as NormalizedName, entries, format, { fileUrl: this.options.fileUrl }),
        'utf8',
      );
      snap.pages.set(k, page);
    }
    return page;
  }

  async entry(filename: string): Promise<WheelEntry | null> {
    return (await this.snapshot()).byFile.get(filename) ?? null;
  }
}

function build(entries: WheelEntry[]): Snapshot {
  const byProject = new Map<string, WheelEntry[]>();
  const byFile = new Map<string, WheelEntry>();
  for (const e of entries) {
    byFile.set(e.filename, e);
    const list = byProject.get(e.name);
    if (list === undefined) byProject.set(e.name, [e]);
    else list.push(e);
  }
  return {
    entries,
    byProject,
    byFile,
    projects: [...byProject.keys()].sort() as NormalizedName[],
    pages: new Map(),
  };
}

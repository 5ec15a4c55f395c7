// The parsed form of a lock, kept as JSON under the cache folder: a warm build reads its lock in every run, and
// parsing 22 kB of TOML (57 packages) cost ~2 ms and a young-generation GC of the whole process, where JSON.parse
// of the same lock takes a tenth of that. An entry is used only while the lock file is the same file with the
// same size, mtime and ctime (which no tool can set back), else the TOML is parsed again and the entry replaced.
// Only what JSON carries exactly is kept: a lock with a TOML date in a [tool] table is parsed every time.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { parseLock, type Lock } from '@dstack/recipe';

interface Entry {
  v: 1;
  file: string;
  stat: string;
  lock: Lock;
}

const identity = (st: Stats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

/** Whether JSON.parse(JSON.stringify(v)) gives `v` back (undefined properties aside). */
function plain(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || v === undefined) return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every((x) => x !== undefined && plain(x));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)
    return Object.values(v).every(plain);
  return false;
}

/**
 * The lock at `file` (an absolute path), or null when there is none; through the cache under `cacheDir` when
 * given. `readOnly` reads the cache but never writes it. Synchronous reads: a lock and its entry are small.
 */
export function readLockCached(file: string, cacheDir: string | null, readOnly: boolean): Lock | null {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const id = identity(st);
  const entryFile = cacheDir
    ? join(cacheDir, 'locks', `${createHash('sha256').update(file).digest('hex').slice(0, 32)}.json`)
    : null;
  if (entryFile) {
    try {
      const entry = JSON.parse(readFileSync(entryFile, 'utf8')) as Entry;
      if (entry.v === 1 && entry.file === file && entry.stat === id) return entry.lock;
    } catch {
      // no entry, or an unreadable one: parse the lock
    }
  }
  // The stat above is the one kept: a lock changed between it and this read is parsed again next time.
  const lock = parseLock(readFileSync(file, 'utf8'), file);
  if (entryFile && !readOnly && plain(lock)) {
    const temp = `${entryFile}.${process.pid}.tmp`;
    try {
      mkdirSync(join(cacheDir!, 'locks'), { recursive: true });
      writeFileSync(temp, JSON.stringify({ v: 1, file, stat: id, lock } satisfies Entry));
      renameSync(temp, entryFile);
    } catch {
      // a cache that cannot be written is no failure; a temp file the rename left behind goes
      try {
        rmSync(temp, { force: true });
      } catch {
        // nothing more to do
      }
    }
  }
  return lock;
}

// `image prune`: what the cache has not used for a while goes.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { hexOf, isDigest } from '../core/digest.js';
import type { BlobCache } from './blob-cache.js';

export interface PruneResult {
  /** Blobs removed, and their bytes. */
  blobs: number;
  bytes: number;
  /** Key records removed (layer, segment, base and daemon records). */
  records: number;
  /** Blobs kept, and their bytes. */
  keptBlobs: number;
  keptBytes: number;
}

/**
 * Removes from a cache what has not been used for `olderThanMs`: key records neither written nor read since
 * (a hit touches its record), then the blobs that no remaining record names and that were not written since,
 * and temp files left behind by a crash. A build running meanwhile keeps what it uses: its records are fresh,
 * and the blob it is writing is too. Blobs hard-linked into OCI layouts stay there.
 */
export async function pruneCache(cache: BlobCache, options: { olderThanMs: number; now?: number }): Promise<PruneResult> {
  const cutoff = (options.now ?? Date.now()) - options.olderThanMs;
  const result: PruneResult = { blobs: 0, bytes: 0, records: 0, keptBlobs: 0, keptBytes: 0 };
  const list = (dir: string): Promise<string[]> => fs.readdir(dir).catch(() => []);
  const live = new Set<string>();
  const keys = path.join(cache.dir, 'keys');
  for (const namespace of await list(keys)) {
    for (const name of await list(path.join(keys, namespace))) {
      const file = path.join(keys, namespace, name);
      const st = await fs.stat(file).catch(() => null);
      if (!st?.isFile()) continue;
      let value: unknown = null;
      if (st.mtimeMs >= cutoff) {
        try {
          value = JSON.parse(await fs.readFile(file, 'utf8'));
        } catch {
          // unreadable: removed below
        }
      }
      if (value === null) {
        await fs.rm(file, { force: true });
        result.records++;
        continue;
      }
      JSON.stringify(value, (_k, v: unknown) => {
        if (typeof v === 'string' && isDigest(v)) live.add(hexOf(v));
        return v;
      });
    }
  }
  const blobs = path.join(cache.dir, 'blobs', 'sha256');
  for (const hex of await list(blobs)) {
    const st = await fs.stat(path.join(blobs, hex)).catch(() => null);
    if (!st) continue;
    if (live.has(hex) || st.mtimeMs >= cutoff) {
      result.keptBlobs++;
      result.keptBytes += st.size;
      continue;
    }
    await fs.rm(path.join(blobs, hex), { force: true });
    result.blobs++;
    result.bytes += st.size;
  }
  // Temp files: a writer still at work keeps writing to its file; one left by a crash is a day old at least.
  const tmp = path.join(cache.dir, 'tmp');
  const tmpCutoff = Math.min(cutoff, (options.now ?? Date.now()) - 24 * 3600 * 1000);
  for (const name of await list(tmp)) {
    const st = await fs.stat(path.join(tmp, name)).catch(() => null);
    if (st && st.mtimeMs < tmpCutoff) await fs.rm(path.join(tmp, name), { force: true });
  }
  return result;
}


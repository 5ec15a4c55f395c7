// Moving wheels between stores (a folder and a registry, either way): only what the destination lacks, several
// at once. Each wheel lands whole or not at all in either store, so an interrupted copy, run again, copies
// only the rest: it resumes.
import type { WheelEntry, WheelStore } from '@dstack/wheelhouse';

export interface CopyOptions {
  /** Wheels copied at once (default 8). */
  concurrency?: number;
  /** Only these file names (default every wheel of the source). */
  filenames?: string[];
  signal?: AbortSignal;
  /** After each wheel. */
  onWheel?: (event: CopyEvent) => void;
}

export type CopyEvent =
  | { filename: string; status: 'copied' | 'present'; size: number }
  | { filename: string; status: 'failed'; error: Error };

export interface CopyResult {
  copied: string[];
  present: string[];
  failed: { filename: string; error: Error }[];
  /** Bytes copied. */
  bytes: number;
}

/**
 * Copies the wheels of `from` that `to` does not hold with the same sha256, streaming each (the destination
 * checks its sha256 and validates it as any add does). A wheel the destination holds with other bytes fails
 * with WHEEL_CONFLICT; one failure does not stop the others.
 */
export async function copyWheels(from: WheelStore, to: WheelStore, options: CopyOptions = {}): Promise<CopyResult> {
  const [source, dest] = await Promise.all([from.list(), to.list()]);
  const have = new Map(dest.map((e) => [e.filename, e.sha256]));
  const only = options.filenames ? new Set(options.filenames) : null;
  const result: CopyResult = { copied: [], present: [], failed: [], bytes: 0 };
  const todo: WheelEntry[] = [];
  for (const e of source) {
    if (only && !only.has(e.filename)) continue;
    if (have.get(e.filename) === e.sha256) {
      result.present.push(e.filename);
      options.onWheel?.({ filename: e.filename, status: 'present', size: e.size });
    } else todo.push(e);
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const e = todo[next++]!;
      options.signal?.throwIfAborted();
      try {
        const { status } = await to.add(await from.openRead(e.filename), {
          filename: e.filename,
          expectedSha256: e.sha256,
          ...(e.builtBy ? { builtBy: e.builtBy } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        if (status === 'added') {
          result.copied.push(e.filename);
          result.bytes += e.size;
        } else result.present.push(e.filename);
        options.onWheel?.({ filename: e.filename, status: status === 'added' ? 'copied' : 'present', size: e.size });
      } catch (err) {
        if (options.signal?.aborted) throw err;
        const error = err instanceof Error ? err : new Error(String(err));
        result.failed.push({ filename: e.filename, error });
        options.onWheel?.({ filename: e.filename, status: 'failed', error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 8, todo.length) }, worker));
  for (const list of [result.copied, result.present]) list.sort();
  result.failed.sort((a, b) => (a.filename < b.filename ? -1 : 1));
  return result;
}

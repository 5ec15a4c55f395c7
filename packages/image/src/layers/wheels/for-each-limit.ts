// How many wheels are planned at once, and the small pool that does it.
/** Wheels planned at once (each a validation and a zip open in flight, waiting on reads and inflating). */
export const PLAN_CONCURRENCY = 4;

/** Runs `fn` over `items`, `limit` at a time; the first failure stops new starts and is thrown. */
export async function forEachLimit<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}

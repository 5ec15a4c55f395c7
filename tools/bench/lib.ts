// Small helpers for benchmark scenarios: time a function over several runs and format ratios.
import { performance } from 'node:perf_hooks';

export interface Scenario {
  name: string;
  description: string;
  /** Returns the lines to print: figures, baselines and ratios. */
  run(): Promise<string[]>;
}

export interface Timing {
  /** Median milliseconds over the runs. */
  median: number;
  min: number;
  runs: number;
}

/**
 * Runs `fn` `runs` times (after `warmup` untimed runs) and returns the median and minimum; `before` runs
 * untimed ahead of every run (to undo what the previous run left).
 */
export async function time(fn: () => unknown, runs = 5, warmup = 1, before?: () => unknown): Promise<Timing> {
  for (let i = 0; i < warmup; i++) {
    await before?.();
    await fn();
  }
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    await before?.();
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(samples.length / 2)]!, min: samples[0]!, runs };
}

export const ms = (t: number): string => `${t.toFixed(t < 10 ? 2 : 0)} ms`;

/** "ours X ms vs baseline Y ms: Z.ZZx" where Z = baseline / ours (above 1 means we are faster). */
export function speedup(label: string, ours: Timing, baseline: Timing, baselineLabel: string): string {
  return `${label}: ${ms(ours.median)} vs ${baselineLabel} ${ms(baseline.median)} -> ${(baseline.median / ours.median).toFixed(2)}x`;
}

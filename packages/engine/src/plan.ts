// build --dry-run: what a build would do, writing nothing. A current lock answers without running anything (no
// Python, no pip, no network); otherwise the build script resolves with pip (--plan-only: pip's install report,
// nothing fetched or built) and stops.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WheelEntry, WheelSource } from '@dstack/wheelhouse';
import type { BuildEvent, BuildResult, PlannedPackage } from './executor.js';
import { executorEnv, prepareBuild, targetLock, type BuildOptions, type TargetLock } from './engine.js';
import type { ExplainedFailure } from './failure.js';
import { BuildLogs } from './logs.js';

/** One distribution of a plan and what the build would do about it. */
export interface PlanStep {
  name: string;
  version: string;
  /** `reuse`: its wheel is in the wheelhouse; `download`: a wheel fetched from `from`; `build`: built from `from`. */
  action: 'reuse' | 'download' | 'build';
  /** The wheel's file name (known unless it is built). */
  filename: string | null;
  /** reuse: the wheelhouse file; download: where pip found the wheel; build: the source (sdist URL, VCS URL, path). */
  from: string;
  /**
   * What the wheel is (or was) made from: reuse — the wheelhouse's record (null for wheels recorded before sources
   * were, and for uploads); download and build — what pip's plan found.
   */
  source: WheelSource | null;
  /** reuse: the wheel's sha256 (the lock's, checked against the wheelhouse record). */
  sha256: string | null;
  /**
   * reuse: who built the wheel, as the wheelhouse recorded it (null when it was added, not built); build: who
   * would (the executor and its interpreter or factory image).
   */
  builder: Record<string, string> | null;
}

export interface TargetPlan {
  target: string;
  python: string;
  lockFile: string | null;
  /** The lock as found: `current` (nothing would run), `stale`, `missing`, or `ignored` (--refresh/--rebuild/--upgrade). */
  lock: TargetLock['state'];
  /** --upgrade: the locked versions kept (NAME==VERSION). */
  pins: string[];
  /** CEXT packages the build would prebuild into the wheelhouse first (a dry run only plans them with the rest). */
  prebuild: string[];
  steps: PlanStep[];
  failures: ExplainedFailure[];
}

export interface BuildPlan {
  ok: boolean;
  targets: TargetPlan[];
}

/** Where a wheel in the store came from, for a plan: its file and its builder record. */
function reused(entry: WheelEntry | null, wheelhouse: string, filename: string): Pick<PlanStep, 'from' | 'builder' | 'source'> {
  return { from: join(wheelhouse, filename), builder: entry?.builtBy ?? null, source: entry?.source ?? null };
}

/**
 * The plan of `buildWheelhouse(options)`, writing nothing: no wheel, no lock, no log, no cache file (the build
 * script's venv lives in a temp folder, removed after). The same options as the build; `onEvent` sees the
 * script's events (its log lines) when pip resolves.
 */
export async function planWheelhouse(options: BuildOptions): Promise<BuildPlan> {
  const p = await prepareBuild(options, true);
  const targets: TargetPlan[] = [];
  for (const python of options.pythons) {
    const target = await p.targetOf(python);
    const lock = await targetLock(p, options, target);
    const plan: TargetPlan = {
      target: target.id,
      python,
      lockFile: lock.lockFile,
      lock: lock.state,
      pins: lock.pins,
      prebuild: lock.current ? [] : p.prebuild,
      steps: [],
      failures: [],
    };
    targets.push(plan);
    if (lock.current) {
      for (const pkg of lock.current.packages) {
        for (const w of pkg.wheels) {
          const entry = await p.store.get(w.name);
          plan.steps.push({
            name: pkg.name,
            version: pkg.version,
            action: 'reuse',
            filename: w.name,
            sha256: w.hashes.sha256 ?? null,
            ...reused(entry, p.wheelhouse, w.name),
          });
        }
      }
      continue;
    }
    const work = await mkdtemp(join(tmpdir(), 'dstack-plan-'));
    const logs = new BuildLogs(join(work, 'logs'));
    try {
      const result: BuildResult = await p.executor.run(
        {
          id: target.id,
          recipePath: p.recipePath,
          fromWheel: p.fromWheel,
          wheelhouse: p.wheelhouse,
          outputDir: join(work, 'out'),
          python: target.interpreter ?? python,
          jobs: 1,
          prebuild: p.prebuild,
          rebuild: p.rebuild,
          buildLockDir: null,
          cacheDir: null,
          env: executorEnv(p.env, p.archive),
          noIndex: p.noIndex,
          planOnly: true,
          ...(lock.pins.length > 0 ? { pins: lock.pins } : {}),
        },
        (event: BuildEvent) => {
          if (event.type === 'log') logs.line(event.package, event.line);
          options.onEvent?.(event, target.id);
        },
        options.signal,
      );
      // The log folder is a temp one, gone after the plan: a failure carries its summary and last lines instead.
      plan.failures = logs.explain(result.failures, p.noIndex ? 'in the wheelhouse' : 'found').map((f) => ({ ...f, logFile: null }));
      for (const pkg of result.packages as PlannedPackage[]) {
        const entry = pkg.action === 'cached' && pkg.filename ? await p.store.get(pkg.filename) : null;
        plan.steps.push({
          name: pkg.name,
          version: pkg.version,
          action: pkg.action === 'cached' ? 'reuse' : pkg.action,
          filename: pkg.filename,
          sha256: entry?.sha256 ?? null,
          ...(pkg.action === 'cached' && pkg.filename
            ? reused(entry, p.wheelhouse, pkg.filename)
            : { from: pkg.url, source: pkg.source ?? null, builder: pkg.action === 'build' ? { ...result.builtBy, target: target.id } : null }),
        });
      }
    } finally {
      await logs.close([]);
      await rm(work, { recursive: true, force: true });
    }
  }
  return { ok: targets.every((t) => t.failures.length === 0), targets };
}

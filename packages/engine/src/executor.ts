/**
 * The contract between the engine and the places a build runs (Decision 9: one build script,
 * `images/factory/factory.py`, run by every executor). The local executor runs the script with a
 * host interpreter; the docker executor (src/docker/) runs it inside a factory-image container.
 * Both read the script's JSON-lines events (see protocol.ts) and turn them into `BuildEvent`s.
 */
import type { WheelSource } from '@dstack/wheelhouse';

/** One distribution of the closure, as the plan (pip's --dry-run --report) found it. */
export interface PlannedPackage {
  /** Canonical (PEP 503) project name. */
  name: string;
  version: string;
  /**
   * `cached`: the wheel is already in the wheelhouse; `download`: a wheel to fetch from an index or
   * find-links; `build`: a source (sdist, VCS, local path, archive) to turn into a wheel.
   */
  action: 'cached' | 'download' | 'build';
  /** Where pip found it (download_info.url of the report, credentials redacted by pip). */
  url: string;
  /** Wheel file name, known for `cached` and `download`. */
  filename: string | null;
  /** Requested directly by the recipe (a top-level requirement), not only a dependency. */
  requested: boolean;
  /** Requires-Dist of the distribution (names only), for the lock's dependencies. */
  dependencies: string[];
  requiresPython: string | null;
  /** `download` and `build`: what the wheel comes from (an sdist and its sha256, a VCS commit, a folder, a wheel URL). */
  source?: WheelSource;
}

/** What the target interpreter reported about itself (the lock's environment, builtBy). */
export interface InterpreterInfo {
  /** The target interpreter (a host path, or a path inside the container); the build venv is made from it. */
  executable: string;
  implementation: string; // "cp"
  pythonVersion: string; // "3.11"
  pythonFullVersion: string; // "3.11.7"
  pipVersion: string;
  /** PEP 508 marker environment of the interpreter. */
  markers: Record<string, string>;
  /** Best-first supported tags (packaging.tags.sys_tags()). */
  tags: string[];
}

export type BuildEvent =
  /** `builtBy`: what the wheelhouse records as the builder of this run's wheels (executor, interpreter, factory image and its id). */
  | { type: 'started'; job: string; executor: 'local' | 'docker'; interpreter: InterpreterInfo; builtBy?: Record<string, string> }
  | { type: 'planned'; job: string; packages: PlannedPackage[] }
  | { type: 'cached'; job: string; package: string; version: string; filename: string }
  | {
      type: 'building';
      job: string;
      package: string;
      version: string;
      action: 'download' | 'build' | 'prebuild';
      command: string[];
    }
  /** A wheel is complete at `path` (on this host, inside `BuildJob.outputDir`); `source`: what it was made from. */
  | { type: 'built'; job: string; package: string; version: string; filename: string; path: string; source?: WheelSource }
  | {
      type: 'failed';
      job: string;
      package: string;
      version: string | null;
      command: string[];
      exitCode: number | null;
      /** The last lines of the build's output. */
      logTail: string[];
    }
  /** Emitted by the engine (not executors) once a wheel is in the wheelhouse store. */
  | {
      type: 'ingested';
      job: string;
      package: string;
      version: string;
      filename: string;
      sha256: string;
      status: 'added' | 'present';
    }
  /** One line of output from pip or a build backend; `package` is null for the plan. */
  | { type: 'log'; job: string; package: string | null; line: string };

/**
 * Receives events. For `built`, executors await the returned promise before they let the build
 * script release the requirement's cross-process lock: the engine ingests the wheel in the sink, so
 * a second process waiting on that lock finds the wheel in the wheelhouse and reuses it.
 */
export type EventSink = (event: BuildEvent) => void | Promise<void>;

export interface BuildJob {
  /** Names the job in events and logs. */
  id: string;
  /** The recipe file (BUILD_REQ=True); its `-r`/`-c` includes and options are read by pip. */
  recipePath: string | null;
  /** BUILD_REQ=False: a wheel in the wheelhouse whose dependencies are to be built. */
  fromWheel: string | null;
  /** The wheelhouse directory: pip's --find-links, and where cached wheels are found. */
  wheelhouse: string;
  /** Where the executor leaves the wheels it built or downloaded (a fresh, empty host directory). */
  outputDir: string;
  /** Local: an interpreter path or a version ("3.11"); docker: the factory image's PY_VERSION. */
  python: string;
  /** Parallel builds of independent requirements. */
  jobs: number;
  /** CEXT: packages prebuilt into the wheelhouse and installed into the build venv; empty = off. */
  prebuild: string[];
  /** Project names rebuilt from source even when the wheelhouse has their wheel (Decision 5). */
  rebuild: string[];
  /** Folder of the cross-process build locks (flock files, wheelhouse/.dstack/locks); null: no locking. */
  buildLockDir: string | null;
  /** Where the build script may keep build venvs between runs (local executor); null or absent: none. */
  cacheDir?: string | null;
  /** pip's --no-index: the wheelhouse (and the recipe's own --find-links) are the only sources. */
  noIndex?: boolean;
  /** Resolve and report the plan (the `planned` event), then stop: nothing prebuilt, downloaded or built. */
  planOnly?: boolean;
  /** NAME==VERSION constraints on the plan: what `build --upgrade` keeps of the lock. */
  pins?: string[];
  /** The whole environment of the build (pip reads its PIP_* variables); default: the process's. */
  env?: Record<string, string | undefined>;
}

export interface BuildFailure {
  package: string;
  version: string | null;
  command: string[];
  exitCode: number | null;
  logTail: string[];
}

export interface BuiltWheel {
  package: string;
  version: string;
  filename: string;
  /** Host path inside outputDir. */
  path: string;
  /** What it was built (or fetched) from: recorded in the wheelhouse and the lock. */
  source?: WheelSource;
}

export interface BuildResult {
  /** True when the plan succeeded and nothing failed. */
  ok: boolean;
  interpreter: InterpreterInfo | null;
  /** The closure (empty when the plan itself failed: see failures). */
  packages: PlannedPackage[];
  /** Wheels already in the wheelhouse (by file name), including those another process built meanwhile. */
  cached: { package: string; version: string; filename: string }[];
  built: BuiltWheel[];
  failures: BuildFailure[];
  /** Recorded in the wheelhouse as the builder of each wheel (Decision 5). */
  builtBy: Record<string, string>;
}

export interface Executor {
  readonly kind: 'local' | 'docker';
  run(job: BuildJob, events: EventSink, signal?: AbortSignal): Promise<BuildResult>;
}

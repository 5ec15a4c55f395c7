// The engine: recipe + targets -> (lock hit: nothing to do) or executor run -> wheels ingested -> lock written.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import {
  canonicalizeName,
  lockPath,
  parseLock,
  readRecipeFile,
  stringifyLock,
  type Lock,
  type LockPackage,
  type Recipe,
} from '@dstack/recipe';
import {
  FsWheelStore,
  detectTarget,
  parseWheelFilename,
  sourceLockTable,
  wheelCompatibility,
  type Target,
  type WheelStore,
} from '@dstack/wheelhouse';
import type { Logger } from 'pino';
import type { BuildEvent, BuildFailure, BuildResult, Executor, PlannedPackage } from './executor.js';
import { LocalExecutor, resolvePython } from './local.js';
import { EngineError } from './errors.js';
import type { ExplainedFailure } from './failure.js';
import { BuildLogs } from './logs.js';
import { archiveWheels, withArchiveFindLinks, type ArchiveResult } from './archive.js';
import { readLockCached } from './lock-cache.js';

export interface BuildOptions {
  /** The recipe file (BUILD_REQ=True). */
  recipe?: string | null;
  /** BUILD_REQ=False: a wheel (in the wheelhouse) whose dependencies are built. */
  fromWheel?: string | null;
  /** The wheelhouse directory. */
  wheelhouse: string;
  /** The store wheels are ingested into (default: FsWheelStore on `wheelhouse`). */
  store?: WheelStore;
  /** Targets: interpreter paths or versions ("3.11"); one closure and one lock each. */
  pythons: string[];
  /** Default: a new LocalExecutor. */
  executor?: Executor;
  /** How a `--python` value becomes a Target (default: detectTarget of the local interpreter, cached). */
  targetOf?: (python: string) => Promise<Target>;
  jobs?: number;
  /** CEXT prebuild list; empty = CEXT off. */
  prebuild?: string[];
  /** Projects rebuilt from source even when their wheel exists (their wheel is replaced). */
  rebuild?: string[];
  /** Ignore an existing lock (build --refresh). */
  refresh?: boolean;
  /**
   * Re-resolve these projects and keep the rest of the existing lock (build --upgrade NAME): every other locked
   * project is pinned to its locked version (a constraint on pip's plan). The lock must exist and name them.
   */
  upgrade?: string[];
  /** Where the PEP 751 locks go: <pylockDir>/<recipe>/pylock.<target>.toml (default: recipes/locks beside the recipe). */
  pylockDir?: string | null;
  /**
   * Whether the lock names its recipe (`[tool.dstack-factory] recipe`, relative to the lock; default true). False for a
   * recipe made for this run only (BUILD_REQ=False's choice of wheels), which would name a file that is gone.
   */
  lockNamesRecipe?: boolean;
  /**
   * Where executors may keep build venvs between runs (default: $XDG_CACHE_HOME/dstack-factory or
   * ~/.cache/dstack-factory); null: none.
   */
  cacheDir?: string | null;
  /**
   * Resolve from the wheelhouse only (pip's --no-index; the recipe's own --find-links still count) unless the recipe
   * names an index (--index-url / --extra-index-url). What `image app --requirements` does by default (Decision 19).
   */
  wheelhouseOnly?: boolean;
  /**
   * Where the full log of each failed step is kept (default: <cacheDir>/logs, or the temp folder without a cache);
   * a run's folder is removed when nothing failed.
   */
  logDir?: string | null;
  /**
   * The archive (the original's /archive): extra find-links for the plan (a wheel taken from it is copied into
   * the wheelhouse and ingested like any other), and after a successful build every wheelhouse wheel it lacks
   * is copied there (see archiveWheels). Null: none.
   */
  archive?: string | null;
  /** Environment for ${VAR} expansion in the recipe and for pip (default: process.env). */
  env?: Record<string, string | undefined>;
  logger?: Logger;
  /** Every event of every target, as it happens. */
  onEvent?: (event: BuildEvent, target: string) => void;
  signal?: AbortSignal;
}

export interface IngestedWheel {
  package: string;
  version: string;
  filename: string;
  sha256: string;
  status: 'added' | 'present';
}

export interface TargetSummary {
  /** Target id, e.g. cp311-linux_x86_64. */
  target: string;
  python: string;
  /** Finished from the lock without running the executor. */
  warm: boolean;
  /** Resolved from the wheelhouse only (pip ran with --no-index). */
  noIndex: boolean;
  /** The target interpreter's full Python version (markers are evaluated against it). */
  pythonFullVersion: string;
  lockFile: string | null;
  /** Distributions in the closure. */
  packages: number;
  cached: number;
  ingested: IngestedWheel[];
  failures: ExplainedFailure[];
}

export interface BuildSummary {
  ok: boolean;
  targets: TargetSummary[];
  /** With an archive, after a successful build: what was copied into it. */
  archived?: ArchiveResult;
}

const TOOL = 'dstack-factory';
const PIP_INDEX_VARS = [
  'PIP_INDEX_URL',
  'PIP_EXTRA_INDEX_URL',
  'PIP_FIND_LINKS',
  'PIP_NO_INDEX',
  'PIP_PRE',
  'PIP_NO_BINARY',
  'PIP_ONLY_BINARY',
];

const targetCache = new Map<string, Promise<Target>>();

/**
 * detectTarget with two caches: in memory for this process, and on disk under `cacheDir` (targets.json, keyed by
 * the interpreter's real path, size and mtime), so a warm rebuild in a new process starts no Python at all.
 */
export function cachedTarget(
  python: string,
  options: { cacheDir?: string | null; memory?: boolean; readOnly?: boolean } = {},
): Promise<Target> {
  const path = resolvePython(python);
  const memory = options.memory ?? true;
  let t = memory ? targetCache.get(path) : undefined;
  if (!t) {
    t = diskCachedTarget(path, options.cacheDir ?? null, options.readOnly === true);
    if (memory) {
      targetCache.set(path, t);
      t.catch(() => targetCache.delete(path));
    }
  }
  return t;
}

async function diskCachedTarget(python: string, cacheDir: string | null, readOnly: boolean): Promise<Target> {
  if (!cacheDir) return detectTarget(python);
  const real = await realpath(python);
  const st = await stat(real);
  // v2: targets carry their architecture, libc and lock name.
  const key = `v2|${python}|${real}|${st.size}|${st.mtimeMs}`;
  const file = join(cacheDir, 'targets.json');
  let known: Record<string, Target> = {};
  try {
    known = JSON.parse(await readFile(file, 'utf8')) as Record<string, Target>;
    const hit = known[key];
    if (hit) return hit;
  } catch {
    known = {};
  }
  const target = await detectTarget(python);
  if (readOnly) return target;
  known[key] = target;
  await mkdir(cacheDir, { recursive: true });
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(temp, JSON.stringify(known));
  await rename(temp, file);
  return target;
}

/**
 * The lock's cache key (Decision 4): sha256 of the recipe after includes and ${VAR} expansion, the effective
 * index options (the recipe's and pip's PIP_* index variables), the target, and what else changes the result.
 */
export function cacheKey(input: {
  recipe: Recipe | null;
  fromWheelSha256: string | null;
  target: Target;
  env: Record<string, string | undefined>;
  prebuild: string[];
  /** Resolved with --no-index. The wheelhouse's path itself is not part of the key: a lock stays current on another machine. */
  noIndex?: boolean;
}): string {
  const requirements = (input.recipe?.requirements ?? []).map((r) => ({
    name: r.name,
    extras: r.extras,
    specifier: r.specifier,
    marker: r.marker,
    url: r.url,
    editable: r.editable,
    constraint: r.constraint,
    hashes: r.hashes,
    configSettings: r.configSettings ?? null,
  }));
  const pipEnv = Object.fromEntries(
    PIP_INDEX_VARS.filter((k) => input.env[k] !== undefined).map((k) => [k, input.env[k]]),
  );
  const material = {
    v: 1,
    requirements,
    options: input.recipe?.options ?? null,
    pipEnv,
    fromWheel: input.fromWheelSha256,
    target: {
      id: input.target.id,
      pythonFullVersion: input.target.pythonFullVersion,
      markers: input.target.markers,
    },
    prebuild: [...input.prebuild].sort(),
    ...(input.noIndex ? { noIndex: true } : {}),
  };
  return createHash('sha256').update(JSON.stringify(material)).digest('hex');
}

/** PEP 751 `environments` entry for a target: the interpreter's full version and platform (Decision 3). */
export function environmentMarker(target: Target): string {
  const m = target.markers;
  return (
    `implementation_name == "${m.implementation_name}" and python_full_version == "${m.python_full_version}"` +
    ` and sys_platform == "${m.sys_platform}" and platform_machine == "${m.platform_machine}"`
  );
}

function recipeStem(recipePath: string): string {
  return basename(recipePath).replace(/\.(txt|in)$/, '');
}

/** Where the lock of a recipe (or a from-wheel build) and a target lives. */
export function lockFileFor(
  options: { recipe: string | null; fromWheel: string | null; pylockDir: string | null },
  target: string,
): string | null {
  const stem = options.recipe
    ? recipeStem(options.recipe)
    : options.fromWheel
      ? basename(options.fromWheel).split('-')[0]!
      : null;
  if (!stem) return null;
  if (options.pylockDir) return join(options.pylockDir, stem, `pylock.${target}.toml`);
  if (options.recipe) return lockPath(options.recipe, target);
  return null;
}

export async function readLock(file: string): Promise<Lock | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return parseLock(text, file);
}

/** A lock whose key matches and whose every wheel is in the store with the same sha256, or null. */
async function warmLock(file: string, key: string, p: PreparedBuild): Promise<Lock | null> {
  const { store } = p;
  let lock: Lock | null;
  try {
    lock = readLockCached(file, p.cacheDir, p.readOnly);
  } catch {
    lock = null;
  }
  if (!lock) return null;
  const tool = lock.tool?.[TOOL] as { key?: string } | undefined;
  if (tool?.key !== key) return null;
  const entries = await Promise.all(
    lock.packages.flatMap((p) => p.wheels.map(async (w) => ({ w, entry: await store.get(w.name) }))),
  );
  return entries.every(({ w, entry }) => entry !== null && entry.sha256 === w.hashes.sha256) ? lock : null;
}

/** The executor's environment: the build's, with the archive as extra find-links. */
export function executorEnv(env: Record<string, string | undefined>, archive: string | null): Record<string, string> {
  return Object.fromEntries(
    Object.entries(archive ? { ...env, PIP_FIND_LINKS: withArchiveFindLinks(env.PIP_FIND_LINKS, archive) } : env).filter(
      (e): e is [string, string] => e[1] !== undefined,
    ),
  );
}

/** A file's sha256 (hex), streamed: a wheel is not held in memory to hash it. */
async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What every target of a build (or of its plan) shares: the options, resolved once. */
export interface PreparedBuild {
  recipePath: string | null;
  fromWheel: string | null;
  env: Record<string, string | undefined>;
  wheelhouse: string;
  store: WheelStore;
  executor: Executor;
  recipe: Recipe | null;
  fromWheelSha256: string | null;
  prebuild: string[];
  rebuild: string[];
  upgrade: string[];
  cacheDir: string | null;
  /** A plan: no folder or cache file is created. */
  readOnly: boolean;
  targetOf: (python: string) => Promise<Target>;
  noIndex: boolean;
  archive: string | null;
  logRoot: string;
}

/** Reads the options (the recipe, the store, the defaults) once; `readOnly` (a plan) creates no folder or cache file. */
export async function prepareBuild(options: BuildOptions, readOnly = false): Promise<PreparedBuild> {
  const recipePath = options.recipe ? resolve(options.recipe) : null;
  const fromWheel = options.fromWheel ? resolve(options.fromWheel) : null;
  if (!recipePath && !fromWheel)
    throw new EngineError('USAGE', 'a build needs a recipe or a wheel (--from-wheel)');
  const env = options.env ?? process.env;
  const wheelhouse = resolve(options.wheelhouse);
  if (!readOnly) await mkdir(wheelhouse, { recursive: true });
  const store = options.store ?? new FsWheelStore(wheelhouse);
  const executor = options.executor ?? new LocalExecutor();
  const recipe = recipePath ? await readRecipeFile(recipePath, { env }) : null;
  const fromWheelSha256 = fromWheel ? await fileSha256(fromWheel) : null;
  const cacheDir: string | null =
    options.cacheDir === undefined
      ? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'dstack-factory')
      : options.cacheDir;
  // Decision 19: from the wheelhouse only, unless the recipe names an index itself.
  const recipeIndex = recipe !== null && (recipe.options.indexUrl !== null || recipe.options.extraIndexUrls.length > 0);
  return {
    recipePath,
    fromWheel,
    env,
    wheelhouse,
    store,
    executor,
    recipe,
    fromWheelSha256,
    prebuild: options.prebuild ?? [],
    rebuild: (options.rebuild ?? []).map((n) => canonicalizeName(n) as string),
    upgrade: (options.upgrade ?? []).map((n) => canonicalizeName(n) as string),
    cacheDir,
    readOnly,
    targetOf: options.targetOf ?? ((python: string) => cachedTarget(python, { cacheDir, readOnly })),
    noIndex: options.wheelhouseOnly === true && !recipeIndex,
    archive: options.archive ? resolve(options.archive) : null,
    logRoot: options.logDir ?? join(cacheDir ?? tmpdir(), 'logs'),
  };
}

/** A target's lock: where it is, whether it is current (then nothing runs), and for --upgrade the pins it gives. */
export interface TargetLock {
  key: string;
  lockFile: string | null;
  /** The lock when it is current (key matches, every wheel in the store with its sha256), else null. */
  current: Lock | null;
  /** `current`; `stale` (a lock whose key or wheels differ); `missing`; `ignored` (--refresh, --rebuild, --upgrade). */
  state: 'current' | 'stale' | 'missing' | 'ignored';
  /** --upgrade: NAME==VERSION of every locked project that is not upgraded. */
  pins: string[];
}

export async function targetLock(p: PreparedBuild, options: BuildOptions, target: Target): Promise<TargetLock> {
  const key = cacheKey({
    recipe: p.recipe,
    fromWheelSha256: p.fromWheelSha256,
    target,
    env: p.env,
    prebuild: p.prebuild,
    noIndex: p.noIndex,
  });
  // Lock files are named by everything that decides the closure (full version, platform with its libc level);
  // a lock under the old name (pylock.cp311-linux_x86_64.toml) is still read when its key matches.
  const where = { recipe: p.recipePath, fromWheel: p.fromWheel, pylockDir: options.pylockDir ?? null };
  let lockFile = lockFileFor(where, target.name);
  const oldLockFile = lockFileFor(where, target.id);
  const fallback = lockFile && !existsSync(lockFile) && oldLockFile && existsSync(oldLockFile) ? oldLockFile : null;
  let pins: string[] = [];
  if (p.upgrade.length > 0) {
    const from = fallback ?? lockFile;
    const previous = from ? await readLock(from) : null;
    if (!previous) {
      throw new EngineError('LOCK_UPGRADE_INVALID', `--upgrade ${p.upgrade.join(', ')}: no lock ${lockFile ?? `for ${target.name}`} to upgrade`, {
        hint: 'build the recipe once (its lock is written), then upgrade single projects in it',
      });
    }
    const locked = new Set(previous.packages.map((q) => canonicalizeName(q.name) as string));
    const unknown = p.upgrade.filter((n) => !locked.has(n));
    if (unknown.length > 0) {
      throw new EngineError('LOCK_UPGRADE_INVALID', `--upgrade ${unknown.join(', ')}: not in the lock ${from}`, {
        hint: `the lock has ${[...locked].sort().join(', ')}; a new requirement goes into the recipe (then build --refresh)`,
      });
    }
    pins = previous.packages
      .filter((q) => !p.upgrade.includes(canonicalizeName(q.name) as string))
      .map((q) => `${q.name}==${q.version}`);
  }
  const reuse = !options.refresh && p.rebuild.length === 0 && p.upgrade.length === 0;
  let current = reuse && lockFile ? await warmLock(lockFile, key, p) : null;
  if (!current && reuse && fallback) {
    current = await warmLock(fallback, key, p);
    if (current) lockFile = fallback;
  }
  const exists = (lockFile !== null && existsSync(lockFile)) || fallback !== null;
  const state = current ? 'current' : !reuse ? 'ignored' : exists ? 'stale' : 'missing';
  return { key, lockFile, current, state, pins };
}

/** Fills the wheelhouse with a wheel for every distribution of the recipe's closure, for each target. */
export async function buildWheelhouse(options: BuildOptions): Promise<BuildSummary> {
  const p = await prepareBuild(options);
  const { recipePath, fromWheel, env, wheelhouse, store, executor, prebuild, rebuild, cacheDir, noIndex, archive } = p;
  const logger = options.logger;

  const targets: TargetSummary[] = [];
  for (const python of options.pythons) {
    const target = await p.targetOf(python);
    const emit = (event: BuildEvent): void => {
      options.onEvent?.(event, target.id);
      if (event.type === 'log') logger?.debug({ target: target.id, package: event.package }, event.line);
      else logger?.info({ target: target.id, ...event }, event.type);
    };
    const { key, lockFile, current: lock, pins } = await targetLock(p, options, target);
    const summary: TargetSummary = {
      target: target.id,
      python,
      warm: false,
      noIndex,
      pythonFullVersion: target.pythonFullVersion,
      lockFile,
      packages: 0,
      cached: 0,
      ingested: [],
      failures: [],
    };
    targets.push(summary);

    if (lock) {
      summary.warm = true;
      summary.packages = lock.packages.length;
      for (const p of lock.packages) {
        for (const w of p.wheels)
          emit({ type: 'cached', job: target.id, package: p.name, version: p.version, filename: w.name });
      }
      summary.cached = lock.packages.length;
      continue;
    }

    const outputDir = await mkdtemp(join(tmpdir(), 'dstack-build-'));
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const logs = new BuildLogs(join(p.logRoot, `${stamp}-${target.id}-${process.pid}`));
    const ingestFailures: BuildFailure[] = [];
    let builtBy: Record<string, string> = { executor: executor.kind, target: target.id };
    try {
      const result: BuildResult = await executor.run(
        {
          id: target.id,
          recipePath,
          fromWheel,
          wheelhouse,
          outputDir,
          python: target.interpreter ?? python,
          jobs: options.jobs ?? 1,
          prebuild,
          rebuild,
          buildLockDir: join(wheelhouse, '.dstack', 'locks'),
          cacheDir,
          env: executorEnv(env, archive),
          noIndex,
          ...(pins.length > 0 ? { pins } : {}),
        },
        async (event) => {
          if (event.type === 'log') logs.line(event.package, event.line);
          if (event.type === 'started') {
            // The executor's own record (the docker executor's factory image and its id among it), and the target.
            builtBy = {
              ...(event.builtBy ?? {}),
              executor: event.executor,
              interpreter: `${event.interpreter.executable} (${event.interpreter.implementation} ${event.interpreter.pythonFullVersion})`,
              target: target.id,
            };
          }
          emit(event);
          if (event.type !== 'built') return;
          try {
            const added = await store.add(event.path, {
              builtBy,
              ...(event.source ? { source: event.source } : {}),
              overwrite: rebuild.includes(event.package),
            });
            const ingested: IngestedWheel = {
              package: event.package,
              version: event.version,
              filename: added.entry.filename,
              sha256: added.entry.sha256,
              status: added.status,
            };
            summary.ingested.push(ingested);
            emit({ type: 'ingested', job: target.id, ...ingested });
          } catch (err) {
            const failure: BuildFailure = {
              package: event.package,
              version: event.version,
              command: ['ingest', event.filename],
              exitCode: null,
              logTail: [err instanceof Error ? err.message : String(err)],
            };
            ingestFailures.push(failure);
            emit({ type: 'failed', job: target.id, ...failure });
          }
        },
        options.signal,
      );
      summary.failures = logs.explain([...result.failures, ...ingestFailures], noIndex ? 'in the wheelhouse' : 'found');
      summary.packages = result.packages.length;
      summary.cached = result.cached.length;
      if (result.ok && summary.failures.length === 0 && lockFile) {
        await writeLockFile(lockFile, {
          result,
          ingested: summary.ingested,
          key,
          target,
          store,
          recipePath: options.lockNamesRecipe === false ? null : recipePath,
          fromWheel,
        });
      }
    } finally {
      await logs.close(summary.failures);
      await rm(outputDir, { recursive: true, force: true });
    }
  }
  const ok = targets.every((t) => t.failures.length === 0);
  if (!ok || !archive) return { ok, targets };
  const archived = await archiveWheels(store, archive);
  if (archived.copied.length > 0) logger?.info({ archive, copied: archived.copied.length }, 'archived');
  return { ok, targets, archived };
}

async function writeLockFile(
  file: string,
  ctx: {
    result: BuildResult;
    /** What the store took, under the names it stored them (`Pillow-9.4.0-….whl` is kept as `pillow-9.4.0-….whl`). */
    ingested: IngestedWheel[];
    key: string;
    target: Target;
    store: WheelStore;
    recipePath: string | null;
    fromWheel: string | null;
  },
): Promise<void> {
  const fileOf = new Map<string, string>();
  for (const p of ctx.result.packages) if (p.filename) fileOf.set(p.name, p.filename);
  for (const c of ctx.result.cached) fileOf.set(c.package, c.filename);
  for (const b of ctx.result.built) fileOf.set(b.package, b.filename);
  for (const i of ctx.ingested) fileOf.set(i.package, i.filename);
  const packages: LockPackage[] = [];
  for (const p of ctx.result.packages as PlannedPackage[]) {
    const filename = fileOf.get(p.name);
    const entry = filename ? await ctx.store.get(filename) : null;
    if (!filename || !entry) {
      throw new EngineError(
        'LOCK_INCOMPLETE',
        `no wheel of ${p.name} ${p.version} in the wheelhouse for the lock ${file}`,
      );
    }
    const dir = dirname(file);
    // What the wheel was built from (the wheelhouse's record of the build that made it), for `image verify` and SBOMs.
    const source = entry.source ? sourceLockTable(entry.source, dir) : null;
    packages.push({
      name: p.name,
      version: p.version,
      ...(p.requiresPython ? { requiresPython: p.requiresPython } : {}),
      wheels: [
        {
          name: filename,
          path: relative(
            dir,
            join(ctx.store instanceof FsWheelStore ? ctx.store.dir : dirname(file), filename),
          ),
          size: entry.size,
          hashes: { sha256: entry.sha256 },
        },
      ],
      ...(p.dependencies.length > 0 ? { dependencies: p.dependencies.map((name) => ({ name })) } : {}),
      ...(source ? { tool: { [TOOL]: source } } : {}),
    });
  }
  const lock: Lock = {
    lockVersion: '1.0',
    createdBy: TOOL,
    environments: [environmentMarker(ctx.target)],
    packages,
    tool: {
      [TOOL]: {
        key: ctx.key,
        target: ctx.target.name,
        ...(ctx.recipePath ? { recipe: relative(dirname(file), ctx.recipePath) } : {}),
        ...(ctx.fromWheel ? { 'from-wheel': basename(ctx.fromWheel) } : {}),
      },
    },
  };
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, stringifyLock(lock));
  await rename(temp, file);
}

/**
 * BUILD_REQ=False: the wheel a seed-style name stands for (`myapp` or `myapp-1.0`) in the store — the latest
 * version when none is given, the best-ranked file for the target when several match.
 */
export async function findWheelByName(
  store: WheelStore,
  name: string,
  target?: Target,
): Promise<string | null> {
  const dash = name.indexOf('-', 1);
  const candidates = [
    { project: name, version: null as string | null },
    ...(dash > 0 ? [{ project: name.slice(0, dash), version: name.slice(dash + 1) }] : []),
  ];
  for (const c of candidates) {
    const entries = (await store.list(canonicalizeName(c.project))).filter(
      (e) => c.version === null || e.version === c.version,
    );
    const usable = target
      ? entries.filter((e) => wheelCompatibility(parseWheelFilename(e.filename), target).ok)
      : entries;
    if (usable.length > 0) return usable[usable.length - 1]!.filename;
  }
  return null;
}

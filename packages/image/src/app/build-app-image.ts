import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { extractBaseFile, type BaseInfo } from '../layers/base-info.js';
import { readBase } from './read-base.js';
import { type BlobCache, CachedLayer } from '../cache/blob-cache.js';
import { fileSha256, sha256Digest, type Digest } from '../core/digest.js';
import { appendLayers, mutateConfig, type Addendum } from '../core/mutate.js';
import type { Image } from '../core/image.js';
import { writeLayer } from '../layers/write-layer.js';
import type { Compression, Layer, LayerDescriptor } from '../core/layer.js';
import { runtimeEntries } from '../layers/runtime-venv.js';
import { sourceEntries } from '../layers/app-source.js';
import { writeSegmentedWheelsLayer } from '../layers/wheels/segments.js';
import { writeWheelsLayer } from '../layers/wheels/wheels-layer.js';
import type { WheelFile } from '../layers/wheels/wheel-file.js';
import type { VenvScheme } from '../layers/wheels/install.js';
import { bytecodeKey, cacheTagOf, findHostBytecodeCompiler, type BytecodeCompiler, type BytecodeOptions } from '../layers/wheels/bytecode.js';
import { ImageError } from '../errors.js';

export interface WheelInput extends WheelFile {
  /** sha256 hex from a lock or the wheelhouse index: the cache key then needs no read of the wheel. */
  sha256?: string;
  /** pip's REQUESTED marker (default true). */
  requested?: boolean;
}

export type AppInput = { kind: 'source'; dir: string } | { kind: 'wheel'; path: string };

export interface AppImageOptions {
  base: Image;
  /** What `inspectBase` said of `base`, when the caller has asked already (else it is asked, cached in `cache`). */
  baseInfo?: BaseInfo;
  cache: BlobCache;
  /** The dependencies: exactly these wheels (a lock's), installed into one layer. */
  wheels: WheelInput[];
  app?: AppInput;
  /** Owner of /app and the user the container runs as (default 4801, the seed's UID). */
  uid?: number;
  gid?: number;
  cmd?: string[];
  entrypoint?: string[];
  labels?: Record<string, string>;
  /** Seconds; SOURCE_DATE_EPOCH (default 0): every mtime and the created dates. */
  sourceDateEpoch?: number;
  /** gzip level for new layers (default 6). */
  level?: number;
  /**
   * How new layers are stored (default gzip). `none` suits an image bound for a Docker daemon, which keeps
   * layers uncompressed: nothing is compressed here nor decompressed there.
   */
  compression?: Compression;
  /** Silent without one; the apps pass `logger.child({ component: 'image' })`. */
  logger?: Logger;
  /**
   * A venv with pip (default true), as `python -m venv` makes one: pip is installed beside the wheels from
   * `pipWheel` (a pip wheel from the wheelhouse), else the base's own (`BaseInfo.pipWheel`), unless the lock
   * already has pip or the base's /env does. false: no pip (a minimal image).
   */
  pip?: boolean;
  pipWheel?: string;
  /** `pipWheel`'s sha256 (hex) when known (the wheelhouse index has it): else it is read once to key it. */
  pipWheelSha256?: string;
  /** `pipWheel` is not on disk yet (a registry wheelhouse): fetched by this when its bytes must be read. */
  pipWheelLocate?: () => Promise<string>;
  /** Told as the dependencies layer is written: after each wheel (a progress line; silent without one). */
  onWheel?: (wheel: string, done: number, total: number) => void;
  /**
   * Compile the installed modules to `.pyc` as `pip install` does (default true; false is `--no-compile`): PEP 552
   * checked hash-based files, so the layers stay reproducible. Cached with each wheel's segment: only wheels not
   * cached yet are compiled, by `compiler` (asked for then), else by an interpreter of the base's Python minor
   * version on this machine (its exact full version first).
   */
  compile?: boolean;
  compiler?: () => Promise<BytecodeCompiler>;
}

export interface LayerReport {
  role: 'runtime' | 'dependencies' | 'app';
  digest: Digest;
  size: number;
  cached: boolean;
  /** Dependencies layer rebuilt from per-wheel segments: how many wheels were installed, how many reused. */
  segments?: { built: number; reused: number };
}

export interface AppImageResult {
  image: Image;
  base: BaseInfo;
  layers: LayerReport[];
  /** Every wheel installed, in which layer: the lock's and the venv's pip (dependencies), the app wheel (app). */
  wheels: (WheelInput & { role: 'dependencies' | 'app' })[];
}

/** An interpreter of the base's Python on this machine, or a refusal that says what to do. */
async function hostCompiler(base: BaseInfo): Promise<BytecodeCompiler> {
  const found = await findHostBytecodeCompiler(base.pythonVersion, base.pythonFullVersion);
  if (found) return found;
  throw new ImageError('IMAGE_BYTECODE_NO_PYTHON', `no Python ${base.pythonVersion} on this machine to compile the base's bytecode with (${base.python} in the base)`, {
    hint: `install Python ${base.pythonVersion} (pyenv install ${base.pythonFullVersion ?? base.pythonVersion}), build on an engine that has the base, or leave bytecode out (--no-compile)`,
  });
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

async function wheelKey(w: WheelInput): Promise<object> {
  if (w.sha256) return { name: path.basename(w.path), sha256: w.sha256, requested: w.requested ?? true };
  const st = await fs.stat(w.path);
  return { name: path.basename(w.path), size: st.size, mtime: st.mtimeMs, requested: w.requested ?? true };
}

export interface DependenciesLayerOptions {
  cache: BlobCache;
  scheme: VenvScheme;
  /** SOURCE_DATE_EPOCH (default 0). */
  epoch?: number;
  level?: number;
  compression?: Compression;
  /** Told after each wheel is installed into the layer (or copied from the cache). */
  onWheel?: (wheel: string, done: number, total: number) => void;
  /** Compile the installed modules as `pip install` does (the .pyc live in each wheel's segment); none without. */
  bytecode?: BytecodeOptions;
}

/**
 * The dependencies layer: exactly these wheels installed into the venv, keyed by what goes in (so an app-only
 * change reads no wheel at all), else rebuilt from per-wheel segments (after one dependency changes, only that
 * wheel is installed again). What `buildAppImage` uses; callable before it with the same inputs (the CLI starts
 * it from a lock while the base is still being read), and then found by it.
 */
export async function writeDependenciesLayer(
  wheels: WheelInput[],
  options: DependenciesLayerOptions,
): Promise<{ layer: Layer; cached: boolean; segments?: { built: number; reused: number } }> {
  const { cache, scheme } = options;
  const epoch = options.epoch ?? 0;
  const level = options.level ?? 6;
  const compression = options.compression ?? 'gzip';
  const keyInput = {
    v: 1,
    scheme,
    ...(options.bytecode ? { bytecode: bytecodeKey(options.bytecode) } : {}),
    epoch,
    level,
    compression,
    wheels: await Promise.all([...wheels].sort((a, b) => (path.basename(a.path) < path.basename(b.path) ? -1 : 1)).map(wheelKey)),
  };
  const key = sha256Digest(JSON.stringify(keyInput)).slice(7);
  const hit = await cache.readKey<LayerDescriptor>('layers', key);
  if (hit && (await cache.has(hit.digest, hit.size))) return { layer: new CachedLayer(cache, hit), cached: true };
  // Recorded, but the blob is elsewhere (the registry layer cache): mounted or downloaded, else rebuilt.
  const remote = hit && cache.remote ? await cache.remote.layer(hit, cache) : null;
  if (remote) return { layer: remote, cached: true };
  // Per-wheel segments: after one dependency changes, only that wheel is installed again.
  const seg = await writeSegmentedWheelsLayer(wheels, { cache, mtime: epoch, level, compression, scheme, verifySha256: true, ...(options.onWheel ? { onWheel: options.onWheel } : {}), ...(options.bytecode ? { bytecode: options.bytecode } : {}) });
  await cache.writeKey('layers', key, seg.layer.descriptor());
  return { layer: seg.layer, cached: false, segments: { built: seg.built.length, reused: seg.reused.length } };
}

/**
 * Builds an app image without a Docker daemon: base + runtime layer (venv, user, /app) + dependencies layer
 * (the wheels installed by the PEP 427 installer, cached by its inputs) + app layer (source or app wheel), and
 * a config with PATH/HOME/VIRTUAL_ENV, WorkingDir /app, the user, Cmd/Entrypoint, labels and history.
 */
export async function buildAppImage(options: AppImageOptions): Promise<AppImageResult> {
  const { cache, logger } = options;
  const epoch = options.sourceDateEpoch ?? 0;
  const created = new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const uid = options.uid ?? 4801;
  const gid = options.gid ?? uid;
  const level = options.level ?? 6;
  const compression = options.compression ?? 'gzip';
  const layerOptions = { cache, mtime: epoch, level, compression };
  // The base's index when it has one (`image runtime`'s), else a walk over its layers; cached either way.
  const base = options.baseInfo ?? (await readBase(options.base, { cache, blobs: false })).info;
  logger?.debug({ python: base.python, version: base.pythonFullVersion ?? base.pythonVersion, venv: Boolean(base.venv) }, 'base inspected');
  const prefix = '/env';
  const scheme = { prefix, pythonVersion: base.pythonVersion };
  const wheels = [...options.wheels];
  if (options.pip !== false && !base.venvHasPip && !wheels.some((w) => /^pip-[^-]+-/.test(path.basename(w.path)))) {
    const pip = options.pipWheel ?? (base.pipWheel ? await extractBaseFile(options.base, base.pipWheel, cache.filesDir('base-files')) : null);
    // Keyed by its sha256 like a locked wheel (a size and mtime would differ on another machine's cache).
    const locate = pip === options.pipWheel ? options.pipWheelLocate : undefined;
    if (pip) wheels.push({ path: pip, requested: false, sha256: options.pipWheelSha256 ?? (await fileSha256(locate ? await locate() : pip)), ...(locate ? { locate } : {}) });
    else logger?.warn({ base: base.python }, 'no pip wheel in the wheelhouse, the base or the lock: the venv has no pip');
  }
  const additions: Addendum[] = [];
  const reports: LayerReport[] = [];
  let compiler: Promise<BytecodeCompiler> | null = null;
  const bytecode: BytecodeOptions | undefined =
    options.compile === false
      ? undefined
      : {
          cacheTag: cacheTagOf(base.pythonVersion),
          pythonFullVersion: base.pythonFullVersion,
          compiler: () => (compiler ??= (options.compiler ?? (() => hostCompiler(base)))()),
        };

  const runtime = await writeLayer(runtimeEntries(base, { uid, gid }), layerOptions);
  additions.push({
    layer: runtime,
    history: { created, created_by: `dstack-factory: ${base.venv ? '' : `venv ${prefix} -> ${base.python}, `}user webapp (${uid}), /app` },
  });
  reports.push({ role: 'runtime', digest: runtime.digest, size: runtime.size, cached: false });

  const { layer: deps, cached: depsCached, segments } = await writeDependenciesLayer(wheels, {
    cache,
    scheme,
    epoch,
    level,
    compression,
    ...(options.onWheel ? { onWheel: options.onWheel } : {}),
    ...(bytecode ? { bytecode } : {}),
  });
  logger?.info({ digest: deps.digest, size: deps.size, cached: depsCached, wheels: wheels.length }, 'dependencies layer');
  additions.push({ layer: deps, history: { created, created_by: `dstack-factory: install ${wheels.length} wheels into ${prefix}` } });
  reports.push({ role: 'dependencies', digest: deps.digest, size: deps.size, cached: depsCached, ...(segments ? { segments } : {}) });

  if (options.app?.kind === 'source') {
    const app = await writeLayer(await sourceEntries(options.app.dir, { uid, gid }), layerOptions);
    additions.push({ layer: app, history: { created, created_by: `dstack-factory: copy ${path.basename(options.app.dir)} to /app (owner ${uid}:${gid})` } });
    reports.push({ role: 'app', digest: app.digest, size: app.size, cached: false });
  } else if (options.app?.kind === 'wheel') {
    const app = await writeWheelsLayer([options.app.path], { ...layerOptions, scheme, ...(bytecode ? { bytecode } : {}) });
    additions.push({ layer: app, history: { created, created_by: `dstack-factory: install ${path.basename(options.app.path)}` } });
    reports.push({ role: 'app', digest: app.digest, size: app.size, cached: false });
  }

  let image = appendLayers(options.base, additions);
  image = mutateConfig(
    image,
    (c) => {
      const env = (c.Env ?? []).filter((e) => !/^(PATH|HOME|VIRTUAL_ENV)=/.test(e));
      const basePath = (c.Env ?? []).find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
      const next = {
        ...c,
        Env: [`PATH=${prefix}/bin:${basePath}`, 'HOME=/app', `VIRTUAL_ENV=${prefix}`, ...env],
        WorkingDir: '/app',
        User: `${uid}:${gid}`,
        Labels: { ...(c.Labels ?? {}), ...(options.labels ?? {}) },
      };
      if (options.entrypoint) next.Entrypoint = options.entrypoint;
      if (options.cmd) next.Cmd = options.cmd;
      return next;
    },
    { created, history: { created, created_by: 'dstack-factory: config (env, user, workdir, cmd, labels)' } },
  );
  const installed: AppImageResult['wheels'] = wheels.map((w) => ({ ...w, role: 'dependencies' as const }));
  if (options.app?.kind === 'wheel') installed.push({ path: options.app.path, role: 'app' });
  return { image, base, layers: reports, wheels: installed };
}

// `image rebase` (crane's rebase, for Python app images): the layers dstack-factory added to an app image —
// dependencies and app — are put on a new base as they are, nothing reinstalled, when the new base runs the
// same Python on the same platform. Only the small runtime layer (venv link, user, /app) is written again,
// from the new base's own /etc/passwd.
import type { Logger } from 'pino';
import { checkImageLibraries } from '../check/check-image.js';
import type { LibraryReport } from '../check/check-libraries.js';
import type { BlobCache } from '../cache/blob-cache.js';
import type { Image } from '../core/image.js';
import type { Compression } from '../core/layer.js';
import { appendLayers, mutateConfig, type Addendum } from '../core/mutate.js';
import { ImageError } from '../errors.js';
import { readBase } from './read-base.js';
import { inspectBase } from '../layers/base-info.js';
import { runtimeEntries } from '../layers/runtime-venv.js';
import { writeLayer } from '../layers/write-layer.js';
import type { LayerReport } from './build-app-image.js';

/**
 * What must not change under an app's installed wheels: the base's `Target` (@dstack/wheelhouse, read from its
 * config and layers by `inspectBase`, nothing run) — OS, machine, the interpreter's full version, the C library.
 */
export interface RebaseTarget {
  os: string;
  /** The machine as wheel tags name it: x86_64, aarch64, … */
  architecture: string;
  python: string;
  /** "glibc 2.36", or null when the base has no C library the check could read. */
  libc: string | null;
  /** The target's name (e.g. cp3_11_2-manylinux_2_36_x86_64): equal names, equal targets. */
  name: string;
}

export async function rebaseTarget(image: Image, cache?: BlobCache): Promise<RebaseTarget> {
  const { target } = await inspectBase(image, cache ? { cache } : {});
  return {
    os: target.os,
    architecture: target.architecture,
    python: target.pythonFullVersion,
    libc: target.libc ? `${target.libc.kind} ${target.libc.version}` : null,
    name: target.name,
  };
}

export interface RebaseOptions {
  /** The app image, as dstack-factory built it (its history names the layers it added). */
  image: Image;
  newBase: Image;
  cache: BlobCache;
  /** Run the shared-library check on the result (default true). */
  checkLibraries?: boolean;
  compression?: Compression;
  sourceDateEpoch?: number;
  logger?: Logger;
}

export interface RebaseResult {
  image: Image;
  from: RebaseTarget;
  to: RebaseTarget;
  /** The new runtime layer, then the kept ones. */
  layers: LayerReport[];
  /** The library check on the result, when it ran. */
  libraries: LibraryReport | null;
}

const OURS = /^dstack-factory: /;

/** Splits an app image into its base's layers and the ones dstack-factory added (with their history). */
function splitApp(image: Image): { baseLayers: number; added: { role: LayerReport['role']; addendum: Addendum }[] } {
  const history = image.config.history ?? [];
  const layerHistory = history.filter((h) => !h.empty_layer);
  if (layerHistory.length !== image.layers.length) {
    throw new ImageError('IMAGE_REBASE_UNKNOWN', `the image's history names ${layerHistory.length} layers, it has ${image.layers.length}: cannot tell its base's layers from its own`, {
      hint: 'rebase works on images dstack-factory image app built',
    });
  }
  let k = 0;
  while (k < layerHistory.length && OURS.test(layerHistory[layerHistory.length - 1 - k]!.created_by ?? '')) k++;
  const first = layerHistory.length - k;
  if (k < 2 || !/user webapp/.test(layerHistory[first]!.created_by ?? '')) {
    throw new ImageError('IMAGE_REBASE_UNKNOWN', 'the image has no runtime and dependency layers made by dstack-factory image app', {
      hint: 'rebase works on images dstack-factory image app built',
    });
  }
  const added = image.layers.slice(first + 1).map((layer, i) => {
    const h = layerHistory[first + 1 + i]!;
    return { role: (i === 0 ? 'dependencies' : 'app') as LayerReport['role'], addendum: { layer, history: h } };
  });
  return { baseLayers: first, added };
}

function differences(a: RebaseTarget, b: RebaseTarget): string[] {
  const out: string[] = [];
  if (a.os !== b.os || a.architecture !== b.architecture) out.push(`platform ${a.os}/${a.architecture} -> ${b.os}/${b.architecture}`);
  if (a.python !== b.python) out.push(`Python ${a.python} -> ${b.python}`);
  if (a.libc !== b.libc) out.push(`C library ${a.libc ?? 'unknown'} -> ${b.libc ?? 'unknown'}`);
  if (out.length === 0 && a.name !== b.name) out.push(`target ${a.name} -> ${b.name}`);
  return out;
}

/**
 * Puts an app image's dependency and app layers, unchanged, on `newBase`, with a new runtime layer and the
 * app's config (Env PATH/HOME/VIRTUAL_ENV, user, workdir, cmd, entrypoint, labels) over the new base's.
 * Refused (IMAGE_REBASE_TARGET) when the new base's Target (platform, Python, C library) differs from the old one's;
 * the library check runs again on the result (IMAGE_LIBRARY_MISSING).
 */
export async function rebaseAppImage(options: RebaseOptions): Promise<RebaseResult> {
  const { image, newBase, cache } = options;
  const { baseLayers, added } = splitApp(image);
  // The new base's facts from its base index when it has one (a runtime `image runtime` rebuilt), else its layers;
  // cached, so that its target and runtime layer below read them from the cache.
  const [from, to] = await Promise.all([rebaseTarget(image, cache), readBase(newBase, { cache, blobs: false }).then(() => rebaseTarget(newBase, cache))]);
  const diff = differences(from, to);
  if (diff.length > 0) {
    throw new ImageError('IMAGE_REBASE_TARGET', `the new base is not the same target as the image's: ${diff.join(', ')}`, {
      hint: 'the installed wheels were chosen for the old target: build the app again on the new base (image app)',
    });
  }
  options.logger?.info({ baseLayers, kept: added.length, target: to.name }, 'rebase');
  const epoch = options.sourceDateEpoch ?? 0;
  const created = new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const [uid, gid] = (image.config.config?.User ?? '4801:4801').split(':').map(Number) as [number, number | undefined];
  const info = await inspectBase(newBase, { cache });
  const runtime = await writeLayer(runtimeEntries(info, { uid, gid: gid ?? uid }), { cache, mtime: epoch, compression: options.compression ?? 'gzip' });
  const oldRuntime = (image.config.history ?? []).filter((h) => !h.empty_layer)[baseLayers]!;
  let next = appendLayers(newBase, [{ layer: runtime, history: { ...oldRuntime, created } }, ...added.map((a) => a.addendum)]);
  const old = image.config.config ?? {};
  const ours = (old.Env ?? []).filter((e) => /^(PATH|HOME|VIRTUAL_ENV)=/.test(e));
  next = mutateConfig(
    next,
    (c) => {
      const cfg = {
        ...c,
        Env: [...ours, ...(c.Env ?? []).filter((e) => !/^(PATH|HOME|VIRTUAL_ENV)=/.test(e))],
        Labels: { ...(c.Labels ?? {}), ...(old.Labels ?? {}) },
      };
      for (const k of ['User', 'WorkingDir', 'Cmd', 'Entrypoint', 'ExposedPorts'] as const) {
        if (old[k] !== undefined) (cfg as Record<string, unknown>)[k] = old[k];
      }
      return cfg;
    },
    { created, history: { created, created_by: 'dstack-factory: config (env, user, workdir, cmd, labels) — rebased' } },
  );
  const layers: LayerReport[] = [
    { role: 'runtime', digest: runtime.digest, size: runtime.size, cached: false },
    ...added.map((a) => ({ role: a.role, digest: a.addendum.layer.digest, size: a.addendum.layer.size, cached: true })),
  ];
  let libraries: LibraryReport | null = null;
  if (options.checkLibraries !== false) libraries = await checkImageLibraries(next, { cache });
  return { image: next, from, to, layers, libraries };
}

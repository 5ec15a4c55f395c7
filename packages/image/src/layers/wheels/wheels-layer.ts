import path from 'node:path';
import type { BlobCache, CachedLayer } from '../../cache/blob-cache.js';
import { ImageError } from '../../errors.js';
import { forEachLimit, PLAN_CONCURRENCY } from './for-each-limit.js';
import { writeLayer, type LayerEntry } from '../write-layer.js';
import type { Compression } from '../../core/layer.js';
import { planWheelInstall, type InstallOptions, type PlannedWheel } from './install.js';
import { compilePlannedWheels, type BytecodeOptions } from './bytecode.js';

export interface WheelsLayerOptions extends Omit<InstallOptions, 'requested'> {
  cache: BlobCache;
  mtime?: number;
  level?: number;
  compression?: Compression;
  /** Which wheels get a REQUESTED file (by wheel file name); default: all. */
  requested?: (wheelFile: string) => boolean;
  /** Compile the installed modules as `pip install` does; none without. */
  bytecode?: BytecodeOptions;
}

/**
 * Installs wheels straight into one reproducible layer: every wheel is planned (zip central directory, RECORD,
 * entry points), then all files are streamed from the zips into the tar in sorted order. Two wheels writing the
 * same path are refused (pip would silently overwrite one with the other).
 */
export async function writeWheelsLayer(wheels: string[], options: WheelsLayerOptions): Promise<CachedLayer> {
  const planned: PlannedWheel[] = [];
  try {
    // Planned (and validated) a few at a time: validation waits on reads and the thread pool's inflating.
    const sorted = [...wheels].sort();
    const slots: (PlannedWheel | undefined)[] = new Array(sorted.length);
    try {
      await forEachLimit(sorted, PLAN_CONCURRENCY, async (w, i) => {
        slots[i] = await planWheelInstall(w, { ...options, requested: options.requested ? options.requested(path.basename(w)) : true });
      });
    } finally {
      for (const s of slots) if (s) planned.push(s);
    }
    if (options.bytecode && planned.some((p) => p.pySources.length > 0)) {
      const compiling = compilePlannedWheels(planned, await options.bytecode.compiler());
      compiling.unbound(); // every .pyc is taken once all are back
      await compiling.done;
    }
    const owners = new Map<string, string>();
    const entries: LayerEntry[] = [];
    for (const p of planned) {
      for (const e of p.entries) {
        const other = owners.get(e.path);
        if (other !== undefined) {
          throw new ImageError('WHEEL_CONFLICT', `${p.wheel} and ${other} both install /${e.path}`);
        }
        owners.set(e.path, p.wheel);
        entries.push(e);
      }
    }
    return await writeLayer(entries, { cache: options.cache, mtime: options.mtime ?? 0, level: options.level, compression: options.compression });
  } finally {
    for (const p of planned) p.close();
  }
}

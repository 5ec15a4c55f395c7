// What an app image build installed, joined with the lock's and the wheelhouse's records of each wheel.
import path from 'node:path';
import { canonicalizeName, type Lock } from '@dstack/recipe';
import { parseWheelFilename, sourceFromLockTable, type WheelEntry } from '@dstack/wheelhouse';
import { fileSha256 } from '../core/digest.js';
import type { AppImageResult } from '../app/build-app-image.js';
import { wheelFile } from '../layers/wheels/wheel-file.js';
import type { InstalledDistribution } from './sbom.js';

const TOOL = 'dstack-factory';

/**
 * The distributions an app image build installed (`buildAppImage`'s `wheels`), with the layer each is in, the
 * lock's dependencies and source (`[packages.tool.dstack-factory]`), and the wheelhouse record's builder (and
 * source, when the lock has none) — a record counts only when its sha256 is the wheel's.
 */
export async function installedDistributions(options: {
  result: Pick<AppImageResult, 'wheels' | 'layers'>;
  lock?: { lock: Lock; file: string };
  /** The wheelhouse's record of a wheel file name (FsWheelStore.get), or null. */
  record?: (filename: string) => Promise<WheelEntry | null>;
}): Promise<InstalledDistribution[]> {
  const packages = new Map((options.lock?.lock.packages ?? []).map((p) => [canonicalizeName(p.name) as string, p]));
  const lockDir = options.lock ? path.dirname(options.lock.file) : '';
  const out: InstalledDistribution[] = [];
  for (const w of options.result.wheels) {
    const wheel = path.basename(w.path);
    const parsed = parseWheelFilename(wheel);
    const layer = options.result.layers.find((l) => l.role === w.role);
    if (!layer) throw new Error(`no ${w.role} layer for ${wheel}`);
    const sha256 = w.sha256 ?? (await fileSha256(await wheelFile(w)));
    const pkg = packages.get(parsed.normalizedName);
    const record = options.record ? await options.record(wheel).catch(() => null) : null;
    const trusted = record && record.sha256 === sha256 ? record : null;
    const source = (pkg ? sourceFromLockTable(pkg.tool?.[TOOL], lockDir) : null) ?? trusted?.source ?? null;
    out.push({
      name: parsed.normalizedName,
      version: pkg?.version ?? parsed.version,
      wheel,
      sha256,
      layer: layer.digest,
      role: w.role,
      ...(pkg?.dependencies ? { dependencies: pkg.dependencies.map((d) => canonicalizeName(d.name) as string) } : {}),
      source,
      builtBy: trusted?.builtBy ?? null,
    });
  }
  return out;
}

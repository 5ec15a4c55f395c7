// `image verify`: the chain from an app image back to its lock. The lock digest label names the lock; each locked
// wheel (found in the wheelhouse) has the lock's sha256 (and the wheelhouse record's); installing it gives exactly
// the files (RECORD included) the dependencies layer holds; and the layer holds nothing else.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { parseWheelFilename, type WheelEntry } from '@dstack/wheelhouse';
import type { BlobCache } from '../cache/blob-cache.js';
import { fileSha256, HashingStream } from '../core/digest.js';
import type { Image } from '../core/image.js';
import { ImageError } from '../errors.js';
import { extractBaseFile, inspectBase } from '../layers/base-info.js';
import { planWheelInstall, pycPath } from '../layers/wheels/install.js';
import type { LayerEntry } from '../layers/write-layer.js';
import { wheelsFromLock } from '../app/lock.js';

export const LOCK_DIGEST_LABEL = 'org.dstack-factory.lock.digest';

/** One break in the chain: the file at fault (an image path, the lock, a wheel) and what is wrong with it. */
export interface VerifyProblem {
  file: string;
  message: string;
}

export interface VerifiedDistribution {
  name: string;
  version: string;
  wheel: string;
  sha256: string;
  /** Files it installed (its RECORD's rows with content). */
  files: number;
  /** `lock`: a locked wheel; `pip`: the venv's pip, added by `image app` (from the wheelhouse or the base). */
  from: 'lock' | 'pip';
}

export interface VerifyReport {
  ok: boolean;
  problems: VerifyProblem[];
  distributions: VerifiedDistribution[];
  /** Files in the dependencies layer, and its digest. */
  files: number;
  layer: string | null;
}

interface LayerFile {
  sha256: string;
  size: number;
  type: string;
}

/** Every entry of a layer (directories aside) with the sha256 of its content, streamed. */
async function layerFiles(image: Image, index: number): Promise<Map<string, LayerFile>> {
  const files = new Map<string, LayerFile>();
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const name = header.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
    if (header.type === 'directory') {
      stream.resume();
      stream.on('end', next);
      return;
    }
    const h = new HashingStream();
    pipeline(stream, h, new Writable({ write: (_c, _e, cb) => cb() }))
      .then(() => {
        files.set(name, { sha256: h.digest().slice(7), size: h.bytes, type: header.type ?? 'file' });
        next();
      })
      .catch(next);
  });
  await pipeline(await image.layers[index]!.uncompressed(), extract);
  return files;
}

/** The image's dependencies layer: the one whose history says `dstack-factory: install N wheels into …`. */
function dependenciesLayer(image: Image): number | null {
  const history = (image.config.history ?? []).filter((h) => h.empty_layer !== true);
  if (history.length !== image.layers.length) return null;
  const i = history.findIndex((h) => /^dstack-factory: install \d+ wheels into /.test(h.created_by ?? ''));
  return i < 0 ? null : i;
}

const sha256Hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * Checks an app image against its lock (see the module comment). Never throws for a broken chain: every break is a
 * problem naming the file at fault; `ok` only when there is none. Throws for what stops the check itself
 * (an unreadable lock or image).
 */
export async function verifyAppImage(options: {
  image: Image;
  lockFile: string;
  wheelhouse: string;
  cache: BlobCache;
  /** The wheelhouse's record of a wheel (FsWheelStore.get): its sha256 must be the lock's. */
  record?: (filename: string) => Promise<WheelEntry | null>;
}): Promise<VerifyReport> {
  const { image, lockFile, wheelhouse, cache } = options;
  const problems: VerifyProblem[] = [];
  const report = (): VerifyReport => ({ ok: problems.length === 0, problems, distributions, files: actual?.size ?? 0, layer: layerDigest });
  const distributions: VerifiedDistribution[] = [];
  let actual: Map<string, LayerFile> | null = null;
  let layerDigest: string | null = null;

  const lockDigest = `sha256:${sha256Hex(await fs.readFile(lockFile))}`;
  const label = image.config.config.Labels?.[LOCK_DIGEST_LABEL];
  if (label === undefined) problems.push({ file: lockFile, message: `the image has no ${LOCK_DIGEST_LABEL} label: it was not made from a lock` });
  else if (label !== lockDigest) problems.push({ file: lockFile, message: `its sha256 is ${lockDigest}, the image was made from the lock ${label}` });

  const info = await inspectBase(image, { cache });
  let locked: Awaited<ReturnType<typeof wheelsFromLock>>;
  try {
    locked = await wheelsFromLock(lockFile, wheelhouse, info);
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    problems.push({ file: lockFile, message: err.message });
    return report();
  }
  const index = dependenciesLayer(image);
  if (index === null) {
    problems.push({ file: '(image)', message: 'no dependencies layer (history "dstack-factory: install N wheels into /env"): not an image app image' });
    return report();
  }
  layerDigest = image.layers[index]!.digest;
  actual = await layerFiles(image, index);
  const scheme = { prefix: '/env', pythonVersion: info.pythonVersion };

  // What each wheel installs, as the installer writes it: path -> a check of the layer's file.
  const expected = new Map<string, { wheel: string; check: (f: LayerFile) => string | null }>();
  const expect = async (wheelPath: string, requested: boolean, from: 'lock' | 'pip', sha256: string): Promise<void> => {
    const wheel = path.basename(wheelPath);
    const plan = await planWheelInstall(wheelPath, { scheme, requested });
    // The .pyc `image app` compiles (unless --no-compile): each one the layer has belongs to its wheel, and RECORD
    // lists it as pip does (no hash: pip records none either).
    const tag = `cpython-${info.pythonVersion.replace('.', '')}`;
    const layer = actual!;
    plan.addBytecode(tag, plan.pySources.map((s) => {
      const f = layer.get(pycPath(s.path, tag).slice(1));
      return f ? { size: f.size, open: () => { throw new Error('a .pyc is not read back'); } } : null;
    }));
    try {
      let files = 0;
      for (const e of plan.entries as LayerEntry[]) {
        if (e.type === 'directory') continue;
        files += 1;
        const check = (f: LayerFile): string | null => {
          if (e.data) {
            const want = sha256Hex(e.data);
            return f.sha256 === want && f.size === e.data.length ? null : `sha256 ${f.sha256} (${f.size} bytes), ${wheel} installs ${want} (${e.data.length} bytes)`;
          }
          const wrong = `sha256 ${f.sha256} (${f.size} bytes) is not what ${wheel}'s RECORD gives it`;
          if (e.size !== undefined && f.size !== e.size) return wrong;
          try {
            e.verify?.(f.sha256, f.size);
            return null;
          } catch {
            return wrong;
          }
        };
        expected.set(e.path, { wheel, check });
      }
      distributions.push({ name: parseWheelFilename(wheel).normalizedName, version: plan.version, wheel, sha256, files, from });
    } finally {
      plan.close();
    }
  };

  for (const w of locked.wheels) {
    const wheel = path.basename(w.path);
    const got = await fileSha256(w.path);
    if (got !== w.sha256) {
      problems.push({ file: w.path, message: `sha256 ${got}, the lock says ${w.sha256}` });
      continue;
    }
    const record = options.record ? await options.record(wheel).catch(() => null) : null;
    if (record && record.sha256 !== w.sha256) problems.push({ file: w.path, message: `the wheelhouse records sha256 ${record.sha256}, the lock says ${w.sha256}` });
    await expect(w.path, w.requested ?? true, 'lock', w.sha256);
  }

  // The venv's pip, which `image app` adds beside the lock's wheels (from the wheelhouse, else the base's own).
  const pipDistInfo = [...actual.keys()].map((p) => /\/site-packages\/pip-([^/]+)\.dist-info\/RECORD$/.exec(p)?.[1]).find((v) => v !== undefined);
  if (pipDistInfo && !distributions.some((d) => d.name === 'pip')) {
    const inWheelhouse = (await fs.readdir(wheelhouse).catch(() => [] as string[])).find((f) => f.startsWith(`pip-${pipDistInfo}-`) && f.endsWith('.whl'));
    const candidates = [
      ...(inWheelhouse ? [path.join(wheelhouse, inWheelhouse)] : []),
      ...(info.pipWheel && path.basename(info.pipWheel).startsWith(`pip-${pipDistInfo}-`) ? [await extractBaseFile(image, info.pipWheel, path.join(cache.dir, 'base-files'))] : []),
    ].filter((c): c is string => c !== null);
    const pipWheel = candidates[0];
    if (!pipWheel) problems.push({ file: `/env/lib/python${info.pythonVersion}/site-packages/pip-${pipDistInfo}.dist-info`, message: `no pip ${pipDistInfo} wheel in the wheelhouse or the base accounts for it` });
    else await expect(pipWheel, false, 'pip', await fileSha256(pipWheel));
  }

  for (const [p, e] of [...expected].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const f = actual.get(p);
    if (!f) problems.push({ file: `/${p}`, message: `${e.wheel} installs it; the dependencies layer does not have it` });
    else {
      const wrong = f.type === 'file' ? e.check(f) : `a ${f.type}, ${e.wheel} installs a file`;
      if (wrong) problems.push({ file: `/${p}`, message: wrong });
    }
  }
  for (const p of [...actual.keys()].sort()) {
    if (!expected.has(p)) problems.push({ file: `/${p}`, message: 'no wheel of the lock accounts for it' });
  }
  distributions.sort((a, b) => (a.name < b.name ? -1 : 1));
  return report();
}

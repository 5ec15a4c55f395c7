import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { once } from 'node:events';
import { createGunzip, gzipSync } from 'node:zlib';
import type { BlobCache } from './blobs.js';
import { HashingStream, sha256Digest, type Digest } from './digest.js';
import { ImageError } from './errors.js';
import { CachedLayer, MEDIA_TYPES, writeLayer, type Compression } from './layer.js';
import { planWheelInstall, type InstallOptions } from './wheel-install.js';

export interface SegmentedWheel {
  path: string;
  /** sha256 hex (from a lock): then a cached segment is found without reading the wheel. */
  sha256?: string;
  requested?: boolean;
}

export interface SegmentedLayerOptions extends Omit<InstallOptions, 'requested'> {
  cache: BlobCache;
  mtime?: number;
  level?: number;
  compression?: Compression;
  /** Check a wheel's sha256 (when given) before installing it. */
  verifySha256?: boolean;
}

/** Wheels installed into segments at once. */
const SEGMENT_CONCURRENCY = 2;

export async function checkSha256(w: SegmentedWheel): Promise<void> {
  if (!w.sha256) return;
  const h = new HashingStream();
  await pipeline(createReadStream(w.path), h, new Writable({ write: (_c, _e, cb) => cb() }));
  if (h.digest() !== `sha256:${w.sha256}`) {
    throw new ImageError('WHEEL_HASH_MISMATCH', `${w.path}: sha256 is ${h.digest().slice(7)}, the lock says ${w.sha256}`, {
      hint: 'the wheelhouse and the lock disagree; rebuild the lock or restore the wheel',
    });
  }
}

interface SegmentRecord {
  digest: Digest;
  size: number;
  /** Installed paths (no directories): conflicts between wheels are found without opening cached ones. */
  paths: string[];
}

async function keyOf(w: SegmentedWheel, options: SegmentedLayerOptions): Promise<string> {
  let id: object;
  if (w.sha256) id = { sha256: w.sha256 };
  else {
    const st = await fs.stat(w.path);
    id = { size: st.size, mtime: st.mtimeMs };
  }
  return sha256Digest(
    JSON.stringify({
      v: 1,
      wheel: path.basename(w.path),
      id,
      scheme: options.scheme,
      mtime: options.mtime ?? 0,
      level: options.level ?? 6,
      compression: options.compression ?? 'gzip',
      requested: w.requested ?? true,
      installer: options.installer ?? null,
      uid: options.uid ?? 0,
      gid: options.gid ?? 0,
    }),
  ).slice(7);
}

/**
 * The dependencies layer as concatenated per-wheel segments: each wheel's entries are a tar fragment (no
 * end-of-archive), compressed as its own gzip members (or left plain), and cached by the wheel's identity, so that after one
 * dependency changes only that wheel is installed again; the layer is the segments in wheel-name order plus the
 * end-of-archive, and its diffID is hashed from the segments' uncompressed bytes. Shared parent directories
 * are written once, in a first segment made from the cached segments' file lists.
 */
export async function writeSegmentedWheelsLayer(
  wheels: SegmentedWheel[],
  options: SegmentedLayerOptions,
): Promise<{ layer: CachedLayer; built: string[]; reused: string[] }> {
  const { cache } = options;
  const gzipped = (options.compression ?? 'gzip') === 'gzip';
  const layerOptions = { cache, mtime: options.mtime ?? 0, level: options.level ?? 6, compression: options.compression };
  const sorted = [...wheels].sort((a, b) => (path.basename(a.path) < path.basename(b.path) ? -1 : 1));
  const slots: ({ wheel: string; record: SegmentRecord; built: boolean } | undefined)[] = new Array(sorted.length);
  const one = async (w: SegmentedWheel): Promise<{ wheel: string; record: SegmentRecord; built: boolean }> => {
    const wheel = path.basename(w.path);
    const key = await keyOf(w, options);
    const cached = await cache.readKey<SegmentRecord>('segments', key);
    if (cached && (await cache.has(cached.digest))) return { wheel, record: cached, built: false };
    if (options.verifySha256) await checkSha256(w);
    const plan = await planWheelInstall(w.path, { ...options, requested: w.requested ?? true });
    let record: SegmentRecord;
    try {
      // Files only: directories go into one segment of their own (Docker refuses a path twice in a layer).
      const files = plan.entries.filter((e) => e.type !== 'directory');
      const seg = await writeLayer(files, { ...layerOptions, segment: true, impliedDirectories: false });
      record = { digest: seg.digest, size: seg.size, paths: files.map((e) => e.path) };
    } finally {
      plan.close();
    }
    await cache.writeKey('segments', key, record);
    return { wheel, record, built: true };
  };
  // Two wheels at once (validation, inflating and gzip overlap); results kept in wheel-name order.
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < sorted.length && !failed) {
      const i = next++;
      try {
        slots[i] = await one(sorted[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(SEGMENT_CONCURRENCY, sorted.length) }, worker));
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
  const records: { wheel: string; record: SegmentRecord }[] = [];
  const built: string[] = [];
  const reused: string[] = [];
  for (const s of slots) {
    const { wheel, record, built: b } = s!;
    (b ? built : reused).push(wheel);
    records.push({ wheel, record });
  }
  const owners = new Map<string, string>();
  for (const { wheel, record } of records) {
    for (const p of record.paths) {
      const other = owners.get(p);
      if (other !== undefined) throw new ImageError('WHEEL_CONFLICT', `${wheel} and ${other} both install /${p}`);
      owners.set(p, wheel);
    }
  }
  // Every parent directory once, first (a small segment made from the records, no wheel read).
  const dirs = new Set<string>();
  for (const { record } of records) {
    for (const p of record.paths) {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
  }
  const dirSegment = await writeLayer(
    [...dirs].map((d) => ({ path: d, type: 'directory' as const, uid: options.uid ?? 0, gid: options.gid ?? 0 })),
    { ...layerOptions, segment: true },
  );
  records.unshift({ wheel: '(directories)', record: { digest: dirSegment.digest, size: dirSegment.size, paths: [] } });
  // The end-of-archive (its own gzip member when compressed).
  const end = gzipped ? gzipSync(Buffer.alloc(1024), { level: options.level ?? 6 }) : Buffer.alloc(1024);
  const compressed = createHash('sha256');
  // Uncompressed segments are their own diffID bytes: one hash serves both.
  const uncompressed = gzipped ? createHash('sha256') : compressed;
  const tmp = await cache.tempPath();
  const out = createWriteStream(tmp);
  let size = 0;
  try {
    for (const { record } of records) {
      for await (const chunk of createReadStream(cache.pathOf(record.digest)) as AsyncIterable<Buffer>) {
        compressed.update(chunk);
        size += chunk.length;
        if (!out.write(chunk)) await once(out, 'drain');
      }
      if (!gzipped) continue;
      const gunzip = createReadStream(cache.pathOf(record.digest)).pipe(createGunzip());
      for await (const chunk of gunzip as AsyncIterable<Buffer>) uncompressed.update(chunk);
    }
    compressed.update(end);
    if (gzipped) uncompressed.update(Buffer.alloc(1024));
    size += end.length;
    out.end(end);
    await once(out, 'finish');
  } catch (err) {
    out.destroy();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const digest = `sha256:${compressed.digest('hex')}` as Digest;
  await cache.commit(tmp, digest);
  const layer = new CachedLayer(cache, {
    digest,
    diffId: gzipped ? (`sha256:${uncompressed.digest('hex')}` as Digest) : digest,
    size,
    mediaType: gzipped ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayer,
  });
  return { layer, built, reused };
}

import { createReadStream, promises as fs } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { once } from 'node:events';
import { createGunzip, gzipSync } from 'node:zlib';
import { type BlobCache, CachedLayer } from '../../cache/blob-cache.js';
import { HashingStream, sha256Digest, type Digest } from '../../core/digest.js';
import { ImageError } from '../../errors.js';
import { PLAN_CONCURRENCY } from './for-each-limit.js';
import { forEachWheel, wheelFile, type WheelFile } from './wheel-file.js';
import { MEDIA_TYPES, type Compression } from '../../core/layer.js';
import { packEntries, type LayerSink } from '../write-layer.js';
import { planWheelInstall, pycPath, type InstallOptions, type PlannedWheel } from './install.js';
import { bytecodeKey, compilePlannedWheels, type BytecodeOptions, type Compiling } from './bytecode.js';

export interface SegmentedWheel extends WheelFile {
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
  /** Told after each wheel's segment is written or copied (for a progress line). */
  onWheel?: (wheel: string, done: number, total: number) => void;
  /** Compile the installed modules as `pip install` does (its segment then holds the .pyc files); none without. */
  bytecode?: BytecodeOptions;
}

export async function checkSha256(w: { path: string; sha256?: string }): Promise<void> {
  if (!w.sha256) return;
  const h = new HashingStream();
  await pipeline(createReadStream(w.path), h, new Writable({ write: (_c, _e, cb) => cb() }));
  if (h.digest() !== `sha256:${w.sha256}`) {
    throw new ImageError('WHEEL_HASH_MISMATCH', `${w.path}: sha256 is ${h.digest().slice(7)}, the lock says ${w.sha256}`, {
      hint: 'the wheelhouse and the lock disagree; rebuild the lock or restore the wheel',
    });
  }
}

/** Where a wheel's installed segment lives: bytes [offset, offset + length) of a layer blob, and what it holds. */
interface SegmentRecord {
  blob: Digest;
  offset: number;
  length: number;
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
      v: 2,
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
      // The .pyc are part of the segment: cached per wheel and target Python (checked hash-based, v1). Segments
      // made for a base of another patch release are not taken: its compiler may have written other bytes.
      ...(options.bytecode ? { bytecode: bytecodeKey(options.bytecode) } : {}),
    }),
  ).slice(7);
}

/** One wheel of the layer: its segment found in an earlier layer blob, or its install planned. */
interface Slot {
  wheel: string;
  key: string;
  cached?: SegmentRecord;
  plan?: PlannedWheel;
  /** Its index among the compiled plans, and when its .pyc are added. */
  compiled?: number;
  ready?: Promise<void>;
  /** Once written into the blob: its installed paths (no directories). */
  paths?: string[];
}

/**
 * The dependencies layer as concatenated per-wheel segments, written in one pass: each wheel's entries are a
 * tar fragment (no end-of-archive), its own gzip members when compressed, so that segments concatenate into one
 * layer. A segment is remembered by the wheel's identity as a byte range of the layer blob it was written into:
 * after one dependency changes, only that wheel is installed again and the others are copied from the previous
 * blob. Wheels go in file-name order after a first segment with every parent directory once (Docker refuses a
 * path twice in a layer); the digest and diffID are hashed as the bytes are written, never in a second pass
 * over new segments.
 */
export async function writeSegmentedWheelsLayer(
  wheels: SegmentedWheel[],
  options: SegmentedLayerOptions,
): Promise<{ layer: CachedLayer; built: string[]; reused: string[] }> {
  const { cache } = options;
  const gzipped = (options.compression ?? 'gzip') === 'gzip';
  const packOptions = { mtime: options.mtime ?? 0, level: options.level ?? 6, compression: options.compression, segment: true };
  const sorted = [...wheels].sort((a, b) => (path.basename(a.path) < path.basename(b.path) ? -1 : 1));
  const slots: Slot[] = new Array(sorted.length);
  try {
    // Cached segments are looked up and the other wheels planned (validated, central directory read) a few at
    // a time: every installed path must be known before the first byte (the directories come first).
    // A wheel read here that is nowhere (no wheelhouse on a runner that expected the layer cache to have it all)
    // stops nothing else: every such wheel is named in one error after.
    await forEachWheel(sorted, PLAN_CONCURRENCY, async (w, i) => {
      const wheel = path.basename(w.path);
      const key = await keyOf(w, options);
      const cached = await cache.readKey<SegmentRecord>('segments', key);
      let blob = cached ? await fs.stat(cache.pathOf(cached.blob)).catch(() => null) : null;
      // A segment recorded in a blob this disk lacks: downloaded from the registry layer cache when it has it.
      if (cached && !blob && cache.remote && (await cache.remote.fetch(cached.blob, cache))) blob = await fs.stat(cache.pathOf(cached.blob)).catch(() => null);
      if (cached && blob && blob.size >= cached.offset + cached.length) {
        slots[i] = { wheel, key, cached };
        return;
      }
      const file = await wheelFile(w);
      if (options.verifySha256) await checkSha256({ path: file, ...(w.sha256 ? { sha256: w.sha256 } : {}) });
      const plan = await planWheelInstall(file, { ...options, requested: w.requested ?? true });
      slots[i] = { wheel, key, plan };
    });
    const planned = slots.filter((s) => s.plan);
    // Compiled while the layer is written: a wheel's segment goes out as soon as its .pyc are back.
    let compiling: Compiling | null = null;
    let pycTag: string | null = null;
    if (options.bytecode && planned.some((s) => s.plan!.pySources.length > 0)) {
      const compiler = await options.bytecode.compiler();
      pycTag = compiler.cacheTag;
      compiling = compilePlannedWheels(planned.map((s) => s.plan!), compiler);
      planned.forEach((s, i) => {
        s.compiled = i;
        s.ready = compiling!.ready[i];
      });
    }
    // What each new segment will hold: its files, and every module's .pyc (one that fails to compile gets
    // none, as with pip: checked once the compiler is done, the layer then written again if its directories differ).
    // Files only: directories go into the first segment.
    const filesOf = (plan: PlannedWheel) => plan.entries.filter((e) => e.type !== 'directory');
    const pathsOf = (plan: PlannedWheel): string[] => filesOf(plan).map((e) => e.path);
    const expected = (s: Slot): string[] => {
      const files = pathsOf(s.plan!);
      if (pycTag === null || s.compiled === undefined) return files;
      const pycs = s.plan!.pySources.map((src) => pycPath(src.path, pycTag!).replace(/^\//, ''));
      return [...new Set([...files, ...pycs])];
    };
    const layout = (pathsOf: (s: Slot) => string[]): Set<string> => {
      const owners = new Map<string, string>();
      const dirs = new Set<string>();
      for (const s of slots) {
        for (const p of pathsOf(s)) {
          const other = owners.get(p);
          if (other !== undefined) throw new ImageError('WHEEL_CONFLICT', `${s.wheel} and ${other} both install /${p}`);
          owners.set(p, s.wheel);
          const parts = p.split('/');
          for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
        }
      }
      return dirs;
    };
    let dirs: Set<string>;
    try {
      dirs = layout((s) => s.cached?.paths ?? expected(s));
    } catch (err) {
      // A conflict among the expected paths may be a .pyc that will not be written: decide on what is.
      if (!compiling) throw err;
      compiling.unbound();
      await compiling.done;
      dirs = layout((s) => s.cached?.paths ?? pathsOf(s.plan!));
    }

    const owner = { uid: options.uid ?? 0, gid: options.gid ?? 0 };
    /**
     * One pass into a new blob: the directories segment, then per slot its segment (a cached one copied from its
     * blob, `from` when given: a blob holding every slot's segment at those ranges), then the end-of-archive.
     */
    const writeAll = async (directories: Set<string>, from?: { blob: Digest; ranges: { offset: number; length: number }[] }) => {
      const writer = await cache.writer();
      const diff = gzipped ? createHash('sha256') : null;
      const sink: LayerSink = { write: (c) => writer.write(c), ...(diff ? { uncompressed: (c: Buffer) => diff.update(c) } : {}) };
      const ranges: { slot: Slot; offset: number; length: number }[] = [];
      try {
        await packEntries([...directories].map((d) => ({ path: d, type: 'directory' as const, ...owner })), packOptions, sink);
        for (const [i, s] of slots.entries()) {
          const offset = writer.bytes;
          if (from) await copySegment(cache.pathOf(from.blob), from.ranges[i]!.offset, from.ranges[i]!.length, sink);
          else if (s.cached) await copySegment(cache.pathOf(s.cached.blob), s.cached.offset, s.cached.length, sink);
          else {
            if (s.ready) await s.ready;
            const files = filesOf(s.plan!);
            s.paths = files.map((e) => e.path);
            await packEntries(files, { ...packOptions, impliedDirectories: false }, sink);
            s.plan!.close(); // its zip, the bytes read of it and its .pyc no longer needed
            s.plan = undefined;
            if (s.compiled !== undefined) compiling!.release(s.compiled);
          }
          ranges.push({ slot: s, offset, length: writer.bytes - offset });
          if (!from) options.onWheel?.(s.wheel, ranges.length, slots.length); // (a second pass copies: told once)
        }
        // The end-of-archive (its own gzip member when compressed).
        const end = Buffer.alloc(1024);
        diff?.update(end);
        await writer.write(gzipped ? gzipSync(end, { level: packOptions.level }) : end);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      return { writer, diff, ranges };
    };
    let pass: Awaited<ReturnType<typeof writeAll>> | undefined;
    try {
      pass = await writeAll(dirs);
      if (compiling) {
        await compiling.done;
        // A module that did not compile has no .pyc: when a __pycache__ is then not there after all, the
        // directories segment is written again and every wheel's segment copied after it.
        const real = layout((s) => s.cached?.paths ?? s.paths!);
        if (real.size !== dirs.size || [...real].some((d) => !dirs.has(d))) {
          const first = await pass.writer.commit();
          const ranges = pass.ranges;
          pass = undefined;
          try {
            pass = await writeAll(real, { blob: first.digest, ranges });
          } finally {
            await fs.rm(cache.pathOf(first.digest), { force: true });
          }
        }
      }
    } catch (err) {
      // Nothing half-written stays: the blob not committed (the compiler may fail after the last segment), the
      // compiler told to stop.
      await pass?.writer.abort();
      compiling?.cancel();
      await compiling?.done.catch(() => undefined);
      throw err;
    }
    const { writer, diff, ranges } = pass;
    const { digest, size } = await writer.commit();
    // Every segment is remembered in the newest blob (older blobs may then go).
    for (const { slot, offset, length } of ranges) {
      await cache.writeKey('segments', slot.key, { blob: digest, offset, length, paths: slot.cached?.paths ?? slot.paths! } satisfies SegmentRecord);
    }
    const layer = new CachedLayer(cache, {
      digest,
      diffId: diff ? (`sha256:${diff.digest('hex')}` as Digest) : digest,
      size,
      mediaType: gzipped ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayer,
    });
    return {
      layer,
      built: slots.filter((s) => !s.cached).map((s) => s.wheel),
      reused: slots.filter((s) => s.cached).map((s) => s.wheel),
    };
  } finally {
    for (const s of slots) s?.plan?.close();
  }
}

/** Copies a byte range of an earlier blob into the sink; gzip members are inflated on the way for the diffID. */
async function copySegment(file: string, offset: number, length: number, sink: LayerSink): Promise<void> {
  if (length === 0) return;
  const src = createReadStream(file, { start: offset, end: offset + length - 1 });
  let copied = 0;
  const short = (): ImageError =>
    new ImageError('IMAGE_CACHE_CORRUPT', `${file} ended after ${copied} of the ${length} bytes of a cached segment`, {
      hint: 'the image cache changed underneath this build: run it again, or remove the cache folder',
    });
  if (!sink.uncompressed) {
    for await (const chunk of src as AsyncIterable<Buffer>) {
      copied += chunk.length;
      await sink.write(chunk);
    }
    if (copied !== length) throw short();
    return;
  }
  const see = sink.uncompressed;
  const gunzip = createGunzip();
  const inflated = (async () => {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) see(chunk);
  })();
  inflated.catch(() => undefined); // a corrupt segment's error is thrown below (by write/drain, or this await)
  try {
    for await (const chunk of src as AsyncIterable<Buffer>) {
      copied += chunk.length;
      await sink.write(chunk);
      if (!gunzip.write(chunk)) await once(gunzip, 'drain');
    }
    if (copied !== length) throw short();
    gunzip.end();
    await inflated;
  } catch (err) {
    gunzip.destroy();
    await inflated.catch(() => undefined);
    throw err;
  }
}

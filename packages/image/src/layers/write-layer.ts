// The layer writer every builder uses: entries -> reproducible tar -> (gzip) -> the blob cache, in one pass.
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { createGzip, gzip as gzipCallback, constants as zlibConstants } from 'node:zlib';
import tar from 'tar-stream';
import { CachedLayer, type BlobCache } from '../cache/blob-cache.js';
import { HashingStream, type Digest } from '../core/digest.js';
import { MEDIA_TYPES, type Compression } from '../core/layer.js';
import { ImageError } from '../errors.js';

/** One entry of a layer to write. Paths are relative to / ("env/bin/python"), without a leading slash. */
export interface LayerEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  /** Permission bits; normalised: files 0644 or 0755, directories 0755, unless given. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Symlink or hard-link target. */
  linkname?: string;
  /** File contents: bytes, or a stream opened only when the entry is written (then `size` is required). */
  data?: Buffer;
  size?: number;
  open?: () => Promise<Readable | Buffer> | Readable | Buffer;
  /** Called with the sha256 hex of the streamed contents; throwing aborts the layer (for verified copies). */
  verify?: (sha256Hex: string, size: number) => void;
}

export interface WriteLayerOptions {
  cache: BlobCache;
  /** mtime of every entry, seconds: SOURCE_DATE_EPOCH, default 0. */
  mtime?: number;
  /** gzip level (default 6, gzip's own default). */
  level?: number;
  /** Default gzip; none writes a plain tar (digest = diffID, one hash, no compressing). */
  compression?: Compression;
  /**
   * Compress 1 MiB blocks as separate gzip members, several at once (default true): a multi-member gzip that
   * every gzip reader (Go's, Python's, zlib's) reads as one stream. Block boundaries are fixed, so the output
   * is as reproducible as a single member; false writes one member (as `gzip` does).
   */
  parallel?: boolean;
  /**
   * Blocks compressed at once on libuv's pool (default 4). The bytes do not depend on it (nor on the pool's
   * size): blocks are cut at fixed offsets and joined in order.
   */
  threads?: number;
  /** Add parent directories that are not listed (mode 0755, owner 0:0). Default true. */
  impliedDirectories?: boolean;
  /**
   * Write a segment, not a whole layer: the tar's end-of-archive blocks are left out, so that segments (each
   * its own gzip members) concatenate into one layer. The returned diffId is then the segment's own sha256.
   */
  segment?: boolean;
}

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return 0;
  if (!/^\d+$/.test(v)) throw new ImageError('IMAGE_SOURCE_DATE_EPOCH', `SOURCE_DATE_EPOCH is not a number of seconds: ${v}`);
  return Number(v);
}

function normalisePath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.some((s) => s === '..')) throw new ImageError('IMAGE_PATH_INVALID', `layer path escapes the root: ${p}`);
  return parts.join('/');
}

/** Sorts, de-duplicates and completes the entries; pure, exported for tests. */
export function planEntries(entries: LayerEntry[], impliedDirectories = true): LayerEntry[] {
  const byPath = new Map<string, LayerEntry>();
  for (const e of entries) {
    const p = normalisePath(e.path);
    if (p === '') continue;
    const prev = byPath.get(p);
    if (prev && !(prev.type === 'directory' && e.type === 'directory')) {
      throw new ImageError('IMAGE_PATH_DUPLICATE', `two entries for /${p} in one layer`);
    }
    if (!prev) byPath.set(p, { ...e, path: p });
  }
  if (impliedDirectories) {
    for (const p of [...byPath.keys()]) {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        const existing = byPath.get(dir);
        if (!existing) byPath.set(dir, { path: dir, type: 'directory' });
        else if (existing.type !== 'directory') throw new ImageError('IMAGE_PATH_DUPLICATE', `/${dir} is both a file and a directory`);
      }
    }
  }
  // Plain code-unit order: a directory always precedes its contents (it is their prefix).
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function normalMode(e: LayerEntry): number {
  if (e.mode !== undefined) return e.mode & 0o7777;
  if (e.type === 'directory') return 0o755;
  if (e.type === 'symlink') return 0o777;
  return 0o644;
}

/** Where packed layer bytes go, in order: the blob's bytes, and (to hash a diffID) the tar's before compression. */
export interface LayerSink {
  /** A chunk of the blob (compressed, or the tar itself); may wait (backpressure). */
  write(chunk: Buffer): Promise<void> | void;
  /** A chunk of the uncompressed tar. */
  uncompressed?(chunk: Buffer): void;
}

/**
 * Packs entries as a reproducible tar (or, with `segment`, a tar without its end-of-archive) through gzip or not,
 * into `sink`: entries sorted, mtimes fixed, owners fixed, modes normalised; file contents streamed, checked
 * against their expected size and hash (`verify`) as they pass; nothing held whole in memory but small files.
 */
export async function packEntries(entries: LayerEntry[], options: Omit<WriteLayerOptions, 'cache'>, sink: LayerSink): Promise<void> {
  const planned = planEntries(entries, options.impliedDirectories ?? true);
  const mtime = new Date((options.mtime ?? 0) * 1000);
  const pack = tar.pack();
  const level = options.level ?? 6;
  // tar-stream emits 512-byte headers and small file chunks: gathered so that zlib and the sink work on large
  // buffers — by the parallel gzip itself (its fixed blocks: one copy of the bytes), else here.
  const gzip = (options.compression ?? 'gzip') === 'gzip';
  const blocks = gzip && options.parallel !== false;
  const stages: Transform[] = [];
  if (options.segment) stages.push(new DropTail(1024));
  if (!blocks) stages.push(new Coalesce(1 << 20));
  if (sink.uncompressed) stages.push(new Tap(sink.uncompressed));
  if (gzip) {
    stages.push(
      blocks
        ? new ParallelGzip(level, 1 << 20, Math.max(1, options.threads ?? 4))
        : createGzip({ level, memLevel: 8, strategy: zlibConstants.Z_DEFAULT_STRATEGY }),
    );
  }
  const out = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      Promise.resolve(sink.write(chunk)).then(() => cb(), cb);
    },
  });
  const done = pipeline([pack as unknown as Readable, ...stages, out]);

  const feed = async (): Promise<void> => {
    for (const e of planned) {
      const header: Partial<tar.Header> & { name: string } = {
        name: e.type === 'directory' ? e.path + '/' : e.path,
        mode: normalMode(e),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        uname: '',
        gname: '',
        mtime,
        type: e.type,
      };
      if (e.type === 'symlink' || e.type === 'link') {
        header.linkname = e.linkname ?? '';
        await entryDone(pack, header);
      } else if (e.type === 'directory') {
        await entryDone(pack, header);
      } else if (e.data !== undefined) {
        header.size = e.data.length;
        await entryDone(pack, header, e.data);
      } else if (e.open) {
        if (e.size === undefined) throw new Error(`entry ${e.path}: size is required with open()`);
        header.size = e.size;
        const src = await e.open();
        if (Buffer.isBuffer(src)) {
          // Small contents read whole: one tar write, hashed here, no per-entry stream pipeline.
          if (src.length !== e.size) {
            throw new ImageError('IMAGE_ENTRY_SIZE', `/${e.path}: expected ${e.size} bytes, read ${src.length}`);
          }
          e.verify?.(createHash('sha256').update(src).digest('hex'), src.length);
          await entryDone(pack, header, src);
          continue;
        }
        const entrySink = pack.entry(header);
        const h = new HashingStream();
        await pipeline(src, h, entrySink);
        if (h.bytes !== e.size) {
          throw new ImageError('IMAGE_ENTRY_SIZE', `/${e.path}: expected ${e.size} bytes, read ${h.bytes}`);
        }
        e.verify?.(h.digest().slice(7), h.bytes);
      } else {
        header.size = 0;
        await entryDone(pack, header, Buffer.alloc(0));
      }
    }
    pack.finalize();
  };
  await Promise.all([
    feed().catch((err: unknown) => {
      pack.destroy(err as Error);
      throw err;
    }),
    done,
  ]);
}

/**
 * Writes a reproducible layer in one pass: tar (tar-stream) -> sha256 (diffID) -> gzip -> sha256 (digest) ->
 * a temp file in the blob cache, renamed into place (without compression the diffID is the digest). See
 * `packEntries` for what goes in.
 */
export async function writeLayer(entries: LayerEntry[], options: WriteLayerOptions): Promise<CachedLayer> {
  const gzipped = (options.compression ?? 'gzip') === 'gzip';
  const writer = await options.cache.writer();
  const diff = gzipped ? createHash('sha256') : null;
  try {
    await packEntries(entries, options, { write: (c) => writer.write(c), ...(diff ? { uncompressed: (c: Buffer) => diff.update(c) } : {}) });
  } catch (err) {
    await writer.abort();
    throw err;
  }
  const { digest, size } = await writer.commit();
  return new CachedLayer(options.cache, {
    digest,
    diffId: diff ? (`sha256:${diff.digest('hex')}` as Digest) : digest,
    size,
    mediaType: gzipped ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayer,
  });
}

/** A pass-through that shows every chunk to `see`. */
class Tap extends Transform {
  constructor(private readonly see: (chunk: Buffer) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.see(chunk);
    cb(null, chunk);
  }
}

/** gzip in fixed-size blocks, each its own member, up to `inFlight` compressed at once on libuv's pool. */
class ParallelGzip extends Transform {
  private parts: Buffer[] = [];
  private length = 0;
  private readonly queue: Promise<Buffer>[] = [];
  constructor(
    private readonly level: number,
    private readonly block: number,
    private readonly inFlight: number,
  ) {
    super();
  }
  private compress(data: Buffer): void {
    this.queue.push(
      new Promise((resolve, reject) =>
        // One output chunk larger than any compressed block: one trip to the pool and back per block, not one per 16 KiB.
        gzipCallback(data, { level: this.level, chunkSize: data.length + (data.length >> 6) + 1024 }, (err, out) => (err ? reject(err) : resolve(out))),
      ),
    );
  }
  private async drain(keep: number): Promise<void> {
    while (this.queue.length > keep) this.push(await this.queue.shift()!);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(this.block - this.length, chunk.length - offset);
      this.parts.push(chunk.subarray(offset, offset + take));
      this.length += take;
      offset += take;
      if (this.length === this.block) {
        this.compress(Buffer.concat(this.parts, this.length));
        this.parts = [];
        this.length = 0;
      }
    }
    if (this.queue.length < this.inFlight) return cb(); // (most chunks: a tar header, a small file)
    this.drain(this.inFlight - 1).then(() => cb(), cb);
  }
  override _flush(cb: TransformCallback): void {
    if (this.length > 0 || this.queue.length === 0) this.compress(Buffer.concat(this.parts, this.length));
    this.drain(0).then(() => cb(), cb);
  }
}

/** Passes every byte on but the last `n`, which must be zeros and are dropped (the tar end-of-archive). */
class DropTail extends Transform {
  private tail: Buffer = Buffer.alloc(0);
  constructor(private readonly n: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (chunk.length >= this.n) {
      // The held tail goes on, then all of this chunk but its last n bytes (no copy of the chunk).
      if (this.tail.length > 0) this.push(this.tail);
      if (chunk.length > this.n) this.push(chunk.subarray(0, chunk.length - this.n));
      this.tail = Buffer.from(chunk.subarray(chunk.length - this.n));
      return cb();
    }
    const all = Buffer.concat([this.tail, chunk]);
    const keep = Math.max(0, all.length - this.n);
    this.tail = all.subarray(keep);
    cb(null, keep > 0 ? all.subarray(0, keep) : undefined);
  }
  override _flush(cb: TransformCallback): void {
    if (this.tail.length < this.n || this.tail.some((b) => b !== 0)) return cb(new Error('tar stream did not end with its end-of-archive blocks'));
    cb();
  }
}

/** Gathers small chunks into ones of at least `size` bytes. */
class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private length = 0;
  constructor(private readonly size: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.length += chunk.length;
    if (this.length >= this.size) {
      const out = Buffer.concat(this.parts, this.length);
      this.parts = [];
      this.length = 0;
      cb(null, out);
    } else cb();
  }
  override _flush(cb: TransformCallback): void {
    cb(null, this.length ? Buffer.concat(this.parts, this.length) : undefined);
  }
}

function entryDone(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (data) pack.entry(header, data, cb);
    else pack.entry(header, cb);
  });
}


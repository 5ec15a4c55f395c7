// The content-addressed blob cache every layer is written into, its keyed records, and the layer kept in it.
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { finished, pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { HashingStream, hexOf, isDigest, type Digest } from '../core/digest.js';
import { BlobLayer, type Layer, type LayerDescriptor } from '../core/layer.js';
import { ImageError } from '../errors.js';

/**
 * Content-addressed blobs on disk: `<dir>/blobs/sha256/<hex>`, written to a temp file then renamed, so a
 * half-written blob is never visible. Also holds small keyed records (the layer cache) under `<dir>/keys/`.
 */
export class BlobCache {
  readonly dir: string;
  /**
   * A second tier (the registry layer cache): asked for a recorded layer or segment blob that is not on disk.
   * Without one, a record whose blob is gone is a miss.
   */
  remote: BlobRemote | null = null;
  /** Told of every record read (a hit) or written: what a build used, which `--cache-to` exports. */
  onRecord: ((namespace: string, key: string, value: unknown) => void) | null = null;
  constructor(dir: string) {
    this.dir = dir;
  }

  pathOf(digest: Digest): string {
    if (!isDigest(digest)) throw new ImageError('IMAGE_DIGEST_INVALID', `not a sha256 digest: ${digest}`);
    return path.join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  /** Whether the blob is there (and, given `size`, has that many bytes: a cut-short file is not a hit). */
  async has(digest: Digest, size?: number): Promise<boolean> {
    try {
      const st = await fs.stat(this.pathOf(digest));
      return size === undefined || st.size === size;
    } catch {
      return false;
    }
  }

  open(digest: Digest): Readable {
    return createReadStream(this.pathOf(digest));
  }

  /** A temp path inside the cache (same filesystem as the blobs, so rename works). */
  async tempPath(): Promise<string> {
    const dir = path.join(this.dir, 'tmp');
    await fs.mkdir(dir, { recursive: true });
    return path.join(dir, `${process.pid}-${randomBytes(6).toString('hex')}.part`);
  }

  /** Moves a finished temp file into place under its digest. */
  async commit(tempFile: string, digest: Digest): Promise<string> {
    const dest = this.pathOf(digest);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    await fs.rename(tempFile, dest);
    return dest;
  }

  /** Stores a stream, hashing it on the way; if `expected` is given a mismatch is an error and nothing is kept. */
  async put(stream: Readable, expected?: Digest): Promise<{ digest: Digest; size: number }> {
    const tmp = await this.tempPath();
    const hasher = new HashingStream();
    try {
      await pipeline(stream, hasher, createWriteStream(tmp));
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    const digest = hasher.digest();
    if (expected && digest !== expected) {
      await fs.rm(tmp, { force: true });
      throw new ImageError('IMAGE_DIGEST_MISMATCH', `blob expected to be ${expected} has digest ${digest}`);
    }
    await this.commit(tmp, digest);
    return { digest, size: hasher.bytes };
  }

  /** A blob written piece by piece (hashed as written), visible under its digest only once committed. */
  async writer(): Promise<BlobWriter> {
    return new FileBlobWriter(this, await this.tempPath());
  }

  /** A folder of files kept beside the blobs (files copied out of base images), by name. */
  filesDir(name: string): string {
    return path.join(this.dir, name);
  }

  async putBytes(data: Buffer): Promise<Digest> {
    const { Readable } = await import('node:stream');
    return (await this.put(Readable.from([data]))).digest;
  }

  /** A keyed record, or null; a hit is touched (its mtime is when it was last used, for `prune`). */
  async readKey<T>(namespace: string, key: string): Promise<T | null> {
    const file = path.join(this.dir, 'keys', namespace, key + '.json');
    let value: T;
    try {
      value = JSON.parse(await fs.readFile(file, 'utf8')) as T;
    } catch {
      // Not on disk: the remote's record, when it has one (kept in memory, not written here).
      const remote = await this.remote?.record(namespace, key);
      if (remote === undefined || remote === null) return null;
      this.onRecord?.(namespace, key, remote);
      return remote as T;
    }
    const now = new Date();
    await fs.utimes(file, now, now).catch(() => undefined); // a read-only cache still answers
    this.onRecord?.(namespace, key, value);
    return value;
  }

  /** Whether a keyed record exists (on disk, touched as a hit is, or the remote's), without reading it. */
  async hasKey(namespace: string, key: string): Promise<boolean> {
    const file = path.join(this.dir, 'keys', namespace, key + '.json');
    const now = new Date();
    if (await fs.utimes(file, now, now).then(() => true, (err: NodeJS.ErrnoException) => err.code !== 'ENOENT')) return true;
    const remote = await this.remote?.record(namespace, key);
    return remote !== undefined && remote !== null;
  }

  async writeKey(namespace: string, key: string, value: unknown): Promise<void> {
    const dir = path.join(this.dir, 'keys', namespace);
    await fs.mkdir(dir, { recursive: true });
    const tmp = await this.tempPath();
    await fs.writeFile(tmp, JSON.stringify(value));
    await fs.rename(tmp, path.join(dir, key + '.json'));
    this.onRecord?.(namespace, key, value);
  }
}

/**
 * Where blobs the records name may be found when they are not on disk (a registry). Either answer may be a
 * miss: the caller then rebuilds what the blob held, never uses something else.
 */
export interface BlobRemote {
  /** A record the remote holds (`readKey` asks when the disk has none), or null. */
  record(namespace: string, key: string): Promise<unknown>;
  /** A layer for a recorded layer blob (pushed by mounting, or downloaded into `cache` first), or null. */
  layer(desc: LayerDescriptor, cache: BlobCache): Promise<Layer | null>;
  /** Downloads a blob into `cache` (digest verified); false when the remote does not have it (intact). */
  fetch(digest: Digest, cache: BlobCache): Promise<boolean>;
}

/** A blob being written: chunks in, then its digest and size (`commit`), or nothing at all (`abort`). */
export interface BlobWriter {
  /** Bytes written so far. */
  readonly bytes: number;
  /** Resolves when the writer can take more (backpressure). */
  write(chunk: Buffer): Promise<void>;
  commit(): Promise<{ digest: Digest; size: number }>;
  abort(): Promise<void>;
}

/** Appends chunks to a temp file of a blob cache, hashing them on the way; `commit` names it by its digest. */
class FileBlobWriter implements BlobWriter {
  private readonly hash = createHash('sha256');
  private readonly out: ReturnType<typeof createWriteStream>;
  private failure: Error | null = null;
  /** Bytes written so far. */
  bytes = 0;
  constructor(
    private readonly cache: BlobCache,
    private readonly tmp: string,
  ) {
    this.out = createWriteStream(tmp);
    this.out.on('error', (err) => (this.failure ??= err));
  }

  /** Resolves when the file can take more (backpressure). */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (!this.out.write(chunk)) await once(this.out, 'drain');
  }

  async commit(): Promise<{ digest: Digest; size: number }> {
    this.out.end();
    await finished(this.out);
    const digest = `sha256:${this.hash.digest('hex')}` as Digest;
    await this.cache.commit(this.tmp, digest);
    return { digest, size: this.bytes };
  }

  /** Drops the temp file (after a failure): nothing becomes visible. */
  async abort(): Promise<void> {
    this.out.destroy();
    await fs.rm(this.tmp, { force: true });
  }
}

/** A layer whose compressed blob sits in a blob cache. */
export class CachedLayer extends BlobLayer {
  constructor(
    readonly cache: BlobCache,
    desc: LayerDescriptor,
  ) {
    super(desc);
  }
  async compressed(): Promise<Readable> {
    return this.cache.open(this.digest);
  }
  blobFile(): string {
    return this.cache.pathOf(this.digest);
  }
}

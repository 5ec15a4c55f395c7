// The blob cache of a dry run (`image app --dry-run`): the assembly runs its own code, packing and hashing every
// layer, but nothing it writes is kept — blobs are hashed and dropped, records live in memory for the run, files
// copied out of the base go to a temp folder removed at the end. What the real cache holds is read as usual
// (a cached dependencies layer or segment is still a hit), and read records are not touched.
import { mkdtempSync, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../core/digest.js';
import { ImageError } from '../errors.js';
import { BlobCache, type BlobWriter } from './blob-cache.js';

/** Hashes what it is given and keeps none of it. */
class DiscardingWriter implements BlobWriter {
  private readonly hash = createHash('sha256');
  bytes = 0;
  write(chunk: Buffer): Promise<void> {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    return Promise.resolve();
  }
  commit(): Promise<{ digest: Digest; size: number }> {
    return Promise.resolve({ digest: `sha256:${this.hash.digest('hex')}` as Digest, size: this.bytes });
  }
  abort(): Promise<void> {
    return Promise.resolve();
  }
}

export class DryRunCache extends BlobCache {
  private readonly records = new Map<string, unknown>();
  private readonly written = new Map<Digest, number>();
  private scratch: string | null = null;

  constructor(real: BlobCache) {
    super(real.dir);
  }

  /** Blobs the dry run "wrote" count as present (with their size), as they would after a real run. */
  override async has(digest: Digest, size?: number): Promise<boolean> {
    const made = this.written.get(digest);
    if (made !== undefined) return size === undefined || size === made;
    return super.has(digest, size);
  }

  override writer(): Promise<BlobWriter> {
    const w = new DiscardingWriter();
    const commit = w.commit.bind(w);
    w.commit = async () => {
      const done = await commit();
      this.written.set(done.digest, done.size);
      return done;
    };
    return Promise.resolve(w);
  }

  override async readKey<T>(namespace: string, key: string): Promise<T | null> {
    const mine = this.records.get(`${namespace}/${key}`);
    if (mine !== undefined) return mine as T;
    try {
      return JSON.parse(await fs.readFile(path.join(this.dir, 'keys', namespace, `${key}.json`), 'utf8')) as T;
    } catch {
      return null;
    }
  }

  override writeKey(namespace: string, key: string, value: unknown): Promise<void> {
    this.records.set(`${namespace}/${key}`, value);
    return Promise.resolve();
  }

  override filesDir(name: string): string {
    this.scratch ??= mkdtempSync(path.join(tmpdir(), 'dstack-dry-run-'));
    return path.join(this.scratch, name);
  }

  /**
   * A blob read while the base is read (a registry's layer, stored as it streams by in a real run): hashed and
   * dropped; it counts as present for the rest of the run, so the image's digest comes out the same.
   */
  override async put(stream: Readable, expected?: Digest): Promise<{ digest: Digest; size: number }> {
    const w = new DiscardingWriter();
    for await (const chunk of stream as AsyncIterable<Buffer>) await w.write(chunk);
    const done = await w.commit();
    if (expected && done.digest !== expected) throw new ImageError('IMAGE_DIGEST_MISMATCH', `blob expected to be ${expected} has digest ${done.digest}`);
    this.written.set(done.digest, done.size);
    return done;
  }
  // What a source would store as a file: a dry run reads those through the real cache, so these are bugs.
  override tempPath(): Promise<string> {
    return Promise.reject(new Error('a dry run stores no blob (tempPath)'));
  }
  override commit(): Promise<string> {
    return Promise.reject(new Error('a dry run stores no blob (commit)'));
  }

  /** Removes the temp folder of files copied out of the base. */
  async dispose(): Promise<void> {
    if (this.scratch) await fs.rm(this.scratch, { recursive: true, force: true });
    this.scratch = null;
  }
}

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { Digest } from '@dstack/oci';

/** An OCI digest: "sha256:<64 hex>" (@dstack/oci's). */
export type { Digest };

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

export function sha256Digest(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function hexOf(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** A pass-through stream that hashes and counts what flows through it. */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private result?: Digest;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  /** Only after the stream has ended. */
  digest(): Digest {
    return (this.result ??= `sha256:${this.hash.digest('hex')}`);
  }
}

/** A file's sha256 (hex), streamed: wheels and blobs can be large. */
export async function fileSha256(file: string): Promise<string> {
  const h = new HashingStream();
  await pipeline(createReadStream(file), h, new Writable({ write: (_c, _e, cb) => cb() }));
  return hexOf(h.digest());
}

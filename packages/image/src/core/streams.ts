// Small stream helpers shared by every folder.
import { Writable, type Readable } from 'node:stream';

/** Reads a whole small stream (configs, manifests, generated files). */
export async function readAll(stream: Readable | NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer | string>) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks);
}

/** A writable that drops what it is given (to drain a stream through a hash). */
export function devNull(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

// The one zip reader for wheels (validation here, installation in @dstack/image): yauzl parses the central
// directory; members are then read by offset — from memory for small zips, by file range otherwise — and every
// read checks the local header, the declared size and the CRC-32, with inflation bounded by the declared size.
// Names are decoded without yauzl's own checks so that each problem gets its own code.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, promises as fs, readFileSync, readSync } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { createInflateRaw, crc32, inflateRawSync } from 'node:zlib';
import type yauzl from 'yauzl';
import { WheelError } from './errors.js';

export interface ZipMember {
  name: string;
  entry: yauzl.Entry;
  isDirectory: boolean;
  /** Unix file type bits (0o170000 mask) when the archive was made on Unix, else null. */
  unixType: number | null;
  /** Unix permission bits (0o7777 mask) when the archive was made on Unix, else null. */
  unixMode: number | null;
}

export interface OpenZip {
  members: ZipMember[];
  fileSize: number;
  /** The whole zip when it is in memory, else null. */
  bytes: Buffer | null;
  /** A member's bytes, read and inflated at once on this thread (for small members): size and CRC-32 checked. */
  read(m: ZipMember): Buffer;
  /** A member's bytes as a stream (for large members): a range of the file, inflated; size and CRC-32 checked at the end. */
  open(m: ZipMember): Promise<Readable>;
  /** Drops the in-memory copy of a zip opened from a path (read again if a member is read later). */
  release(): void;
  close(): void;
}

/** Zips opened from a path up to this size are read into memory whole: one read instead of two or more per member. */
export const WHOLE_ZIP_BYTES = 32 << 20;

/** Members up to this size are worth reading whole with `read` (the per-member stream setup of `open` costs more). */
export const SMALL_MEMBER_BYTES = 1 << 20;

function notZip(label: string, cause: unknown): WheelError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new WheelError('WHEEL_NOT_ZIP', `${label} is not a readable zip archive: ${why}`, { cause });
}

async function centralDirectory(source: string | Buffer, label: string, maxMembers: number): Promise<ZipMember[]> {
  let zip: yauzl.ZipFile;
  const options = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true };
  // Loaded when first used: it loads zlib, and a warm build reads no wheel.
  const { default: lib } = await import('yauzl');
  try {
    zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
      const done = (err: Error | null, z: yauzl.ZipFile) => (err ? reject(err) : resolve(z));
      if (typeof source === 'string') lib.open(source, options, done);
      else lib.fromBuffer(source, options, done);
    });
  } catch (cause) {
    throw notZip(label, cause);
  }
  const close = (): void => {
    if (zip.isOpen && typeof source === 'string') zip.close();
  };
  if (zip.entryCount > maxMembers) {
    close();
    throw new WheelError('WHEEL_BOMB', `${label} has ${zip.entryCount} members, more than the limit of ${maxMembers}`);
  }
  const members: ZipMember[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('entry', (entry: yauzl.Entry) => {
        const raw = entry.fileName as unknown as Buffer;
        const name = lib.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, true);
        const madeOnUnix = entry.versionMadeBy >> 8 === 3;
        members.push({
          name,
          entry,
          isDirectory: name.endsWith('/'),
          unixType: madeOnUnix ? (entry.externalFileAttributes >>> 16) & 0o170000 : null,
          unixMode: madeOnUnix ? (entry.externalFileAttributes >>> 16) & 0o7777 : null,
        });
        zip.readEntry();
      });
      zip.once('end', () => resolve());
      zip.once('error', reject);
      zip.readEntry();
    });
  } catch (cause) {
    throw notZip(label, cause);
  } finally {
    close();
  }
  return members;
}

/** Checks the declared size and CRC-32 of a member streamed through it. */
class MemberCheck extends Transform {
  private size = 0;
  private crc = 0;
  constructor(private readonly m: ZipMember) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.m.entry.uncompressedSize) {
      done(new Error(`${this.m.name} inflates past its declared ${this.m.entry.uncompressedSize} bytes`));
      return;
    }
    this.crc = crc32(chunk, this.crc);
    done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    if (this.size !== this.m.entry.uncompressedSize) done(new Error(`${this.m.name} is ${this.size} bytes, its header says ${this.m.entry.uncompressedSize}`));
    else if (this.crc !== this.m.entry.crc32) done(new Error(`${this.m.name} fails its CRC-32 check`));
    else done();
  }
}

/**
 * Opens a zip (a path, or its bytes already in memory) and reads its central directory (more than `maxMembers`
 * members: WHEEL_BOMB). Members are read on demand with `read` / `open`, or the helpers below.
 */
export async function openZip(source: string | Buffer, label: string, maxMembers: number): Promise<OpenZip> {
  const path = typeof source === 'string' ? source : null;
  const fileSize = path ? (await fs.stat(path)).size : (source as Buffer).length;
  let whole: Buffer | null = path ? (fileSize <= WHOLE_ZIP_BYTES ? await fs.readFile(path) : null) : (source as Buffer);
  const members = await centralDirectory(whole ?? source, label, maxMembers);
  let fd: number | null = null;
  const readAt = (length: number, position: number): Buffer => {
    if (position + length > fileSize) throw new Error(`truncated: ${length} bytes at ${position} of ${fileSize}`);
    if (path && fileSize <= WHOLE_ZIP_BYTES) whole ??= readFileSync(path);
    if (whole) return whole.subarray(position, position + length);
    fd ??= openSync(path!, 'r');
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, position + got);
      if (n === 0) throw new Error(`truncated at byte ${position + got}`);
      got += n;
    }
    return buf;
  };
  /** Where a member's (stored or deflated) bytes start, from its local header. */
  const dataStart = (m: ZipMember): number => {
    const e = m.entry;
    if (e.isEncrypted()) throw new Error(`${m.name} is encrypted`);
    if (e.compressionMethod !== 0 && e.compressionMethod !== 8) throw new Error(`${m.name} uses unsupported compression method ${e.compressionMethod}`);
    const header = readAt(30, e.relativeOffsetOfLocalHeader);
    if (header.readUInt32LE(0) !== 0x04034b50) throw new Error(`invalid local file header for ${m.name}`);
    const start = e.relativeOffsetOfLocalHeader + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
    if (start + e.compressedSize > fileSize) throw new Error(`${m.name} extends past the end of the file`);
    return start;
  };
  return {
    members,
    fileSize,
    get bytes() {
      return whole;
    },
    read: (m) => {
      const e = m.entry;
      const raw = readAt(e.compressedSize, dataStart(m));
      const data = e.compressionMethod === 0 ? raw : inflateRawSync(raw, { maxOutputLength: Math.max(e.uncompressedSize, 1) });
      if (data.length !== e.uncompressedSize) throw new Error(`${m.name} is ${data.length} bytes, its header says ${e.uncompressedSize}`);
      if (crc32(data) !== e.crc32) throw new Error(`${m.name} fails its CRC-32 check`);
      return data;
    },
    open: async (m) => {
      const e = m.entry;
      const start = dataStart(m);
      const check = new MemberCheck(m);
      if (e.compressedSize === 0) {
        check.end();
        return check;
      }
      const raw: Readable = whole
        ? Readable.from([whole.subarray(start, start + e.compressedSize)])
        : createReadStream(path!, { start, end: start + e.compressedSize - 1 });
      if (e.compressionMethod === 0) {
        raw.on('error', (err) => check.destroy(err));
        return raw.pipe(check);
      }
      const inflate = createInflateRaw();
      raw.on('error', (err) => inflate.destroy(err));
      inflate.on('error', (err) => check.destroy(err));
      return raw.pipe(inflate).pipe(check);
    },
    release: () => {
      if (path) whole = null;
    },
    close: () => {
      if (fd !== null) closeSync(fd);
      fd = null;
      if (path) whole = null;
    },
  };
}

/** Streams one member through `onChunk`; the CRC and the declared size are checked. */
export async function streamMember(z: OpenZip, m: ZipMember, onChunk: (chunk: Buffer) => void): Promise<void> {
  if (m.entry.uncompressedSize <= SMALL_MEMBER_BYTES || (z.bytes && m.entry.uncompressedSize <= 64 * 1024 * 1024)) {
    onChunk(z.read(m));
    return;
  }
  for await (const chunk of await z.open(m)) onChunk(chunk as Buffer);
}

/** Reads a (small) member into memory, refusing more than `maxBytes`. */
export async function readMember(z: OpenZip, m: ZipMember, label: string, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
  if (m.entry.uncompressedSize > maxBytes) {
    throw new WheelError('WHEEL_BOMB', `${label}: ${m.name} declares ${m.entry.uncompressedSize} bytes, over ${maxBytes}`);
  }
  const chunks: Buffer[] = [];
  try {
    await streamMember(z, m, (c) => chunks.push(c));
  } catch (cause) {
    throw notZip(`${label} (member ${m.name})`, cause);
  }
  return Buffer.concat(chunks);
}

/** sha256 (urlsafe base64 without padding, as RECORD writes it) and size of a member's content. */
export async function hashMember(
  z: OpenZip,
  m: ZipMember,
  label: string,
  algorithm = 'sha256',
): Promise<{ digest: string; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  try {
    await streamMember(z, m, (c) => {
      size += c.length;
      hash.update(c);
    });
  } catch (cause) {
    throw notZip(`${label} (member ${m.name})`, cause);
  }
  return { digest: hash.digest('base64url'), size };
}

// Reading wheels straight from the zip with yauzl: the central directory, and members as streams.
// Nothing is extracted; names are decoded without yauzl's own checks so that each problem gets its own code.
import { createHash } from 'node:crypto';
import { crc32, inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';
import { WheelError } from './errors.js';

export interface ZipMember {
  name: string;
  entry: yauzl.Entry;
  isDirectory: boolean;
  /** Unix file type bits (0o170000 mask) when the archive was made on Unix, else null. */
  unixType: number | null;
}

export interface OpenZip {
  zip: yauzl.ZipFile;
  /** The whole zip when it is in memory: members are then inflated synchronously. */
  bytes: Buffer | null;
  members: ZipMember[];
  fileSize: number;
  close(): void;
}

function notZip(label: string, cause: unknown): WheelError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new WheelError('WHEEL_NOT_ZIP', `${label} is not a readable zip archive: ${why}`, { cause });
}

/**
 * Opens a zip (a path, or its bytes already in memory) and reads its central directory (bounded by `maxMembers`).
 */
export async function openZip(source: string | Buffer, label: string, maxMembers: number): Promise<OpenZip> {
  let zip: yauzl.ZipFile;
  const options = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true };
  try {
    zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
      const done = (err: Error | null, z: yauzl.ZipFile) => (err ? reject(err) : resolve(z));
      if (typeof source === 'string') yauzl.open(source, options, done);
      else yauzl.fromBuffer(source, options, done);
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
        const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, true);
        const madeOnUnix = entry.versionMadeBy >> 8 === 3;
        members.push({
          name,
          entry,
          isDirectory: name.endsWith('/'),
          unixType: madeOnUnix ? (entry.externalFileAttributes >>> 16) & 0o170000 : null,
        });
        zip.readEntry();
      });
      zip.once('end', () => resolve());
      zip.once('error', reject);
      zip.readEntry();
    });
  } catch (cause) {
    close();
    throw notZip(label, cause);
  }
  const fileSize = typeof source === 'string' ? (zip as unknown as { fileSize: number }).fileSize : source.length;
  return { zip, bytes: typeof source === 'string' ? null : source, members, fileSize, close };
}

/**
 * A member of an in-memory zip, inflated at once: for small wheels the thread-pool round trips of streamed
 * inflation cost more than the work. Checks what yauzl checks (local header, size, CRC-32); output is bounded.
 */
function memberFromMemory(bytes: Buffer, m: ZipMember): Buffer {
  const e = m.entry;
  const at = e.relativeOffsetOfLocalHeader;
  if (at + 30 > bytes.length || bytes.readUInt32LE(at) !== 0x04034b50) throw new Error(`invalid local file header for ${m.name}`);
  const start = at + 30 + bytes.readUInt16LE(at + 26) + bytes.readUInt16LE(at + 28);
  if (start + e.compressedSize > bytes.length) throw new Error(`${m.name} extends past the end of the file`);
  const raw = bytes.subarray(start, start + e.compressedSize);
  let data: Buffer;
  if (e.compressionMethod === 0) data = raw;
  else if (e.compressionMethod === 8) data = inflateRawSync(raw, { maxOutputLength: Math.max(e.uncompressedSize, 1) });
  else throw new Error(`${m.name} uses unsupported compression method ${e.compressionMethod}`);
  if (data.length !== e.uncompressedSize) throw new Error(`${m.name} is ${data.length} bytes, its header says ${e.uncompressedSize}`);
  if (crc32(data) !== e.crc32) throw new Error(`${m.name} fails its CRC-32 check`);
  return data;
}

/** Streams one member through `onChunk`; the CRC and the declared size are checked. */
export async function streamMember(z: OpenZip, m: ZipMember, onChunk: (chunk: Buffer) => void): Promise<void> {
  if (z.bytes && m.entry.uncompressedSize <= 64 * 1024 * 1024) {
    onChunk(memberFromMemory(z.bytes, m));
    return;
  }
  const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
    z.zip.openReadStream(m.entry, (err, s) => (err ? reject(err) : resolve(s))),
  );
  for await (const chunk of stream) onChunk(chunk as Buffer);
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

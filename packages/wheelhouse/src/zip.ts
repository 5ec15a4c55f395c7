// Reading wheels straight from the zip with yauzl: the central directory, and members as streams.
// Nothing is extracted; names are decoded without yauzl's own checks so that each problem gets its own code.
import { createHash } from 'node:crypto';
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
  members: ZipMember[];
  fileSize: number;
  close(): void;
}

function notZip(label: string, cause: unknown): WheelError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new WheelError('WHEEL_NOT_ZIP', `${label} is not a readable zip archive: ${why}`, { cause });
}

/** Opens a zip and reads its central directory (bounded by `maxMembers`). */
export async function openZip(path: string, label: string, maxMembers: number): Promise<OpenZip> {
  let zip: yauzl.ZipFile;
  try {
    zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.open(path, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true }, (err, z) =>
        err ? reject(err) : resolve(z),
      ),
    );
  } catch (cause) {
    throw notZip(label, cause);
  }
  const close = (): void => {
    if (zip.isOpen) zip.close();
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
  return { zip, members, fileSize: (zip as unknown as { fileSize: number }).fileSize, close };
}

/** Streams one member through `onChunk`; yauzl checks the CRC and the declared size. */
export async function streamMember(z: OpenZip, m: ZipMember, onChunk: (chunk: Buffer) => void): Promise<void> {
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

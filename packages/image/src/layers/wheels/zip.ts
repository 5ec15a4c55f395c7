import { closeSync, createReadStream, openSync, promises as fs, readFileSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';

/** A zip opened for random access: its central directory read, members read or streamed on demand. */
export interface ZipArchive {
  entries: yauzl.Entry[];
  /** A member's bytes as a stream (for large members): a range of the file, inflated. */
  open(entry: yauzl.Entry): Promise<Readable>;
  /**
   * A member's bytes, read and inflated at once (one inflate on this thread): for small members, where the
   * per-member stream setup of `open` costs far more than the inflating.
   */
  read(entry: yauzl.Entry): Buffer;
  /** Drops the in-memory copy of the zip (read again if a member is read later). */
  release(): void;
  close(): void;
}

/** Zips up to this size are read into memory whole: one read instead of two or more per member. */
const WHOLE_FILE_BYTES = 32 << 20;

/** Members up to this size are worth reading whole with `read` (see `ZipArchive.read`). */
export const SMALL_MEMBER_BYTES = 1 << 20;

/** The central directory, parsed by yauzl (from memory when the zip is there already). */
function centralDirectory(source: string | Buffer): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const options = { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true };
    const opened = (err: Error | null, zip?: yauzl.ZipFile): void => {
      if (err || !zip) return reject(err ?? new Error('cannot open the zip'));
      const entries: yauzl.Entry[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        entries.push(e);
        zip.readEntry();
      });
      zip.on('error', (e: Error) => {
        zip.close();
        reject(e);
      });
      zip.on('end', () => {
        zip.close();
        resolve(entries);
      });
      zip.readEntry();
    };
    if (typeof source === 'string') yauzl.open(source, options, opened);
    else yauzl.fromBuffer(source, options, opened);
  });
}

export async function openZip(file: string): Promise<ZipArchive> {
  const size = (await fs.stat(file)).size;
  const small = size <= WHOLE_FILE_BYTES;
  let whole: Buffer | null = small ? await fs.readFile(file) : null;
  const entries = await centralDirectory(whole ?? file);
  let fd: number | null = null;
  const readAt = (length: number, position: number): Buffer => {
    if (position + length > size) throw new Error(`${file}: truncated (${length} bytes at ${position} of ${size})`);
    if (small) {
      whole ??= readFileSync(file);
      return whole.subarray(position, position + length);
    }
    fd ??= openSync(file, 'r');
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, position + got);
      if (n === 0) throw new Error(`${file}: truncated at byte ${position + got}`);
      got += n;
    }
    return buf;
  };
  /** Where a member's (stored or deflated) bytes start, from its local header. */
  const dataStart = (entry: yauzl.Entry): number => {
    if (entry.isEncrypted()) throw new Error(`${entry.fileName}: encrypted`);
    if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
      throw new Error(`${entry.fileName}: unsupported compression method ${entry.compressionMethod}`);
    }
    const header = readAt(30, entry.relativeOffsetOfLocalHeader);
    if (header.readUInt32LE(0) !== 0x04034b50) throw new Error(`${entry.fileName}: invalid local file header`);
    return entry.relativeOffsetOfLocalHeader + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  };
  return {
    entries,
    open: async (entry) => {
      const start = dataStart(entry);
      if (start + entry.compressedSize > size) throw new Error(`${file}: ${entry.fileName} runs past the end`);
      const raw = createReadStream(file, { start, end: start + entry.compressedSize - 1 });
      if (entry.compressionMethod === 0) return raw;
      // The caller checks the size it gets (and the hash); the inflater stops at the end of the deflate stream.
      const inflate = createInflateRaw();
      raw.on('error', (e) => inflate.destroy(e));
      return raw.pipe(inflate);
    },
    read: (entry) => {
      const raw = readAt(entry.compressedSize, dataStart(entry));
      const data = entry.compressionMethod === 0 ? raw : inflateRawSync(raw, { maxOutputLength: Math.max(entry.uncompressedSize, 1) });
      if (data.length !== entry.uncompressedSize) {
        throw new Error(`${entry.fileName}: expected ${entry.uncompressedSize} bytes, inflated ${data.length}`);
      }
      return data;
    },
    release: () => {
      whole = null;
    },
    close: () => {
      if (fd !== null) closeSync(fd);
      fd = null;
      whole = null;
    },
  };
}

import { closeSync, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';

/** A zip opened for random access: its central directory read, members streamed on demand. */
export interface ZipArchive {
  entries: yauzl.Entry[];
  open(entry: yauzl.Entry): Promise<Readable>;
  /**
   * A member's bytes, read and inflated at once (one positioned read, one inflate on this thread): for small
   * members, where the per-member stream setup of `open` costs far more than the inflating.
   */
  read(entry: yauzl.Entry): Buffer;
  close(): void;
}

/** Members up to this size are worth reading whole with `read` (see `ZipArchive.read`). */
export const SMALL_MEMBER_BYTES = 1 << 20;

export function openZip(file: string): Promise<ZipArchive> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error(`cannot open ${file}`));
      const entries: yauzl.Entry[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        entries.push(e);
        zip.readEntry();
      });
      zip.on('error', reject);
      zip.on('end', () => {
        let fd: number | null = null;
        const readAt = (length: number, position: number): Buffer => {
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
        resolve({
          entries,
          open: (entry) =>
            new Promise<Readable>((res, rej) => zip.openReadStream(entry, (e, s) => (e || !s ? rej(e) : res(s)))),
          read: (entry) => {
            if (entry.isEncrypted()) throw new Error(`${entry.fileName}: encrypted`);
            const header = readAt(30, entry.relativeOffsetOfLocalHeader);
            if (header.readUInt32LE(0) !== 0x04034b50) throw new Error(`${entry.fileName}: invalid local file header`);
            const start = entry.relativeOffsetOfLocalHeader + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
            const raw = readAt(entry.compressedSize, start);
            let data: Buffer;
            if (entry.compressionMethod === 0) data = raw;
            else if (entry.compressionMethod === 8) {
              data = inflateRawSync(raw, { maxOutputLength: Math.max(entry.uncompressedSize, 1) });
            } else throw new Error(`${entry.fileName}: unsupported compression method ${entry.compressionMethod}`);
            if (data.length !== entry.uncompressedSize) {
              throw new Error(`${entry.fileName}: expected ${entry.uncompressedSize} bytes, inflated ${data.length}`);
            }
            return data;
          },
          close: () => {
            if (fd !== null) closeSync(fd);
            fd = null;
            zip.close();
          },
        });
      });
      zip.readEntry();
    });
  });
}

// The archive (the original's /archive): a folder of wheels that outlives a cleaned wheelhouse. The planner
// reads it as extra find-links (wheels taken from it are copied into the wheelhouse and ingested like any
// other); after a successful build every wheel of the wheelhouse that it lacks is copied there — streamed to
// a temp file, validated, its sha256 compared with the wheelhouse's, then renamed into place.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { validateWheel, type WheelStore } from '@dstack/wheelhouse';
import { EngineError } from './errors.js';

export interface ArchiveResult {
  /** Copied into the archive now. */
  copied: string[];
  /** Already there under the same name. */
  present: string[];
}

/** The PIP_FIND_LINKS value with the archive added (pip reads a space-separated list). */
export function withArchiveFindLinks(current: string | undefined, archive: string): string {
  const links = (current ?? '').split(/\s+/).filter(Boolean);
  return links.includes(archive) ? links.join(' ') : [...links, archive].join(' ');
}

/**
 * Copies each wheel of `store` (or only `filenames`) that `archive` lacks into it. A name already there is
 * left as it is (the archive keeps what it has, as `rsync` of new names would). A copy whose bytes differ from
 * the wheelhouse's record, or that is no valid wheel, is removed and reported: EngineError ARCHIVE_FAILED.
 */
export async function archiveWheels(
  store: WheelStore,
  archive: string,
  filenames?: string[],
): Promise<ArchiveResult> {
  await mkdir(archive, { recursive: true });
  const have = new Set((await readdir(archive)).filter((f) => f.endsWith('.whl')));
  const names = filenames ?? (await store.list()).map((e) => e.filename);
  const result: ArchiveResult = { copied: [], present: [] };
  for (const filename of [...new Set(names)].sort()) {
    if (have.has(filename)) {
      result.present.push(filename);
      continue;
    }
    const entry = await store.get(filename);
    if (!entry) continue;
    const dest = path.join(archive, filename);
    // Never ending in .whl until complete: pip reading the archive as find-links sees no half-written wheel.
    const temp = path.join(archive, `.${filename}.${process.pid}.${Date.now()}.tmp`);
    const hash = createHash('sha256');
    try {
      await pipeline(
        await store.openRead(filename),
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            hash.update(chunk);
            done(null, chunk);
          },
        }),
        createWriteStream(temp, { flags: 'wx' }),
      );
      const sha256 = hash.digest('hex');
      if (sha256 !== entry.sha256) {
        throw new Error(`copied bytes have sha256 ${sha256}, the wheelhouse records ${entry.sha256}`);
      }
      await validateCopy(temp, filename);
      const fd = await open(temp, 'r');
      await fd.sync();
      await fd.close();
      await rename(temp, dest);
      result.copied.push(filename);
    } catch (cause) {
      await rm(temp, { force: true });
      throw new EngineError('ARCHIVE_FAILED', `archiving ${filename} into ${archive} failed: ${(cause as Error).message}`, {
        hint: 'check the archive folder (space, permissions); the wheelhouse is unchanged',
        cause,
      });
    }
  }
  return result;
}

/** validateWheel reads a wheel's name from its path: the temp copy is validated under its real name. */
async function validateCopy(temp: string, filename: string): Promise<void> {
  const dir = path.join(path.dirname(temp), `.${filename}.${process.pid}.check`);
  await mkdir(dir, { recursive: true });
  try {
    const named = path.join(dir, filename);
    await rename(temp, named);
    try {
      await validateWheel(named);
    } finally {
      await rename(named, temp);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { eq } from '@renovatebot/pep440';
import { canonicalizeName } from '@dstack/recipe';
import { WheelError } from './errors.js';
import { parseWheelFilename, type WheelFilename } from './filename.js';
import { parseHeaders, parseMetadata, type WheelMetadata } from './metadata.js';
import { hashMember, openZip, readMember, type OpenZip, type ZipMember } from './zip.js';

/** Limits against zip bombs. */
export interface WheelLimits {
  /** Total uncompressed bytes (default 8 GiB). */
  maxUncompressedBytes?: number;
  /** Total uncompressed size / file size, checked past 1 MiB (default 250; real wheels stay under 20). */
  maxCompressionRatio?: number;
  /** Number of zip members (default 200 000). */
  maxMembers?: number;
}

export const DEFAULT_LIMITS: Required<WheelLimits> = {
  maxUncompressedBytes: 8 * 1024 ** 3,
  maxCompressionRatio: 250,
  maxMembers: 200_000,
};

export interface InspectedWheel {
  filename: WheelFilename;
  metadata: WheelMetadata;
  /** METADATA's bytes exactly as in the wheel (PEP 658 serves these). */
  metadataBytes: Buffer;
  distInfo: string;
  wheelVersion: string;
  rootIsPurelib: boolean;
}

const RECORD_ALGORITHMS = new Set(['sha256', 'sha384', 'sha512']);
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** Why a member path is unsafe to install, or null. */
export function unsafePathReason(name: string): string | null {
  if (name.includes('\\')) return 'contains a backslash';
  if (name.includes('\0')) return 'contains a NUL byte';
  if (name.startsWith('/')) return 'is absolute';
  if (/^[A-Za-z]:/.test(name)) return 'starts with a drive letter';
  if (name.split('/').some((s) => s === '..')) return 'escapes with ".."';
  return null;
}

/** Splits one RECORD line (CSV, quotes allowed). */
function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function sameVersion(a: string, b: string): boolean {
  try {
    return a === b || eq(a, b);
  } catch {
    return false;
  }
}

function checkStructure(z: OpenZip, label: string, limits: Required<WheelLimits>): void {
  const seen = new Set<string>();
  let total = 0;
  for (const m of z.members) {
    const reason = unsafePathReason(m.name);
    if (reason) {
      throw new WheelError('WHEEL_PATH_UNSAFE', `${label}: member ${JSON.stringify(m.name)} ${reason}`);
    }
    if (m.unixType === 0o120000) throw new WheelError('WHEEL_SYMLINK', `${label}: member ${m.name} is a symbolic link`);
    if (m.unixType !== null && m.unixType !== 0 && m.unixType !== 0o100000 && m.unixType !== 0o040000) {
      throw new WheelError('WHEEL_PATH_UNSAFE', `${label}: member ${m.name} is a special file (mode ${m.unixType.toString(8)})`);
    }
    if (m.name.split('/').some((s) => s.startsWith('.wh.'))) {
      throw new WheelError('WHEEL_WHITEOUT', `${label}: member ${m.name} is an OCI/AUFS whiteout (.wh.*)`, {
        hint: 'installed into an image layer it would delete files of the layers below',
      });
    }
    if (m.entry.generalPurposeBitFlag & 1) throw new WheelError('WHEEL_ENCRYPTED', `${label}: member ${m.name} is encrypted`);
    if (seen.has(m.name)) throw new WheelError('WHEEL_MEMBER_DUPLICATE', `${label}: member ${m.name} appears twice`);
    seen.add(m.name);
    // No per-member ratio: deflate cannot exceed ~1030x, and real wheels carry members that reach it (onnx's
    // test data). The total size, the whole wheel's ratio and overlapping members are what bombs need.
    total += m.entry.uncompressedSize;
  }
  if (total > limits.maxUncompressedBytes) {
    throw new WheelError('WHEEL_BOMB', `${label} expands to ${total} bytes, over the limit of ${limits.maxUncompressedBytes}`);
  }
  if (total > 1024 * 1024 && total / Math.max(z.fileSize, 1) > limits.maxCompressionRatio) {
    throw new WheelError('WHEEL_BOMB', `${label} expands ${Math.round(total / z.fileSize)}x (limit ${limits.maxCompressionRatio}x)`);
  }
  // Members whose data overlap (the "better zip bomb") reuse the same bytes many times.
  const byOffset = [...z.members].sort((a, b) => a.entry.relativeOffsetOfLocalHeader - b.entry.relativeOffsetOfLocalHeader);
  for (let i = 0; i + 1 < byOffset.length; i++) {
    const a = byOffset[i]!.entry;
    const end = a.relativeOffsetOfLocalHeader + 30 + a.fileNameLength + a.compressedSize;
    if (byOffset[i + 1]!.entry.relativeOffsetOfLocalHeader < end) {
      throw new WheelError('WHEEL_BOMB', `${label}: members ${byOffset[i]!.name} and ${byOffset[i + 1]!.name} overlap`);
    }
  }
}

function findDistInfo(z: OpenZip, label: string, wheel: WheelFilename): string {
  const dirs = new Set<string>();
  for (const m of z.members) {
    const top = m.name.split('/')[0]!;
    if (top.endsWith('.dist-info') && m.name.includes('/')) dirs.add(top);
  }
  if (dirs.size === 0) throw new WheelError('WHEEL_DIST_INFO_MISSING', `${label} has no .dist-info directory`);
  if (dirs.size > 1) {
    throw new WheelError('WHEEL_DIST_INFO_DUPLICATE', `${label} has ${dirs.size} .dist-info directories: ${[...dirs].sort().join(', ')}`);
  }
  const distInfo = [...dirs][0]!;
  const stem = distInfo.slice(0, -'.dist-info'.length);
  const dash = stem.indexOf('-');
  const name = dash < 0 ? stem : stem.slice(0, dash);
  const version = dash < 0 ? '' : stem.slice(dash + 1);
  if (canonicalizeName(name) !== wheel.normalizedName || !sameVersion(version, wheel.version)) {
    throw new WheelError(
      'WHEEL_DIST_INFO_MISMATCH',
      `${label}: its ${distInfo} does not match the file name (${wheel.name} ${wheel.version})`,
    );
  }
  return distInfo;
}

function member(z: OpenZip, name: string): ZipMember | undefined {
  return z.members.find((m) => m.name === name);
}

async function readHeaderFiles(z: OpenZip, label: string, wheel: WheelFilename, distInfo: string) {
  const wheelFile = member(z, `${distInfo}/WHEEL`);
  if (!wheelFile) throw new WheelError('WHEEL_WHEEL_FILE_MISSING', `${label} has no ${distInfo}/WHEEL`);
  const wh = parseHeaders((await readMember(z, wheelFile, label, 1024 * 1024)).toString('utf8'));
  const wheelVersion = wh.get('wheel-version')?.[0] ?? '';
  if (!/^1\.\d+$/.test(wheelVersion)) {
    throw new WheelError(
      'WHEEL_VERSION_UNSUPPORTED',
      `${label}: Wheel-Version ${JSON.stringify(wheelVersion)} in ${distInfo}/WHEEL is not supported (only 1.x)`,
    );
  }
  const metaFile = member(z, `${distInfo}/METADATA`);
  if (!metaFile) throw new WheelError('WHEEL_METADATA_MISSING', `${label} has no ${distInfo}/METADATA`);
  const metadataBytes = await readMember(z, metaFile, label);
  const metadata = parseMetadata(metadataBytes.toString('utf8'), `${label}: ${distInfo}/METADATA`);
  if (canonicalizeName(metadata.name) !== wheel.normalizedName || !sameVersion(metadata.version, wheel.version)) {
    throw new WheelError(
      'WHEEL_DIST_INFO_MISMATCH',
      `${label}: METADATA names ${metadata.name} ${metadata.version}, the file name ${wheel.name} ${wheel.version}`,
    );
  }
  return { wheelVersion, rootIsPurelib: wh.get('root-is-purelib')?.[0]?.toLowerCase() === 'true', metadata, metadataBytes };
}

async function checkRecord(z: OpenZip, label: string, distInfo: string, hashes: boolean): Promise<void> {
  const recordName = `${distInfo}/RECORD`;
  const recordFile = member(z, recordName);
  if (!recordFile) throw new WheelError('WHEEL_RECORD_MISSING', `${label} has no ${recordName}`);
  const rows = new Map<string, { algorithm: string; digest: string; size: number }>();
  const text = (await readMember(z, recordFile, label)).toString('utf8');
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === '') continue;
    const [path = '', hash = '', size = ''] = parseCsvLine(line);
    if (path === recordName || path === `${recordName}.jws` || path === `${recordName}.p7s`) continue;
    if (hash === '') {
      if (path.endsWith('/')) continue;
      throw new WheelError('WHEEL_RECORD_INVALID', `${label}: ${recordName} line ${i + 1} has no hash for ${path}`);
    }
    const eqAt = hash.indexOf('=');
    const algorithm = hash.slice(0, eqAt);
    if (eqAt < 0 || !RECORD_ALGORITHMS.has(algorithm)) {
      throw new WheelError('WHEEL_RECORD_INVALID', `${label}: ${recordName} line ${i + 1} uses hash "${hash.slice(0, 16)}" (sha256 or better required)`);
    }
    let digest = hash.slice(eqAt + 1).replace(/=+$/, '');
    // PEP 376 says urlsafe base64; some real wheels (gmsh 4.15) write hex. Both name the same bytes.
    if (/^[0-9a-f]+$/i.test(digest) && digest.length === HEX_LENGTH[algorithm]) digest = Buffer.from(digest, 'hex').toString('base64url');
    rows.set(path, { algorithm, digest, size: size === '' ? -1 : Number(size) });
  }
  const present = new Set<string>();
  const toHash: { m: ZipMember; row: { algorithm: string; digest: string; size: number } }[] = [];
  for (const m of z.members) {
    if (m.isDirectory) continue;
    present.add(m.name);
    if (m.name === recordName || m.name === `${recordName}.jws` || m.name === `${recordName}.p7s`) continue;
    const row = rows.get(m.name);
    if (!row) throw new WheelError('WHEEL_RECORD_MISMATCH', `${label}: ${m.name} is not listed in ${recordName}`);
    if (row.size >= 0 && m.entry.uncompressedSize !== row.size) {
      throw new WheelError('WHEEL_RECORD_MISMATCH', `${label}: ${m.name} is ${m.entry.uncompressedSize} bytes, ${recordName} says ${row.size}`);
    }
    toHash.push({ m, row });
  }
  for (const path of rows.keys()) {
    if (!present.has(path)) throw new WheelError('WHEEL_RECORD_MISMATCH', `${label}: ${recordName} lists ${path}, which is not in the wheel`);
  }
  if (!hashes) return;
  // Members are hashed a few at a time: per-member stream setup, not inflating, dominates for small files.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < toHash.length) {
      const { m, row } = toHash[next++]!;
      const { digest, size } = await hashMember(z, m, label, row.algorithm);
      if (digest !== row.digest) {
        throw new WheelError('WHEEL_RECORD_MISMATCH', `${label}: the ${row.algorithm} of ${m.name} differs from ${recordName}`);
      }
      if (row.size >= 0 && size !== row.size) {
        throw new WheelError('WHEEL_RECORD_MISMATCH', `${label}: ${m.name} is ${size} bytes, ${recordName} says ${row.size}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, toHash.length) }, worker));
}

/**
 * Reads and checks a wheel at `path` named `filename` (the path may be a temp file): structure, paths,
 * dist-info, WHEEL, METADATA and every member against RECORD. Throws a WheelError with its own code.
 */
export async function inspectWheel(
  path: string,
  options: { filename?: string; limits?: WheelLimits; verifyRecord?: boolean; recordHashes?: boolean; bytes?: Buffer } = {},
): Promise<InspectedWheel> {
  const filename = parseWheelFilename(options.filename ?? basename(path));
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const label = filename.filename;
  const z = await openZip(options.bytes ?? (await smallFileBytes(path)) ?? path, label, limits.maxMembers);
  try {
    checkStructure(z, label, limits);
    const distInfo = findDistInfo(z, label, filename);
    const headers = await readHeaderFiles(z, label, filename, distInfo);
    if (options.verifyRecord !== false) await checkRecord(z, label, distInfo, options.recordHashes !== false);
    return { filename, distInfo, ...headers };
  } finally {
    z.close();
  }
}

/**
 * Wheels up to this size are validated from memory: one read instead of a few small reads per member, which
 * dominate for small wheels (the usual case). Larger ones are read through the file.
 */
export const IN_MEMORY_BYTES = 16 * 1024 * 1024;

async function smallFileBytes(path: string): Promise<Buffer | null> {
  const st = await stat(path);
  return st.size <= IN_MEMORY_BYTES ? readFile(path) : null;
}

/** sha256 (hex) and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Validates the wheel at `path` (named by its base name) and returns what it is. With `recordHashes: false`
 * RECORD's listing is still checked (every member listed with sha256 or better and its size, nothing listed
 * missing) but the members are not read: for a caller that verifies each member's hash as it copies it out,
 * as an installer does, instead of inflating the whole wheel twice.
 */
export async function validateWheel(
  path: string,
  limits?: WheelLimits,
  options: { recordHashes?: boolean } = {},
): Promise<{ filename: WheelFilename; metadata: WheelMetadata; sha256: string; size: number }> {
  // A small wheel is read once: inspected and hashed from the same bytes.
  const bytes = await smallFileBytes(path);
  const inspected = await inspectWheel(path, { limits: limits ?? {}, recordHashes: options.recordHashes, ...(bytes ? { bytes } : {}) });
  const { sha256, size } = bytes ? { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length } : await hashFile(path);
  return { filename: inspected.filename, metadata: inspected.metadata, sha256, size };
}

/** METADATA of the wheel at `path`, read from the zip without extracting (no RECORD check). */
export async function readWheelMetadata(path: string): Promise<WheelMetadata> {
  return (await inspectWheel(path, { verifyRecord: false })).metadata;
}

import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { openZip, SMALL_MEMBER_BYTES, validateWheel, type OpenZip, type WheelLimits, type ZipMember } from '@dstack/wheelhouse';
import { ImageError } from '../../errors.js';
import type { LayerEntry } from '../write-layer.js';
import { readAll } from '../../core/streams.js';

// The wheelhouse's zip reader (Decision 18: one reader): every read checks the local header, size and CRC-32.
async function readMember(zip: OpenZip, e: ZipMember): Promise<Buffer> {
  return e.entry.uncompressedSize <= SMALL_MEMBER_BYTES ? zip.read(e) : readAll(await zip.open(e));
}

/** Where a virtual environment lives in the image, and for which Python (the scheme pip uses in a venv). */
export interface VenvScheme {
  /** The venv's prefix in the image, absolute: "/env". */
  prefix: string;
  /** "3.11". */
  pythonVersion: string;
}

export function schemePaths(scheme: VenvScheme): { purelib: string; platlib: string; scripts: string; data: string; include: string; python: string } {
  const prefix = scheme.prefix.replace(/\/+$/, '');
  const lib = `${prefix}/lib/python${scheme.pythonVersion}/site-packages`;
  return {
    purelib: lib,
    platlib: lib,
    scripts: `${prefix}/bin`,
    data: prefix,
    include: `${prefix}/include/site/python${scheme.pythonVersion}`,
    python: `${prefix}/bin/python`,
  };
}

export interface InstallOptions {
  scheme: VenvScheme;
  /** Content of INSTALLER (pip writes "pip"). */
  installer?: string;
  /** Write REQUESTED (an empty file), as pip does for what was asked for directly. Default true. */
  requested?: boolean;
  /** Owner of the installed files (default 0:0). */
  uid?: number;
  gid?: number;
  /** Largest total uncompressed size accepted (default 2 GiB) and most members (default 100 000). */
  maxUncompressedBytes?: number;
  maxMembers?: number;
  /** Run @dstack/wheelhouse's validation first (name, zip, dist-info, RECORD, bombs, unsafe paths). Default true. */
  validate?: boolean | WheelLimits;
}

/** The layer entries installing one wheel, streamed from the open zip when the layer is written. */
export interface PlannedWheel {
  wheel: string;
  name: string;
  version: string;
  distInfo: string;
  entries: LayerEntry[];
  /**
   * The installed files pip would byte-compile (every one ending in `.py`, launchers aside), sorted by path:
   * where each lands in the image and how to read its bytes.
   */
  pySources: { path: string; compiledAs: string; read: () => Promise<Buffer> }[];
  /**
   * Adds the compiled `.pyc` of `pySources[i]` (null: it did not compile, and gets none, as with pip) under
   * `__pycache__/<name>.<cacheTag>.pyc`, listed in RECORD as pip lists them (no hash, no size).
   */
  addBytecode(cacheTag: string, pycs: ({ size: number; open: () => Readable | Buffer | Promise<Readable | Buffer> } | null)[]): void;
  /** Closes the zip; call after the layer is written. */
  close(): void;
}

const hostile = (wheel: string, message: string): ImageError =>
  new ImageError('WHEEL_PATH_UNSAFE', `${wheel}: ${message}`, { hint: 'the wheel is refused; rebuild it from a trusted source' });

/** PEP 376 / 427 RECORD hash: "sha256=" + urlsafe base64 without padding. */
export function recordHash(data: Buffer): string {
  return 'sha256=' + createHash('sha256').update(data).digest('base64url');
}

function hexToRecordHash(hex: string): string {
  return 'sha256=' + Buffer.from(hex, 'hex').toString('base64url');
}

/** Python's csv.reader for RECORD (QUOTE_MINIMAL). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
    i++;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** Python's csv.writer (QUOTE_MINIMAL, "\r\n" line ends as pip writes RECORD). */
export function formatCsv(rows: string[][]): string {
  const q = (f: string): string => (/[",\r\n]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f);
  return rows.map((r) => r.map(q).join(',') + '\r\n').join('');
}

function parseEmailHeaders(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break;
    const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
    if (m && !out.has(m[1]!.toLowerCase())) out.set(m[1]!.toLowerCase(), m[2]!.trim());
  }
  return out;
}

/** entry_points.txt (an ini file): the console_scripts and gui_scripts sections. */
export function parseEntryPoints(text: string): { name: string; module: string; attr: string; gui: boolean }[] {
  const out: { name: string; module: string; attr: string; gui: boolean }[] = [];
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!.trim();
      continue;
    }
    if (section !== 'console_scripts' && section !== 'gui_scripts') continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const name = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).replace(/\[.*\]\s*$/, '').trim();
    const m = /^([\w.]+)\s*(?::\s*([\w.]+))?$/.exec(value);
    if (!m || !m[2]) throw new ImageError('WHEEL_ENTRY_POINT_INVALID', `entry point ${name} = ${value}: expected module:attr`);
    if (!/^[\w.-]+$/.test(name)) throw new ImageError('WHEEL_ENTRY_POINT_INVALID', `entry point name not allowed: ${name}`);
    out.push({ name, module: m[1]!, attr: m[2]!, gui: section === 'gui_scripts' });
  }
  return out;
}

/** The launcher pip (distlib's ScriptMaker) writes for a console script. */
export function consoleScript(python: string, module: string, attr: string): string {
  const importName = attr.split('.')[0]!;
  return (
    `#!${python}\n` +
    `# -*- coding: utf-8 -*-\n` +
    `import re\n` +
    `import sys\n` +
    `from ${module} import ${importName}\n` +
    `if __name__ == '__main__':\n` +
    `    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n` +
    `    sys.exit(${attr}())\n`
  );
}

function checkMemberName(wheel: string, name: string): void {
  if (name.includes('\\')) throw hostile(wheel, `member name with a backslash: ${name}`);
  if (name.includes('\0')) throw hostile(wheel, `member name with a NUL byte`);
  if (name.startsWith('/')) throw hostile(wheel, `absolute member path: ${name}`);
  const parts = name.replace(/\/$/, '').split('/');
  if (parts.some((p) => p === '..' || p === '.' || p === '')) throw hostile(wheel, `member path not normalised or escaping: ${name}`);
}

function isSymlink(e: ZipMember): boolean {
  return ((e.entry.externalFileAttributes >>> 16) & 0o170000) === 0o120000;
}

function isExecutable(e: ZipMember): boolean {
  return ((e.entry.externalFileAttributes >>> 16) & 0o111) !== 0;
}

/**
 * Plans the installation of one wheel (PEP 427) into a venv, the way `pip install` lays it out: root files into
 * purelib/platlib, `.data/<scheme>/` to its place (`#!python` in scripts rewritten to the venv's python),
 * console/gui script launchers from entry_points.txt, INSTALLER, REQUESTED and a RECORD listing the installed paths
 * and hashes. Files are streamed from the zip when the layer is written and checked against the wheel's RECORD.
 */
export async function planWheelInstall(wheelPath: string, options: InstallOptions): Promise<PlannedWheel> {
  const wheel = path.basename(wheelPath);
  // The wheelhouse's checks first (the same refusals as `wheelhouse add`); ours below guard the install itself.
  // Member hashes are left out there: each member is checked against RECORD as it is written into the layer.
  if (options.validate !== false) {
    await validateWheel(wheelPath, typeof options.validate === 'object' ? options.validate : undefined, { recordHashes: false });
  }
  const m = /^([^-]+)-([^-]+)-/.exec(wheel);
  if (!m || !wheel.endsWith('.whl')) throw new ImageError('WHEEL_NAME_INVALID', `not a wheel file name: ${wheel}`);
  let zip: OpenZip;
  try {
    zip = await openZip(wheelPath, wheel, Number.MAX_SAFE_INTEGER);
  } catch (err) {
    throw new ImageError('WHEEL_NOT_ZIP', `${wheel}: not a readable zip archive (${(err as Error).message})`, { cause: err });
  }
  try {
    const planned = await plan(zip, wheel, m[1]!, m[2]!, options);
    // Planned wheels may wait a while for their turn: their bytes are read again when written.
    zip.release();
    return planned;
  } catch (err) {
    zip.close();
    throw err;
  }
}

async function plan(zip: OpenZip, wheel: string, fileName: string, fileVersion: string, options: InstallOptions): Promise<PlannedWheel> {
  const paths = schemePaths(options.scheme);
  const maxMembers = options.maxMembers ?? 100_000;
  const maxBytes = options.maxUncompressedBytes ?? 2 * 1024 ** 3;
  if (zip.members.length > maxMembers) throw new ImageError('WHEEL_BOMB', `${wheel}: ${zip.members.length} members (limit ${maxMembers})`);
  let total = 0;
  const byName = new Map<string, ZipMember>();
  for (const e of zip.members) {
    checkMemberName(wheel, e.name);
    if (isSymlink(e)) throw hostile(wheel, `symbolic link member: ${e.name}`);
    if (e.entry.isEncrypted()) throw new ImageError('WHEEL_ENCRYPTED', `${wheel}: encrypted member ${e.name}`);
    if (byName.has(e.name)) throw new ImageError('WHEEL_MEMBER_DUPLICATE', `${wheel}: member ${e.name} appears twice`);
    byName.set(e.name, e);
    const { uncompressedSize, compressedSize } = e.entry;
    total += uncompressedSize;
    if (total > maxBytes) throw new ImageError('WHEEL_BOMB', `${wheel}: more than ${maxBytes} bytes uncompressed`);
    if (compressedSize > 0 && uncompressedSize / compressedSize > 1000 && uncompressedSize > 1024 ** 2) {
      throw new ImageError('WHEEL_BOMB', `${wheel}: member ${e.name} compresses ${Math.round(uncompressedSize / compressedSize)}:1`);
    }
  }
  const distInfos = new Set(
    [...byName.keys()].map((n) => n.split('/')[0]!).filter((top) => top.endsWith('.dist-info')),
  );
  const canon = (s: string): string => s.toLowerCase().replace(/[-_.]+/g, '_');
  const matching = [...distInfos].filter((d) => {
    const stem = d.slice(0, -'.dist-info'.length);
    return canon(stem.slice(0, stem.lastIndexOf('-'))) === canon(fileName);
  });
  if (distInfos.size === 0 || matching.length === 0) {
    throw new ImageError('WHEEL_DIST_INFO_MISSING', `${wheel}: no ${fileName}-${fileVersion}.dist-info directory`);
  }
  if (matching.length > 1) throw new ImageError('WHEEL_DIST_INFO_DUPLICATE', `${wheel}: several .dist-info directories`);
  const distInfo = matching[0]!;
  const dataDir = distInfo.replace(/\.dist-info$/, '.data');
  const readText = async (name: string): Promise<string | null> => {
    const e = byName.get(name);
    return e ? (await readMember(zip, e)).toString('utf8') : null;
  };
  const wheelFile = await readText(`${distInfo}/WHEEL`);
  if (wheelFile === null) throw new ImageError('WHEEL_WHEEL_FILE_MISSING', `${wheel}: ${distInfo}/WHEEL is missing`);
  const wheelHeaders = parseEmailHeaders(wheelFile);
  const wheelVersion = wheelHeaders.get('wheel-version') ?? '';
  if (!/^1\.\d+$/.test(wheelVersion)) throw new ImageError('WHEEL_VERSION_UNSUPPORTED', `${wheel}: Wheel-Version ${wheelVersion || '(none)'} is not 1.x`);
  const rootIsPurelib = (wheelHeaders.get('root-is-purelib') ?? 'true').toLowerCase() === 'true';
  const metadata = parseEmailHeaders((await readText(`${distInfo}/METADATA`)) ?? '');
  const distName = metadata.get('name') ?? fileName;
  const recordText = await readText(`${distInfo}/RECORD`);
  if (recordText === null) throw new ImageError('WHEEL_RECORD_MISSING', `${wheel}: ${distInfo}/RECORD is missing`);
  const recordRows = parseCsv(recordText);
  const recordByPath = new Map<string, { hash: string; size: string }>();
  for (const r of recordRows) recordByPath.set(r[0] ?? '', { hash: r[1] ?? '', size: r[2] ?? '' });

  const root = rootIsPurelib ? paths.purelib : paths.platlib;
  const lib = paths.purelib;
  const entries: LayerEntry[] = [];
  const installed = new Map<string, string>(); // wheel member -> installed absolute path
  const changed = new Map<string, { hash: string; size: number }>(); // installed absolute path -> new hash
  const owner = { uid: options.uid ?? 0, gid: options.gid ?? 0 };
  const recordPath = `${distInfo}/RECORD`;

  for (const [name, e] of [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (name.endsWith('/')) continue;
    if (name === recordPath) continue;
    let dest: string;
    let script = false;
    if (name.startsWith(dataDir + '/')) {
      const rest = name.slice(dataDir.length + 1);
      const slash = rest.indexOf('/');
      if (slash < 0) throw hostile(wheel, `file directly in ${dataDir}/: ${name}`);
      const key = rest.slice(0, slash);
      const sub = rest.slice(slash + 1);
      if (key === 'purelib') dest = `${paths.purelib}/${sub}`;
      else if (key === 'platlib') dest = `${paths.platlib}/${sub}`;
      else if (key === 'scripts') {
        dest = `${paths.scripts}/${sub}`;
        script = true;
      } else if (key === 'headers') dest = `${paths.include}/${distName}/${sub}`;
      else if (key === 'data') dest = `${paths.data}/${sub}`;
      else throw hostile(wheel, `unknown .data scheme "${key}" in ${name}`);
    } else {
      dest = `${root}/${name}`;
    }
    installed.set(name, dest);
    const rel = dest.replace(/^\//, '');
    if (script) {
      // Scripts are small: read, fix the "#!python" line as pip does, and record the new hash.
      let data = await readMember(zip, e);
      checkRecorded(wheel, name, data, recordedDigest(recordByPath.get(name)?.hash));
      if (data.subarray(0, 8).toString('latin1') === '#!python') {
        const nl = data.indexOf(0x0a);
        const rest = nl < 0 ? Buffer.alloc(0) : data.subarray(nl + 1);
        data = Buffer.concat([Buffer.from(`#!${paths.python}\n`), rest]);
      }
      changed.set(dest, { hash: recordHash(data), size: data.length });
      // pip keeps the zip's mode bits here (it does not chmod rewritten scripts).
      entries.push({ path: rel, type: 'file', data, mode: isExecutable(e) ? 0o755 : 0o644, ...owner });
      continue;
    }
    const recorded = recordedDigest(recordByPath.get(name)?.hash);
    let hex: string;
    if (recorded?.algorithm === 'sha256') hex = recorded.hex;
    else {
      // Another algorithm (checked now), or not in RECORD (when validation is off: hashed now so that the new
      // RECORD can be written before the file); the layer writer then checks the sha256 it computes here.
      const data = await readMember(zip, e);
      checkRecorded(wheel, name, data, recorded);
      hex = createHash('sha256').update(data).digest('hex');
      if (!recorded) changed.set(dest, { hash: hexToRecordHash(hex), size: data.length });
    }
    entries.push({
      path: rel,
      type: 'file',
      size: e.entry.uncompressedSize,
      mode: isExecutable(e) ? 0o755 : 0o644,
      ...owner,
      open: () => (e.entry.uncompressedSize <= SMALL_MEMBER_BYTES ? zip.read(e) : zip.open(e)),
      verify: (got) => {
        if (got !== hex) throw recordMismatch(wheel, name);
      },
    });
  }

  // Generated files: launchers, INSTALLER, REQUESTED.
  const generated: { dest: string; data: Buffer; mode: number }[] = [];
  const epText = await readText(`${distInfo}/entry_points.txt`);
  if (epText !== null) {
    for (const ep of parseEntryPoints(epText)) {
      generated.push({ dest: `${paths.scripts}/${ep.name}`, data: Buffer.from(consoleScript(paths.python, ep.module, ep.attr)), mode: 0o755 });
    }
  }
  const distInfoDest = `${root}/${distInfo}`;
  generated.push({ dest: `${distInfoDest}/INSTALLER`, data: Buffer.from(`${options.installer ?? 'dstack-factory'}\n`), mode: 0o644 });
  if (options.requested ?? true) generated.push({ dest: `${distInfoDest}/REQUESTED`, data: Buffer.alloc(0), mode: 0o644 });
  const generatedPaths = new Set(generated.map((g) => g.dest));
  for (let i = entries.length - 1; i >= 0; i--) {
    // A launcher replaces a .data script of the same name, as pip's clobbering ScriptMaker does.
    if (generatedPaths.has('/' + entries[i]!.path)) entries.splice(i, 1);
  }
  for (const g of generated) entries.push({ path: g.dest.replace(/^\//, ''), type: 'file', data: g.data, mode: g.mode, ...owner });

  // RECORD, as pip rewrites it: the wheel's rows with installed paths (relative to site-packages), changed
  // files re-hashed, generated files added, RECORD itself without a hash; sorted.
  const relToLib = (abs: string): string => path.posix.relative(lib, abs);
  const rows: [string, string, string][] = [];
  const seen = new Set<string>();
  for (const r of recordRows) {
    const member = r[0] ?? '';
    if (member === recordPath) {
      rows.push([relToLib(`${distInfoDest}/RECORD`), '', '']);
      continue;
    }
    const dest = installed.get(member);
    if (dest === undefined || generatedPaths.has(dest)) {
      if (dest === undefined) rows.push([member, r[1] ?? '', r[2] ?? '']);
      continue;
    }
    seen.add(dest);
    const c = changed.get(dest);
    rows.push([relToLib(dest), c ? c.hash : (r[1] ?? ''), c ? String(c.size) : (r[2] ?? '')]);
  }
  for (const g of generated) rows.push([relToLib(g.dest), recordHash(g.data), String(g.data.length)]);
  for (const [member, dest] of installed) {
    if (seen.has(dest) || generatedPaths.has(dest) || recordByPath.has(member)) continue;
    const c = changed.get(dest)!;
    rows.push([relToLib(dest), c.hash, String(c.size)]);
  }
  const recordEntry = (extra: [string, string, string][]): LayerEntry => ({
    path: `${distInfoDest}/RECORD`.replace(/^\//, ''),
    type: 'file',
    data: Buffer.from(formatCsv([...rows, ...extra].sort(cmpTuple))),
    mode: 0o644,
    ...owner,
  });
  entries.push(recordEntry([]));

  // What pip's compileall pass reads: the files taken from the wheel (not the launchers it writes after), .py only.
  const memberOf = new Map([...installed].map(([member, dest]) => [dest, byName.get(member)!]));
  const entryOf = new Map(entries.map((e) => [e.path, e]));
  const pySources = [...memberOf.keys()]
    .filter((dest) => dest.endsWith('.py') && !generatedPaths.has(dest))
    .sort()
    .map((dest) => {
      const entry = entryOf.get(dest.replace(/^\//, ''));
      const data = entry?.data; // a script, as rewritten
      // The name compiled into the .pyc is pip's: site-packages joined with the RECORD path, unnormalised
      // ("…/site-packages/../../../bin/tool.py" for a script).
      const read = async (): Promise<Buffer> => {
        if (data) return data;
        const bytes = await readMember(zip, memberOf.get(dest)!);
        // Read for the compiler: the layer writer takes these bytes (checked against RECORD then) instead of a second read.
        if (entry?.open) {
          const open = entry.open;
          entry.open = () => {
            entry.open = open;
            return bytes;
          };
        }
        return bytes;
      };
      return { path: dest, compiledAs: `${lib}/${relToLib(dest)}`, read };
    });
  let compiled = false;
  const addBytecode: PlannedWheel['addBytecode'] = (cacheTag, pycs) => {
    if (compiled) throw new Error(`${wheel}: bytecode added twice`);
    if (pycs.length !== pySources.length) throw new Error(`${wheel}: ${pycs.length} .pyc for ${pySources.length} sources`);
    compiled = true;
    const extra: [string, string, string][] = [];
    entries.pop(); // RECORD, written again below with the .pyc rows
    pySources.forEach((src, i) => {
      const pyc = pycs[i];
      if (!pyc) return;
      const dest = pycPath(src.path, cacheTag);
      entries.push({ path: dest.replace(/^\//, ''), type: 'file', size: pyc.size, mode: 0o644, ...owner, open: pyc.open });
      extra.push([relToLib(dest), '', '']);
    });
    entries.push(recordEntry(extra));
  };

  return {
    wheel,
    name: distName,
    version: metadata.get('version') ?? fileVersion,
    distInfo,
    entries,
    pySources,
    addBytecode,
    close: () => zip.close(),
  };
}

/** importlib.util.cache_from_source: `dir/__pycache__/name.<tag>.pyc` (optimisation level 0, pip's). */
export function pycPath(source: string, cacheTag: string): string {
  const dir = path.posix.dirname(source);
  return `${dir}/__pycache__/${path.posix.basename(source, '.py')}.${cacheTag}.pyc`;
}

function cmpTuple(a: string[], b: string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? '';
    const y = b[i] ?? '';
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/**
 * A RECORD hash field ("sha256=<urlsafe base64>") as algorithm and hex digest; hex digests, which some real
 * wheels write, are accepted as the wheelhouse accepts them. Null when empty or not a sha2 algorithm.
 */
function recordedDigest(field: string | undefined): { algorithm: string; hex: string } | null {
  const eq = field?.indexOf('=') ?? -1;
  if (!field || eq < 0) return null;
  const algorithm = field.slice(0, eq);
  const value = field.slice(eq + 1).replace(/=+$/, '');
  const hexLength = HEX_LENGTH[algorithm];
  if (hexLength === undefined) return null;
  if (value.length === hexLength && /^[0-9a-f]+$/i.test(value)) return { algorithm, hex: value.toLowerCase() };
  return { algorithm, hex: Buffer.from(value, 'base64url').toString('hex') };
}

function checkRecorded(wheel: string, name: string, data: Buffer, recorded: { algorithm: string; hex: string } | null): void {
  if (recorded && createHash(recorded.algorithm).update(data).digest('hex') !== recorded.hex) {
    throw recordMismatch(wheel, name);
  }
}

/** The wheelhouse's code for the same refusal (a member whose bytes are not what RECORD says). */
const recordMismatch = (wheel: string, name: string): ImageError =>
  new ImageError('WHEEL_RECORD_MISMATCH', `${wheel}: ${name} does not match its RECORD hash`, {
    hint: 'the wheel is refused; rebuild it from a trusted source',
  });


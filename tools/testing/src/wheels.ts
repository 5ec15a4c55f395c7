// Wheels built in code, valid and hostile, for tests and benchmarks (never committed binaries).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipMemberSpec {
  /** The member's name, written as is: even what zip libraries refuse (absolute, `..`, `\`, `C:`). */
  path: string;
  data: string | Buffer;
  /** Unix mode (e.g. 0o120777 for a symlink); default 0o100644. */
  mode?: number;
  /** Store instead of deflate. */
  store?: boolean;
}

/**
 * Writes a zip of `members`, in order, into a Buffer. A small writer of its own (not yazl): it must write what
 * zip libraries refuse to (absolute names, `..`, backslashes, duplicates), and yazl's crc32 dependency does not
 * load under vitest's resolve conditions here.
 */
export function zipBuffer(members: ZipMemberSpec[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const name = Buffer.from(m.path, 'utf8');
    const data = Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data);
    const method = m.store ? 0 : 8;
    const body = m.store ? data : deflateRawSync(data);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10); // 00:00
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    parts.push(local, name, body);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE((3 << 8) | 20, 4); // made by Unix: the external attributes hold the mode
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt16LE(0, 12);
    entry.writeUInt16LE(0x21, 14);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(body.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt32LE(((m.mode ?? 0o100644) << 16) >>> 0, 38);
    entry.writeUInt32LE(offset, 42);
    central.push(entry, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

export interface WheelSpec {
  name: string;
  version: string;
  /** Compressed tag set, default `py3-none-any`. */
  tag?: string;
  build?: string;
  /** Requires-Dist lines (PEP 508). */
  requires?: string[];
  requiresPython?: string;
  providesExtra?: string[];
  /** Default 2.1 (what Debian's twine reads). */
  metadataVersion?: string;
  summary?: string;
  /** The long description (METADATA's body; default one line of plain text) and its content type. */
  description?: string;
  descriptionContentType?: string;
  /** Package files; default `<module>/__init__.py` with `TAG = "<tag>"`, `VERSION = "<version>"`. */
  files?: Record<string, string | Buffer>;
  /** Hostile knobs. */
  distInfoDir?: string;
  metadataName?: string;
  wheelVersion?: string;
  omit?: Array<'METADATA' | 'WHEEL' | 'RECORD'>;
  /** Members added after RECORD is computed (not listed in it unless `listed`). */
  extraMembers?: Array<ZipMemberSpec & { listed?: boolean }>;
  /** Rewrites RECORD rows [path, hash, size] before it is written. */
  tamperRecord?: (rows: string[][]) => string[][];
  /** Store the package files uncompressed. */
  store?: boolean;
}

const escapeName = (name: string): string => name.replace(/[-_.]+/g, '_');
const moduleName = (name: string): string => name.replace(/[-.]+/g, '_').toLowerCase();

export function wheelFilenameOf(spec: Pick<WheelSpec, 'name' | 'version' | 'tag' | 'build'>): string {
  const parts = [escapeName(spec.name), spec.version];
  if (spec.build) parts.push(spec.build);
  parts.push(spec.tag ?? 'py3-none-any');
  return `${parts.join('-')}.whl`;
}

function recordHash(data: Buffer): string {
  return `sha256=${createHash('sha256').update(data).digest('base64url')}`;
}

/** The members of a wheel for `spec`, RECORD last (as bdist_wheel writes it). */
export function wheelMembers(spec: WheelSpec): ZipMemberSpec[] {
  const tag = spec.tag ?? 'py3-none-any';
  const distInfo = spec.distInfoDir ?? `${escapeName(spec.name)}-${spec.version}.dist-info`;
  const files: Record<string, string | Buffer> = spec.files ?? {
    [`${moduleName(spec.name)}/__init__.py`]: `TAG = ${JSON.stringify(tag)}\nVERSION = ${JSON.stringify(spec.version)}\n`,
  };
  const meta = [
    `Metadata-Version: ${spec.metadataVersion ?? '2.1'}`,
    `Name: ${spec.metadataName ?? spec.name}`,
    `Version: ${spec.version}`,
    `Summary: ${spec.summary ?? `test package ${spec.name}`}`,
    ...(spec.requiresPython ? [`Requires-Python: ${spec.requiresPython}`] : []),
    ...(spec.providesExtra ?? []).map((e) => `Provides-Extra: ${e}`),
    ...(spec.requires ?? []).map((r) => `Requires-Dist: ${r}`),
    ...(spec.descriptionContentType ? [`Description-Content-Type: ${spec.descriptionContentType}`] : []),
    '',
    spec.description ?? `A test package made by @dstack/testing.\n`,
  ].join('\n');
  const [py, abi, plat] = tag.split('-') as [string, string, string];
  const tagLines = py
    .split('.')
    .flatMap((p) => abi.split('.').flatMap((a) => plat.split('.').map((t) => `Tag: ${p}-${a}-${t}`)));
  const wheel = [
    `Wheel-Version: ${spec.wheelVersion ?? '1.0'}`,
    'Generator: dstack-testing (0.0.0)',
    `Root-Is-Purelib: ${plat === 'any' ? 'true' : 'false'}`,
    ...tagLines,
    ...(spec.build ? [`Build: ${spec.build}`] : []),
    '',
  ].join('\n');
  const members: ZipMemberSpec[] = Object.entries(files).map(([path, data]) => ({
    path,
    data,
    store: spec.store ?? false,
  }));
  if (!spec.omit?.includes('METADATA')) members.push({ path: `${distInfo}/METADATA`, data: meta });
  if (!spec.omit?.includes('WHEEL')) members.push({ path: `${distInfo}/WHEEL`, data: wheel });
  for (const m of spec.extraMembers ?? []) if (m.listed) members.push(m);
  let rows = members.map((m) => {
    const data = Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data);
    return [m.path, recordHash(data), String(data.length)];
  });
  rows.push([`${distInfo}/RECORD`, '', '']);
  if (spec.tamperRecord) rows = spec.tamperRecord(rows);
  if (!spec.omit?.includes('RECORD')) {
    members.push({ path: `${distInfo}/RECORD`, data: rows.map((r) => r.join(',')).join('\n') + '\n' });
  }
  for (const m of spec.extraMembers ?? []) if (!m.listed) members.push(m);
  return members;
}

/** A wheel for `spec` as bytes. */
export async function buildWheel(spec: WheelSpec): Promise<Buffer> {
  return zipBuffer(wheelMembers(spec));
}

/** Writes a wheel for `spec` into `dir` (under `filename`, default its PEP 427 name); returns its path. */
export async function writeWheel(
  dir: string,
  spec: WheelSpec,
  filename = wheelFilenameOf(spec),
): Promise<string> {
  const path = join(dir, filename);
  await writeFile(path, await buildWheel(spec));
  return path;
}

/**
 * Writes a large valid wheel (random, incompressible payload of `bytes`, streamed to disk) and returns its path.
 */
export async function writeLargeWheel(dir: string, spec: WheelSpec, bytes: number): Promise<string> {
  const mod = moduleName(spec.name);
  const files = {
    [`${mod}/__init__.py`]: 'DATA = "payload.bin"\n',
    [`${mod}/payload.bin`]: randomBytes(bytes),
  };
  const path = join(dir, wheelFilenameOf(spec));
  await writeFile(path, zipBuffer(wheelMembers({ ...spec, files, store: true })));
  return path;
}

export interface HostileWheel {
  id: string;
  description: string;
  /** The WheelError code it must be refused with. */
  code: string;
  filename: string;
  bytes(): Promise<Buffer>;
  /** Limits to validate with (bombs are tested against small limits). */
  limits?: { maxUncompressedBytes?: number; maxCompressionRatio?: number; maxMembers?: number };
}

const base = { name: 'evil', version: '1.0' };
const okName = wheelFilenameOf(base);

/** The table of malicious or broken wheels: each one must be refused with its code and nothing stored. */
export function hostileWheels(): HostileWheel[] {
  const w = (
    id: string,
    code: string,
    description: string,
    spec: Partial<WheelSpec>,
    extra: Partial<HostileWheel> = {},
  ): HostileWheel => ({
    id,
    code,
    description,
    filename: okName,
    bytes: () => buildWheel({ ...base, ...spec }),
    ...extra,
  });
  const raw = (members: () => Promise<Buffer>) => ({ bytes: members });
  return [
    w(
      'bad-name',
      'WHEEL_NAME_INVALID',
      'the file name is not PEP 427',
      {},
      { filename: 'evil-1.0-py3-none.whl' },
    ),
    w(
      'bad-version',
      'WHEEL_NAME_INVALID',
      'the version in the file name is not PEP 440',
      {},
      { filename: 'evil-one-py3-none-any.whl' },
    ),
    w(
      'not-zip',
      'WHEEL_NOT_ZIP',
      'plain text named .whl',
      {},
      raw(async () => Buffer.from('#!/bin/sh\necho pwned\n')),
    ),
    w(
      'truncated',
      'WHEEL_NOT_ZIP',
      'a zip cut in half',
      {},
      raw(async () => (await buildWheel(base)).subarray(0, 200)),
    ),
    w(
      'no-dist-info',
      'WHEEL_DIST_INFO_MISSING',
      'no .dist-info directory',
      {},
      raw(async () => zipBuffer([{ path: 'evil/__init__.py', data: '' }])),
    ),
    w('two-dist-info', 'WHEEL_DIST_INFO_DUPLICATE', 'two .dist-info directories', {
      extraMembers: [
        { path: 'other-2.0.dist-info/METADATA', data: 'Metadata-Version: 2.1\nName: other\nVersion: 2.0\n' },
      ],
    }),
    w('dist-info-mismatch', 'WHEEL_DIST_INFO_MISMATCH', 'the .dist-info names another project', {
      distInfoDir: 'good-1.0.dist-info',
    }),
    w('metadata-name-mismatch', 'WHEEL_DIST_INFO_MISMATCH', 'METADATA names another project', {
      metadataName: 'requests',
    }),
    w('wheel-version-2', 'WHEEL_VERSION_UNSUPPORTED', 'Wheel-Version: 2.0', { wheelVersion: '2.0' }),
    w('no-wheel-file', 'WHEEL_WHEEL_FILE_MISSING', 'no WHEEL file', { omit: ['WHEEL'] }),
    w('no-metadata', 'WHEEL_METADATA_MISSING', 'no METADATA file', { omit: ['METADATA'] }),
    w('metadata-version-3', 'WHEEL_METADATA_INVALID', 'Metadata-Version: 3.0', { metadataVersion: '3.0' }),
    w('absolute-path', 'WHEEL_PATH_UNSAFE', 'a member at /etc/cron.d/evil', {
      extraMembers: [{ path: '/etc/cron.d/evil', data: '* * * * * root sh\n' }],
    }),
    w('dotdot-path', 'WHEEL_PATH_UNSAFE', 'a member escaping with ../', {
      extraMembers: [{ path: '../../evil.pth', data: 'import os\n' }],
    }),
    w('backslash-path', 'WHEEL_PATH_UNSAFE', 'a member with a backslash', {
      extraMembers: [{ path: 'evil\\..\\..\\x.py', data: '' }],
    }),
    w('drive-letter', 'WHEEL_PATH_UNSAFE', 'a member at C:/Windows', {
      extraMembers: [{ path: 'C:/Windows/evil.dll', data: '' }],
    }),
    w('symlink', 'WHEEL_SYMLINK', 'a member that is a symlink to /etc/shadow', {
      extraMembers: [{ path: 'evil/shadow', data: '/etc/shadow', mode: 0o120777, listed: true }],
    }),
    w('whiteout', 'WHEEL_WHITEOUT', 'an OCI whiteout member', {
      extraMembers: [{ path: 'evil/.wh.site-packages', data: '', listed: true }],
    }),
    w('opaque-whiteout', 'WHEEL_WHITEOUT', 'an opaque-directory whiteout', {
      extraMembers: [{ path: '.wh..wh..opq', data: '', listed: true }],
    }),
    w('duplicate-member', 'WHEEL_MEMBER_DUPLICATE', 'the same member twice', {
      extraMembers: [{ path: 'evil/__init__.py', data: 'import os; os.system("id")\n' }],
    }),
    w('no-record', 'WHEEL_RECORD_MISSING', 'no RECORD', { omit: ['RECORD'] }),
    w('record-hash', 'WHEEL_RECORD_MISMATCH', 'RECORD lists another hash', {
      tamperRecord: (rows) =>
        rows.map((r) => (r[0] === 'evil/__init__.py' ? [r[0]!, `sha256=${'A'.repeat(43)}`, r[2]!] : r)),
    }),
    w('record-size', 'WHEEL_RECORD_MISMATCH', 'RECORD lists another size', {
      tamperRecord: (rows) => rows.map((r) => (r[0] === 'evil/__init__.py' ? [r[0]!, r[1]!, '1'] : r)),
    }),
    w('unlisted-member', 'WHEEL_RECORD_MISMATCH', 'a member RECORD does not list', {
      extraMembers: [{ path: 'evil/backdoor.py', data: 'x = 1\n' }],
    }),
    w('record-md5', 'WHEEL_RECORD_INVALID', 'RECORD uses md5', {
      tamperRecord: (rows) =>
        rows.map((r) => (r[0] === 'evil/__init__.py' ? [r[0]!, 'md5=1B2M2Y8AsgTpgAmY7PhCfg', r[2]!] : r)),
    }),
    w(
      'bomb-size',
      'WHEEL_BOMB',
      '8 MiB stored (limit 4 MiB)',
      { files: { 'evil/zeros.bin': Buffer.alloc(8 * 1024 * 1024) }, store: true },
      { limits: { maxUncompressedBytes: 4 * 1024 * 1024 } },
    ),
    w('bomb-ratio', 'WHEEL_BOMB', 'the whole wheel expands ~700x (2 MiB of zeros)', {
      files: { 'evil/zeros.bin': Buffer.alloc(2 * 1024 * 1024) },
    }),
    w(
      'bomb-members',
      'WHEEL_BOMB',
      '600 members (limit 500)',
      {
        files: Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`evil/m${i}.py`, ''])),
      },
      { limits: { maxMembers: 500 } },
    ),
  ];
}

/** The real bootstrap wheels on this machine: each interpreter's ensurepip bundle and Debian's python-wheels. */
export function bootstrapWheels(): string[] {
  const out: string[] = [];
  const roots = [process.env.PYENV_ROOT, '/root/.pyenv', join(process.env.HOME ?? '/root', '.pyenv')].filter(
    (r): r is string => Boolean(r),
  );
  for (const root of [...new Set(roots)]) {
    const versions = join(root, 'versions');
    if (!existsSync(versions)) continue;
    for (const v of readdirSync(versions).sort()) {
      const lib = join(versions, v, 'lib');
      if (!existsSync(lib)) continue;
      for (const py of readdirSync(lib).filter((d) => /^python3\.\d+$/.test(d))) {
        const bundled = join(lib, py, 'ensurepip', '_bundled');
        if (!existsSync(bundled)) continue;
        for (const f of readdirSync(bundled).sort()) if (f.endsWith('.whl')) out.push(join(bundled, f));
      }
    }
  }
  const debian = '/usr/share/python-wheels';
  if (existsSync(debian))
    for (const f of readdirSync(debian).sort()) if (f.endsWith('.whl')) out.push(join(debian, f));
  return out;
}

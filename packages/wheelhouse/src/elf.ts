// Reading what the dynamic loader reads of an ELF file: its class, byte order and machine, its program
// interpreter, and its dynamic section (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, DF_1_NODEFLIB).
// Only the header, the program headers, the dynamic segment and the strings it names are read: through a
// `ByteSource`, which may be a file (random access) or a stream (a zip member or a tar entry, read forward
// once and never past the dynamic segment).
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { WheelError } from './errors.js';
import { ARCHITECTURES } from './platforms.js';
import { DEFAULT_LIMITS } from './validate.js';
import { openZip, readMember, type OpenZip, type ZipMember } from './zip.js';

/** What the dynamic loader needs to know of one ELF file. */
export interface ElfInfo {
  bits: 32 | 64;
  endian: 'little' | 'big';
  /** `e_machine`, e.g. 62 (x86-64), 183 (AArch64). */
  machine: number;
  /** The machine's usual name ("x86_64", "aarch64", …; `machine-N` for others). */
  arch: string;
  type: 'relocatable' | 'executable' | 'shared' | 'core' | 'other';
  /** PT_INTERP: the program interpreter an executable names (e.g. /lib64/ld-linux-x86-64.so.2). */
  interpreter: string | null;
  /** DT_NEEDED, in order. */
  needed: string[];
  soname: string | null;
  /** DT_RPATH and DT_RUNPATH, split at ':' (glibc ignores DT_RPATH when DT_RUNPATH is present). */
  rpath: string[];
  runpath: string[];
  /** DF_1_NODEFLIB: the default directories (and ld.so.cache) are not searched for its dependencies. */
  nodeflib: boolean;
}

/** Bytes at offsets. A read past the end returns fewer bytes (or none). */
export interface ByteSource {
  read(offset: number, length: number): Promise<Buffer>;
  /** Releases what the source holds (an open stream); further reads are not allowed. */
  close?(): void;
  /** Reads a stream to its end without keeping anything (a tar entry must be read through before the next). */
  drain?(): Promise<void>;
}

/** The usual name of an ELF machine (PEP 425's: "x86_64", "aarch64", "ppc64le"…; `machine-N` for others). */
export function machineName(machine: number, bits?: number, endian?: 'little' | 'big'): string {
  const fits = ARCHITECTURES.filter((a) => a.elf.machine === machine && (bits === undefined || a.elf.bits === bits));
  return (fits.find((a) => endian === undefined || a.elf.endian === endian) ?? fits[0])?.machine ?? `machine-${machine}`;
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
const DT_FLAGS_1 = 0x6ffffffbn;
const DF_1_NODEFLIB = 0x800n;

/** Program headers and dynamic entries past these counts are refused (no real file comes near them). */
const MAX_PHNUM = 4096;
const MAX_DYN_BYTES = 1 << 20;
const MAX_STRTAB_BYTES = 64 << 20;

/** True when the bytes start with the ELF magic. */
export function isElf(head: Buffer): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

function invalid(label: string, why: string): WheelError {
  return new WheelError('ELF_INVALID', `${label}: not a readable ELF file: ${why}`);
}

/**
 * Reads an ELF file's loader-relevant facts, or null when the bytes are not ELF. Throws `ELF_INVALID` (naming
 * `label`) when they start like ELF but their headers do not hold together.
 */
export async function readElf(source: ByteSource, label: string): Promise<ElfInfo | null> {
  const ident = await source.read(0, 64);
  if (!isElf(ident)) return null;
  const bits = ident[4] === 1 ? 32 : ident[4] === 2 ? 64 : null;
  const endian = ident[5] === 1 ? 'little' : ident[5] === 2 ? 'big' : null;
  if (bits === null) throw invalid(label, `unknown class ${ident[4]}`);
  if (endian === null) throw invalid(label, `unknown data encoding ${ident[5]}`);
  if (ident.length < (bits === 64 ? 64 : 52)) throw invalid(label, 'truncated ELF header');
  const le = endian === 'little';
  const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (b: Buffer, o: number): bigint => (le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const word = (b: Buffer, o: number): bigint => (bits === 64 ? u64(b, o) : BigInt(u32(b, o)));
  const num = (v: bigint, what: string): number => {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(label, `${what} ${v} is out of range`);
    return Number(v);
  };
  const eType = u16(ident, 16);
  const machine = u16(ident, 18);
  const phoff = num(word(ident, bits === 64 ? 32 : 28), 'e_phoff');
  const phentsize = u16(ident, bits === 64 ? 54 : 42);
  const phnum = u16(ident, bits === 64 ? 56 : 44);
  const type: ElfInfo['type'] =
    eType === 1 ? 'relocatable' : eType === 2 ? 'executable' : eType === 3 ? 'shared' : eType === 4 ? 'core' : 'other';
  const info: ElfInfo = {
    bits,
    endian,
    machine,
    arch: machineName(machine, bits, endian),
    type,
    interpreter: null,
    needed: [],
    soname: null,
    rpath: [],
    runpath: [],
    nodeflib: false,
  };
  if (phnum === 0) return info;
  if (phnum > MAX_PHNUM) throw invalid(label, `${phnum} program headers`);
  if (phentsize < (bits === 64 ? 56 : 32)) throw invalid(label, `program header size ${phentsize}`);
  const ph = await source.read(phoff, phnum * phentsize);
  if (ph.length < phnum * phentsize) throw invalid(label, 'program headers run past the end of the file');
  const loads: { vaddr: bigint; offset: bigint; filesz: bigint }[] = [];
  let dynamic: { offset: number; size: number } | null = null;
  let interp: { offset: number; size: number } | null = null;
  for (let i = 0; i < phnum; i++) {
    const o = i * phentsize;
    const pType = u32(ph, o);
    const offset = bits === 64 ? u64(ph, o + 8) : BigInt(u32(ph, o + 4));
    const vaddr = bits === 64 ? u64(ph, o + 16) : BigInt(u32(ph, o + 8));
    const filesz = bits === 64 ? u64(ph, o + 32) : BigInt(u32(ph, o + 16));
    if (pType === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (pType === PT_DYNAMIC) dynamic = { offset: num(offset, 'PT_DYNAMIC offset'), size: num(filesz, 'PT_DYNAMIC size') };
    else if (pType === PT_INTERP) interp = { offset: num(offset, 'PT_INTERP offset'), size: num(filesz, 'PT_INTERP size') };
  }
  // Forward first (the interpreter's path lies before the dynamic segment), so a stream is read once.
  const reads = [interp, dynamic].filter((r): r is { offset: number; size: number } => r !== null).sort((a, b) => a.offset - b.offset);
  let dyn: Buffer | null = null;
  for (const r of reads) {
    if (r === interp) {
      const b = await source.read(r.offset, Math.min(r.size, 4096));
      info.interpreter = b.subarray(0, b.indexOf(0) >= 0 ? b.indexOf(0) : b.length).toString('latin1');
    } else {
      if (r.size > MAX_DYN_BYTES) throw invalid(label, `dynamic segment of ${r.size} bytes`);
      dyn = await source.read(r.offset, r.size);
      if (dyn.length < r.size) throw invalid(label, 'the dynamic segment runs past the end of the file');
    }
  }
  if (!dyn) return info;
  const entSize = bits === 64 ? 16 : 8;
  const entries: [bigint, bigint][] = [];
  for (let o = 0; o + entSize <= dyn.length; o += entSize) {
    const tag = bits === 64 ? (le ? dyn.readBigInt64LE(o) : dyn.readBigInt64BE(o)) : BigInt(le ? dyn.readInt32LE(o) : dyn.readInt32BE(o));
    if (tag === DT_NULL) break;
    entries.push([tag, word(dyn, o + entSize / 2)]);
  }
  const strtabAddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
  const strsz = entries.find(([t]) => t === DT_STRSZ)?.[1];
  for (const [t, v] of entries) if (t === DT_FLAGS_1 && (v & DF_1_NODEFLIB) !== 0n) info.nodeflib = true;
  const wanted = entries.filter(([t]) => t === DT_NEEDED || t === DT_SONAME || t === DT_RPATH || t === DT_RUNPATH);
  if (wanted.length === 0) return info;
  if (strtabAddr === undefined || strsz === undefined) throw invalid(label, 'DT_NEEDED/DT_SONAME/DT_RPATH without DT_STRTAB and DT_STRSZ');
  // DT_STRTAB is an address: the PT_LOAD segment holding it gives its place in the file.
  const seg = loads.find((l) => strtabAddr >= l.vaddr && strtabAddr < l.vaddr + l.filesz);
  if (!seg) throw invalid(label, `DT_STRTAB 0x${strtabAddr.toString(16)} is in no loaded segment`);
  const strOffset = num(strtabAddr - seg.vaddr + seg.offset, 'DT_STRTAB offset');
  const size = num(strsz, 'DT_STRSZ');
  if (size > MAX_STRTAB_BYTES) throw invalid(label, `string table of ${size} bytes`);
  // Only the span of the table the wanted strings use is read.
  const maxIndex = wanted.reduce((m, [, v]) => (v > m ? v : m), 0n);
  if (maxIndex >= strsz) throw invalid(label, `string index ${maxIndex} is past DT_STRSZ ${strsz}`);
  let strtab = await source.read(strOffset, Math.min(size, Number(maxIndex) + 4096));
  if (strtab.indexOf(0, Number(maxIndex)) < 0 && strtab.length < size) strtab = await source.read(strOffset, size);
  const str = (v: bigint): string => {
    const start = Number(v);
    const end = strtab.indexOf(0, start);
    if (end < 0) throw invalid(label, `unterminated string at index ${start} of the string table`);
    return strtab.subarray(start, end).toString('utf8');
  };
  const split = (s: string): string[] => s.split(':');
  for (const [t, v] of wanted) {
    if (t === DT_NEEDED) info.needed.push(str(v));
    else if (t === DT_SONAME) info.soname = str(v);
    else if (t === DT_RPATH) info.rpath.push(...split(str(v)));
    else info.runpath.push(...split(str(v)));
  }
  return info;
}

/** A source over bytes in memory. */
export function bufferSource(bytes: Buffer): ByteSource {
  return { read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/** A source over an open file (random access, nothing retained). */
export function fileSource(handle: FileHandle): ByteSource {
  return {
    read: async (offset, length) => {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    },
  };
}

/**
 * A source over a stream read forward once: the bytes read so far are kept (up to `retain` bytes, default
 * 32 MiB) so that a read behind the front (the string table, which lies before the dynamic segment) is served
 * from memory. Past `retain` the oldest kept bytes are dropped, and a read behind them opens the stream again
 * with `reopen` (a zip member is inflated a second time, up to the table only) — or fails when there is none.
 */
export function streamSource(
  first: Readable,
  options: { reopen?: () => Promise<Readable>; retain?: number; label?: string } = {},
): ByteSource {
  const retain = options.retain ?? 32 << 20;
  let stream: Readable | null = first;
  let iterator: AsyncIterator<Buffer> | null = null;
  let kept: Buffer[] = [];
  let keptFrom = 0; // offset of kept[0]
  let front = 0; // bytes consumed from the stream = offset just past the last kept byte
  const pull = async (): Promise<Buffer | null> => {
    if (!stream) return null;
    iterator ??= stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const next = await iterator.next();
    return next.done ? null : next.value;
  };
  const readAgain = async (offset: number, end: number): Promise<Buffer> => {
    if (!options.reopen) {
      throw new WheelError('ELF_INVALID', `${options.label ?? 'stream'}: cannot read back to byte ${offset} (more than ${retain} bytes ahead of it were read)`);
    }
    const again = await options.reopen();
    const out: Buffer[] = [];
    let at = 0;
    try {
      for await (const c of again as AsyncIterable<Buffer>) {
        const cEnd = at + c.length;
        if (cEnd > offset) out.push(c.subarray(Math.max(0, offset - at), Math.min(c.length, end - at)));
        at = cEnd;
        if (at >= end) break;
      }
    } finally {
      again.destroy();
    }
    return Buffer.concat(out);
  };
  return {
    async read(offset, length) {
      const end = offset + length;
      if (offset < keptFrom) return readAgain(offset, end);
      while (front < end) {
        const c = await pull();
        if (!c) break;
        kept.push(c);
        front += c.length;
        // Over the budget: drop whole chunks that end before this read's range.
        while (front - keptFrom > retain && kept.length > 1 && keptFrom + kept[0]!.length <= offset) keptFrom += kept.shift()!.length;
      }
      const all = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
      kept = [all];
      return all.subarray(offset - keptFrom, Math.max(offset, Math.min(end, front)) - keptFrom);
    },
    close() {
      stream?.destroy();
      stream = null;
      iterator = null;
    },
    async drain() {
      kept = [];
      keptFrom = Number.MAX_SAFE_INTEGER;
      while (await pull()) {
        // nothing kept
      }
    },
  };
}

/** Reads an ELF file on disk (null when it is not ELF): only its headers and dynamic segment. */
export async function readElfFile(path: string): Promise<ElfInfo | null> {
  const handle = await open(path, 'r');
  try {
    return await readElf(fileSource(handle), path);
  } finally {
    await handle.close();
  }
}

/** Reads an ELF file from a stream factory (a zip member, a file range): forward once, again only if needed. */
export async function readElfStream(openStream: () => Promise<Readable>, label: string): Promise<ElfInfo | null> {
  const source = streamSource(await openStream(), { reopen: openStream, label });
  try {
    return await readElf(source, label);
  } finally {
    source.close?.();
  }
}

/** One ELF file in a wheel: its member name (as in RECORD) and what the loader reads of it. */
export interface WheelElfFile {
  path: string;
  elf: ElfInfo;
}

const SHARED_OBJECT_RE = /\.so(\.\d+)*$/;

/**
 * Members that may be ELF: shared objects (`.so`, `.so.N`), scripts (`*.data/scripts/`), and files without an
 * extension outside `.dist-info` (executables shipped in a package). The others are never opened.
 */
export function mayBeElf(name: string): boolean {
  if (name.endsWith('/')) return false;
  const base = name.slice(name.lastIndexOf('/') + 1);
  if (SHARED_OBJECT_RE.test(base)) return true;
  if (/^[^/]+\.data\/scripts\//.test(name)) return true;
  if (/^[^/]+\.dist-info\//.test(name)) return false;
  return !base.includes('.');
}

function memberStream(z: OpenZip, m: ZipMember): Promise<Readable> {
  return z.open(m);
}

/**
 * Every ELF file in a wheel, with its machine, needed libraries and search paths. Only candidate members
 * (see {@link mayBeElf}) are opened, and of each only the headers and the dynamic segment are inflated.
 */
export async function readWheelElfFiles(source: string | Buffer, label = typeof source === 'string' ? source : 'wheel'): Promise<WheelElfFile[]> {
  const z = await openZip(source, label, DEFAULT_LIMITS.maxMembers);
  try {
    const out: WheelElfFile[] = [];
    for (const m of z.members) {
      if (!mayBeElf(m.name) || m.entry.uncompressedSize < 52) continue;
      const where = `${label} (${m.name})`;
      const elf = z.bytes
        ? await readElf(bufferSource(await readMember(z, m, label, 1 << 30)), where)
        : await readElfStream(() => memberStream(z, m), where);
      if (elf) out.push({ path: m.name, elf });
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  } finally {
    z.close();
  }
}

/**
 * The libraries a wheel's ELF files need that the wheel does not carry itself (by file name or DT_SONAME):
 * what the system it is installed on must provide. Sorted, unique.
 */
export function externalNeeds(files: WheelElfFile[]): string[] {
  const provided = new Set<string>();
  for (const f of files) {
    provided.add(f.path.slice(f.path.lastIndexOf('/') + 1));
    if (f.elf.soname) provided.add(f.elf.soname);
  }
  const needs = new Set<string>();
  for (const f of files) for (const n of f.elf.needed) if (!provided.has(n)) needs.add(n);
  return [...needs].sort();
}

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWheel, compileElf } from '@dstack/testing';
import {
  bufferSource,
  externalNeeds,
  mayBeElf,
  readElf,
  readElfFile,
  readWheelElfFiles,
  streamSource,
  type ElfInfo,
} from './elf.js';

let dir: string;
const files: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'elf-'));
  files.dep = await compileElf({ dir, output: 'libdep.so.1', args: ['-Wl,-soname,libdep.so.1'] });
  // RPATH (old tags) and RUNPATH (new tags), both with $ORIGIN, and a system library (zlib).
  files.rpath = await compileElf({
    dir,
    output: 'rpath.so',
    args: [files.dep, '-lz', '-Wl,--disable-new-dtags,-rpath,$ORIGIN/../dep.libs:/opt/x'],
  });
  files.runpath = await compileElf({ dir, output: 'runpath.so', args: [files.dep, '-Wl,--enable-new-dtags,-rpath,$ORIGIN', '-Wl,-z,nodefaultlib'] });
  files.exe = await compileElf({ dir, output: 'tool', executable: true, source: 'int main(void) { return 0; }\n' });
  files.arm = await compileElf({ dir, output: 'arm.so', cc: 'aarch64-linux-gnu-gcc', args: ['-Wl,-soname,libarm.so.2'] });
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const brief = (e: ElfInfo | null) =>
  e && { bits: e.bits, endian: e.endian, arch: e.arch, machine: e.machine, type: e.type, needed: e.needed, soname: e.soname, rpath: e.rpath, runpath: e.runpath, nodeflib: e.nodeflib };

describe('readElf', () => {
  it('reads machine, DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH and DF_1_NODEFLIB of real files', async () => {
    expect(brief(await readElfFile(files.dep!))).toEqual({
      bits: 64, endian: 'little', arch: 'x86_64', machine: 62, type: 'shared', needed: ['libc.so.6'], soname: 'libdep.so.1', rpath: [], runpath: [], nodeflib: false,
    });
    expect(brief(await readElfFile(files.rpath!))).toEqual({
      bits: 64, endian: 'little', arch: 'x86_64', machine: 62, type: 'shared', needed: ['libdep.so.1', 'libz.so.1', 'libc.so.6'], soname: null, rpath: ['$ORIGIN/../dep.libs', '/opt/x'], runpath: [], nodeflib: false,
    });
    expect(brief(await readElfFile(files.runpath!))).toEqual({
      bits: 64, endian: 'little', arch: 'x86_64', machine: 62, type: 'shared', needed: ['libdep.so.1', 'libc.so.6'], soname: null, rpath: [], runpath: ['$ORIGIN'], nodeflib: true,
    });
    expect(brief(await readElfFile(files.arm!))).toEqual({
      bits: 64, endian: 'little', arch: 'aarch64', machine: 183, type: 'shared', needed: ['libc.so.6'], soname: 'libarm.so.2', rpath: [], runpath: [], nodeflib: false,
    });
  });

  it("reads an executable's program interpreter", async () => {
    const exe = await readElfFile(files.exe!);
    expect(exe?.interpreter).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(exe?.needed).toEqual(['libc.so.6']);
    expect(['executable', 'shared']).toContain(exe?.type); // PIE executables are ET_DYN
  });

  it('returns null for non-ELF bytes and refuses broken headers with ELF_INVALID', async () => {
    expect(await readElf(bufferSource(Buffer.from('#!/bin/sh\necho hi\n')), 'script')).toBeNull();
    expect(await readElf(bufferSource(Buffer.alloc(0)), 'empty')).toBeNull();
    const bytes = await readFile(files.dep!);
    await expect(readElf(bufferSource(bytes.subarray(0, 200)), 'cut.so')).rejects.toMatchObject({
      code: 'ELF_INVALID',
      message: 'cut.so: not a readable ELF file: program headers run past the end of the file',
    });
    const badClass = Buffer.from(bytes.subarray(0, 64));
    badClass[4] = 9;
    await expect(readElf(bufferSource(badClass), 'bad.so')).rejects.toThrow('bad.so: not a readable ELF file: unknown class 9');
  });

  it('reads from a stream forward once; a read behind the kept bytes opens it again', async () => {
    const bytes = await readFile(files.rpath!);
    const chunks = (): Readable => Readable.from(Array.from({ length: Math.ceil(bytes.length / 512) }, (_, i) => bytes.subarray(i * 512, (i + 1) * 512)));
    let opened = 0;
    const reopen = async (): Promise<Readable> => {
      opened++;
      return chunks();
    };
    const kept = streamSource(chunks(), { reopen });
    expect((await readElf(kept, 'rpath.so'))?.needed).toEqual(['libdep.so.1', 'libz.so.1', 'libc.so.6']);
    expect(opened).toBe(0);
    // Keeping almost nothing: the string table (behind the dynamic segment) is read on a second pass.
    const small = streamSource(chunks(), { reopen, retain: 1024 });
    expect((await readElf(small, 'rpath.so'))?.rpath).toEqual(['$ORIGIN/../dep.libs', '/opt/x']);
    expect(opened).toBe(1);
    const once = streamSource(chunks(), { retain: 1024, label: 'tar entry' });
    await expect(readElf(once, 'rpath.so')).rejects.toThrow(/^tar entry: cannot read back to byte \d+ \(more than 1024 bytes ahead of it were read\)$/);
  });
});

describe('readWheelElfFiles', () => {
  it('finds the ELF members of a wheel (in memory and streamed from disk) and what they need from the system', async () => {
    const wheel = await buildWheel({
      name: 'cext',
      version: '1.0',
      tag: 'cp311-cp311-linux_x86_64',
      files: {
        'cext/__init__.py': 'from ._ext import *\n',
        'cext/_ext.cpython-311-x86_64-linux-gnu.so': await readFile(files.rpath!),
        'cext.libs/libdep.so.1': await readFile(files.dep!),
        'cext/README': 'not elf\n',
        'cext-1.0.data/scripts/tool': await readFile(files.exe!),
      },
    });
    const path = join(dir, 'cext-1.0-cp311-cp311-linux_x86_64.whl');
    await writeFile(path, wheel);
    for (const source of [wheel, path]) {
      const found = await readWheelElfFiles(source, 'cext.whl');
      expect(found.map((f) => [f.path, f.elf.needed])).toEqual([
        ['cext-1.0.data/scripts/tool', ['libc.so.6']],
        ['cext.libs/libdep.so.1', ['libc.so.6']],
        ['cext/_ext.cpython-311-x86_64-linux-gnu.so', ['libdep.so.1', 'libz.so.1', 'libc.so.6']],
      ]);
      expect(externalNeeds(found)).toEqual(['libc.so.6', 'libz.so.1']);
    }
  });

  it.each([
    ['pkg/_x.cpython-311-x86_64-linux-gnu.so', true],
    ['pkg.libs/libssl-1a2b.so.1.1', true],
    ['pkg-1.0.data/scripts/run.sh', true],
    ['pkg/bin/helper', true],
    ['pkg/__init__.py', false],
    ['pkg-1.0.dist-info/RECORD', false],
    ['pkg/sub/', false],
  ])('mayBeElf(%s) = %s', (name, expected) => {
    expect(mayBeElf(name)).toBe(expected);
  });
});

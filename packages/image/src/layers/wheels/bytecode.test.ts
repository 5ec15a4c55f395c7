// The bytecode compiler against real interpreters (pyenv's 3.8-3.13, Debian's 3.11): PEP 552 checked .pyc,
// sources that do not compile skipped, the same bytes every run, a wrong interpreter refused.
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findHostBytecodeCompiler, hostBytecodeCompiler, hostPythonCandidates, type PySource } from './bytecode.js';

const VERSIONS = path.join(process.env.PYENV_ROOT ?? path.join(os.homedir(), '.pyenv'), 'versions');
const pyenv = (minor: string): string => {
  const dir = readdirSync(VERSIONS).find((d) => d.startsWith(`${minor}.`));
  if (!dir) throw new Error(`pyenv has no Python ${minor} (tools/system/setup.sh installs 3.8-3.13)`);
  return path.join(VERSIONS, dir, 'bin', 'python');
};

// Sets of strings are written in iteration order, which follows the strings' hashes (randomised per process
// unless the seed is fixed) in the versions whose marshal does not sort them.
const SOURCES: PySource[][] = [
  [
    { path: '/env/lib/m/a.py', data: Buffer.from('KINDS = {"alpha", "beta", "gamma", "delta", "epsilon"}\ndef f(x):\n    return x in {"one", "two", "three", "four"}\n') },
    { path: '/env/lib/m/broken.py', data: Buffer.from('def broken(:\n') },
  ],
  [{ path: '/env/lib/m/b.py', data: Buffer.from('Y = 1\n') }],
];

async function compileAll(python: string, tag: string): Promise<(Buffer | null)[]> {
  const out: (Buffer | null)[] = [];
  async function* chunks() {
    for (const c of SOURCES) yield c;
  }
  await hostBytecodeCompiler(python, tag, { jobs: 2 }).compile(chunks(), (_c, _f, pyc) => void out.push(pyc));
  return out;
}

describe('bytecode compiler', () => {
  it.each(['3.8', '3.10', '3.13'])('Python %s: checked hash-based .pyc, none for a source that does not compile, the same bytes each run', async (minor) => {
    const tag = `cpython-3${minor.split('.')[1]}`;
    const first = await compileAll(pyenv(minor), tag);
    expect(first.map((p) => (p ? p.readUInt32LE(4) : null))).toEqual([0b11, null, 0b11]);
    const again = await compileAll(pyenv(minor), tag);
    expect(again).toEqual(first);
  }, 60_000);

  it('refuses an interpreter of another Python version than the target', async () => {
    await expect(compileAll(pyenv('3.12'), 'cpython-311')).rejects.toMatchObject({
      code: 'IMAGE_BYTECODE_FAILED',
      message: `${pyenv('3.12')} writes cpython-312 bytecode, the target needs cpython-311`,
    });
  });

  it('finds an interpreter of the target\'s exact full version first, else one of its minor version', async () => {
    const candidates = hostPythonCandidates('3.11', '3.11.2');
    expect(candidates).toContain('/usr/bin/python3.11');
    expect(candidates).toContain(pyenv('3.11'));
    expect((await findHostBytecodeCompiler('3.11', '3.11.2'))?.description).toBe('/usr/bin/python3.11');
    expect((await findHostBytecodeCompiler('3.11', '3.11.99'))?.description).toBe(pyenv('3.11'));
    expect(await findHostBytecodeCompiler('3.99', null)).toBeNull();
  });
});

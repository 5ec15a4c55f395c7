// The compose door's lock writer (images/factory/pylock.py) against the CLI's own pieces: its target names are
// @dstack/wheelhouse's Target.name, its text is @dstack/recipe's stringifyLock (the e2e compose test compares
// whole files from both doors; this covers the shapes that test's recipe does not reach).
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { stringifyLock, type Lock } from '@dstack/recipe';
import { describeTarget, sourceLockTable, targetFromTags, type WheelSource } from '@dstack/wheelhouse';
import { describe, expect, it } from 'vitest';
import { FACTORY_SCRIPT } from './protocol.js';

const exec = promisify(execFile);

/** Calls `pylock.<fn>(*args)` in python3 and returns its JSON result. */
async function pylock(fn: string, ...args: unknown[]): Promise<unknown> {
  const code = [
    'import json, sys',
    `sys.path.insert(0, ${JSON.stringify(dirname(FACTORY_SCRIPT))})`,
    'import pylock',
    `print(json.dumps(getattr(pylock, ${JSON.stringify(fn)})(*json.loads(sys.stdin.read()))))`,
  ].join('\n');
  const child = exec('python3', ['-I', '-c', code]);
  child.child.stdin!.end(JSON.stringify(args));
  return JSON.parse((await child).stdout) as unknown;
}

const target = (implementation: string, pythonFullVersion: string, tags: string[], abi?: string) =>
  targetFromTags({
    interpreter: null,
    implementation,
    pythonFullVersion,
    ...(abi ? { abi } : {}),
    tags,
    markers: describeTarget({ pythonFullVersion, architecture: 'x86_64' }).markers,
  });

describe('images/factory/pylock.py', () => {
  it.each([
    ['cp', '3.11.2', describeTarget({ pythonFullVersion: '3.11.2', platforms: ['manylinux_2_36_x86_64'] }).tags],
    ['cp', '3.12.1', describeTarget({ pythonFullVersion: '3.12.1', platforms: ['musllinux_1_2_aarch64'] }).tags],
    ['cp', '3.13.0', describeTarget({ pythonFullVersion: '3.13.0', abi: 'cp313t', platforms: ['manylinux_2_28_aarch64'] }).tags],
    ['cp', '3.8.18', ['cp38-cp38-manylinux2014_x86_64', 'cp38-abi3-manylinux2014_x86_64', 'py3-none-any']],
    ['cp', '3.10.0rc2', ['cp310-cp310-linux_armv7l', 'cp310-none-linux_armv7l', 'py3-none-any']],
  ])('names the target as Target.name does: %s %s', async (impl, version, tags) => {
    const expected = target(impl, version, tags).name;
    expect(await pylock('target_name', impl, version, tags)).toBe(expected);
  });

  it('lays the lock out as stringifyLock does: no packages, escapes, dependencies, requires-python', async () => {
    const environment = 'implementation_name == "cpython" and python_full_version == "3.11.2" \\ \u007f\u0001é';
    const tool = { recipe: '../../a b.txt', target: 'cp3_11_2-manylinux_2_36_x86_64' };
    const cases: { packages: Record<string, unknown>[]; lock: Lock }[] = [
      {
        packages: [],
        lock: { lockVersion: '1.0', createdBy: 'dstack-factory', environments: [environment], packages: [], tool: { 'dstack-factory': tool } },
      },
      {
        packages: [
          {
            name: 'zed',
            version: '1.0',
            requires_python: null,
            dependencies: ['b-b', 'a'],
            wheel: { name: 'zed-1.0-cp311-cp311-linux_x86_64.whl', path: '../../../wheelhouse/zed-1.0-cp311-cp311-linux_x86_64.whl', size: 0, sha256: 'ab'.repeat(32) },
          },
          {
            name: 'a',
            version: '2.0rc1',
            requires_python: '>=3.8, <4',
            dependencies: [],
            wheel: { name: 'a-2.0rc1-py3-none-any.whl', path: 'a-2.0rc1-py3-none-any.whl', size: 12345, sha256: 'cd'.repeat(32) },
          },
        ],
        lock: {
          lockVersion: '1.0',
          createdBy: 'dstack-factory',
          environments: [environment],
          packages: [
            {
              name: 'zed',
              version: '1.0',
              dependencies: [{ name: 'b-b' }, { name: 'a' }],
              wheels: [{ name: 'zed-1.0-cp311-cp311-linux_x86_64.whl', path: '../../../wheelhouse/zed-1.0-cp311-cp311-linux_x86_64.whl', size: 0, hashes: { sha256: 'ab'.repeat(32) } }],
            },
            {
              name: 'a',
              version: '2.0rc1',
              requiresPython: '>=3.8, <4',
              wheels: [{ name: 'a-2.0rc1-py3-none-any.whl', path: 'a-2.0rc1-py3-none-any.whl', size: 12345, hashes: { sha256: 'cd'.repeat(32) } }],
            },
          ],
          tool: { 'dstack-factory': tool },
        },
      },
    ];
    for (const c of cases) {
      expect(await pylock('render', environment, c.packages, tool)).toBe(stringifyLock(c.lock));
    }
  });

  it("writes what each wheel was built from as sourceLockTable does: sdist (with and without hash), vcs, directory", async () => {
    const tool = { target: 'cp3_11_2-manylinux_2_36_x86_64' };
    const lockDir = '/recipes/locks/app';
    const sources: WheelSource[] = [
      { kind: 'sdist', url: 'https://files.example/a-1.0.tar.gz', sha256: 'ef'.repeat(32) },
      { kind: 'sdist', url: 'https://files.example/b-1.0.tar.gz', sha256: null },
      { kind: 'vcs', vcs: 'git', url: 'https://git.example/c.git', commit: '0123abcd'.repeat(5), requestedRevision: 'v1', subdirectory: 'py' },
      { kind: 'directory', path: '/src/d', subdirectory: 'pkg' },
      { kind: 'wheel', url: 'https://files.example/e-1.0-py3-none-any.whl' },
    ];
    const names = ['a', 'b', 'c', 'd', 'e'];
    const wheel = (n: string) => ({ name: `${n}-1.0-py3-none-any.whl`, path: `${n}-1.0-py3-none-any.whl`, size: 1, sha256: 'ab'.repeat(32) });
    const packages = await Promise.all(
      names.map(async (n, i) => ({ name: n, version: '1.0', dependencies: [], wheel: wheel(n), source: await pylock('source_table', sources[i], lockDir) })),
    );
    const lock: Lock = {
      lockVersion: '1.0',
      createdBy: 'dstack-factory',
      environments: ['x'],
      packages: names.map((n, i) => {
        const w = wheel(n);
        const table = sourceLockTable(sources[i]!, lockDir);
        return { name: n, version: '1.0', wheels: [{ name: w.name, path: w.path, size: 1, hashes: { sha256: w.sha256 } }], ...(table ? { tool: { 'dstack-factory': table } } : {}) };
      }),
      tool: { 'dstack-factory': tool },
    };
    const text = (await pylock('render', 'x', packages, tool)) as string;
    expect(text).toBe(stringifyLock(lock));
    expect(text).toContain('[packages.tool.dstack-factory.directory]\npath = "../../../src/d"\nsubdirectory = "pkg"\n');
  });

  it('puts the lock where lockPath does', async () => {
    expect(await pylock('lock_path', '/recipes/web-app.txt', 'cp3_11_2-manylinux_2_36_x86_64')).toBe(
      join('/recipes', 'locks', 'web-app', 'pylock.cp3_11_2-manylinux_2_36_x86_64.toml'),
    );
  });
});

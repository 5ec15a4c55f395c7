// Locking from the wheelhouse (Decision 19) and failures that say why, with real pip and the local executor:
// redis needing async-timeout only below Python 3.11.3, locked for Debian's /usr/bin/python3.11 (3.11.2, the
// bookworm base's Python); a C extension including a header that is not installed; a wheelhouse-only lock that
// stays current when the project moves to another folder (no local path in its key).
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bootstrapWheelhouse, isolatedPipEnv, testPython, writeWheel } from '@dstack/testing';
import { buildWheelhouse } from './engine.js';

vi.setConfig({ testTimeout: 300_000 });
const DEBIAN_PYTHON = '/usr/bin/python3.11';
const env = isolatedPipEnv();
let root: string;

beforeAll(async () => {
  if (!existsSync(DEBIAN_PYTHON)) throw new Error(`${DEBIAN_PYTHON} is missing: apt-get install python3.11 (Debian bookworm)`);
  root = await mkdtemp(join(tmpdir(), 'dstack-failure-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('locking from the wheelhouse', () => {
  it('redis for Python 3.11.2: async-timeout is named with the marker that needs it; pip ran with --no-index', async () => {
    const wheelhouse = join(root, 'redis', 'wheelhouse');
    await mkdir(wheelhouse, { recursive: true });
    await writeWheel(wheelhouse, {
      name: 'redis',
      version: '5.0.1',
      requires: ['async-timeout>=4.0.3; python_full_version < "3.11.3"'],
      requiresPython: '>=3.7',
    });
    const recipe = join(root, 'redis', 'r2.txt');
    await writeFile(recipe, 'redis==5.0.1\n');
    const s = await buildWheelhouse({
      recipe,
      wheelhouse,
      pythons: [DEBIAN_PYTHON],
      wheelhouseOnly: true,
      env,
      cacheDir: join(root, 'cache'),
    });
    expect(s.ok).toBe(false);
    const t = s.targets[0]!;
    expect([t.noIndex, t.pythonFullVersion]).toEqual([true, '3.11.2']);
    const [f, ...rest] = t.failures;
    expect(rest).toEqual([]);
    expect(f!.package).toBe('(plan)');
    expect(f!.command).toContain('--no-index');
    expect(f!.command.slice(f!.command.indexOf('--find-links'), f!.command.indexOf('--find-links') + 3)).toEqual([
      '--find-links',
      wheelhouse,
      '--no-index',
    ]);
    expect(f!.missing).toEqual({
      requirement: 'async-timeout>=4.0.3',
      marker: 'python_full_version < "3.11.3"',
      neededBy: 'redis',
    });
    expect(f!.summary[0]).toBe(
      'not in the wheelhouse: async-timeout>=4.0.3 (redis needs it when python_full_version < "3.11.3")',
    );
    expect(f!.summary.at(-1)).toBe(
      'ERROR: No matching distribution found for async-timeout>=4.0.3; python_full_version < "3.11.3"',
    );
    expect(f!.logFile).toMatch(new RegExp(`^${join(root, 'cache', 'logs')}/.+-cp311-linux_x86_64-\\d+/main\\.log$`));
    expect(await readFile(f!.logFile!, 'utf8')).toContain('Processing ' + join(wheelhouse, 'redis-5.0.1-py3-none-any.whl'));
  });

  it('a lock made from the wheelhouse is current in another folder (the wheelhouse path is not in its key)', async () => {
    const python = testPython('3.11');
    const a = join(root, 'moved', 'a');
    await mkdir(join(a, 'wheelhouse'), { recursive: true });
    await writeWheel(join(a, 'wheelhouse'), { name: 'alpha', version: '1.0', requires: ['beta>=2'] });
    await writeWheel(join(a, 'wheelhouse'), { name: 'beta', version: '2.1' });
    await writeFile(join(a, 'app.txt'), 'alpha==1.0\n');
    const build = (dir: string) =>
      buildWheelhouse({
        recipe: join(dir, 'app.txt'),
        wheelhouse: join(dir, 'wheelhouse'),
        pythons: [python],
        wheelhouseOnly: true,
        env,
        cacheDir: join(root, 'cache'),
      });
    const first = await build(a);
    expect([first.ok, first.targets[0]!.warm, first.targets[0]!.noIndex]).toEqual([true, false, true]);
    const b = join(root, 'moved', 'b', 'elsewhere');
    await cp(a, b, { recursive: true });
    const second = await build(b);
    expect([second.ok, second.targets[0]!.warm, second.targets[0]!.packages]).toEqual([true, true, 2]);
    // The same recipe locked with indexes allowed is another lock: its key differs.
    const lock = await readFile(first.targets[0]!.lockFile!, 'utf8');
    const withIndex = await buildWheelhouse({
      recipe: join(b, 'app.txt'),
      wheelhouse: join(b, 'wheelhouse'),
      pythons: [python],
      env: { ...env, PIP_NO_INDEX: '1' },
      cacheDir: join(root, 'cache'),
    });
    expect(withIndex.targets[0]!.warm).toBe(false);
    expect(await readFile(withIndex.targets[0]!.lockFile!, 'utf8')).not.toBe(lock);
  });
});

describe('a C extension including a header that is not installed', () => {
  it('fails naming the header, its Debian package and the compiler error, with the full log on disk', async () => {
    const python = testPython('3.11');
    const wheelhouse = join(root, 'cext', 'wheelhouse');
    await bootstrapWheelhouse(python, wheelhouse);
    const pkg = join(root, 'cext', 'saslext');
    await mkdir(join(pkg, 'saslext'), { recursive: true });
    await writeFile(join(pkg, 'saslext', '__init__.py'), '');
    await writeFile(
      join(pkg, 'saslext', '_native.c'),
      '#include <Python.h>\n#include <sasl/sasl.h>\nPyMODINIT_FUNC PyInit__native(void) { return NULL; }\n',
    );
    await writeFile(
      join(pkg, 'setup.py'),
      'from setuptools import setup, Extension\nsetup(name="saslext", version="0.1", packages=["saslext"], ext_modules=[Extension("saslext._native", ["saslext/_native.c"])])\n',
    );
    await writeFile(join(pkg, 'pyproject.toml'), '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n');
    const recipe = join(root, 'cext', 'sasl.txt');
    await writeFile(recipe, `--no-index\n${pkg}\n`);
    const s = await buildWheelhouse({ recipe, wheelhouse, pythons: [python], env, cacheDir: join(root, 'cache') });
    expect(s.ok).toBe(false);
    const [f] = s.targets[0]!.failures;
    expect(f!.package).toBe('saslext');
    expect(f!.summary.slice(0, 2)).toEqual([
      'missing header sasl/sasl.h: install libsasl2-dev where it builds',
      'compiler: saslext/_native.c:2:10: fatal error: sasl/sasl.h: No such file or directory',
    ]);
    expect(f!.logFile).toMatch(/\/saslext\.log$/);
    expect(await readFile(f!.logFile!, 'utf8')).toContain('#include <sasl/sasl.h>');
  });
});

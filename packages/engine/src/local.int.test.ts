// The local executor running images/factory/factory.py with real pip, offline: the build script's plan,
// cached / built / failed events, keep-going, and that a failed build leaves nothing in the output.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  bootstrapWheelhouse,
  buildSourceWheel,
  isolatedPipEnv,
  makeGitRepo,
  makeSdist,
  testPython,
  writeOldSetupPackage,
  writePurePackage,
} from '@dstack/testing';
import type { BuildEvent, BuildResult } from './executor.js';
import { LocalExecutor, resolvePython } from './local.js';

// Real builds on a shared 2-core machine: minutes under load, not the default 60 s.
vi.setConfig({ testTimeout: 300_000 });
const python = testPython('3.11');
let root: string;
let result: BuildResult;
const events: BuildEvent[] = [];
const executor = new LocalExecutor();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dstack-local-'));
  const wheelhouse = join(root, 'wheelhouse');
  await bootstrapWheelhouse(python, wheelhouse);
  const src = join(root, 'src');
  const findLinks = join(root, 'find-links');
  // C is already a wheel in the wheelhouse; B is an sdist in a --find-links folder; A is a local path.
  const c = await writePurePackage(src, { name: 'chain-c', version: '1.0' });
  await buildSourceWheel(python, c, wheelhouse, wheelhouse);
  const bSpec = { name: 'chain-b', version: '2.0', dependencies: ['chain-c>=1'] };
  await makeSdist(await writePurePackage(src, bSpec), findLinks, bSpec);
  const a = await writePurePackage(src, { name: 'chain-a', version: '3.0', dependencies: ['chain-b==2.0'] });
  const git = await makeGitRepo(
    await writePurePackage(src, { name: 'gitpkg', version: '0.5' }),
    'v0.5',
    'gitpkg',
  );
  // An old setup.py importing a module nobody provides: its build fails, the others still finish.
  const broken = await writeOldSetupPackage(src, {
    name: 'broken',
    version: '1.0',
    buildImport: 'no_such_module_xyz',
  });
  const recipe = join(root, 'recipe.txt');
  await writeFile(recipe, `--no-index\n--find-links ${findLinks}\n${a}\n${git}\n`);
  const output = join(root, 'out');
  result = await executor.run(
    {
      id: 'test',
      recipePath: recipe,
      fromWheel: null,
      wheelhouse,
      outputDir: output,
      python: '3.11',
      jobs: 2,
      prebuild: [],
      rebuild: [],
      buildLockDir: join(wheelhouse, '.dstack', 'locks'),
      cacheDir: join(root, 'cache'),
      env: isolatedPipEnv(),
    },
    (e) => {
      events.push(e);
    },
  );
  // A second run whose plan fails (the broken package's metadata cannot be prepared).
  await writeFile(join(root, 'broken.txt'), `--no-index\n${broken}\n`);
}, 300_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('LocalExecutor', () => {
  it('resolves a version to a pyenv interpreter', () => {
    expect(resolvePython('3.11')).toBe(python);
    expect(() => resolvePython('2.1')).toThrow('no Python 2.1 interpreter on this machine');
  });

  it('plans the closure with pip: cached wheel, sdist from find-links, local path, git', () => {
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    const plan = Object.fromEntries(
      result.packages.map((p) => [p.name, [p.version, p.action, p.dependencies]]),
    );
    expect(plan).toEqual({
      'chain-a': ['3.0', 'build', ['chain-b']],
      'chain-b': ['2.0', 'build', ['chain-c']],
      'chain-c': ['1.0', 'cached', []],
      gitpkg: ['0.5', 'build', []],
    });
    expect(result.interpreter?.pythonFullVersion).toBe('3.11.7');
    expect(result.builtBy).toEqual({ executor: 'local', interpreter: `${python} (cp 3.11.7)` });
  });

  it('builds what is missing into the output and reports the cached wheel', async () => {
    expect(result.cached).toEqual([
      { package: 'chain-c', version: '1.0', filename: 'chain_c-1.0-py3-none-any.whl' },
    ]);
    expect(result.built.map((b) => b.filename).sort()).toEqual([
      'chain_a-3.0-py3-none-any.whl',
      'chain_b-2.0-py3-none-any.whl',
      'gitpkg-0.5-py3-none-any.whl',
    ]);
    expect((await readdir(join(root, 'out'))).sort()).toEqual(result.built.map((b) => b.filename).sort());
    const types = new Set(events.map((e) => e.type));
    expect([...types].sort()).toEqual(['building', 'built', 'cached', 'log', 'planned', 'started']);
    const building = events.filter((e) => e.type === 'building' && e.package === 'gitpkg');
    expect(building).toHaveLength(1);
    // The VCS requirement is pinned to the commit the plan resolved the tag to.
    expect(building[0]!.type === 'building' && building[0]!.command.at(-1)).toMatch(
      /^git\+file:\/\/.*@[0-9a-f]{40}#egg=gitpkg$/,
    );
  });

  it('reports a failed plan with the command and the last lines of its log, and no wheels', async () => {
    const out = join(root, 'out-broken');
    const r = await executor.run(
      {
        id: 'broken',
        recipePath: join(root, 'broken.txt'),
        fromWheel: null,
        wheelhouse: join(root, 'wheelhouse'),
        outputDir: out,
        python,
        jobs: 1,
        prebuild: [],
        rebuild: [],
        buildLockDir: null,
        env: isolatedPipEnv(),
      },
      () => {},
    );
    expect(r.ok).toBe(false);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.package).toBe('(plan)');
    expect(r.failures[0]!.command.slice(1, 6)).toEqual([
      '-m',
      'pip',
      'install',
      '--dry-run',
      '--ignore-installed',
    ]);
    expect(r.failures[0]!.logTail.join('\n')).toContain("No module named 'no_such_module_xyz'");
    expect(await readdir(out)).toEqual([]);
  });
});

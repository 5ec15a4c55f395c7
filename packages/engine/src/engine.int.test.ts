// The engine with the local executor and real pip, offline (isolated from this machine's pip config):
// every kind of source the issue names, ingest, locks, warm rebuilds, --refresh, --rebuild, BUILD_REQ=False,
// CEXT, keep-going failures, two targets, and two concurrent builds of the same requirement.
// Fixtures are built once; each recipe is built once and asserted on from several tests.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseLock } from '@dstack/recipe';
import { FsWheelStore, sourceFromLockTable } from '@dstack/wheelhouse';
import {
  bootstrapWheelhouse,
  buildSourceWheel,
  installAndRun,
  isolatedPipEnv,
  makeGitRepo,
  makeSdist,
  testPython,
  writeCExtPackage,
  writeOldSetupPackage,
  writePurePackage,
} from '@dstack/testing';
import { buildWheelhouse, type BuildOptions, type BuildSummary } from './engine.js';
import type { BuildEvent } from './executor.js';
import { LocalExecutor } from './local.js';

// Real builds on a shared 2-core machine: minutes under load, not the default 60 s.
vi.setConfig({ testTimeout: 300_000 });
const py311 = testPython('3.11');
const py310 = testPython('3.10');
const env = isolatedPipEnv();
let root: string;
let wheelhouse: string;
let recipes: string;
let src: string;
let store: FsWheelStore;
let pureDir: string;
let gitDir: string;
let main: BuildSummary;
const mainEvents: BuildEvent[] = [];

async function build(
  options: Partial<BuildOptions> & { executor?: LocalExecutor },
  events: BuildEvent[] = [],
): Promise<BuildSummary> {
  return buildWheelhouse({
    wheelhouse,
    pythons: ['3.11'],
    jobs: 2,
    env,
    cacheDir: join(root, 'cache'),
    onEvent: (e) => events.push(e),
    ...options,
  });
}

const filenames = (s: BuildSummary): string[] =>
  s.targets.flatMap((t) => t.ingested.map((i) => i.filename)).sort();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dstack-engine-'));
  wheelhouse = join(root, 'wheelhouse');
  recipes = join(root, 'recipes');
  src = join(root, 'src');
  await mkdir(recipes, { recursive: true });
  await bootstrapWheelhouse(py311, wheelhouse);
  await bootstrapWheelhouse(py310, wheelhouse);
  store = new FsWheelStore(wheelhouse);
  const findLinks = join(root, 'find-links');

  const pure = (pureDir = await writePurePackage(src, { name: 'purepkg', version: '1.2' }));
  const zext = await writeCExtPackage(src, { name: 'zext', version: '0.1', library: 'z' });
  const pqext = await writeCExtPackage(src, { name: 'pqext', version: '0.2', library: 'pq' });
  // A -> B -> C: C already a wheel in the wheelhouse, B an sdist in a --find-links folder, A a local path.
  await store.add(
    await buildSourceWheel(
      py311,
      await writePurePackage(src, { name: 'chain-c', version: '1.0' }),
      join(root, 'c'),
      wheelhouse,
    ),
  );
  const bSpec = { name: 'chain-b', version: '2.0', dependencies: ['chain-c>=1'] };
  await makeSdist(await writePurePackage(src, bSpec), findLinks, bSpec);
  const chainA = await writePurePackage(src, {
    name: 'chain-a',
    version: '3.0',
    dependencies: ['chain-b==2.0'],
  });
  gitDir = await writePurePackage(src, { name: 'gitpkg', version: '0.5' });
  const git = await makeGitRepo(
    gitDir,
    'v0.5',
    'gitpkg',
  );
  await writeFile(
    join(recipes, 'main.txt'),
    `--no-index\n--find-links ${findLinks}\n${pure}\n${zext}\n${pqext}\n${chainA}\n${git}\n`,
  );
  main = await build({ recipe: join(recipes, 'main.txt') }, mainEvents);
}, 600_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('a recipe of every kind of source', () => {
  it('ingests a wheel for everything missing, and reuses the wheel already there', () => {
    expect(main.targets[0]!.failures).toEqual([]);
    expect(main.ok).toBe(true);
    expect(filenames(main)).toEqual([
      'chain_a-3.0-py3-none-any.whl',
      'chain_b-2.0-py3-none-any.whl',
      'gitpkg-0.5-py3-none-any.whl',
      'pqext-0.2-cp311-cp311-linux_x86_64.whl',
      'purepkg-1.2-py3-none-any.whl',
      'zext-0.1-cp311-cp311-linux_x86_64.whl',
    ]);
    expect(main.targets[0]!.ingested.every((i) => i.status === 'added')).toBe(true);
    expect(main.targets[0]!.packages).toBe(7);
    expect(
      mainEvents.filter((e) => e.type === 'cached').map((e) => e.type === 'cached' && e.filename),
    ).toEqual(['chain_c-1.0-py3-none-any.whl']);
  });

  it('records which builder made each wheel', async () => {
    const entry = await store.get('zext-0.1-cp311-cp311-linux_x86_64.whl');
    expect(entry?.builtBy).toEqual({
      executor: 'local',
      interpreter: `${py311} (cp 3.11.7)`,
      target: 'cp311-linux_x86_64',
    });
  });

  it('records what each wheel was built from: sdist URL and sha256, git URL and commit, local folder', async () => {
    const sdist = join(root, 'find-links', 'chain_b-2.0.tar.gz');
    const sdistSha256 = createHash('sha256').update(await readFile(sdist)).digest('hex');
    const commit = execFileSync('git', ['-C', gitDir, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    expect((await store.get('chain_b-2.0-py3-none-any.whl'))?.source).toEqual({ kind: 'sdist', url: `file://${sdist}`, sha256: sdistSha256 });
    expect((await store.get('gitpkg-0.5-py3-none-any.whl'))?.source).toEqual({
      kind: 'vcs',
      vcs: 'git',
      url: `file://${gitDir}`,
      commit,
      requestedRevision: 'v0.5',
    });
    expect((await store.get('purepkg-1.2-py3-none-any.whl'))?.source).toEqual({ kind: 'directory', path: pureDir });
    // chain-c was in the wheelhouse before the build: nothing says what it came from.
    expect((await store.get('chain_c-1.0-py3-none-any.whl'))?.source).toBeUndefined();

    // The lock carries the same, in PEP 751's shapes under [packages.tool.dstack-factory] (a folder relative to the lock).
    const file = main.targets[0]!.lockFile!;
    const text = await readFile(file, 'utf8');
    expect(text).toContain(
      `[packages.tool.dstack-factory.sdist]\nurl = "file://${sdist}"\n\n[packages.tool.dstack-factory.sdist.hashes]\nsha256 = "${sdistSha256}"\n`,
    );
    expect(text).toContain(
      `[packages.tool.dstack-factory.vcs]\ncommit-id = "${commit}"\nrequested-revision = "v0.5"\ntype = "git"\nurl = "file://${gitDir}"\n`,
    );
    expect(text).toContain(`[packages.tool.dstack-factory.directory]\npath = "../../../src/${basename(pureDir)}"\n`);
    const lock = parseLock(text, file);
    const tool = (name: string): unknown => lock.packages.find((p) => p.name === name)!.tool?.['dstack-factory'];
    expect(sourceFromLockTable(tool('purepkg'), join(file, '..'))).toEqual({ kind: 'directory', path: pureDir });
    expect(tool('chain-c')).toBeUndefined();
  });

  it('gives wheels that install with --no-index into a fresh venv and import', async () => {
    const out = await installAndRun(
      py311,
      root,
      wheelhouse,
      ['purepkg', 'zext', 'pqext', 'chain-a', 'gitpkg'],
      'import purepkg, zext, pqext, chain_a, chain_b, chain_c, gitpkg; ' +
        'print(purepkg.VERSION, zext.crc(), pqext.libpq_version() > 0, chain_a.VERSION, chain_b.VERSION, chain_c.VERSION, gitpkg.VERSION)',
    );
    expect(out).toBe(`1.2 ${crc32('dstack')} True 3.0 2.0 1.0 0.5`);
  });

  it('writes a PEP 751 lock beside the recipe, for the interpreter it was made with', async () => {
    const file = join(recipes, 'locks', 'main', 'pylock.cp3_11_7-manylinux_2_36_x86_64.toml');
    expect(main.targets[0]!.lockFile).toBe(file);
    const lock = parseLock(await readFile(file, 'utf8'), file);
    expect(lock.environments).toEqual([
      'implementation_name == "cpython" and python_full_version == "3.11.7" and sys_platform == "linux" and platform_machine == "x86_64"',
    ]);
    expect(lock.packages.map((p) => `${p.name}==${p.version}`)).toEqual([
      'chain-a==3.0',
      'chain-b==2.0',
      'chain-c==1.0',
      'gitpkg==0.5',
      'pqext==0.2',
      'purepkg==1.2',
      'zext==0.1',
    ]);
    const a = lock.packages.find((p) => p.name === 'chain-a')!;
    expect(a.dependencies).toEqual([{ name: 'chain-b' }]);
    const entry = await store.get('chain_a-3.0-py3-none-any.whl');
    expect(a.wheels).toEqual([
      {
        name: 'chain_a-3.0-py3-none-any.whl',
        path: '../../../wheelhouse/chain_a-3.0-py3-none-any.whl',
        size: entry!.size,
        hashes: { sha256: entry!.sha256 },
      },
    ]);
    const tool = lock.tool?.['dstack-factory'] as Record<string, string>;
    expect(tool.target).toBe('cp3_11_7-manylinux_2_36_x86_64');
    expect(tool.recipe).toBe('../../main.txt');
    expect(tool.key).toMatch(/^[0-9a-f]{64}$/);
  });

  it('finishes a warm rebuild from the lock without starting the build script (nor pip)', async () => {
    const executor = new LocalExecutor();
    const events: BuildEvent[] = [];
    const warm = await build({ recipe: join(recipes, 'main.txt'), executor }, events);
    expect(executor.runs).toBe(0);
    expect(warm.ok).toBe(true);
    expect(warm.targets[0]!.warm).toBe(true);
    expect(warm.targets[0]!.cached).toBe(7);
    expect(events.map((e) => e.type)).toEqual(Array(7).fill('cached'));
  });
});

describe('locks, --refresh and --rebuild', () => {
  let recipe: string;
  beforeAll(async () => {
    recipe = join(recipes, 'small.txt');
    await writeFile(recipe, `--no-index\n--find-links ${wheelhouse}\nchain-c\n`);
  });

  it('builds, then finishes warm, then --refresh plans again but reuses the wheel', async () => {
    const first = new LocalExecutor();
    const cold = await build({ recipe, executor: first });
    expect([first.runs, cold.ok, cold.targets[0]!.warm, cold.targets[0]!.cached]).toEqual([
      1,
      true,
      false,
      1,
    ]);
    const second = new LocalExecutor();
    const warm = await build({ recipe, executor: second });
    expect([second.runs, warm.targets[0]!.warm]).toEqual([0, true]);
    const third = new LocalExecutor();
    const refreshed = await build({ recipe, executor: third, refresh: true });
    expect([third.runs, refreshed.targets[0]!.warm, refreshed.targets[0]!.ingested]).toEqual([1, false, []]);
  });

  it('a changed recipe misses the lock', async () => {
    await writeFile(recipe, `--no-index\n--find-links ${wheelhouse}\nchain-c==1.0\n`);
    const executor = new LocalExecutor();
    const s = await build({ recipe, executor });
    expect([executor.runs, s.targets[0]!.warm]).toEqual([1, false]);
  });

  it('--rebuild NAME builds it from source again and replaces its wheel', async () => {
    const before = await store.get('purepkg-1.2-py3-none-any.whl');
    await writeFile(join(recipes, 'pure.txt'), `--no-index\n${join(src, 'purepkg-1.2')}\n`);
    const events: BuildEvent[] = [];
    const s = await build({ recipe: join(recipes, 'pure.txt'), rebuild: ['PurePkg'] }, events);
    expect(s.ok).toBe(true);
    expect(
      events.filter((e) => e.type === 'building').map((e) => e.type === 'building' && e.package),
    ).toEqual(['purepkg']);
    expect(s.targets[0]!.ingested.map((i) => i.filename)).toEqual(['purepkg-1.2-py3-none-any.whl']);
    const after = await store.get('purepkg-1.2-py3-none-any.whl');
    expect(after!.addedAt >= before!.addedAt).toBe(true);
  });

  it('locks a wheel under the name the store gave it (pip made Mixed.Case-1.0-…, the store keeps mixed_case-1.0-…)', async () => {
    // As pip wheel names Pillow 9.4.0's wheel from its sdist: the project's own spelling.
    const dir = await writePurePackage(src, { name: 'Mixed.Case', version: '1.0', module: 'mixed_case' });
    const recipe = join(recipes, 'mixed.txt');
    await writeFile(recipe, `--no-index\n${dir}\n`);
    const s = await build({ recipe });
    expect(s.targets[0]!.failures).toEqual([]);
    expect(s.targets[0]!.ingested.map((i) => i.filename)).toEqual(['mixed_case-1.0-py3-none-any.whl']);
    const lock = parseLock(await readFile(s.targets[0]!.lockFile!, 'utf8'), s.targets[0]!.lockFile!);
    expect(lock.packages.map((p) => [p.name, p.wheels?.map((w) => w.name)])).toEqual([
      ['mixed-case', ['mixed_case-1.0-py3-none-any.whl']],
    ]);
  });
});

describe('BUILD_REQ=False: the dependencies of an app wheel', () => {
  it('builds the dependencies the wheelhouse lacks, from the wheel alone', async () => {
    const depLinks = join(root, 'dep-links');
    const depSpec = { name: 'appdep', version: '4.0' };
    await makeSdist(await writePurePackage(src, depSpec), depLinks, depSpec);
    const appWheel = await buildSourceWheel(
      py311,
      await writePurePackage(src, { name: 'myapp', version: '1.0', dependencies: ['appdep>=4', 'purepkg'] }),
      join(root, 'app'),
      wheelhouse,
    );
    const added = await store.add(appWheel);
    const s = await build({
      fromWheel: store.pathOf(added.entry.filename),
      env: { ...env, PIP_NO_INDEX: '1', PIP_FIND_LINKS: depLinks },
    });
    expect(s.ok).toBe(true);
    expect(filenames(s)).toEqual(['appdep-4.0-py3-none-any.whl']);
    expect(s.targets[0]!.packages).toBe(3);
    const out = await installAndRun(
      py311,
      root,
      wheelhouse,
      ['myapp'],
      'import myapp, appdep, purepkg; print(appdep.VERSION)',
    );
    expect(out).toBe('4.0');
  });
});

describe('failures keep going', () => {
  it('reports the failed package with its command and log tail; the others finish; nothing half-built is stored', async () => {
    const bad = await writeCExtPackage(src, { name: 'badext', version: '0.1', library: 'z' });
    await writeFile(join(bad, 'badext', '_native.c'), '#error "badext does not compile"\n');
    const ok = await writePurePackage(src, { name: 'okpkg', version: '1.0' });
    await writeFile(join(recipes, 'bad.txt'), `--no-index\n${bad}\n${ok}\n`);
    const s = await build({ recipe: join(recipes, 'bad.txt') });
    expect(s.ok).toBe(false);
    expect(filenames(s)).toEqual(['okpkg-1.0-py3-none-any.whl']);
    const [failure, ...others] = s.targets[0]!.failures;
    expect(others).toEqual([]);
    expect(failure!.package).toBe('badext');
    expect(failure!.version).toBe('0.1');
    expect(failure!.exitCode).toBe(1);
    expect(failure!.command.slice(1, 5)).toEqual(['-m', 'pip', 'wheel', '--no-deps']);
    expect(failure!.logTail.join('\n')).toContain('#error "badext does not compile"');
    expect((await readdir(wheelhouse)).filter((f) => f.startsWith('badext'))).toEqual([]);
    expect(existsSync(join(recipes, 'locks', 'bad'))).toBe(false);
  });
});

describe('CEXT', () => {
  let recipe: string;
  beforeAll(async () => {
    const links = join(root, 'cext-links');
    const helper = { name: 'buildhelper', version: '1.0' };
    await makeSdist(await writePurePackage(src, helper), links, helper);
    const old = await writeOldSetupPackage(src, {
      name: 'oldpkg',
      version: '0.9',
      buildImport: 'buildhelper',
    });
    recipe = join(recipes, 'cext.txt');
    await writeFile(recipe, `--no-index\n--find-links ${links}\n${old}\n`);
  });

  it('an old setup.py importing a build-time package fails without CEXT', async () => {
    const s = await build({ recipe });
    expect(s.ok).toBe(false);
    expect(s.targets[0]!.failures[0]!.logTail.join('\n')).toContain("No module named 'buildhelper'");
  });

  it('builds with the package prebuilt into the wheelhouse and the build venv', async () => {
    const s = await build({ recipe, prebuild: ['buildhelper'] });
    expect(s.targets[0]!.failures).toEqual([]);
    expect(filenames(s)).toEqual(['buildhelper-1.0-py3-none-any.whl', 'oldpkg-0.9-py3-none-any.whl']);
    expect(
      await installAndRun(py311, root, wheelhouse, ['oldpkg'], 'import oldpkg; print(oldpkg.VERSION)'),
    ).toBe('0.9');
  });
});

describe('several targets', () => {
  it("--python 3.11,3.10 and Debian's 3.11.2 give wheels tagged for each, and a lock each, side by side", async () => {
    await writeFile(join(recipes, 'multi.txt'), `--no-index\n${join(src, 'zext-0.1')}\n`);
    const s = await build({
      recipe: join(recipes, 'multi.txt'),
      pythons: ['3.11', '3.10', '/usr/bin/python3.11'],
    });
    expect(s.ok).toBe(true);
    expect(s.targets.map((t) => [t.target, t.cached, t.ingested.map((i) => i.filename)])).toEqual([
      ['cp311-linux_x86_64', 1, []],
      ['cp310-linux_x86_64', 0, ['zext-0.1-cp310-cp310-linux_x86_64.whl']],
      ['cp311-linux_x86_64', 1, []],
    ]);
    // The host's 3.11.7 and Debian's 3.11.2 can resolve differently (python_full_version markers): two locks.
    expect((await readdir(join(recipes, 'locks', 'multi'))).sort()).toEqual([
      'pylock.cp3_10_13-manylinux_2_36_x86_64.toml',
      'pylock.cp3_11_2-manylinux_2_36_x86_64.toml',
      'pylock.cp3_11_7-manylinux_2_36_x86_64.toml',
    ]);
    const debian = parseLock(await readFile(s.targets[2]!.lockFile!, 'utf8'), s.targets[2]!.lockFile!);
    expect(debian.environments![0]).toContain('python_full_version == "3.11.2"');
    expect(debian.tool!['dstack-factory']).toMatchObject({ target: 'cp3_11_2-manylinux_2_36_x86_64' });
    expect(await installAndRun(py310, root, wheelhouse, ['zext'], 'import zext; print(zext.crc())')).toBe(
      String(crc32('dstack')),
    );
  });

  it('still reads a lock under its old name (pylock.cp311-linux_x86_64.toml)', async () => {
    const dir = join(recipes, 'locks', 'multi');
    await rename(
      join(dir, 'pylock.cp3_11_7-manylinux_2_36_x86_64.toml'),
      join(dir, 'pylock.cp311-linux_x86_64.toml'),
    );
    const s = await build({ recipe: join(recipes, 'multi.txt'), pythons: ['3.11'] });
    expect(s.targets.map((t) => [t.warm, t.lockFile])).toEqual([
      [true, join(dir, 'pylock.cp311-linux_x86_64.toml')],
    ]);
  });
});

describe('concurrency', () => {
  it('two builds of the same requirement never run at once: the second reuses the first one’s wheel', async () => {
    const slow = await writePurePackage(src, { name: 'slowpkg', version: '1.0' });
    await writeFile(
      join(slow, 'setup.py'),
      'import time\nfrom setuptools import setup\ntime.sleep(1)\nsetup()\n',
    );
    await writeFile(join(recipes, 'slow1.txt'), `--no-index\n${slow}\n`);
    await writeFile(join(recipes, 'slow2.txt'), `--no-index\n${slow}\n`);
    const e1: BuildEvent[] = [];
    const e2: BuildEvent[] = [];
    const [s1, s2] = await Promise.all([
      build({ recipe: join(recipes, 'slow1.txt'), jobs: 1 }, e1),
      build({ recipe: join(recipes, 'slow2.txt'), jobs: 1 }, e2),
    ]);
    expect([s1.ok, s2.ok]).toEqual([true, true]);
    const builds = [...e1, ...e2].filter((e) => e.type === 'building' && e.package === 'slowpkg');
    expect(builds).toHaveLength(1);
    const all = [...filenames(s1), ...filenames(s2)];
    expect(all).toEqual(['slowpkg-1.0-py3-none-any.whl']);
    const reused = [...e1, ...e2].filter((e) => e.type === 'cached' && e.package === 'slowpkg');
    expect(reused.map((e) => e.type === 'cached' && e.filename)).toEqual(['slowpkg-1.0-py3-none-any.whl']);
  });
});

describe('README usage', () => {
  it('builds a recipe for two interpreters, then finishes warm from the locks', async () => {
    await writeFile(
      join(recipes, 'usage.txt'),
      `--no-index\n--find-links ${join(root, 'find-links')}\nchain-b==2.0\n`,
    );
    const seen: string[] = [];
    // README usage: begin
    const options: BuildOptions = {
      recipe: join(recipes, 'usage.txt'),
      wheelhouse,
      pythons: ['3.11', '3.10'], // versions (pyenv, then pythonX.Y on PATH) or interpreter paths
      jobs: 2,
      prebuild: [], // CEXT off; ['cython', 'numpy'] is the seed's default
      env, // pip's environment: here isolated from this machine's pip configuration
      onEvent: (event, target) => seen.push(`${target} ${event.type}`),
    };
    const summary = await buildWheelhouse({ ...options, executor: new LocalExecutor() });
    expect(summary.ok).toBe(true); // false if a package failed (the others still finish)
    expect(summary.targets.map((t) => t.lockFile)).toEqual([
      join(recipes, 'locks/usage/pylock.cp3_11_7-manylinux_2_36_x86_64.toml'),
      join(recipes, 'locks/usage/pylock.cp3_10_13-manylinux_2_36_x86_64.toml'),
    ]);

    // The same recipe, options and interpreters again: finished from the locks, without running pip.
    const executor = new LocalExecutor();
    const again = await buildWheelhouse({ ...options, executor });
    expect([again.targets.every((t) => t.warm), executor.runs]).toEqual([true, 0]);
    // README usage: end
    expect(seen.filter((s) => s.endsWith(' cached')).length).toBeGreaterThan(0);
  });
});

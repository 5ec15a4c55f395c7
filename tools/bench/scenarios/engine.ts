// Engine benchmarks against what a user would otherwise run:
// (a) a warm rebuild of a 50-wheel recipe (lock hit) vs `pip wheel -r RECIPE --no-index --find-links wheelhouse -w OUT`
//     on the same wheelhouse — goal: at least 20x faster;
// (b) a cold build of the test recipe (pure, zlib and libpq C extensions, A -> B (sdist) -> C (wheel), git+file)
//     vs plain `pip wheel -r RECIPE --find-links wheelhouse -w OUT` — goal: no slower than 1.1x.
// (a) draws real wheels from this machine's local mirror (file:///opt/pypi/simple); pip is otherwise isolated
// from the machine's configuration. Both sides run with pip's cache off.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildWheelhouse, cachedTarget } from '@dstack/engine';
import { FsWheelStore, detectTarget } from '@dstack/wheelhouse';
import {
  bootstrapWheelhouse,
  buildSourceWheel,
  isolatedPipEnv,
  makeGitRepo,
  makeSdist,
  testPython,
  writeCExtPackage,
  writePurePackage,
} from '@dstack/testing';
import { ms, speedup, time, type Scenario } from '../lib.js';

const exec = promisify(execFile);
const MIRROR = 'file:///opt/pypi/simple';
const FIFTY = [
  'django',
  'flask',
  'requests',
  'sqlalchemy',
  'sphinx',
  'httpx',
  'pydantic',
  'fastapi',
  'jinja2',
  'boto3',
];

async function pipWheel(python: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const out = await mkdtemp(join(tmpdir(), 'bench-pip-out-'));
  try {
    await exec(python, ['-m', 'pip', 'wheel', '-q', ...args, '-w', out], {
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function warm(python: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  if (!existsSync('/opt/pypi/simple'))
    return ['(a) skipped: no local mirror at /opt/pypi/simple on this machine'];
  const root = await mkdtemp(join(tmpdir(), 'bench-engine-warm-'));
  try {
    const wheelhouse = join(root, 'wheelhouse');
    const recipe = join(root, 'fifty.txt');
    await writeFile(recipe, `--index-url ${MIRROR}\n${FIFTY.join('\n')}\n`);
    const cold = await buildWheelhouse({ recipe, wheelhouse, pythons: [python], jobs: 2, env });
    if (!cold.ok) throw new Error(`cold build failed: ${JSON.stringify(cold.targets[0]!.failures)}`);
    const n = cold.targets[0]!.packages;
    const store = new FsWheelStore(wheelhouse);
    const wheels = (await store.list()).length;
    const cacheDir = join(root, 'cache');
    // Each run as a fresh `dstack-factory build` process does it: a new store, the target from the disk cache.
    const ours = await time(async () => {
      const s = await buildWheelhouse({
        recipe,
        wheelhouse,
        store: new FsWheelStore(wheelhouse),
        pythons: [python],
        env,
        cacheDir,
        targetOf: (p) => cachedTarget(p, { cacheDir, memory: false }),
      });
      if (!s.targets[0]!.warm) throw new Error('not warm');
    }, 7);
    // The worst case: the interpreter probed again on every run (no target cache at all).
    const oursProbed = await time(async () => {
      const s = await buildWheelhouse({ recipe, wheelhouse, pythons: [python], env, targetOf: detectTarget });
      if (!s.targets[0]!.warm) throw new Error('not warm');
    }, 7);
    const baseline = await time(
      () => pipWheel(python, ['-r', recipe, '--no-index', '--find-links', wheelhouse], env),
      3,
    );
    const ratio = baseline.median / ours.median;
    return [
      `(a) warm rebuild, ${n} distributions (${wheels} wheels in the wheelhouse)`,
      speedup(
        'warm rebuild (lock hit, target from the disk cache)',
        ours,
        baseline,
        'pip wheel --no-index --find-links wheelhouse',
      ),
      speedup('warm rebuild (lock hit, interpreter probed every run)', oursProbed, baseline, 'pip wheel'),
      `(a) goal >= 20x: ${ratio >= 20 ? 'met' : 'NOT met'} (${ratio.toFixed(1)}x)`,
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function testRecipe(
  root: string,
  python: string,
): Promise<{ recipe: string; seed: (wheelhouse: string) => Promise<void> }> {
  const src = join(root, 'src');
  const links = join(root, 'links');
  const pure = await writePurePackage(src, { name: 'purepkg', version: '1.2' });
  const zext = await writeCExtPackage(src, { name: 'zext', version: '0.1', library: 'z' });
  const pqext = await writeCExtPackage(src, { name: 'pqext', version: '0.2', library: 'pq' });
  const c = await writePurePackage(src, { name: 'chain-c', version: '1.0' });
  const bSpec = { name: 'chain-b', version: '2.0', dependencies: ['chain-c>=1'] };
  await makeSdist(await writePurePackage(src, bSpec), links, bSpec);
  const a = await writePurePackage(src, { name: 'chain-a', version: '3.0', dependencies: ['chain-b==2.0'] });
  const git = await makeGitRepo(
    await writePurePackage(src, { name: 'gitpkg', version: '0.5' }),
    'v0.5',
    'gitpkg',
  );
  const recipe = join(root, 'test.txt');
  await writeFile(recipe, `--no-index\n--find-links ${links}\n${pure}\n${zext}\n${pqext}\n${a}\n${git}\n`);
  const seedDir = join(root, 'seed');
  await bootstrapWheelhouse(python, seedDir);
  const cWheel = await buildSourceWheel(python, c, join(root, 'c'), seedDir);
  return {
    recipe,
    seed: async (wheelhouse) => {
      await rm(wheelhouse, { recursive: true, force: true });
      await bootstrapWheelhouse(python, wheelhouse);
      await exec('cp', [cWheel, wheelhouse]);
    },
  };
}

async function cold(python: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), 'bench-engine-cold-'));
  try {
    const { recipe, seed } = await testRecipe(root, python);
    const wheelhouse = join(root, 'wheelhouse');
    const pylockDir = join(root, 'locks');
    const ours = await time(
      async () => {
        await seed(wheelhouse);
        await rm(pylockDir, { recursive: true, force: true });
        const s = await buildWheelhouse({ recipe, wheelhouse, pythons: [python], jobs: 2, env, pylockDir });
        if (!s.ok || s.targets[0]!.ingested.length !== 6)
          throw new Error(`cold build: ${JSON.stringify(s.targets[0])}`);
      },
      2,
      0,
    );
    const baseline = await time(
      async () => {
        await seed(wheelhouse);
        await pipWheel(python, ['-r', recipe, '--find-links', wheelhouse], env);
      },
      2,
      0,
    );
    const ratio = ours.median / baseline.median;
    return [
      `(b) cold build of the test recipe (7 distributions: 6 built from source, 1 reused), --jobs 2`,
      `cold build: ${ms(ours.median)} vs pip wheel ${ms(baseline.median)} -> ${ratio.toFixed(2)}x the time of pip wheel`,
      `(b) goal <= 1.1x: ${ratio <= 1.1 ? 'met' : 'NOT met'}`,
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const scenario: Scenario = {
  name: 'engine',
  description:
    'warm rebuild from a lock vs pip wheel --no-index on the same wheelhouse; cold build of the test recipe vs plain pip wheel',
  async run() {
    const python = testPython('3.11');
    const env = isolatedPipEnv({ PIP_NO_CACHE_DIR: '1' });
    const { stdout } = await exec('uptime');
    // BENCH_ENGINE=warm or =cold runs one half.
    const part = process.env.BENCH_ENGINE;
    return [
      `load: ${stdout.trim()}`,
      ...(part === 'cold' ? [] : await warm(python, env)),
      ...(part === 'warm' ? [] : await cold(python, env)),
    ];
  },
};
export default scenario;

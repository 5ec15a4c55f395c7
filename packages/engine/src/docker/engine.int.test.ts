// The engine with the docker executor on the private engine (the factory image from the debootstrapped
// base): two builds of one requirement never run at once, docker and docker or docker and local (the host
// takes the same flock the build script takes locally); a CEXT build with a configured prebuild list; a
// BUILD_REQ=False build from an app wheel's dependencies. Wheels import in a container of the same base.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  bootstrapWheelhouse,
  buildSourceWheel,
  isolatedPipEnv,
  makeSdist,
  runInContainer,
  sharedBaseImage,
  sharedEngine,
  sharedRuntimeImage,
  testPython,
  writeOldSetupPackage,
  writePurePackage,
} from '@dstack/testing';
import { FsWheelStore } from '@dstack/wheelhouse';
import { buildWheelhouse, type BuildOptions, type BuildSummary } from '../engine.js';
import type { BuildEvent } from '../executor.js';
import { LocalExecutor } from '../local.js';
import { DockerExecutor } from './executor.js';
import { ensureFactoryImage } from './image.js';

vi.setConfig({ testTimeout: 300_000 });
const py311 = testPython('3.11');
const env = isolatedPipEnv();
let root: string;
let src: string;
let executor: DockerExecutor;
let factoryImage: string;

beforeAll(async () => {
  const engine = await sharedEngine();
  const factory = (factoryImage = await ensureFactoryImage({ docker: engine.docker, baseImage: await sharedBaseImage() }));
  executor = new DockerExecutor({ image: factory, docker: engine.docker, dockerHost: engine.dockerHost });
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-docker-engine-'));
  src = path.join(root, 'src');
}, 600_000);

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

/** A fresh wheelhouse holding the offline build requirements. */
async function freshWheelhouse(name: string): Promise<string> {
  const wheelhouse = path.join(root, name);
  await bootstrapWheelhouse(py311, wheelhouse);
  return wheelhouse;
}

function dockerBuild(
  options: Partial<BuildOptions> & { wheelhouse: string },
  events: BuildEvent[] = [],
): Promise<BuildSummary> {
  return buildWheelhouse({
    pythons: ['3.11'],
    executor,
    targetOf: () => executor.target(),
    jobs: 2,
    env,
    cacheDir: null,
    onEvent: (e) => events.push(e),
    ...options,
  });
}

const filenames = (s: BuildSummary): string[] =>
  s.targets.flatMap((t) => t.ingested.map((i) => i.filename)).sort();

/** A package whose wheel build takes `seconds` (its metadata does not: the plans stay quick). */
async function slowPackage(name: string, seconds: number): Promise<string> {
  const dir = await writePurePackage(src, { name, version: '1.0' });
  await fs.writeFile(
    path.join(dir, 'setup.py'),
    `import sys, time\nfrom setuptools import setup\nif 'bdist_wheel' in sys.argv:\n    time.sleep(${seconds})\nsetup()\n`,
  );
  return dir;
}

async function importInRuntime(wheelhouse: string, packages: string[], code: string): Promise<unknown> {
  const dir = path.join(root, `install-${Math.random().toString(36).slice(2, 8)}`);
  await fs.mkdir(dir);
  for (const f of await fs.readdir(wheelhouse))
    if (f.endsWith('.whl')) await fs.copyFile(path.join(wheelhouse, f), path.join(dir, f));
  return runInContainer(
    await sharedRuntimeImage(),
    ['sh', '-c', `pip install -q --no-index --find-links /in ${packages.join(' ')} && python -c "${code}"`],
    { input: { dir, path: '/in' } },
  );
}

function expectOneBuild(name: string, wheel: string, e1: BuildEvent[], e2: BuildEvent[]): void {
  // Both plans found a source to build (the wheelhouse had no wheel when they started) ...
  for (const events of [e1, e2]) {
    const planned = events.find((e) => e.type === 'planned');
    expect(planned?.type === 'planned' && planned.packages.find((p) => p.name === name)?.action).toBe(
      'build',
    );
  }
  // ... yet only one built it; the other waited for the lock and reused the wheel.
  const all = [...e1, ...e2];
  expect(all.filter((e) => e.type === 'building' && e.package === name)).toHaveLength(1);
  expect(all.filter((e) => e.type === 'built' && e.package === name)).toHaveLength(1);
  const reused = all.filter((e) => e.type === 'cached' && e.package === name);
  expect(reused.map((e) => e.type === 'cached' && e.filename)).toEqual([wheel]);
}

describe('two builds of the same requirement with the docker executor', () => {
  it('docker and docker: one builds, the other waits for the host lock and reuses the wheel', async () => {
    const wheelhouse = await freshWheelhouse('wh-dd');
    const slow = await slowPackage('slow-dd', 8);
    const recipes = path.join(root, 'recipes-dd');
    await fs.mkdir(recipes, { recursive: true });
    await fs.writeFile(path.join(recipes, 'one.txt'), `--no-index\n${slow}\n`);
    await fs.writeFile(path.join(recipes, 'two.txt'), `--no-index\n${slow}\n`);
    const e1: BuildEvent[] = [];
    const e2: BuildEvent[] = [];
    const [s1, s2] = await Promise.all([
      dockerBuild({ wheelhouse, recipe: path.join(recipes, 'one.txt') }, e1),
      dockerBuild({ wheelhouse, recipe: path.join(recipes, 'two.txt') }, e2),
    ]);
    expect([s1.targets[0]!.failures, s2.targets[0]!.failures]).toEqual([[], []]);
    expect([s1.ok, s2.ok]).toEqual([true, true]);
    expectOneBuild('slow-dd', 'slow_dd-1.0-py3-none-any.whl', e1, e2);
    expect([...filenames(s1), ...filenames(s2)]).toEqual(['slow_dd-1.0-py3-none-any.whl']);
    // The wheelhouse records the builder (the factory image and its id) and the source folder (the same path in the container).
    const entry = await new FsWheelStore(wheelhouse).get('slow_dd-1.0-py3-none-any.whl');
    expect(entry?.builtBy).toMatchObject({ executor: 'docker', image: factoryImage, imageId: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(entry?.source).toEqual({ kind: 'directory', path: slow });
    expect(
      await importInRuntime(wheelhouse, ['slow-dd'], 'import slow_dd; print(slow_dd.VERSION)'),
    ).toMatchObject({
      exitCode: 0,
      stdout: '1.0\n',
    });
  });

  it('docker and local: the docker build and the local one exclude each other through the same lock file', async () => {
    const wheelhouse = await freshWheelhouse('wh-dl');
    const slow = await slowPackage('slow-dl', 8);
    const recipes = path.join(root, 'recipes-dl');
    await fs.mkdir(recipes, { recursive: true });
    await fs.writeFile(path.join(recipes, 'docker.txt'), `--no-index\n${slow}\n`);
    await fs.writeFile(path.join(recipes, 'local.txt'), `--no-index\n${slow}\n`);
    const ed: BuildEvent[] = [];
    const el: BuildEvent[] = [];
    const [sd, sl] = await Promise.all([
      dockerBuild({ wheelhouse, recipe: path.join(recipes, 'docker.txt') }, ed),
      buildWheelhouse({
        wheelhouse,
        recipe: path.join(recipes, 'local.txt'),
        pythons: [py311],
        executor: new LocalExecutor(),
        jobs: 2,
        env,
        cacheDir: null,
        onEvent: (e) => el.push(e),
      }),
    ]);
    expect([sd.targets[0]!.failures, sl.targets[0]!.failures]).toEqual([[], []]);
    expectOneBuild('slow-dl', 'slow_dl-1.0-py3-none-any.whl', ed, el);
    expect((await fs.readdir(wheelhouse)).filter((f) => f.startsWith('slow_dl'))).toEqual([
      'slow_dl-1.0-py3-none-any.whl',
    ]);
  });
});

describe('CEXT with the docker executor', () => {
  let wheelhouse: string;
  let recipe: string;
  beforeAll(async () => {
    wheelhouse = await freshWheelhouse('wh-cext');
    const links = path.join(root, 'cext-links');
    const helper = { name: 'buildhelper', version: '1.0' };
    await makeSdist(await writePurePackage(src, helper), links, helper);
    const old = await writeOldSetupPackage(src, {
      name: 'oldpkg',
      version: '0.9',
      buildImport: 'buildhelper',
    });
    recipe = path.join(root, 'recipes-cext', 'cext.txt');
    await fs.mkdir(path.dirname(recipe), { recursive: true });
    await fs.writeFile(recipe, `--no-index\n--find-links ${links}\n${old}\n`);
  });

  it('an old setup.py importing a build-time package fails without CEXT', async () => {
    const s = await dockerBuild({ wheelhouse, recipe });
    expect(s.ok).toBe(false);
    // pip cannot even read its metadata: the plan fails, naming the missing module.
    expect(s.targets[0]!.failures.map((f) => f.package)).toEqual(['(plan)']);
    expect(s.targets[0]!.failures[0]!.logTail.join('\n')).toContain("No module named 'buildhelper'");
  });

  it('builds with the configured prebuild list prebuilt into the wheelhouse and the build venv', async () => {
    const events: BuildEvent[] = [];
    const s = await dockerBuild({ wheelhouse, recipe, prebuild: ['buildhelper'] }, events);
    expect(s.targets[0]!.failures).toEqual([]);
    expect(filenames(s)).toEqual(['buildhelper-1.0-py3-none-any.whl', 'oldpkg-0.9-py3-none-any.whl']);
    expect(
      events.filter((e) => e.type === 'building').map((e) => e.type === 'building' && [e.package, e.action]),
    ).toEqual([
      ['buildhelper', 'prebuild'],
      ['oldpkg', 'build'],
    ]);
    expect(
      await importInRuntime(wheelhouse, ['oldpkg'], 'import oldpkg; print(oldpkg.VERSION)'),
    ).toMatchObject({
      exitCode: 0,
      stdout: '0.9\n',
    });
  });
});

describe('BUILD_REQ=False with the docker executor', () => {
  it('builds the dependencies of an app wheel that the wheelhouse lacks, from the wheel alone', async () => {
    const wheelhouse = await freshWheelhouse('wh-app');
    const store = new FsWheelStore(wheelhouse);
    const depLinks = path.join(root, 'dep-links');
    const depSpec = { name: 'appdep', version: '4.0' };
    await makeSdist(await writePurePackage(src, depSpec), depLinks, depSpec);
    const have = { name: 'havepkg', version: '1.1' };
    await store.add(
      await buildSourceWheel(py311, await writePurePackage(src, have), path.join(root, 'have'), wheelhouse),
    );
    const appWheel = await buildSourceWheel(
      py311,
      await writePurePackage(src, { name: 'myapp', version: '1.0', dependencies: ['appdep>=4', 'havepkg'] }),
      path.join(root, 'app'),
      wheelhouse,
    );
    const added = await store.add(appWheel);
    const events: BuildEvent[] = [];
    const s = await dockerBuild(
      {
        wheelhouse,
        fromWheel: store.pathOf(added.entry.filename),
        env: { ...env, PIP_NO_INDEX: '1', PIP_FIND_LINKS: depLinks },
      },
      events,
    );
    expect(s.targets[0]!.failures).toEqual([]);
    expect(s.ok).toBe(true);
    expect(filenames(s)).toEqual(['appdep-4.0-py3-none-any.whl']);
    expect(s.targets[0]!.packages).toBe(3);
    expect(
      events
        .filter((e) => e.type === 'cached')
        .map((e) => e.type === 'cached' && e.filename)
        .sort(),
    ).toEqual(['havepkg-1.1-py3-none-any.whl', 'myapp-1.0-py3-none-any.whl']);
    expect(
      await importInRuntime(wheelhouse, ['myapp'], 'import myapp, appdep, havepkg; print(appdep.VERSION)'),
    ).toMatchObject({ exitCode: 0, stdout: '4.0\n' });
  });
});

// The README's quick start with the CLI, run as a new user would, offline, on the private Docker engine
// (issue 7): an example web app with a C-extension dependency (zcrc, linking zlib) and a dependency from a
// local git repository (greeting, git+file://…@v2.0) goes recipe -> `dstack-factory build` (docker
// executor: compiled by the factory image's Python 3.11.2, Decision 3) -> wheelhouse + lock -> `image
// runtime` -> app images in the three variants (requirements, source with --uid, wheel), each built both
// by the engine (images/app Dockerfiles) and daemonless (`image app --output docker:TAG`) -> `docker run`
// serving HTTP on a port published on 127.0.0.1, whose answer proves both dependencies were imported.
import { promises as fs } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { parse as parseToml } from 'smol-toml';
import { buildDockerfile } from '@dstack/image';
import {
  baseImageName,
  bootstrapWheelhouse,
  expectValidImage,
  isolatedPipEnv,
  followBuild,
  runInContainer,
  sharedRegistry,
  sharedBaseImage,
  sharedEngine,
  testPython,
} from '@dstack/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliRun } from '../apps/cli/src/run-cli.test-support.js';
import {
  E2E_LABEL,
  EXPECTED_CRC,
  buildWebappWheel,
  copyWebapp,
  repoRoot,
  removeLabelled,
  serve,
  waitForApp,
  write,
  writeAppDeps,
  type AppAnswer,
  type AppDeps,
} from './compose.test-support.js';

const UID = 4321;
const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
const tags = {
  factory: `dstack-e2e/factory:${run}`,
  runtime: `dstack-e2e/runtime:${run}`,
  reqEngine: `dstack-e2e/webapp-req-engine:${run}`,
  reqDaemonless: `dstack-e2e/webapp-req-daemonless:${run}`,
  srcEngine: `dstack-e2e/webapp-src-engine:${run}`,
  srcDaemonless: `dstack-e2e/webapp-src-daemonless:${run}`,
  wheelEngine: `dstack-e2e/webapp-wheel-engine:${run}`,
  wheelDaemonless: `dstack-e2e/webapp-wheel-daemonless:${run}`,
};

let docker: Docker;
/** The daemonless wheel variant goes to the private registry. */
let registryRef: string;
let env: NodeJS.ProcessEnv;
let tmp: string;
/** The user's project folder: recipes/, wheelhouse/, and the app (src/, requirements.txt). */
let project: string;
let deps: AppDeps;
let lockFile: string;
let appWheel: string;

/** `dstack-factory ARGS` in the project folder, with the private engine and pip isolated from this machine. */
async function cli(args: string[]): Promise<CliRun> {
  const result = await runCli(args, { env, cwd: project });
  if (result.code !== 0) {
    throw new Error(
      `dstack-factory ${args.join(' ')} exited ${result.code}\n${result.stderr}\n${result.stdout}`,
    );
  }
  return result;
}

function expectApp(answer: AppAnswer, expected: { uid: number; appFile: RegExp }): void {
  expect(answer.app).toBe('webapp');
  // The C extension: compiled for CPython 3.11 and linking zlib (its crc32 of "dstack").
  expect(answer.crc).toBe(EXPECTED_CRC);
  expect(answer.native).toBe('_native.cpython-311-x86_64-linux-gnu.so');
  // The git dependency, installed into the image's venv.
  expect(answer.greeting).toBe('2.0');
  expect(answer.greeting_file).toBe('/env/lib/python3.11/site-packages/greeting/__init__.py');
  // The runtime base's Python (Debian bookworm), not the host's 3.11.7.
  expect(answer.python).toBe('3.11.2');
  expect(answer.prefix).toBe('/env');
  expect(answer.uid).toBe(expected.uid);
  expect(answer.app_file).toMatch(expected.appFile);
}

async function answerOf(image: string, options: Parameters<typeof serve>[2] = {}): Promise<AppAnswer> {
  const served = await serve(docker, image, options);
  try {
    return await waitForApp(served.url, 30_000, served.logs);
  } finally {
    await served.container.remove({ force: true }).catch(() => undefined);
  }
}

/** An images/app Dockerfile built by the engine with the project's app folder as its context. */
async function engineBuild(
  dockerfile: string,
  tag: string,
  buildArgs: Record<string, string>,
): Promise<void> {
  await buildDockerfile(docker, {
    context: path.join(project, 'app'),
    dockerfile,
    extraFiles: { [dockerfile]: path.join(repoRoot, 'images/app', dockerfile) },
    tag,
    buildArgs,
    labels: E2E_LABEL,
  });
}

beforeAll(async () => {
  const engine = await sharedEngine();
  docker = engine.docker;
  await sharedBaseImage();
  registryRef = `${(await sharedRegistry()).host}/dstack-e2e/webapp-wheel:${run}`;
  env = isolatedPipEnv({ DOCKER_HOST: engine.dockerHost, NO_COLOR: '1' });
  tmp = await mkdtemp(path.join(tmpdir(), 'dstack-e2e-quickstart-'));
  project = path.join(tmp, 'project');
  // The app's dependencies live outside the project, as a user's libraries would.
  deps = await writeAppDeps(path.join(tmp, 'libs'));
  // Offline build isolation: setuptools and wheel seeded into the wheelhouse (Decision 8).
  const python = testPython('3.11');
  await bootstrapWheelhouse(python, path.join(project, 'wheelhouse'));
  await copyWebapp(path.join(project, 'app'));
  // The recipe names where each dependency comes from; --no-index: the wheelhouse, no PyPI.
  await write(
    path.join(project, 'recipes/webapp.txt'),
    ['--no-index', `zcrc @ file://${deps.zcrcDir}`, deps.greetingUrl, ''].join('\n'),
  );
  // The app's own wheel (pure Python), for the wheel variant.
  appWheel = await buildWebappWheel(
    python,
    path.join(project, 'app'),
    path.join(tmp, 'dist'),
    path.join(project, 'wheelhouse'),
  );
}, 600_000);

afterAll(async () => {
  if (docker) {
    await removeLabelled(docker);
    for (const tag of [...Object.values(tags), registryRef].filter(Boolean))
      await docker
        .getImage(tag)
        .remove({ force: true })
        .catch(() => undefined);
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
}, 120_000);

describe.sequential('quick start with the CLI (offline, private engine)', () => {
  it('image factory and image runtime build the builder and the runtime on the engine', async () => {
    const factory = await cli(['image', 'factory', '--tag', tags.factory, '--base-image', baseImageName]);
    expect(factory.stdout).toMatch(new RegExp(`^${tags.factory} sha256:[0-9a-f]{64}\\n$`));
    const runtime = await cli(['image', 'runtime', '--tag', tags.runtime, '--base-image', baseImageName]);
    expect(runtime.stdout).toMatch(new RegExp(`^${tags.runtime} sha256:[0-9a-f]{64}\\n$`));
    const user = await runInContainer(tags.runtime, ['sh', '-c', 'id -u webapp; stat -c %U /app; python -V']);
    expect(user.stdout).toBe('4801\nwebapp\nPython 3.11.2\n');
  }, 600_000);

  it("build --executor docker: recipe -> wheelhouse and lock, the C extension compiled for the image's 3.11.2", async () => {
    const built = await cli([
      'build',
      'webapp',
      '--no-cext',
      '--executor',
      'docker',
      '--factory-image',
      tags.factory,
      '--jobs',
      '2',
    ]);
    expect(built.stderr).toContain('[cp311-linux_x86_64] done: 2 distributions, 0 cached, 2 added');
    const wheels = (await readdir(path.join(project, 'wheelhouse'))).filter((f) => f.endsWith('.whl')).sort();
    expect(wheels).toEqual([
      'greeting-2.0-py3-none-any.whl',
      'setuptools-65.5.0-py3-none-any.whl',
      'wheel-0.38.4-py3-none-any.whl',
      'zcrc-1.0-cp311-cp311-linux_x86_64.whl',
    ]);
    lockFile = path.join(project, 'recipes/locks/webapp/pylock.cp3_11_2-manylinux_2_36_x86_64.toml');
    const lock = parseToml(await readFile(lockFile, 'utf8')) as {
      environments: string[];
      packages: Array<{ name: string; version: string; wheels: Array<{ name: string }> }>;
    };
    // Made for the factory image's interpreter (Debian's 3.11.2), not the host's 3.11.7 (Decision 3).
    expect(lock.environments).toHaveLength(1);
    expect(lock.environments[0]).toContain('python_full_version == "3.11.2"');
    expect(lock.packages.map((p) => [p.name, p.version, p.wheels.map((w) => w.name)])).toEqual([
      ['greeting', '2.0', ['greeting-2.0-py3-none-any.whl']],
      ['zcrc', '1.0', ['zcrc-1.0-cp311-cp311-linux_x86_64.whl']],
    ]);

    // Who built what (Decision 5): the docker executor with the factory image.
    const list = await cli(['wheelhouse', 'list', '--json']);
    const zcrc = (
      JSON.parse(list.stdout) as Array<{ filename: string; builtBy?: Record<string, string> }>
    ).find((w) => w.filename === 'zcrc-1.0-cp311-cp311-linux_x86_64.whl');
    expect(zcrc?.builtBy?.executor).toBe('docker');

    // A second build is warm: the lock is current, no container runs.
    const again = await cli([
      'build',
      'webapp',
      '--no-cext',
      '--executor',
      'docker',
      '--factory-image',
      tags.factory,
    ]);
    expect(again.stderr).toContain(
      '[cp311-linux_x86_64] up to date (lock): 2 distributions, 2 cached, 0 added',
    );

    // The app's wheel joins the wheelhouse (the wheel variant installs it from there).
    const added = await cli(['wheelhouse', 'add', appWheel]);
    expect(added.stdout).toContain('webapp-1.0-py3-none-any.whl');
    await fs.cp(path.join(project, 'wheelhouse'), path.join(project, 'app/wheelhouse'), {
      recursive: true,
      filter: (src) => !src.includes('/.dstack'),
    });
  }, 600_000);

  it('requirements variant, engine and daemonless: serves the app mounted from the host (--user webapp -v src:/app)', async () => {
    await engineBuild('Dockerfile', tags.reqEngine, {
      BASE_IMAGE: tags.runtime,
      REQUIREMENTS: 'requirements.txt',
    });
    // Daemonless: --requirements locks with an interpreter of the base's own version (3.11.2 here).
    await cli([
      'image',
      'app',
      '--base',
      `docker:${tags.runtime}`,
      '--requirements',
      'app/requirements.txt',
      '--output',
      `docker:${tags.reqDaemonless}`,
    ]);
    const src = path.join(project, 'app/src');
    for (const image of [tags.reqEngine, tags.reqDaemonless]) {
      const answer = await answerOf(image, {
        cmd: ['python', '-m', 'webapp'],
        user: 'webapp',
        binds: [`${src}:/app:ro`],
      });
      expectApp(answer, { uid: 4801, appFile: /^\/app\/webapp\/__init__\.py$/ });
    }
  }, 600_000);

  it('source variant with --uid, engine and daemonless: /app belongs to the UID the app runs as', async () => {
    await engineBuild('Dockerfile-source', tags.srcEngine, {
      BASE_IMAGE: tags.reqEngine,
      SRC_DIR: 'src',
      UID: String(UID),
    });
    await cli([
      'image',
      'app',
      '--base',
      `docker:${tags.runtime}`,
      '--lock',
      lockFile,
      '--source',
      'app/src',
      '--uid',
      String(UID),
      '--output',
      `docker:${tags.srcDaemonless}`,
    ]);
    for (const [image, user] of [
      [tags.srcEngine, 'webapp'],
      [tags.srcDaemonless, undefined],
    ] as const) {
      const ids = await runInContainer(
        image,
        ['sh', '-c', 'id -u; stat -c %u /app /app/webapp/__init__.py'],
        user ? { user } : {},
      );
      expect(ids.stdout).toBe(`${UID}\n${UID}\n${UID}\n`);
      const answer = await answerOf(image, { cmd: ['python', '-m', 'webapp'], ...(user ? { user } : {}) });
      expectApp(answer, { uid: UID, appFile: /^\/app\/webapp\/__init__\.py$/ });
    }
  }, 600_000);

  it('wheel variant, engine and daemonless (pushed to the private registry, pulled by the engine): the app runs its console script', async () => {
    await engineBuild('Dockerfile-wheel', tags.wheelEngine, {
      BASE_IMAGE: tags.runtime,
      WHEEL_PACKAGE: 'wheelhouse/webapp-1.0-py3-none-any.whl',
    });
    await cli([
      'image',
      'app',
      '--base',
      `docker:${tags.runtime}`,
      '--lock',
      lockFile,
      '--wheel',
      appWheel,
      '--output',
      `registry:${registryRef}`,
      '--cmd',
      'webapp',
    ]);
    // The pushed image read back from the registry and checked (its blobs are read as they are, no export: a few
    // seconds). The images this file loads into or builds on the engine sit on the runtime (~20-40 s to export each):
    // the CLI's docker: output and the images/app Dockerfiles' are read back in image.int and images.int instead.
    await expectValidImage(`registry:${registryRef}`);
    // The engine pulls it from the registry (plain HTTP on 127.0.0.1) and tags it.
    await followBuild(docker, await docker.pull(registryRef));
    await docker.getImage(registryRef).tag({ repo: tags.wheelDaemonless.split(':')[0]!, tag: run });
    const engine = await answerOf(tags.wheelEngine, { cmd: ['webapp'], user: 'webapp' });
    expectApp(engine, {
      uid: 4801,
      appFile: /^\/env\/lib\/python3\.11\/site-packages\/webapp\/__init__\.py$/,
    });
    const daemonless = await answerOf(tags.wheelDaemonless);
    expectApp(daemonless, {
      uid: 4801,
      appFile: /^\/env\/lib\/python3\.11\/site-packages\/webapp\/__init__\.py$/,
    });
  }, 600_000);
});

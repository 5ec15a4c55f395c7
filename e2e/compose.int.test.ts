// The README's docker-compose quick start (the original's way), through Debian's docker-compose 1.29 on the
// private engine (issue 7): in a temp copy of the project layout, `docker-compose build factory`,
// `RECIPE=webapp CEXT=False docker-compose run --rm factory` (recipes/webapp.txt -> ./wheelhouse: a C
// extension linking zlib and a git+file:// dependency, offline: the recipe says --no-index and the bootstrap
// wheels sit in the wheelhouse, as a private index would serve them), `docker-compose build runtime`; then
// the example app's own compose file (e2e/webapp) builds its deps, source and wheel images, and serves
// HTTP on ports published on 127.0.0.1.
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import {
  baseImageName,
  bootstrapWheelhouse,
  expectValidImage,
  isolatedPipEnv,
  sharedBaseImage,
  sharedEngine,
  testPython,
  writeWheel,
} from '@dstack/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../apps/cli/src/run-cli.test-support.js';
import {
  EXPECTED_CRC,
  buildWebappWheel,
  copyWebapp,
  freePort,
  removeLabelled,
  repoRoot,
  waitForApp,
  write,
  writeAppDeps,
} from './compose.test-support.js';

const UID = 4321;
/** The factory image's interpreter as @dstack/wheelhouse names it (Debian bookworm's Python 3.11.2, glibc 2.36). */
const TARGET = 'cp3_11_2-manylinux_2_36_x86_64';
const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
const appImage = `dstack-e2e/compose-webapp-${run}`;

let docker: Docker;
let tmp: string;
let project: string;
let appDir: string;
let env: NodeJS.ProcessEnv;
const ports = { source: 0, wheel: 0, init: 0 };
/** The folder `dstack-factory init` makes (its compose project gets its own name). */
let initDir: string | undefined;
const initProject = { COMPOSE_PROJECT_NAME: `dstacke2einit${run}` };

interface Compose {
  code: number;
  stdout: string;
  stderr: string;
}

/** The example app's compose calls: its source image's user gets UID. */
const appEnv = (): Record<string, string> => ({ UID: String(UID) });

/** `docker-compose ARGS` in `cwd` with the test's environment (extra variables on top). */
function compose(
  cwd: string,
  args: string[],
  extra: Record<string, string> = {},
  check = true,
): Promise<Compose> {
  return new Promise((resolve, reject) => {
    execFile(
      'docker-compose',
      args,
      { cwd, env: { ...env, ...extra }, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        if (check && code !== 0) {
          reject(
            new Error(`docker-compose ${args.join(' ')} (in ${cwd}) exited ${code}:\n${stderr}\n${stdout}`),
          );
        } else {
          resolve({ code, stdout, stderr });
        }
      },
    );
  });
}

const wheelsIn = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((f) => f.endsWith('.whl')).sort();

beforeAll(async () => {
  const engine = await sharedEngine();
  docker = engine.docker;
  await sharedBaseImage();
  tmp = await mkdtemp(path.join(tmpdir(), 'dstack-e2e-compose-'));
  project = path.join(tmp, 'dstack-factory');
  // The project layout a user's clone has: docker-compose.yml, .env, images/, recipes/, wheelhouse/, e2e/webapp.
  await mkdir(project, { recursive: true });
  await copyFile(path.join(repoRoot, 'docker-compose.yml'), path.join(project, 'docker-compose.yml'));
  await copyFile(path.join(repoRoot, '.env.example'), path.join(project, '.env'));
  await cp(path.join(repoRoot, 'images'), path.join(project, 'images'), {
    recursive: true,
    filter: (src) => !src.includes('__pycache__'),
  });
  appDir = await copyWebapp(path.join(project, 'e2e/webapp'));
  // The dependencies, where the factory container sees them: under recipes/ (mounted at /recipes).
  await writeAppDeps(path.join(project, 'recipes/libs'));
  await write(
    path.join(project, 'recipes/webapp.txt'),
    [
      '# offline: everything from the wheelhouse (bootstrap wheels) or from these sources',
      '--no-index',
      'zcrc @ file:///recipes/libs/zcrc-1.0',
      'git+file:///recipes/libs/greeting-2.0@v2.0#egg=greeting',
      '',
    ].join('\n'),
  );
  // What a private index would give pip's build isolation offline: setuptools and wheel (Decision 8).
  await bootstrapWheelhouse(testPython('3.11'), path.join(project, 'wheelhouse'));
  ports.source = await freePort();
  ports.wheel = await freePort();
  ports.init = await freePort();
  env = isolatedPipEnv({
    DOCKER_HOST: engine.dockerHost,
    BASE_IMAGE: baseImageName,
    PY_VERSION: '3.11',
    COMPOSE_PROJECT_NAME: `dstacke2e${run}`,
    APP_IMAGE: appImage,
    SOURCE_PORT: String(ports.source),
    WHEEL_PORT: String(ports.wheel),
  });
}, 600_000);

afterAll(async () => {
  if (appDir) await compose(appDir, ['down', '--rmi', 'all', '--remove-orphans'], appEnv(), false);
  if (project) await compose(project, ['down', '--remove-orphans'], {}, false);
  if (initDir) await compose(initDir, ['down', '--rmi', 'all', '--remove-orphans'], initProject, false);
  if (docker) {
    await removeLabelled(docker);
    for (const which of ['deps', 'source', 'wheel']) {
      await docker
        .getImage(`${appImage}-${which}`)
        .remove({ force: true })
        .catch(() => undefined);
    }
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
}, 300_000);

describe.sequential('quick start with docker-compose (Debian docker-compose 1.29, private engine)', () => {
  it('docker-compose build factory, run --rm factory (CEXT=False RECIPE=webapp), build runtime', async () => {
    await compose(project, ['build', 'factory']);
    const factory = await docker.getImage('dstack-factory/factory:py3.11').inspect();
    expect(factory.Config.Entrypoint).toEqual(['/opt/dstack-factory/entrypoint.sh']);
    // The factory runs any command as given (the original's `docker-compose run --rm factory bash`).
    const shell = await compose(project, ['run', '--rm', '-T', 'factory', 'bash', '-c', 'echo ok']);
    expect(shell.stdout).toBe('ok\n');

    const made = await compose(project, ['run', '--rm', 'factory'], { CEXT: 'False', RECIPE: 'webapp' });
    // The build script's events: the plan, then each wheel built.
    expect(made.stdout).toContain('"event": "planned"');
    expect(made.stdout).toContain('"event": "done", "ok": true');
    expect(await wheelsIn(path.join(project, 'wheelhouse'))).toEqual([
      'greeting-2.0-py3-none-any.whl',
      'setuptools-65.5.0-py3-none-any.whl',
      'wheel-0.38.4-py3-none-any.whl',
      'zcrc-1.0-cp311-cp311-linux_x86_64.whl',
    ]);

    // The compose door writes the recipe's lock where the CLI does (recipes/locks/<recipe>/pylock.<target>.toml).
    expect(made.stdout).toContain(`"event": "locked", "path": "/recipes/locks/webapp/pylock.${TARGET}.toml"`);
    const webappLock = await readFile(path.join(project, `recipes/locks/webapp/pylock.${TARGET}.toml`), 'utf8');
    expect(webappLock).toContain('name = "zcrc-1.0-cp311-cp311-linux_x86_64.whl"\npath = "../../../wheelhouse/zcrc-1.0-cp311-cp311-linux_x86_64.whl"\n');
    expect(webappLock).toContain(`[tool.dstack-factory]\nrecipe = "../../webapp.txt"\ntarget = "${TARGET}"\n`);

    // The archive (the original's /archive, ./archive here): every wheel of the build copied there.
    const built = await wheelsIn(path.join(project, 'wheelhouse'));
    expect(made.stdout).toContain(`archive: ${built.length} copied, 0 present\n`);
    expect(await wheelsIn(path.join(project, 'archive'))).toEqual(built);
    // A cleaned wheelhouse: the next build takes the wheels from the archive (find-links), building nothing.
    await write(path.join(project, 'recipes/archived.txt'), '--no-index\nzcrc==1.0\ngreeting==2.0\n');
    for (const f of built) await rm(path.join(project, 'wheelhouse', f));
    const again = await compose(project, ['run', '--rm', 'factory'], { CEXT: 'False', RECIPE: 'archived' });
    expect(again.stdout).toContain('"event": "done", "ok": true');
    expect(again.stdout).not.toContain('"action": "build"');
    expect(again.stdout).toContain('"action": "download", "command": ["copy", "/archive/zcrc-1.0-cp311-cp311-linux_x86_64.whl"]');
    expect(await wheelsIn(path.join(project, 'wheelhouse'))).toEqual(['greeting-2.0-py3-none-any.whl', 'zcrc-1.0-cp311-cp311-linux_x86_64.whl']);
    expect(again.stdout).toContain('archive: 0 copied, 2 present\n');
    // Both doors write the same lock for the same recipe and target (Decision 9): the CLI through the docker
    // executor in the same image rewrites the compose door's file, adding only its key (a sha256 of the recipe as
    // @dstack/recipe parses it, which the in-image script cannot compute: a keyless lock is not current for
    // `build`, which plans again — from the wheelhouse, nothing added).
    const lockFile = path.join(project, `recipes/locks/archived/pylock.${TARGET}.toml`);
    const composeLock = await readFile(lockFile, 'utf8');
    expect(composeLock).not.toContain('key =');
    const cli = await runCli(
      ['build', 'archived', '--no-cext', '--executor', 'docker', '--factory-image', 'dstack-factory/factory:py3.11'],
      { env, cwd: project },
    );
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toContain(`done: 2 distributions, 2 cached, 0 added; lock ${lockFile}\n`);
    const cliLock = await readFile(lockFile, 'utf8');
    expect(cliLock).toMatch(/^key = "[0-9a-f]{64}"$/m);
    expect(cliLock.replace(/^key = "[0-9a-f]{64}"\n/m, '')).toBe(composeLock);
    for (const f of built) await copyFile(path.join(project, 'archive', f), path.join(project, 'wheelhouse', f));

    // BUILD_REQ=False with no RECIPE (the original's /wheelhouse/*.whl): every wheel's missing dependency is
    // brought, here greeting from the archive; RECIPE a name with a dash, or a full wheel stem, alike.
    await writeWheel(path.join(project, 'wheelhouse'), { name: 'uses-greet', version: '1.0', requires: ['greeting==2.0'] });
    await rm(path.join(project, 'wheelhouse', 'greeting-2.0-py3-none-any.whl'));
    // Offline: pip's index is switched off for these runs (the generated recipe names wheel files only).
    const offline = ['run', '--rm', '-e', 'PIP_NO_INDEX=1', 'factory'];
    const all = await compose(project, offline, { CEXT: 'False', BUILD_REQ: 'False' });
    expect(all.stdout).toContain('"event": "done", "ok": true');
    expect(all.stdout).toContain('"action": "download", "command": ["copy", "/archive/greeting-2.0-py3-none-any.whl"]');
    expect(await wheelsIn(path.join(project, 'wheelhouse'))).toContain('greeting-2.0-py3-none-any.whl');
    expect(all.stdout).toContain(`"event": "locked", "path": "/recipes/locks/wheelhouse/pylock.${TARGET}.toml"`);
    for (const recipe of ['uses-greet', 'uses_greet-1.0-py3-none-any', 'uses-greet-1.0']) {
      const one = await compose(project, offline, { CEXT: 'False', BUILD_REQ: 'False', RECIPE: recipe });
      expect(one.stdout).toContain('"event": "done", "ok": true');
      expect(one.stdout).toContain('"event": "cached", "filename": "uses_greet-1.0-py3-none-any.whl"');
      expect(one.stdout).toContain('"name": "greeting"');
      expect(one.stdout).not.toContain('zcrc');
      expect(one.stdout).toContain(`"event": "locked", "path": "/recipes/locks/${recipe}/pylock.${TARGET}.toml"`);
    }
    // Its lock, through both doors alike: it names no recipe (the choice of wheels is the run's own temp file).
    const fromWheelLock = path.join(project, `recipes/locks/uses-greet/pylock.${TARGET}.toml`);
    const composeFromWheel = await readFile(fromWheelLock, 'utf8');
    expect(composeFromWheel).toContain(`[tool.dstack-factory]\ntarget = "${TARGET}"\n`);
    const cliFromWheel = await runCli(
      ['build', '--no-cext', '--executor', 'docker', '--factory-image', 'dstack-factory/factory:py3.11'],
      { env: { ...env, BUILD_REQ: 'False', RECIPE: 'uses-greet', PIP_NO_INDEX: '1' }, cwd: project },
    );
    expect(cliFromWheel.code, cliFromWheel.stderr).toBe(0);
    expect(cliFromWheel.stderr).toContain(`; lock ${fromWheelLock}\n`);
    expect((await readFile(fromWheelLock, 'utf8')).replace(/^key = "[0-9a-f]{64}"\n/m, '')).toBe(composeFromWheel);
    const none = await compose(project, offline, { CEXT: 'False', BUILD_REQ: 'False', RECIPE: 'uses-greet-9.9' }, false);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('BUILD_REQ=False: no wheel named uses-greet-9.9 in /wheelhouse');
    await rm(path.join(project, 'wheelhouse', 'uses_greet-1.0-py3-none-any.whl'));

    await compose(project, ['build', 'runtime']);
    const runtime = await docker.getImage('dstack-factory/runtime:py3.11').inspect();
    expect(runtime.Config.Env).toContain(
      'PATH=/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    );
  }, 900_000);

  it("the example app's compose file: deps, source (UID) and wheel images serving HTTP on 127.0.0.1", async () => {
    // The app folder's wheelhouse: the factory's wheels and the app's own wheel.
    await cp(path.join(project, 'wheelhouse'), path.join(appDir, 'wheelhouse'), {
      recursive: true,
      filter: (src) => !src.includes('/.dstack'),
    });
    await buildWebappWheel(
      testPython('3.11'),
      appDir,
      path.join(appDir, 'wheelhouse'),
      path.join(appDir, 'wheelhouse'),
    );
    expect(await wheelsIn(path.join(appDir, 'wheelhouse'))).toContain('webapp-1.0-py3-none-any.whl');

    await compose(appDir, ['build', 'deps'], appEnv());
    await compose(appDir, ['build', 'source', 'wheel'], appEnv());

    // The seed's step 4: a command in the deps image.
    const deps = await compose(appDir, ['run', '--rm', '--no-deps', 'deps'], appEnv());
    expect(deps.stdout.trim()).toBe(`${EXPECTED_CRC} 2.0`);
    // The source image: /app owned by UID, the app runs as that user.
    const ids = await compose(
      appDir,
      ['run', '--rm', '--no-deps', 'source', 'sh', '-c', 'id -u; stat -c %u /app /app/webapp/__init__.py'],
      appEnv(),
    );
    expect(ids.stdout).toBe(`${UID}\n${UID}\n${UID}\n`);

    await compose(appDir, ['up', '-d', '--no-build', 'source', 'wheel'], appEnv());
    const source = await waitForApp(
      `http://127.0.0.1:${ports.source}/`,
      30_000,
      async () => (await compose(appDir, ['logs', 'source'], appEnv(), false)).stdout,
    );
    expect(source).toMatchObject({
      app: 'webapp',
      crc: EXPECTED_CRC,
      native: '_native.cpython-311-x86_64-linux-gnu.so',
      greeting: '2.0',
      uid: UID,
      python: '3.11.2',
      app_file: '/app/webapp/__init__.py',
    });
    const wheel = await waitForApp(
      `http://127.0.0.1:${ports.wheel}/`,
      30_000,
      async () => (await compose(appDir, ['logs', 'wheel'], appEnv(), false)).stdout,
    );
    expect(wheel).toMatchObject({
      app: 'webapp',
      crc: EXPECTED_CRC,
      greeting: '2.0',
      uid: 4801,
      python: '3.11.2',
      app_file: '/env/lib/python3.11/site-packages/webapp/__init__.py',
    });
    // Published on the loopback address only.
    const port = await compose(appDir, ['port', 'source', '8000'], appEnv());
    expect(port.stdout.trim()).toBe(`127.0.0.1:${ports.source}`);
    // The images compose built, read back and checked by validateImage (source's lower layers are deps').
    await expectValidImage(`${appImage}-source`);
    await expectValidImage(`${appImage}-wheel`);
  }, 900_000);

  it("dstack-factory init: the starter project's wheelhouse (build --executor docker) and docker-compose.yml serve the app", async () => {
    const dir = path.join(tmp, 'myapp');
    initDir = dir;
    const init = await runCli(['init', dir], { env, cwd: tmp });
    expect(init.code).toBe(0);
    for (const f of [
      'recipes/requirements.txt',
      '.env',
      'docker-compose.yml',
      'Dockerfile',
      'Dockerfile-source',
    ]) {
      expect(init.stdout).toContain(`created ${path.join(dir, f)}\n`);
    }
    // The user's recipe (by name, from a private find-links folder: the factory's wheelhouse) and code.
    await write(
      path.join(dir, 'recipes/requirements.txt'),
      [
        '--no-index',
        `--find-links ${path.join(project, 'wheelhouse')}`,
        'zcrc==1.0',
        'greeting==2.0',
        '',
      ].join('\n'),
    );
    await cp(path.join(appDir, 'src/webapp'), path.join(dir, 'src/webapp'), { recursive: true });
    // The README's `CEXT=False dstack-factory build`, in the factory image docker-compose built.
    const built = await runCli(
      ['build', '--executor', 'docker', '--factory-image', 'dstack-factory/factory:py3.11'],
      {
        env: { ...env, CEXT: 'False' },
        cwd: dir,
      },
    );
    expect(built.code, built.stderr).toBe(0);
    expect(await wheelsIn(path.join(dir, 'wheelhouse'))).toEqual([
      'greeting-2.0-py3-none-any.whl',
      'zcrc-1.0-cp311-cp311-linux_x86_64.whl',
    ]);

    await compose(dir, ['build', 'deps', 'app'], initProject);
    await compose(
      dir,
      [
        'run',
        '-d',
        '--name',
        `dstacke2einit${run}-web`,
        '-l',
        'org.dstack-factory.test=e2e',
        '-p',
        `127.0.0.1:${ports.init}:8000`,
        'app',
        'python',
        '-m',
        'webapp',
      ],
      initProject,
    );
    const answer = await waitForApp(
      `http://127.0.0.1:${ports.init}/`,
      30_000,
      async () => (await compose(dir, ['logs'], initProject, false)).stdout,
    );
    expect(answer).toMatchObject({
      app: 'webapp',
      crc: EXPECTED_CRC,
      native: '_native.cpython-311-x86_64-linux-gnu.so',
      greeting: '2.0',
      uid: 4801,
      python: '3.11.2',
      app_file: '/app/webapp/__init__.py',
    });
  }, 900_000);
});

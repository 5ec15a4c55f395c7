// The original dstack-factory's README (obitec/dstack-factory, docs/quickstart.rst) and its test/ folder, step
// by step on the private engine, with only the names changed as docs/migrating.md says (issue 19):
// `obitec/dstack-*:3.5` -> `dstack-factory/*:py3.11`, the runtime's ONBUILD steps -> `runtime:py3.11-onbuild`.
// Offline, a stand-in for django plays its part: `pony` 1.10.5 (an sdist found by name, depending on `zcrc`, a
// C extension linking zlib) with the console script `pony-admin` (`--version`, `startproject NAME`).
//   docker-compose build factory
//   CEXT=False RECIPE=pony-1.10.5 docker-compose run --rm factory
//   docker-compose build runtime runtime-onbuild runtime-onbuild-source runtime-onbuild-wheel
//   echo "pony==1.10.5" > requirements.txt; docker build -t …/pony:1.10.5 .   (Dockerfile: one FROM line)
//   docker run --rm …/pony:1.10.5 pony-admin --version
//   docker build -f Dockerfile-source -t …/pony:1.10.5-source .               (the original's ONBUILD lines)
//   docker run --rm --user=webapp -v $PWD/test:/app …:1.10.5-source pony-admin startproject demo
//   cd test; docker-compose up -d webapp_from_source                         (SRC_DIR=demo/, UID) -> HTTP
//   the wheel flavour on the same dependencies, its child with WHEEL_PACKAGE=dist/demo-1.0-py3-none-any.whl
//   dstack-factory init DIR; docker build DIR
import { execFile } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import {
  baseImageName,
  bootstrapWheelhouse,
  buildSourceWheel,
  expectValidImage,
  isolatedPipEnv,
  makeSdist,
  sharedBaseImage,
  sharedEngine,
  testPython,
  writeCExtPackage,
} from '@dstack/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../apps/cli/src/run-cli.test-support.js';
import { EXPECTED_CRC, freePort, removeLabelled, repoRoot, waitForApp, write } from './compose.test-support.js';

const UID = 4321;
const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
/** The original's `obitec/django`, here per run so that parallel runs do not meet. */
const app = `dstack-e2e/pony-${run}`;
const images = [
  `${app}:1.10.5`,
  `${app}:1.10.5-source`,
  `${app}:1.10.5-wheel`,
  `${app}:init`,
  `${app}:init-empty`,
  `${app}:flavour-source`,
  `${app}:flavour-wheel`,
];
const testProject = `dstacke2eorig${run}`;

let docker: Docker;
let tmp: string;
let project: string;
let env: NodeJS.ProcessEnv;
const ports = { source: 0, wheel: 0 };

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** A command (docker, docker-compose) in `cwd` with the test's environment; a non-zero exit throws. */
function sh(
  cmd: string,
  args: string[],
  cwd: string,
  extra: Record<string, string> = {},
  check = true,
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd, env: { ...env, ...extra }, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        if (check && code !== 0) {
          reject(new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${code}:\n${stderr}\n${stdout}`));
        } else {
          resolve({ code, stdout, stderr });
        }
      },
    );
  });
}

const wheelsIn = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((f) => f.endsWith('.whl')).sort();

/**
 * `pony` 1.10.5, django's stand-in: `pony-admin --version`; `pony-admin startproject NAME` writes NAME/manage.py
 * (`python manage.py runserver ADDR:PORT` serves the project's WSGI app) and NAME/NAME/__init__.py, plus a
 * pyproject.toml so that the project can also be shipped as a wheel (script NAME: runserver on 0.0.0.0:8000).
 * The page shows zcrc's crc (the C extension), the UID and the project module's file.
 */
async function writePony(parent: string): Promise<string> {
  const dir = path.join(parent, 'pony-1.10.5');
  await write(
    path.join(dir, 'pyproject.toml'),
    [
      '[build-system]',
      'requires = ["setuptools"]',
      'build-backend = "setuptools.build_meta"',
      '',
      '[project]',
      'name = "pony"',
      'version = "1.10.5"',
      'dependencies = ["zcrc==1.0"]',
      '',
      '[project.scripts]',
      'pony-admin = "pony.admin:main"',
      '',
      '[tool.setuptools]',
      'packages = ["pony"]',
      '',
    ].join('\n'),
  );
  await write(path.join(dir, 'pony/__init__.py'), 'VERSION = "1.10.5"\n');
  await write(
    path.join(dir, 'pony/admin.py'),
    `import os
import sys

from pony import VERSION

MANAGE = '''import sys

from pony.server import execute

execute("{name}", sys.argv[1:])
'''

MODULE = '''def main():
    from pony.server import execute

    execute("{name}", ["runserver", "0.0.0.0:8000"])
'''

PYPROJECT = '''[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "1.0"
dependencies = ["pony==1.10.5"]

[project.scripts]
{name} = "{name}:main"

[tool.setuptools]
packages = ["{name}"]
'''


def main():
    args = sys.argv[1:]
    if args == ["--version"]:
        print(VERSION)
        return 0
    if len(args) == 2 and args[0] == "startproject":
        name = args[1]
        os.makedirs(os.path.join(name, name))
        for rel, text in (("manage.py", MANAGE), (os.path.join(name, "__init__.py"), MODULE), ("pyproject.toml", PYPROJECT)):
            with open(os.path.join(name, rel), "w") as f:
                f.write(text.format(name=name))
        return 0
    sys.stderr.write("usage: pony-admin --version | startproject NAME\\n")
    return 2
`,
  );
  await write(
    path.join(dir, 'pony/server.py'),
    `import importlib
import json
import os
import platform
import sys
from wsgiref.simple_server import make_server

from pony import VERSION


def execute(project, args):
    if not args or args[0] != "runserver":
        sys.stderr.write("usage: manage.py runserver [ADDR:PORT]\\n")
        sys.exit(2)
    host, _, port = (args[1] if len(args) > 1 else "127.0.0.1:8000").rpartition(":")
    module = importlib.import_module(project)

    def application(environ, start_response):
        import zcrc

        body = json.dumps(
            {"project": project, "pony": VERSION, "crc": zcrc.crc(), "uid": os.getuid(),
             "python": platform.python_version(), "app_file": module.__file__},
            sort_keys=True,
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    with make_server(host or "127.0.0.1", int(port), application) as server:
        sys.stderr.write("serving %s on %s\\n" % (project, args[1] if len(args) > 1 else "127.0.0.1:8000"))
        sys.stderr.flush()
        server.serve_forever()
`,
  );
  return dir;
}

beforeAll(async () => {
  const engine = await sharedEngine();
  docker = engine.docker;
  await sharedBaseImage();
  tmp = await mkdtemp(path.join(tmpdir(), 'dstack-e2e-original-'));
  // A clone of this project: docker-compose.yml, .env, images/, recipes/, wheelhouse/.
  project = path.join(tmp, 'dstack-factory');
  await mkdir(project, { recursive: true });
  await copyFile(path.join(repoRoot, 'docker-compose.yml'), path.join(project, 'docker-compose.yml'));
  await copyFile(path.join(repoRoot, '.env.example'), path.join(project, '.env'));
  await cp(path.join(repoRoot, 'images'), path.join(project, 'images'), {
    recursive: true,
    filter: (src) => !src.includes('__pycache__'),
  });
  // The index the recipe names (PyPI's part, offline): the sdists of pony and zcrc, where the factory sees
  // them (recipes/ is mounted at /recipes).
  const sources = path.join(tmp, 'sources');
  const dists = path.join(project, 'recipes/dists');
  await makeSdist(await writePony(sources), dists, {
    name: 'pony',
    version: '1.10.5',
    dependencies: ['zcrc==1.0'],
  });
  await makeSdist(await writeCExtPackage(sources, { name: 'zcrc', version: '1.0', library: 'z' }), dists, {
    name: 'zcrc',
    version: '1.0',
  });
  // The original's `echo "django==1.10.5" > recipes/django-1.10.5.txt`, with the offline index in front.
  await write(
    path.join(project, 'recipes/pony-1.10.5.txt'),
    '# offline: PyPI is a folder of sdists here\n--no-index\n--find-links /recipes/dists\npony==1.10.5\n',
  );
  // What a private index would give pip's build isolation offline: setuptools and wheel (Decision 8).
  await bootstrapWheelhouse(testPython('3.11'), path.join(project, 'wheelhouse'));
  // The original's root files, names changed: the one-line Dockerfile, Dockerfile-source, .dockerignore.
  await write(path.join(project, 'Dockerfile'), 'FROM dstack-factory/runtime:py3.11-onbuild\n');
  await write(
    path.join(project, 'Dockerfile-source'),
    [
      'FROM dstack-factory/runtime:py3.11-onbuild',
      '',
      'ONBUILD ARG SRC_DIR',
      'ONBUILD ARG UID=4801',
      'ONBUILD COPY ${SRC_DIR} /app',
      'ONBUILD RUN usermod -u ${UID} webapp && chown -R webapp:webapp /app',
      '',
    ].join('\n'),
  );
  await write(
    path.join(project, '.dockerignore'),
    ['.git/', 'images/', 'recipes/', 'test/', '', '.gitignore', 'Dockerfile', 'docker-compose.yml', ''].join(
      '\n',
    ),
  );
  ports.source = await freePort();
  ports.wheel = await freePort();
  env = isolatedPipEnv({
    DOCKER_HOST: engine.dockerHost,
    BASE_IMAGE: baseImageName,
    PY_VERSION: '3.11',
    COMPOSE_PROJECT_NAME: `dstacke2eorigfactory${run}`,
  });
}, 600_000);

afterAll(async () => {
  if (project) {
    await sh(
      'docker-compose',
      ['down', '--rmi', 'local', '--remove-orphans'],
      path.join(project, 'test'),
      { COMPOSE_PROJECT_NAME: testProject },
      false,
    ).catch(() => undefined);
    await sh('docker-compose', ['down', '--remove-orphans'], project, {}, false).catch(() => undefined);
  }
  if (docker) {
    await removeLabelled(docker);
    for (const image of [...images, `${app}:source-app`, `${app}:wheel-app`]) {
      await docker
        .getImage(image)
        .remove({ force: true })
        .catch(() => undefined);
    }
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
}, 300_000);

describe.sequential("the original's README and test/ folder, names changed as docs/migrating.md says", () => {
  it('docker-compose build factory; CEXT=False RECIPE=pony-1.10.5 docker-compose run --rm factory', async () => {
    await sh('docker-compose', ['build', 'factory'], project);
    const made = await sh('docker-compose', ['run', '--rm', 'factory'], project, {
      CEXT: 'False',
      RECIPE: 'pony-1.10.5',
    });
    expect(made.stdout).toContain('"event": "done", "ok": true');
    expect(await wheelsIn(path.join(project, 'wheelhouse'))).toEqual([
      'pony-1.10.5-py3-none-any.whl',
      'setuptools-65.5.0-py3-none-any.whl',
      'wheel-0.38.4-py3-none-any.whl',
      'zcrc-1.0-cp311-cp311-linux_x86_64.whl',
    ]);
  }, 900_000);

  it('docker-compose build runtime (and its onbuild flavours); the one-line Dockerfile; docker run pony-admin --version', async () => {
    await sh(
      'docker-compose',
      ['build', 'runtime', 'runtime-onbuild', 'runtime-onbuild-source', 'runtime-onbuild-wheel'],
      project,
    );
    const onbuild = await docker.getImage('dstack-factory/runtime:py3.11-onbuild').inspect();
    expect(onbuild.Config.OnBuild).toEqual([
      'COPY wheelhouse /wheelhouse',
      'COPY requirements.txt /app/requirements.txt',
      'RUN pip install --pre --no-index --no-cache-dir -f /wheelhouse -r /app/requirements.txt && rm -rf /wheelhouse',
    ]);
    // echo "django==1.10.5" > requirements.txt; docker build -t obitec/django:1.10.5 .
    await write(path.join(project, 'requirements.txt'), 'pony==1.10.5\n');
    await sh('docker', ['build', '-t', `${app}:1.10.5`, '.'], project);
    const version = await sh('docker', ['run', '--rm', `${app}:1.10.5`, 'pony-admin', '--version'], project);
    expect(version.stdout).toBe('1.10.5\n');
    // The C extension was compiled in the factory and links the runtime's zlib.
    const crc = await sh(
      'docker',
      ['run', '--rm', `${app}:1.10.5`, 'python', '-c', 'import zcrc; print(zcrc.crc())'],
      project,
    );
    expect(crc.stdout).toBe(`${EXPECTED_CRC}\n`);
    // The ONBUILD child, read back from the engine and checked by validateImage.
    await expectValidImage(`${app}:1.10.5`);
  }, 900_000);

  it('test/: the -source image, startproject demo, its one-line child with SRC_DIR and UID, docker-compose up -d, HTTP', async () => {
    // docker build -f Dockerfile-source -t obitec/django:1.10.5-source .
    await sh('docker', ['build', '-f', 'Dockerfile-source', '-t', `${app}:1.10.5-source`, '.'], project);
    // The original's test/ folder: a one-line Dockerfile (plus its comment) and docker-compose.yml; the
    // services publish their port on 127.0.0.1 and runserver listens on 0.0.0.0 so that HTTP reaches them.
    const test = path.join(project, 'test');
    await write(
      path.join(test, 'Dockerfile'),
      `FROM ${app}:1.10.5-source\n\n# Add additional commands here to set up/customise your image\n`,
    );
    await write(path.join(test, 'Dockerfile-wheel'), `FROM ${app}:1.10.5-wheel\n`);
    await write(
      path.join(test, 'docker-compose.yml'),
      `version: "2.1"

services:
  webapp_from_source:
    image: ${app}:source-app
    build:
      context: .
      args:
        - UID=\${UID:-4801}
        - SRC_DIR=demo/
    user: webapp
    command: python manage.py runserver 0.0.0.0:8000
    ports:
      - "127.0.0.1:${ports.source}:8000"

  webapp_from_wheel:
    image: ${app}:wheel-app
    build:
      context: .
      dockerfile: Dockerfile-wheel
      args:
        - WHEEL_PACKAGE=dist/demo-1.0-py3-none-any.whl
    user: webapp
    command: demo
    ports:
      - "127.0.0.1:${ports.wheel}:8000"
`,
    );
    // docker run --rm --user=webapp -v $PWD/test:/app obitec/django:1.10.5-source django-admin startproject demo
    await chmod(test, 0o777);
    await sh(
      'docker',
      [
        'run',
        '--rm',
        '--user=webapp',
        '-v',
        `${test}:/app`,
        `${app}:1.10.5-source`,
        'pony-admin',
        'startproject',
        'demo',
      ],
      project,
    );
    expect((await readdir(path.join(test, 'demo'))).sort()).toEqual(['demo', 'manage.py', 'pyproject.toml']);

    // cd test; docker-compose up -d webapp_from_source
    const composeEnv = { COMPOSE_PROJECT_NAME: testProject, UID: String(UID) };
    await sh('docker-compose', ['up', '-d', 'webapp_from_source'], test, composeEnv);
    const logs = async (): Promise<string> =>
      (await sh('docker-compose', ['logs'], test, composeEnv, false)).stdout;
    const source = await waitForApp(`http://127.0.0.1:${ports.source}/`, 30_000, logs);
    expect(source).toEqual({
      project: 'demo',
      pony: '1.10.5',
      crc: EXPECTED_CRC,
      uid: UID,
      python: '3.11.2',
      app_file: '/app/demo/__init__.py',
    });
    const owners = await sh(
      'docker-compose',
      ['exec', '-T', 'webapp_from_source', 'stat', '-c', '%u', '/app', '/app/manage.py'],
      test,
      composeEnv,
    );
    expect(owners.stdout).toBe(`${UID}\n${UID}\n`);

    // The wheel flavour, chained as the original's Dockerfile-wheel was: on the onbuild runtime, in the
    // project folder (its triggers install requirements.txt), then a one-line child with WHEEL_PACKAGE.
    await sh(
      'docker',
      [
        'build',
        '-f',
        'images/runtime/Dockerfile-onbuild-wheel',
        '--build-arg',
        'BASE_IMAGE=dstack-factory/runtime:py3.11-onbuild',
        '-t',
        `${app}:1.10.5-wheel`,
        '.',
      ],
      project,
    );
    const copy = path.join(tmp, 'demo-src');
    await cp(path.join(test, 'demo'), copy, { recursive: true });
    await buildSourceWheel(
      testPython('3.11'),
      copy,
      path.join(test, 'dist'),
      path.join(project, 'wheelhouse'),
    );
    expect(await wheelsIn(path.join(test, 'dist'))).toEqual(['demo-1.0-py3-none-any.whl']);
    await sh('docker-compose', ['up', '-d', 'webapp_from_wheel'], test, composeEnv);
    const wheel = await waitForApp(`http://127.0.0.1:${ports.wheel}/`, 30_000, logs);
    expect(wheel).toEqual({
      project: 'demo',
      pony: '1.10.5',
      crc: EXPECTED_CRC,
      uid: 4801,
      python: '3.11.2',
      app_file: '/env/lib/python3.11/site-packages/demo/__init__.py',
    });
    // The two one-line children compose built, read back and checked by validateImage.
    await expectValidImage(`${app}:source-app`);
    await expectValidImage(`${app}:wheel-app`);
  }, 900_000);

  it("this project's flavours as the original's children meet them: -onbuild-source (SRC_DIR, UID), -onbuild-wheel (WHEEL_FILE; neither: a clear error)", async () => {
    const test = path.join(project, 'test');
    // A one-line child of the source flavour: the UID owns /app and its copy of SRC_DIR.
    await write(
      path.join(test, 'Dockerfile.flavour-source'),
      'FROM dstack-factory/runtime:py3.11-onbuild-source\n',
    );
    await sh(
      'docker',
      [
        'build',
        '-f',
        'Dockerfile.flavour-source',
        '--build-arg',
        'SRC_DIR=demo/',
        '--build-arg',
        `UID=${UID}`,
        '-t',
        `${app}:flavour-source`,
        '.',
      ],
      test,
    );
    const ids = await sh(
      'docker',
      [
        'run',
        '--rm',
        `${app}:flavour-source`,
        'sh',
        '-c',
        'id -u webapp; id -g webapp; stat -c %u /app /app/manage.py /app/demo/__init__.py',
      ],
      test,
    );
    expect(ids.stdout).toBe(`${UID}\n${UID}\n${UID}\n${UID}\n${UID}\n`);
    // The wheel image's children take the original README's WHEEL_FILE too.
    await sh(
      'docker',
      [
        'build',
        '-f',
        'Dockerfile-wheel',
        '--build-arg',
        'WHEEL_FILE=dist/demo-1.0-py3-none-any.whl',
        '-t',
        `${app}:flavour-wheel`,
        '.',
      ],
      test,
    );
    const shown = await sh('docker', ['run', '--rm', `${app}:flavour-wheel`, 'pip', 'show', 'demo'], test);
    expect(shown.stdout).toContain('Name: demo\nVersion: 1.0\n');
    const none = await sh(
      'docker',
      ['build', '--force-rm', '-f', 'Dockerfile-wheel', '-t', `${app}:flavour-none`, '.'],
      test,
      {},
      false,
    );
    expect(none.code).toBe(1);
    // The classic builder shows a step's stderr in its stdout, and the failed step in its stderr.
    expect(none.stdout).toContain(
      'set --build-arg WHEEL_PACKAGE=path/to/app.whl (a wheel in the build context)\n',
    );
    expect(none.stderr).toMatch(/The command '\/bin\/sh -c set -e; .*' returned a non-zero code: 1\n/);
    // The failed build's last step image (the COPY before the RUN) is left untagged: remove it.
    const steps = [...none.stdout.matchAll(/ ---> ([0-9a-f]{12})\n/g)].map((m) => m[1]!);
    if (steps.length > 0)
      await docker
        .getImage(steps[steps.length - 1]!)
        .remove()
        .catch(() => undefined);
  }, 900_000);

  it('dstack-factory init DIR, then docker build DIR', async () => {
    const dir = path.join(tmp, 'myapp');
    const init = await runCli(['init', dir], { env, cwd: tmp });
    expect(init.code, init.stderr).toBe(0);
    // As is, with no requirements yet, the folder builds.
    await sh('docker', ['build', '-t', `${app}:init-empty`, '.'], dir);
    // With the factory's wheels and a requirement, its image runs the console script.
    for (const whl of ['pony-1.10.5-py3-none-any.whl', 'zcrc-1.0-cp311-cp311-linux_x86_64.whl']) {
      await copyFile(path.join(project, 'wheelhouse', whl), path.join(dir, 'wheelhouse', whl));
    }
    await write(path.join(dir, 'requirements.txt'), 'pony==1.10.5\n');
    await sh('docker', ['build', '-t', `${app}:init`, '.'], dir);
    const version = await sh('docker', ['run', '--rm', `${app}:init`, 'pony-admin', '--version'], dir);
    expect(version.stdout).toBe('1.10.5\n');
  }, 900_000);
});

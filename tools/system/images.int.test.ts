// The real container components and the images under images/: the private engine, the debootstrapped base,
// the factory image compiling a C extension (zlib + libpq) into a wheel, the runtime image running it, and
// the app entry points (requirements, source, wheel) built with the classic builder of Debian's docker.io.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  baseImageName,
  expectValidImage,
  followBuild,
  contextFiles,
  imagesDir,
  packContext,
  runInContainer,
  sharedEngine,
  sharedFactoryImage,
  sharedRegistry,
  sharedRuntimeImage,
  testLabel,
  type SharedEngine,
} from '@dstack/testing';

let engine: SharedEngine;
let tmp: string;
let factory: string;
let runtime: string;
/** The wheel the factory image compiled: file name and bytes. */
let wheel: { name: string; bytes: Buffer };
const appTags: string[] = [];

async function writeNativePackage(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'dsnative'), { recursive: true });
  await fs.writeFile(path.join(dir, 'dsnative', '__init__.py'), 'from ._native import crc, libpq_version\n');
  await fs.writeFile(
    path.join(dir, 'dsnative', '_native.c'),
    `#include <Python.h>
#include <zlib.h>
#include <libpq-fe.h>
static PyObject *crc(PyObject *self, PyObject *args) {
  return PyLong_FromUnsignedLong(crc32(0L, (const Bytef *)"dstack", 6));
}
static PyObject *libpq_version(PyObject *self, PyObject *args) { return PyLong_FromLong(PQlibVersion()); }
static PyMethodDef methods[] = {
  {"crc", crc, METH_NOARGS, NULL}, {"libpq_version", libpq_version, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
`,
  );
  await fs.writeFile(
    path.join(dir, 'pyproject.toml'),
    '[build-system]\nrequires = ["setuptools", "wheel"]\nbuild-backend = "setuptools.build_meta"\n',
  );
  await fs.writeFile(
    path.join(dir, 'setup.py'),
    `from setuptools import setup, Extension
setup(name="dsnative", version="1.0", packages=["dsnative"],
      entry_points={"console_scripts": ["dsnative-crc = dsnative:crc"]},
      ext_modules=[Extension("dsnative._native", ["dsnative/_native.c"],
                             include_dirs=["/usr/include/postgresql"], libraries=["z", "pq"])])
`,
  );
}

/** Builds `dockerfile` of images/app with `context` on the shared engine; the image is removed afterwards. */
async function buildApp(
  dockerfile: string,
  context: string,
  buildArgs: Record<string, string>,
): Promise<string> {
  const tag = `dstack-test/app-${dockerfile.toLowerCase()}:${process.pid}`;
  await fs.copyFile(path.join(imagesDir, 'app', dockerfile), path.join(context, dockerfile));
  const stream = await engine.docker.buildImage(packContext(context, await contextFiles(context)), {
    t: tag,
    dockerfile,
    buildargs: buildArgs,
    labels: { [testLabel]: 'app' },
    rm: true,
    forcerm: true,
  });
  await followBuild(engine.docker, stream);
  appTags.push(tag);
  return tag;
}

beforeAll(async () => {
  engine = await sharedEngine();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-images-'));
  [factory, runtime] = await Promise.all([sharedFactoryImage(), sharedRuntimeImage()]);
});

afterAll(async () => {
  for (const tag of appTags)
    await engine?.docker
      .getImage(tag)
      .remove({ force: true })
      .catch(() => undefined);
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

describe('the private engine', () => {
  it("is Debian's docker.io 20.10 (API 1.41) on its own socket", async () => {
    expect(engine.apiVersion).toBe('1.41');
    expect(engine.dockerHost).toBe('unix:///tmp/dstack/engine/docker.sock');
    const info = (await engine.docker.info()) as { Driver: string; ServerVersion: string };
    expect(info.ServerVersion).toMatch(/^20\.10\./);
    expect(['overlay2', 'vfs']).toContain(info.Driver);
  });

  it("runs the debootstrapped base: Debian bookworm's Python 3.11", async () => {
    const run = await runInContainer(baseImageName, [
      'sh',
      '-c',
      'python3 --version; . /etc/os-release; echo $VERSION_CODENAME',
    ]);
    expect(run).toMatchObject({ exitCode: 0, stdout: 'Python 3.11.2\nbookworm\n' });
  });
});

describe('the shared registry', () => {
  it('answers the distribution API on 127.0.0.1', async () => {
    const registry = await sharedRegistry();
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });
});

describe('the factory image', () => {
  it('compiles a C extension linking zlib and libpq into a wheel, offline', async () => {
    const src = path.join(tmp, 'dsnative');
    await writeNativePackage(src);
    // pip's build isolation gets setuptools and wheel from Debian's python3-*-whl, not from an index.
    const run = await runInContainer(
      factory,
      [
        'sh',
        '-c',
        'pip wheel --no-index --find-links /usr/share/python-wheels --use-pep517 --no-deps -w /out /src >/tmp/log 2>&1 || { cat /tmp/log; exit 1; }; ls /out',
      ],
      { input: { dir: src, path: '/src' }, outputPath: '/out', timeoutMs: 180_000 },
    );
    expect(run.stdout).toBe('dsnative-1.0-cp311-cp311-linux_x86_64.whl\n');
    expect(run.exitCode).toBe(0);
    const bytes = run.files.get('dsnative-1.0-cp311-cp311-linux_x86_64.whl');
    expect(bytes?.subarray(0, 2).toString()).toBe('PK');
    wheel = { name: 'dsnative-1.0-cp311-cp311-linux_x86_64.whl', bytes: bytes! };
  });

  it('runs any command as given, printing nothing of its own; the build script without one or with its flags', async () => {
    expect((await engine.docker.getImage(factory).inspect()).Config.Entrypoint).toEqual(['/opt/dstack-factory/entrypoint.sh']);
    const own = { imageEntrypoint: true };
    expect(await runInContainer(factory, ['bash', '-c', 'echo ok'], own)).toMatchObject({ exitCode: 0, stdout: 'ok\n', stderr: '' });
    expect(await runInContainer(factory, ['python', '-c', 'import sys; print(sys.argv[1:])', 'a b', '-c'], own)).toMatchObject({ exitCode: 0, stdout: "['a b', '-c']\n" });
    // Its own flags go to the build script (what the docker executor passes).
    const help = await runInContainer(factory, ['--help'], own);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(/^usage: factory\.py \[-h\] \[--recipe RECIPE\]/);
    // No command: the build script with the environment's switches (BUILD_REQ=True, recipes/requirements.txt).
    const none = await runInContainer(factory, [], own);
    expect(none.exitCode).not.toBe(0);
    expect(none.stdout + none.stderr).toContain('/recipes/requirements.txt');
  });

  it('has the venv on PATH and the toolchain (mercurial, gfortran, HDF5_DIR)', async () => {
    const config = (await engine.docker.getImage(factory).inspect()).Config;
    expect(config.Env).toContain('HDF5_DIR=/opt/hdf5');
    expect(config.Env).toContain(
      'PATH=/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    );
    const run = await runInContainer(factory, [
      'sh',
      '-c',
      'for c in python git hg gcc gfortran pg_config xslt-config; do command -v $c; done; ls $HDF5_DIR/include/hdf5.h',
    ]);
    expect(run).toMatchObject({
      exitCode: 0,
      stdout: '/env/bin/python\n/usr/bin/git\n/usr/bin/hg\n/usr/bin/gcc\n/usr/bin/gfortran\n/usr/bin/pg_config\n/usr/bin/xslt-config\n/opt/hdf5/include/hdf5.h\n',
    });
  });
});

describe('the runtime image', () => {
  it('has /env, HOME and WORKDIR /app, and the user webapp with UID 4801 owning /app', async () => {
    const config = (await engine.docker.getImage(runtime).inspect()).Config;
    expect(config.WorkingDir).toBe('/app');
    expect(config.Env).toEqual(
      expect.arrayContaining([
        'HOME=/app',
        'VIRTUAL_ENV=/env',
        'PATH=/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ]),
    );
    const run = await runInContainer(runtime, [
      'sh',
      '-c',
      'id -u webapp; id -g webapp; stat -c "%u %U" /app; command -v python; python -c "import sys; print(sys.prefix)"; command -v gcc || echo no-gcc',
    ]);
    expect(run).toMatchObject({
      exitCode: 0,
      stdout: '4801\n4801\n4801 webapp\n/env/bin/python\n/env\nno-gcc\n',
    });
  });

  it("runs the factory's C-extension wheel with its runtime libraries", async () => {
    expect(wheel, 'the factory test builds the wheel').toBeDefined();
    const dir = path.join(tmp, 'wheel-in');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, wheel.name), wheel.bytes);
    const run = await runInContainer(
      runtime,
      [
        'sh',
        '-c',
        `pip install --no-index -q /in/${wheel.name} && python -c "import dsnative, zlib; print(dsnative.crc() == zlib.crc32(b'dstack'), dsnative.libpq_version())"`,
      ],
      { input: { dir, path: '/in' } },
    );
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^True 15\d{4}\n$/);
  });
});

describe('the app entry points (images/app)', () => {
  let project: string;

  beforeAll(async () => {
    expect(wheel, 'the factory test builds the wheel').toBeDefined();
    project = path.join(tmp, 'project');
    await fs.mkdir(path.join(project, 'wheelhouse'), { recursive: true });
    await fs.mkdir(path.join(project, 'src'), { recursive: true });
    await fs.writeFile(path.join(project, 'wheelhouse', wheel.name), wheel.bytes);
    await fs.writeFile(path.join(project, 'requirements.txt'), 'dsnative==1.0\n');
    await fs.writeFile(
      path.join(project, 'src', 'app.py'),
      'import dsnative\nprint("app", dsnative.crc())\n',
    );
  });

  it('Dockerfile installs the requirements from the wheelhouse and leaves no wheel in any layer', async () => {
    const tag = await buildApp('Dockerfile', project, { BASE_IMAGE: runtime });
    const run = await runInContainer(tag, [
      'sh',
      '-c',
      'dsnative-crc; ls / | grep -c wheelhouse || true; cat requirements.txt',
    ]);
    expect(run).toMatchObject({ exitCode: 0, stdout: '0\ndsnative==1.0\n' });
    const history = (await engine.docker.getImage(tag).history()) as { CreatedBy: string }[];
    expect(history.filter((h) => /wheelhouse|\.whl/.test(h.CreatedBy))).toEqual([]);
    await expectValidImage(tag);
  });

  it('Dockerfile-source copies SRC_DIR to /app owned by UID', async () => {
    const deps = await buildApp('Dockerfile', project, { BASE_IMAGE: runtime });
    const tag = await buildApp('Dockerfile-source', project, {
      BASE_IMAGE: deps,
      SRC_DIR: 'src',
      UID: '1234',
    });
    const run = await runInContainer(
      tag,
      ['sh', '-c', 'id -u; stat -c "%u %U" /app /app/app.py; python app.py'],
      { user: 'webapp' },
    );
    expect(run).toMatchObject({ exitCode: 0, stdout: '1234\n1234 webapp\n1234 webapp\napp 2771214488\n' });
    await expectValidImage(tag);
  });

  it('Dockerfile-wheel installs WHEEL_PACKAGE (or WHEEL_FILE) and removes it', async () => {
    for (const arg of ['WHEEL_PACKAGE', 'WHEEL_FILE']) {
      const tag = await buildApp('Dockerfile-wheel', project, {
        BASE_IMAGE: runtime,
        [arg]: `wheelhouse/${wheel.name}`,
      });
      const run = await runInContainer(tag, [
        'sh',
        '-c',
        'python -c "import dsnative; print(dsnative.crc())"; find /app /tmp /wheelhouse -name "*.whl" 2>/dev/null | wc -l',
      ]);
      expect(run).toMatchObject({ exitCode: 0, stdout: '2771214488\n0\n' });
      await expectValidImage(tag);
    }
  });
});

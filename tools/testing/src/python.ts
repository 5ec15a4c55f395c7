// Python fixtures built in code in temp dirs: source packages (pure, C extensions linking zlib or libpq,
// old-style setup.py importing a prebuilt package), sdists, wheels, git repos, and a bootstrap wheelhouse
// holding the build requirements (setuptools, wheel) so pip's build isolation works offline (Decision 8).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { isolatedPipEnv } from './pip-env.js';

const exec = promisify(execFile);

/** The two offline test targets (Decision 8). */
export const PYTHONS = {
  '3.11': '/root/.pyenv/versions/3.11.7/bin/python',
  '3.10': '/root/.pyenv/versions/3.10.13/bin/python',
} as const;

/** The interpreter for a test target, with a message saying what to install when it is missing. */
export function testPython(version: keyof typeof PYTHONS): string {
  const path = PYTHONS[version];
  if (!existsSync(path)) {
    throw new Error(`Python ${version} is missing at ${path}: install it with \`pyenv install ${version}\``);
  }
  return path;
}

export interface PackageSpec {
  name: string;
  version: string;
  /** Requires-Dist lines. */
  dependencies?: string[];
  /** The importable module's name (default: name with - replaced by _). */
  module?: string;
}

const moduleOf = (spec: PackageSpec): string => spec.module ?? spec.name.replace(/-/g, '_');

/** A pure-Python source tree with a pyproject.toml (setuptools backend). Returns its directory. */
export async function writePurePackage(parent: string, spec: PackageSpec): Promise<string> {
  const dir = join(parent, `${spec.name}-${spec.version}`);
  const mod = moduleOf(spec);
  await mkdir(join(dir, mod), { recursive: true });
  await writeFile(join(dir, mod, '__init__.py'), `VERSION = ${JSON.stringify(spec.version)}\n`);
  await writeFile(
    join(dir, 'pyproject.toml'),
    [
      '[build-system]',
      'requires = ["setuptools"]',
      'build-backend = "setuptools.build_meta"',
      '',
      '[project]',
      `name = ${JSON.stringify(spec.name)}`,
      `version = ${JSON.stringify(spec.version)}`,
      `dependencies = ${JSON.stringify(spec.dependencies ?? [])}`,
      '',
      '[tool.setuptools]',
      `packages = [${JSON.stringify(mod)}]`,
      '',
    ].join('\n'),
  );
  return dir;
}

/**
 * A package with a C extension `<module>._native` linking zlib (`crc()` returns zlib's crc32 of b"dstack")
 * or libpq (`libpq_version()` returns PQlibVersion()). Needs zlib1g-dev / libpq-dev.
 */
export async function writeCExtPackage(
  parent: string,
  spec: PackageSpec & { library: 'z' | 'pq' },
): Promise<string> {
  const dir = join(parent, `${spec.name}-${spec.version}`);
  const mod = moduleOf(spec);
  await mkdir(join(dir, mod), { recursive: true });
  await writeFile(join(dir, mod, '__init__.py'), `from ._native import *  # noqa\n`);
  const zlib = `#include <Python.h>
#include <zlib.h>
static PyObject *crc(PyObject *self, PyObject *args) {
  return PyLong_FromUnsignedLong(crc32(0L, (const Bytef *)"dstack", 6));
}
static PyMethodDef methods[] = {{"crc", crc, METH_NOARGS, "zlib crc32 of dstack"}, {NULL, NULL, 0, NULL}};
`;
  const pq = `#include <Python.h>
#include <libpq-fe.h>
static PyObject *libpq_version(PyObject *self, PyObject *args) { return PyLong_FromLong(PQlibVersion()); }
static PyMethodDef methods[] = {{"libpq_version", libpq_version, METH_NOARGS, "PQlibVersion"}, {NULL, NULL, 0, NULL}};
`;
  await writeFile(
    join(dir, mod, '_native.c'),
    `${spec.library === 'z' ? zlib : pq}static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&def); }
`,
  );
  const includeDirs = spec.library === 'pq' ? `include_dirs=["/usr/include/postgresql"], ` : '';
  await writeFile(
    join(dir, 'setup.py'),
    `from setuptools import setup, Extension
setup(
    name=${JSON.stringify(spec.name)}, version=${JSON.stringify(spec.version)}, packages=[${JSON.stringify(mod)}],
    install_requires=${JSON.stringify(spec.dependencies ?? [])},
    ext_modules=[Extension(${JSON.stringify(`${mod}._native`)}, [${JSON.stringify(`${mod}/_native.c`)}], ${includeDirs}libraries=[${JSON.stringify(spec.library)}])],
)
`,
  );
  await writeFile(
    join(dir, 'pyproject.toml'),
    '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n',
  );
  return dir;
}

/**
 * An old-style source tree: a setup.py (no pyproject.toml) that imports `buildImport` at build time, as
 * old setup.py files import numpy or Cython (the CEXT case, Decision 6).
 */
export async function writeOldSetupPackage(
  parent: string,
  spec: PackageSpec & { buildImport: string },
): Promise<string> {
  const dir = join(parent, `${spec.name}-${spec.version}`);
  const mod = moduleOf(spec);
  await mkdir(join(dir, mod), { recursive: true });
  await writeFile(join(dir, mod, '__init__.py'), `VERSION = ${JSON.stringify(spec.version)}\n`);
  await writeFile(
    join(dir, 'setup.py'),
    `import ${spec.buildImport}  # needed at build time, like numpy in old setup.py files
from setuptools import setup
setup(name=${JSON.stringify(spec.name)}, version=${JSON.stringify(spec.version)}, packages=[${JSON.stringify(mod)}],
      install_requires=${JSON.stringify(spec.dependencies ?? [])})
`,
  );
  return dir;
}

/** Packs a source tree as an sdist `<name>-<version>.tar.gz` (with PKG-INFO) into `outDir`. */
export async function makeSdist(srcDir: string, outDir: string, spec: PackageSpec): Promise<string> {
  await mkdir(outDir, { recursive: true });
  await writeFile(
    join(srcDir, 'PKG-INFO'),
    `Metadata-Version: 2.1\nName: ${spec.name}\nVersion: ${spec.version}\n` +
      (spec.dependencies ?? []).map((d) => `Requires-Dist: ${d}\n`).join(''),
  );
  const file = join(outDir, `${spec.name.replace(/-/g, '_')}-${spec.version}.tar.gz`);
  await exec('tar', ['-czf', file, '-C', join(srcDir, '..'), basename(srcDir)]);
  return file;
}

/**
 * Builds a wheel of a source tree with real pip, offline: build requirements come from `bootstrap`
 * (see bootstrapWheelhouse). Returns the wheel's path in `outDir`.
 */
export async function buildSourceWheel(
  python: string,
  srcDir: string,
  outDir: string,
  bootstrap: string,
): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const before = new Set(await readdir(outDir));
  await exec(
    python,
    [
      '-m',
      'pip',
      'wheel',
      '--no-deps',
      '--no-index',
      '--find-links',
      bootstrap,
      '--use-pep517',
      '-w',
      outDir,
      srcDir,
    ],
    { env: isolatedPipEnv() },
  );
  const made = (await readdir(outDir)).filter((f) => f.endsWith('.whl') && !before.has(f));
  if (made.length !== 1) throw new Error(`pip wheel ${srcDir} made ${made.length} wheels`);
  return join(outDir, made[0]!);
}

/** Makes `srcDir` a git repository with one commit tagged `tag`; returns `git+file://…@tag#egg=name`. */
export async function makeGitRepo(srcDir: string, tag: string, egg: string): Promise<string> {
  const git = (...args: string[]) =>
    exec('git', ['-C', srcDir, ...args], {
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 'test',
        GIT_AUTHOR_EMAIL: 'test@example.com',
        GIT_COMMITTER_NAME: 'test',
        GIT_COMMITTER_EMAIL: 'test@example.com',
      },
    });
  await git('init', '-q');
  await git('add', '-A');
  await git('commit', '-q', '-m', 'fixture');
  await git('tag', tag);
  return `git+file://${srcDir}@${tag}#egg=${egg}`;
}

const versionDir = (python: string): string => {
  const m = /versions\/(\d+\.\d+)\.\d+\//.exec(python);
  if (!m) throw new Error(`not a pyenv interpreter: ${python}`);
  return m[1]!;
};

/**
 * A folder with the build requirements of setuptools-based packages for `python`: setuptools from the
 * interpreter's own ensurepip bundle (Debian's is patched for /usr/bin/python3) and Debian's wheel
 * (python3-wheel-whl). With it as --find-links, pip's build isolation works offline.
 */
export async function bootstrapWheelhouse(python: string, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const root = python.replace(/\/bin\/python[0-9.]*$/, '');
  const bundled = join(root, 'lib', `python${versionDir(python)}`, 'ensurepip', '_bundled');
  const debian = '/usr/share/python-wheels';
  const setuptools = (await readdir(bundled)).filter(
    (f) => f.startsWith('setuptools-') && f.endsWith('.whl'),
  );
  const wheel = existsSync(debian) ? (await readdir(debian)).filter((f) => f.startsWith('wheel-')) : [];
  if (setuptools.length === 0) throw new Error(`no setuptools wheel in ${bundled}`);
  if (wheel.length === 0) {
    throw new Error(`no wheel-*.whl in ${debian}: install it with \`apt-get install python3-wheel-whl\``);
  }
  const copied: string[] = [];
  for (const f of setuptools) {
    await copyFile(join(bundled, f), join(dir, f));
    copied.push(f);
  }
  for (const f of wheel) {
    await copyFile(join(debian, f), join(dir, f));
    copied.push(f);
  }
  return copied.sort();
}

/**
 * Installs `requirements` with `pip install --no-index --find-links wheelhouse` into a fresh venv under
 * `dir`, then runs `code` with the venv's python; resolves to its stdout (trimmed).
 */
export async function installAndRun(
  python: string,
  dir: string,
  wheelhouse: string,
  requirements: string[],
  code: string,
): Promise<string> {
  const venv = join(dir, `venv-${Math.random().toString(36).slice(2, 8)}`);
  await exec(python, ['-m', 'venv', '--without-pip', venv]);
  const env = isolatedPipEnv();
  await exec(
    python,
    [
      '-m',
      'pip',
      '--python',
      join(venv, 'bin', 'python'),
      'install',
      '-q',
      '--no-index',
      '--find-links',
      wheelhouse,
      ...requirements,
    ],
    { env },
  );
  const { stdout } = await exec(join(venv, 'bin', 'python'), ['-c', code], { env });
  return stdout.trim();
}

// The shared-library check end to end (issue 14): real wheels, the real bookworm base and runtime images on
// the private engine, the factory image's dpkg lists for package names, containers that import the result.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringifyLock } from '@dstack/recipe';
import {
  bootstrapWheelhouse,
  buildSourceWheel,
  compileElf,
  expectValidImage,
  runInContainer,
  sharedBaseImage,
  sharedEngine,
  sharedFactoryImage,
  sharedImage,
  sharedRuntimeImage,
  testPython,
  writeCExtPackage,
  writeWheel,
} from '@dstack/testing';
import { runCli } from '../run-cli.test-support.js';

let dir: string;
/**
 * The image cache is the machine's, not the run's: exporting the factory (1.1 GB) and runtime images from the
 * engine is the slow part, and every cache key is content (diffIDs, sha256), so runs share it safely.
 */
const sharedCache = path.join(process.env.DSTACK_RUN_DIR ?? '/tmp/dstack', 'cache', 'libcheck-image');
let env: NodeJS.ProcessEnv;
const tags: string[] = [];
const sha256 = async (f: string): Promise<string> => createHash('sha256').update(await readFile(f)).digest('hex');

/** A lock for Debian bookworm's python3.11 (3.11.2) naming `wheels` (in dir/wheelhouse). */
async function lockFor(name: string, wheels: string[]): Promise<string> {
  const file = path.join(dir, `${name}.toml`);
  const lock = {
    lockVersion: '1.0' as const,
    createdBy: 'dstack-factory',
    environments: ['implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"'],
    packages: await Promise.all(
      wheels.map(async (w) => {
        const [n, v] = path.basename(w).split('-') as [string, string];
        return { name: n, version: v, wheels: [{ name: path.basename(w), path: `wheelhouse/${path.basename(w)}`, hashes: { sha256: await sha256(w) } }] };
      }),
    ),
  };
  await writeFile(file, stringifyLock(lock));
  return file;
}

let pqWheel: string;
/** The app image built on the runtime image, and its dependency layer's digest. */
let runtimeApp: { tag: string; deps: string } | null = null;
let bundledWheel: string;
let armWheel: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-libcheck-cli-'));
  const engine = await sharedEngine();
  env = { NO_COLOR: '1', PATH: process.env.PATH, DOCKER_HOST: engine.env.DOCKER_HOST, DSTACK_IMAGE_CACHE: sharedCache, HOME: dir };
  const wheelhouse = path.join(dir, 'wheelhouse');
  await mkdir(wheelhouse);
  // A C extension linked to libpq (libpq-dev on this machine, as in the factory image).
  const python = testPython('3.11');
  const boot = path.join(dir, 'boot');
  await bootstrapWheelhouse(python, boot);
  const src = await writeCExtPackage(dir, { name: 'pqext', version: '1.0', library: 'pq' });
  pqWheel = await buildSourceWheel(python, src, wheelhouse, boot);
  // psycopg2-binary's layout: the extension and a bundled copy of libpq in pqbundled.libs/, found by an
  // $ORIGIN RPATH; the bundled libpq needs a bundled libssl stand-in and has no search path of its own.
  const libs = path.join(dir, 'libs');
  await mkdir(libs);
  const ssl = await compileElf({ dir: libs, output: 'libssl-5e6f.so.3', args: ['-Wl,-soname,libssl-5e6f.so.3'] });
  const pq = await compileElf({ dir: libs, output: 'libpq-1a2b.so.5', args: ['-Wl,-soname,libpq-1a2b.so.5', ssl] });
  const ext = await compileElf({
    dir: libs,
    output: '_native.cpython-311-x86_64-linux-gnu.so',
    source: '#include <Python.h>\nint libpq_1a2b_so_5_answer(void);\nstatic PyObject *answer(PyObject *s, PyObject *a) { return PyLong_FromLong(libpq_1a2b_so_5_answer()); }\nstatic PyMethodDef m[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};\nstatic struct PyModuleDef d = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, m};\nPyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&d); }\n',
    args: [`-I${path.join(path.dirname(path.dirname(python)), 'include', 'python3.11')}`, pq, '-Wl,--disable-new-dtags,-rpath,$ORIGIN/../pqbundled.libs'],
  });
  bundledWheel = await writeWheel(wheelhouse, {
    name: 'pqbundled',
    version: '1.0',
    tag: 'cp311-cp311-linux_x86_64',
    files: {
      'pqbundled/__init__.py': 'from ._native import answer\n',
      'pqbundled/_native.cpython-311-x86_64-linux-gnu.so': await readFile(ext),
      'pqbundled.libs/libpq-1a2b.so.5': await readFile(pq),
      'pqbundled.libs/libssl-5e6f.so.3': await readFile(ssl),
    },
  });
  const arm = await compileElf({ dir: libs, output: '_arm.cpython-311-x86_64-linux-gnu.so', cc: 'aarch64-linux-gnu-gcc' });
  armWheel = await writeWheel(wheelhouse, {
    name: 'armext',
    version: '1.0',
    tag: 'cp311-cp311-linux_x86_64',
    files: { 'armext/__init__.py': '', 'armext/_arm.cpython-311-x86_64-linux-gnu.so': await readFile(arm) },
  });
}, 600_000);

afterAll(async () => {
  const { docker } = await sharedEngine();
  for (const tag of tags) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe('image app: the shared-library check', () => {
  it('refuses a C extension linked to libpq on a base without libpq5, naming libpq.so.5 and libpq5 (factory image); writes nothing', async () => {
    const [base, factory] = await Promise.all([sharedBaseImage(), sharedFactoryImage()]);
    const lock = await lockFor('pq', [pqWheel]);
    const args = ['image', 'app', '--base', `docker:${base}`, '--lock', lock, '--wheelhouse', path.join(dir, 'wheelhouse')];
    const refused = await runCli([...args, '--factory-image', factory, '--output', `oci:${path.join(dir, 'never')}:app`], { env, cwd: dir });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `error[IMAGE_LIBRARY_MISSING]: docker:${base} would not load what the wheels install (1 problem):\n` +
        `  pqext-1.0-cp311-cp311-linux_x86_64.whl\n` +
        `    pqext/_native.cpython-311-x86_64-linux-gnu.so: libpq.so.5 not found (Debian package libpq5)\n`,
    );
    expect(refused.stderr).toContain(
      `hint: add the package to the runtime image (EXTRA_PACKAGES="libpq5"; packages from the factory image ${factory}), or use wheels that bundle them (auditwheel repair); --no-check-libs skips this check`,
    );
    expect(existsSync(path.join(dir, 'never'))).toBe(false);
    // Skipped on request: the image is written (and would fail at import).
    const skipped = await runCli([...args, '--no-check-libs', '--output', `oci:${path.join(dir, 'unchecked')}:app`], { env, cwd: dir });
    expect([skipped.code, skipped.stderr]).toEqual([0, '']);
    // image check finds the same in the written image, the library named by the host's dpkg or the factory's.
    const checked = await runCli(['image', 'check', `oci:${path.join(dir, 'unchecked')}:app`, '--factory-image', factory], { env, cwd: dir });
    expect(checked.code).toBe(1);
    expect(checked.stderr).toContain(
      `  pqext-1.0\n    /env/lib/python3.11/site-packages/pqext/_native.cpython-311-x86_64-linux-gnu.so: libpq.so.5 not found (Debian package libpq5)\n`,
    );
  }, 900_000);

  it('accepts it on the runtime image (libpq5), where it imports; image check passes on the result', async () => {
    const runtime = await sharedRuntimeImage();
    const lock = await lockFor('pq-ok', [pqWheel, bundledWheel]);
    const tag = `dstack-test/libcheck:${randomBytes(4).toString('hex')}`;
    tags.push(tag);
    const built = await runCli(['image', 'app', '--base', `docker:${runtime}`, '--lock', lock, '--wheelhouse', path.join(dir, 'wheelhouse'), '--output', `docker:${tag}`, '--json'], { env, cwd: dir });
    expect([built.code, built.stderr]).toEqual([0, '']);
    runtimeApp = { tag, deps: (JSON.parse(built.stdout).layers as { role: string; digest: string }[]).find((l) => l.role === 'dependencies')!.digest };
    const r = await runInContainer(tag, ['python', '-c', 'import pqext, pqbundled; print(pqext.libpq_version() > 150000, pqbundled.answer())']);
    expect(r.stdout).toBe('True 42\n');
    const checked = await runCli(['image', 'check', `docker:${tag}`], { env, cwd: dir });
    expect([checked.code, checked.stderr, checked.stdout]).toEqual([0, '', `docker:${tag}: 4 ELF files checked, every library found\n`]);
  }, 900_000);

  it('accepts a wheel that bundles its libraries with an $ORIGIN RPATH on the bare base', async () => {
    const base = await sharedBaseImage();
    const lock = await lockFor('bundled', [bundledWheel]);
    const tag = `dstack-test/libcheck:${randomBytes(4).toString('hex')}`;
    tags.push(tag);
    const built = await runCli(['image', 'app', '--base', `docker:${base}`, '--lock', lock, '--wheelhouse', path.join(dir, 'wheelhouse'), '--output', `docker:${tag}`], { env, cwd: dir });
    expect([built.code, built.stderr]).toEqual([0, '']);
    expect((await runInContainer(tag, ['/env/bin/python', '-c', 'import pqbundled; print(pqbundled.answer())'])).stdout).toBe('42\n');
    // Not exported again (~10 s): image.int.test.ts reads back and checks an `image app --output docker:` on this base.
  }, 900_000);

  it('refuses an aarch64 .so for the amd64 base', async () => {
    const base = await sharedBaseImage();
    const lock = await lockFor('arm', [armWheel]);
    const refused = await runCli(['image', 'app', '--base', `docker:${base}`, '--lock', lock, '--wheelhouse', path.join(dir, 'wheelhouse'), '--output', `oci:${path.join(dir, 'never-arm')}:app`], { env, cwd: dir });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `error[IMAGE_LIBRARY_MISSING]: docker:${base} would not load what the wheels install (1 problem):\n  armext-1.0-cp311-cp311-linux_x86_64.whl\n    armext/_arm.cpython-311-x86_64-linux-gnu.so: built for aarch64 (64-bit), the image is amd64\n`,
    );
    expect(refused.stderr).toContain('hint: build the wheels for amd64; --no-check-libs skips this check');
  }, 600_000);

  it('image rebase onto a rebuilt runtime keeps the dependency layer (same digest) and runs; onto a base without libpq5 the check refuses it', async () => {
    expect(runtimeApp).not.toBeNull();
    const runtime = await sharedRuntimeImage();
    // A patched runtime: the same Debian, Python and glibc, one more layer (as a security rebuild would add).
    const ctxDir = path.join(dir, 'patched');
    await mkdir(ctxDir, { recursive: true });
    await writeFile(path.join(ctxDir, 'Dockerfile'), 'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo patched > /etc/dstack-patched\n');
    const patched = await sharedImage({ repo: 'dstack-test/runtime-patched', context: ctxDir, buildArgs: { BASE_IMAGE: runtime } });
    const tag = `dstack-test/libcheck:${randomBytes(4).toString('hex')}`;
    tags.push(tag);
    const rebased = await runCli(['image', 'rebase', `docker:${runtimeApp!.tag}`, '--base', `docker:${patched}`, '--output', `docker:${tag}`, '--json'], { env, cwd: dir });
    expect([rebased.code, rebased.stderr]).toEqual([0, '']);
    const out = JSON.parse(rebased.stdout) as { layers: { role: string; digest: string; cached: boolean }[]; target: { python: string; libc: string } };
    expect(out.layers.map((l) => [l.role, l.cached])).toEqual([['runtime', false], ['dependencies', true]]);
    // The engine names layers by diffID: the rebased image's dependency layer is the very layer the app had.
    const { docker } = await sharedEngine();
    const before = (await docker.getImage(runtimeApp!.tag).inspect()).RootFS.Layers ?? [];
    const after = (await docker.getImage(tag).inspect()).RootFS.Layers ?? [];
    expect(before.at(-1)).toBe(runtimeApp!.deps);
    expect(after.at(-1)).toBe(runtimeApp!.deps);
    expect(after.slice(0, -2)).toEqual((await docker.getImage(patched).inspect()).RootFS.Layers);
    expect(out.target).toMatchObject({ python: '3.11.2', libc: 'glibc 2.36', architecture: 'x86_64' });
    const r = await runInContainer(tag, ['sh', '-c', 'cat /etc/dstack-patched; python -c "import pqext, pqbundled; print(pqext.libpq_version() > 150000, pqbundled.answer())"; id -u']);
    expect(r.stdout).toBe('patched\nTrue 42\n4801\n');
    // The rebased image read back from the engine and checked (~20 s: the patched runtime's layers come with it).
    await expectValidImage(tag);
    // The bare base has the same target but no libpq5: the check runs again and refuses it.
    const base = await sharedBaseImage();
    const refused = await runCli(['image', 'rebase', `docker:${runtimeApp!.tag}`, '--base', `docker:${base}`, '--output', `oci:${path.join(dir, 'never-rebased')}:x`], { env, cwd: dir });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`    /env/lib/python3.11/site-packages/pqext/_native.cpython-311-x86_64-linux-gnu.so: libpq.so.5 not found (Debian package libpq5)\n`);
    expect(existsSync(path.join(dir, 'never-rebased'))).toBe(false);
  }, 900_000);
});

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlobCache, appendLayers, emptyImage, indexDaemonImage, writeImage, writeLayer } from '@dstack/image';
import { stringifyLock } from '@dstack/recipe';
import { expectValidImage, isolatedPipEnv, runInContainer, sharedBaseImage, sharedEngine, sharedFactoryImage, sharedRegistry, sharedRuntimeImage, writeWheel } from '@dstack/testing';
import { EXIT_USAGE } from '../errors.js';
import { cli, dir, sha256, useImageFixture, validated } from './image.test-support.js';
import { runCli } from '../run-cli.test-support.js';

useImageFixture();

describe('image app with a Docker engine', () => {
  it('--output docker: loads plain layers (their digests are the engine\'s diffIDs); --engine builds the same app through images/app', async () => {
    const { env, docker } = await sharedEngine();
    const runtime = await sharedRuntimeImage();
    const id = randomBytes(4).toString('hex');
    const tags = { daemonless: `dstack-test/cli-app:d-${id}`, engine: `dstack-test/cli-app:e-${id}` };
    const common = ['image', 'app', '--base', `docker:${runtime}`, '--lock', 'pylock.cp311-linux_x86_64.toml', '--source', 'src', '--uid', '1234'];
    try {
      const daemonless = await cli([...common, '--output', `docker:${tags.daemonless}`, '--sbom', 'docker-app.cdx.json', '--json'], { DOCKER_HOST: env.DOCKER_HOST });
      expect(daemonless.stderr).toBe('');
      expect(daemonless.code).toBe(0);
      // A docker: output keeps no SBOM itself: --sbom FILE does, naming the image by the engine's id.
      const result = JSON.parse(daemonless.stdout) as { output: { digest: string }; sbom: { files: string[] } };
      expect(result.sbom.files).toEqual([path.join(dir, 'docker-app.cdx.json')]);
      const sbom = JSON.parse(await readFile(path.join(dir, 'docker-app.cdx.json'), 'utf8')) as { metadata: { component: { version: string } }; components: { name: string }[] };
      expect([sbom.metadata.component.version, sbom.components.map((c) => c.name)]).toEqual([result.output.digest, ['tool']]);
      const digests = (JSON.parse(daemonless.stdout).layers as { digest: string }[]).map((l) => l.digest);
      const inspected = await docker.getImage(tags.daemonless).inspect();
      expect(inspected.RootFS.Layers?.slice(-digests.length)).toEqual(digests);

      const engine = await cli([...common, '--engine', '--output', `docker:${tags.engine}`], { DOCKER_HOST: env.DOCKER_HOST });
      expect(engine.stderr).toBe('');
      expect(engine.code).toBe(0);
      expect(engine.stdout).toContain(tags.engine);
      for (const tag of [tags.daemonless, tags.engine]) {
        const r = await runInContainer(tag, ['sh', '-c', 'id -u; stat -c %u /app/app.py; tool; cat /app/app.py']);
        expect([tag, r.stdout]).toEqual([tag, '1234\n1234\ntool ran\nprint("v1")\n']);
        await expectValidImage(tag);
      }
    } finally {
      for (const tag of [tags.daemonless, tags.engine, `${tags.engine}-deps`]) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  }, 600_000);
});

describe('image app on a runtime that carries its base index', () => {
  it('reads the base from its index: the same layers as on the plain runtime, and the app runs', async () => {
    const { env, docker } = await sharedEngine();
    const runtime = await sharedRuntimeImage();
    const id = randomBytes(4).toString('hex');
    const indexed = `dstack-test/runtime-indexed:${id}`;
    const tags = { plain: `dstack-test/cli-app:p-${id}`, indexed: `dstack-test/cli-app:i-${id}` };
    const engine = { DOCKER_HOST: env.DOCKER_HOST };
    try {
      // One image cache for all three: the export is made once; the two bases have other diffIDs, so neither build
      // finds the other's facts (the plain one's dependencies layer is reused by the second build).
      const cacheDir = path.join(dir, 'cache-base-index');
      await indexDaemonImage(docker, runtime, indexed, { cache: new BlobCache(cacheDir) });
      const runtimeLayers = (await docker.getImage(runtime).inspect()).RootFS.Layers!;
      expect((await docker.getImage(indexed).inspect()).RootFS.Layers!.slice(0, -1)).toEqual(runtimeLayers);
      const common = ['image', 'app', '--lock', 'pylock.cp311-linux_x86_64.toml', '--source', 'src', '--uid', '1234', '--json'];
      const plain = await cli([...common, '--base', `docker:${runtime}`, '--output', `docker:${tags.plain}`], { ...engine, DSTACK_IMAGE_CACHE: cacheDir });
      // The whole CLI (its -v): the debug line says whether the base's index answered.
      const onIndex = await runCli(['-v', '--log-format', 'json', ...common, '--base', `docker:${indexed}`, '--output', `docker:${tags.indexed}`], {
        env: { NO_COLOR: '1', PATH: process.env.PATH, ...engine, DSTACK_IMAGE_CACHE: cacheDir },
        cwd: dir,
      });
      expect([plain.code, plain.stderr]).toEqual([0, '']);
      expect([onIndex.code, onIndex.stderr.split('\n').filter((l) => !l.startsWith('{')).join('\n')]).toEqual([0, '']);
      expect(onIndex.stderr).toMatch(/"used":true,"msg":"base index"/);
      const layersOf = (r: { stdout: string }): { role: string; digest: string }[] => (JSON.parse(r.stdout) as { layers: { role: string; digest: string }[] }).layers.map(({ role, digest }) => ({ role, digest }));
      expect(layersOf(onIndex)).toEqual(layersOf(plain));
      const ran = await runInContainer(tags.indexed, ['sh', '-c', 'id -u; tool; cat /app/app.py']);
      expect(ran.stdout).toBe('1234\ntool ran\nprint("v1")\n');
    } finally {
      for (const tag of [indexed, tags.plain, tags.indexed]) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  }, 600_000);
});

describe('image app --requirements locked through the factory image (Decision 3)', () => {
  it('locks with the factory image\'s interpreter on the engine when it is the base\'s (3.11.2), and refuses one that is not', async () => {
    const { env } = await sharedEngine();
    const factory = await sharedFactoryImage();
    const engineEnv = isolatedPipEnv({ NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'cache'), DOCKER_HOST: env.DOCKER_HOST! });
    await mkdir(path.join(dir, 'engine-recipes'), { recursive: true });
    await writeFile(path.join(dir, 'engine-recipes', 'tools.txt'), '--no-index\ntool\n');
    const args = ['image', 'app', '--requirements', 'engine-recipes/tools.txt', '--factory-image', factory];
    const ok = await cli([...args, '--base', 'oci:base:bookworm', '--output', 'oci:out-engine-lock:app', '--json'], engineEnv);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).layers.map((l: { role: string }) => l.role)).toEqual(['runtime', 'dependencies']);
    await validated(`oci:${dir}/out-engine-lock:app`);
    const lock = await readFile(path.join(dir, 'engine-recipes/locks/tools/pylock.cp3_11_2-manylinux_2_36_x86_64.toml'), 'utf8');
    expect(lock).toContain('python_full_version == \\"3.11.2\\"');
    expect(lock).toContain('tool-1.0-py3-none-any.whl');

    // A base of another full version: the factory image's interpreter does not fit, and nothing is built.
    const cache = new BlobCache(path.join(dir, 'base-cache'));
    const other = await writeLayer(
      [
        { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
        { path: 'var/lib/dpkg/status', type: 'file', data: Buffer.from('Package: python3.11-minimal\nVersion: 3.11.9-1\n\n') },
      ],
      { cache },
    );
    await writeImage(appendLayers(emptyImage(), [{ layer: other }]), { kind: 'oci', dir: path.join(dir, 'base-3.11.9'), ref: 'x' });
    const refused = await cli([...args, '--base', 'oci:base-3.11.9:x', '--output', 'oci:never:app'], engineEnv);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `error[LOCK_NO_INTERPRETER]: the factory image ${factory} has Python 3.11.2, the base's is 3.11.9: its lock would not fit the image`,
    );
    const missing = await cli([...args.slice(0, -1), 'dstack-test/no-such-factory:x', '--base', 'oci:base:bookworm', '--output', 'oci:never:app'], engineEnv);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('error[LOCK_NO_INTERPRETER]: the factory image dstack-test/no-such-factory:x cannot be used:');
    // Without --factory-image it is the fallback: no local 3.11.9 here, then $FACTORY_IMAGE.
    const fallback = await cli(['image', 'app', '--requirements', 'engine-recipes/tools.txt', '--base', 'oci:base-3.11.9:x', '--output', 'oci:never:app'], { ...engineEnv, FACTORY_IMAGE: 'dstack-test/no-such-factory:x' });
    expect(fallback.code).toBe(1);
    expect(fallback.stderr).toContain(
      `error[LOCK_NO_INTERPRETER]: no local interpreter of the base's Python 3.11.9 to lock ${path.join(dir, 'engine-recipes/tools.txt')} with, and the factory image dstack-test/no-such-factory:x cannot be used:`,
    );
  }, 600_000);
});

describe('image runtime|factory on the engine', () => {
  it('builds a Dockerfile through dockerode, and an errorDetail in the stream is a failure', async () => {
    const { env } = await sharedEngine();
    const base = await sharedBaseImage();
    const ctxDir = path.join(dir, 'ctx');
    await mkdir(ctxDir);
    await writeFile(path.join(ctxDir, 'Dockerfile'), `ARG BASE_IMAGE\nFROM \${BASE_IMAGE}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n`);
    await writeFile(path.join(ctxDir, 'hello.txt'), `hello ${randomBytes(4).toString('hex')}\n`);
    const tag = `dstack-test/cli-runtime:${randomBytes(4).toString('hex')}`;
    const ok = await cli(['image', 'runtime', '--context', ctxDir, '--base-image', base, '--tag', tag], { DOCKER_HOST: env.DOCKER_HOST });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^${tag} sha256:[0-9a-f]{64}\\n$`));
    const run = await runInContainer(tag, ['cat', '/hello.txt']);
    expect(run.stdout).toMatch(/^hello [0-9a-f]{8}\n$/);
    // Its last layer is the base index: the facts and file index of the layers below it, named by diffID.
    const { docker: engine } = await sharedEngine();
    const layers = (await engine.getImage(tag).inspect()).RootFS!.Layers!;
    const index = JSON.parse((await runInContainer(tag, ['cat', '/var/lib/dstack-factory/base-index.json'])).stdout) as { kind: string; diffIds: string[]; files: { nodes: Record<string, unknown> } };
    expect(index.kind).toBe('dstack-factory base index');
    expect(index.diffIds).toEqual(layers.slice(0, -1));
    expect(index.files.nodes['hello.txt']).toEqual({ t: 'f' });
    expect(ok.stdout).toBe(`${tag} ${(await engine.getImage(tag).inspect()).Id}\n`);
    // --no-base-index: the Dockerfile's layers only (the engine's build cache has them: the same layers).
    const plain = await cli(['image', 'runtime', '--context', ctxDir, '--base-image', base, '--tag', `${tag}-plain`, '--no-base-index'], { DOCKER_HOST: env.DOCKER_HOST });
    expect(plain.code).toBe(0);
    expect((await engine.getImage(`${tag}-plain`).inspect()).RootFS!.Layers).toEqual(layers.slice(0, -1));
    await engine.getImage(`${tag}-plain`).remove({ force: true });
    // An index that cannot be written (the image cache is a file here) fails the command, saying the image is built.
    const notDir = path.join(dir, 'cache-is-a-file');
    await writeFile(notDir, 'x');
    const failed = await cli(['image', 'runtime', '--context', ctxDir, '--base-image', base, '--tag', `${tag}-noindex`], { DOCKER_HOST: env.DOCKER_HOST, DSTACK_IMAGE_CACHE: notDir });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(new RegExp(`^error\\[IMAGE_BASE_INDEX_FAILED\\]: ${tag.replace(/[.:/]/g, '\\$&')}-noindex is built \\(sha256:[0-9a-f]{64}\\), but writing its base index failed: `));
    expect(failed.stderr).toContain('hint: run it again, or leave the index out with --no-base-index');
    await engine.getImage(`${tag}-noindex`).remove({ force: true });
    await writeFile(path.join(ctxDir, 'Dockerfile'), `ARG BASE_IMAGE\nFROM \${BASE_IMAGE}\nRUN echo failing >&2; exit 3\n`);
    const bad = await cli(['image', 'runtime', '--context', ctxDir, '--base-image', base, '--tag', `${tag}-bad`], { DOCKER_HOST: env.DOCKER_HOST });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`error[IMAGE_BUILD_FAILED]: docker build of ${tag}-bad failed: The command '/bin/sh -c echo failing >&2; exit 3' returned a non-zero code: 3`);
    // Without --tag: the name docker-compose.yml gives (PY_VERSION from the environment names it).
    await writeFile(path.join(ctxDir, 'Dockerfile'), `ARG BASE_IMAGE\nFROM \${BASE_IMAGE}\nCOPY hello.txt /hello.txt\n`);
    const named = await cli(['image', 'runtime', '--context', ctxDir, '--base-image', base], { DOCKER_HOST: env.DOCKER_HOST, PY_VERSION: '9.99' });
    const { docker } = await sharedEngine();
    try {
      expect(named.stdout).toMatch(/^dstack-factory\/runtime:py9\.99 sha256:[0-9a-f]{64}\n$/);
    } finally {
      await docker.getImage('dstack-factory/runtime:py9.99').remove({ force: true }).catch(() => undefined);
    }
    await docker.getImage(tag).remove({ force: true });
  }, 300_000);
});

describe('image factory|runtime take their build arguments as docker-compose does (issue 20 point 5)', () => {
  it('flags over the environment over .env: PY_VERSION is the build argument and the tag, UID, EXTRA_PACKAGES; --push', async () => {
    const { env, docker } = await sharedEngine();
    const registry = await sharedRegistry();
    const base = await sharedBaseImage();
    const work = path.join(dir, 'compose-args');
    const ctxDir = path.join(work, 'ctx');
    await mkdir(ctxDir, { recursive: true });
    await writeFile(
      path.join(ctxDir, 'Dockerfile'),
      'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG PY_VERSION=none\nARG UID=none\nARG EXTRA_PACKAGES=none\nRUN echo "$PY_VERSION|$UID|$EXTRA_PACKAGES" > /args\n',
    );
    // .env beside the command, as docker-compose reads it; the environment beats it, a flag beats both.
    await writeFile(path.join(work, '.env'), `BASE_IMAGE=${base}\nPY_VERSION=9.95\nUID=1111\nEXTRA_PACKAGES=from-dotenv\n`);
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}, which = 'runtime') => cli(['image', which, '--context', ctxDir, ...args], { DOCKER_HOST: env.DOCKER_HOST, ...extra }, work);
    try {
      const r = await run(['--uid', '2222'], { EXTRA_PACKAGES: 'gfortran libhdf5-dev' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^dstack-factory\/runtime:py9\.95 sha256:[0-9a-f]{64}\n$/);
      expect((await runInContainer('dstack-factory/runtime:py9.95', ['cat', '/args'])).stdout).toBe('9.95|2222|gfortran libhdf5-dev\n');
      // The factory takes no UID (docker-compose.yml passes it to the runtime only).
      const f = await run(['--py-version', '9.94', '--tag', 'dstack-test/cli-factory-args:x'], { UID: '3333' }, 'factory');
      expect(f.stderr).toBe('');
      const factoryArgs = await runInContainer('dstack-test/cli-factory-args:x', ['cat', '/args']);
      expect(factoryArgs.stdout).toBe('9.94|none|from-dotenv\n');
      // --push: the tag names the registry; the engine pushes it and the registry serves its manifest.
      const host = new URL(registry.url).host;
      const tag = `${host}/dstack-test/cli-runtime-push:${randomBytes(4).toString('hex')}`;
      const pushed = await run(['--tag', tag, '--push']);
      expect(pushed.stderr).toBe('');
      expect(pushed.code).toBe(0);
      const [repo, ref] = tag.slice(host.length + 1).split(':');
      const manifest = await fetch(`${registry.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
      expect(manifest.status).toBe(200);
      await docker.getImage(tag).remove({ force: true });
      const refused = await run(['--tag', 'dstack-test/cli-runtime-nowhere:x', '--push']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('error[IMAGE_PUSH_FAILED]: docker push dstack-test/cli-runtime-nowhere:x failed: ');
    } finally {
      for (const t of ['dstack-factory/runtime:py9.95', 'dstack-test/cli-factory-args:x', 'dstack-test/cli-runtime-nowhere:x']) await docker.getImage(t).remove({ force: true }).catch(() => undefined);
    }
  }, 300_000);

  it('PY_VERSION=3.12 on a bookworm base (3.11 only): the runtime and factory Dockerfiles refuse it with a message', async () => {
    const { env } = await sharedEngine();
    const base = await sharedBaseImage();
    for (const which of ['runtime', 'factory'] as const) {
      const r = await cli(['image', which, '--base-image', base, '--tag', `dstack-test/cli-${which}-py312:x`], { DOCKER_HOST: env.DOCKER_HOST, PY_VERSION: '3.12' });
      expect(r.code).toBe(1);
      const missing = which === 'runtime' ? 'python3.12 with venv and its apt sources offer no python3.12-venv' : 'python3.12 with its headers and its apt sources offer no python3.12-dev';
      expect(r.stderr).toContain(`PY_VERSION=3.12: the base image has no ${missing}; use a BASE_IMAGE that has Python 3.12 (e.g. python:3.12-slim)`);
      expect(r.stderr).toContain("returned a non-zero code: 3");
    }
  }, 300_000);
});

describe('image runtime --onbuild (Decision 22)', () => {
  it('builds the requirements, source and wheel flavours on the runtime, named after it', async () => {
    const { env, docker } = await sharedEngine();
    const runtime = await sharedRuntimeImage();
    const engine = { DOCKER_HOST: env.DOCKER_HOST };
    const triggers: Record<string, string[]> = {
      requirements: [
        'COPY wheelhouse /wheelhouse',
        'COPY requirements.txt /app/requirements.txt',
        'RUN pip install --pre --no-index --no-cache-dir -f /wheelhouse -r /app/requirements.txt && rm -rf /wheelhouse',
      ],
      source: ['ARG SRC_DIR=.', 'ARG UID=4801'],
      wheel: ['ARG WHEEL_PACKAGE=', 'ARG WHEEL_FILE=', 'COPY ${WHEEL_PACKAGE:-${WHEEL_FILE}} /tmp/dstack-wheel/'],
    };
    // Without --tag, PY_VERSION names the runtime it stands on and the tag (as docker-compose.yml does).
    const names = { requirements: 'dstack-factory/runtime:py9.97-onbuild', source: 'dstack-factory/runtime:py9.97-onbuild-source', wheel: 'dstack-factory/runtime:py9.97-onbuild-wheel' };
    try {
      for (const [flag, flavour] of [['--onbuild', 'requirements'], ['--onbuild=source', 'source'], ['--onbuild=wheel', 'wheel']] as const) {
        const r = await cli(['image', 'runtime', flag, '--base-image', runtime], { ...engine, PY_VERSION: '9.97' });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^${names[flavour]} sha256:[0-9a-f]{64}\\n$`));
        const info = await docker.getImage(names[flavour]).inspect();
        expect(info.Config.OnBuild!.slice(0, triggers[flavour]!.length)).toEqual(triggers[flavour]);
        // The runtime's environment is kept: the venv first on PATH, /app the working folder.
        expect(info.Config.WorkingDir).toBe('/app');
        expect(info.Config.Env).toContain('VIRTUAL_ENV=/env');
      }
    } finally {
      for (const name of Object.values(names)) await docker.getImage(name).remove({ force: true }).catch(() => undefined);
    }
  }, 300_000);

  it('refuses an unknown flavour and a runtime the engine lacks', async () => {
    const { env } = await sharedEngine();
    const bad = await cli(['image', 'runtime', '--onbuild=sources'], { DOCKER_HOST: env.DOCKER_HOST });
    expect(bad.code).toBe(EXIT_USAGE);
    expect(bad.stderr).toBe('error[USAGE]: --onbuild takes requirements, source, wheel (default requirements), not "sources"\n');
    const missing = await cli(['image', 'runtime', '--onbuild'], { DOCKER_HOST: env.DOCKER_HOST, PY_VERSION: '9.96' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      'error[IMAGE_BASE_MISSING]: the onbuild runtime stands on dstack-factory/runtime:py9.96, which is not in the Docker engine\n' +
        'hint: build it first: `dstack-factory image runtime` (or `docker-compose build runtime`), or name another with --base-image\n',
    );
  });
});

describe('image app refuses wheels that do not fit the base, naming both sides (the debootstrapped bookworm base)', () => {
  it('through --lock (manylinux_2_39, musllinux_1_2) and through --requirements (pip finds no distribution)', async () => {
    const engine = await sharedEngine();
    const base = `docker:${await sharedBaseImage()}`;
    const wh = path.join(dir, 'wheelhouse-targets');
    await mkdir(wh, { recursive: true });
    const native = await writeWheel(wh, { name: 'native', version: '1.0', tag: 'cp311-cp311-manylinux_2_39_x86_64' });
    const musl = await writeWheel(wh, { name: 'muslonly', version: '1.0', tag: 'cp311-cp311-musllinux_1_2_x86_64' });
    const env = isolatedPipEnv({ NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'cache'), DOCKER_HOST: engine.env.DOCKER_HOST! });
    const lockOf = async (file: string): Promise<string> => {
      const name = path.basename(file);
      const lockFile = path.join(dir, `pylock.${name.split('-')[0]}.toml`);
      await writeFile(
        lockFile,
        stringifyLock({
          lockVersion: '1.0',
          createdBy: 'dstack-factory',
          environments: ['implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"'],
          packages: [{ name: name.split('-')[0]!, version: '1.0', wheels: [{ name, path: `wheelhouse-targets/${name}`, hashes: { sha256: await sha256(file) } }] }],
        }),
      );
      return lockFile;
    };
    const bookworm = 'CPython 3.11.2 on linux x86_64 with glibc 2.36';
    const viaLock = await cli(['image', 'app', '--base', base, '--lock', await lockOf(native), '--wheelhouse', wh, '--output', 'oci:never:app'], env);
    expect(viaLock.code).toBe(1);
    expect(viaLock.stderr).toContain(
      `error[LOCK_NO_WHEEL]: ${path.join(dir, 'pylock.native.toml')}: native 1.0 has no wheel for the base (${bookworm}): ` +
        'native-1.0-cp311-cp311-manylinux_2_39_x86_64.whl: manylinux_2_39 needs glibc ≥ 2.39; the base has glibc 2.36',
    );
    const muslLock = await cli(['image', 'app', '--base', base, '--lock', await lockOf(musl), '--wheelhouse', wh, '--output', 'oci:never:app'], env);
    expect(muslLock.stderr).toContain('muslonly-1.0-cp311-cp311-musllinux_1_2_x86_64.whl: musllinux_1_2 needs musl; the base has glibc 2.36');

    await writeFile(path.join(dir, 'native-reqs.txt'), `--no-index\n--find-links ${wh}\nnative\n`);
    const viaRequirements = await cli(['image', 'app', '--base', base, '--requirements', 'native-reqs.txt', '--wheelhouse', wh, '--output', 'oci:never:app'], env);
    expect(viaRequirements.code).toBe(1);
    expect(viaRequirements.stderr).toContain(
      `error[LOCK_NO_MATCHING_WHEEL]: no distribution of native fits the base (${bookworm}) while locking ${path.join(dir, 'native-reqs.txt')}: ` +
        'native-1.0-cp311-cp311-manylinux_2_39_x86_64.whl: manylinux_2_39 needs glibc ≥ 2.39; the base has glibc 2.36',
    );
  }, 600_000);
});

describe('image app: a venv with pip, as python -m venv makes one', () => {
  it('on the pip-less debootstrapped base pip comes from the base\'s own wheel and `pip check` passes, compiled as pip compiles itself; --no-pip --no-compile leave both out', async () => {
    const { env, docker } = await sharedEngine();
    const base = `docker:${await sharedBaseImage()}`;
    const id = randomBytes(4).toString('hex');
    const tags = { pip: `dstack-test/cli-pip:p-${id}`, none: `dstack-test/cli-pip:n-${id}` };
    const common = ['image', 'app', '--base', base, '--lock', 'pylock.cp311-linux_x86_64.toml', '--uid', '1234'];
    try {
      const withPip = await cli([...common, '--output', `docker:${tags.pip}`, '--json'], { DOCKER_HOST: env.DOCKER_HOST });
      expect(withPip.stderr).toBe('');
      expect(withPip.code).toBe(0);
      const r = await runInContainer(tags.pip, ['sh', '-c', 'id -u; /env/bin/python -m pip check; /env/bin/pip --version | cut -d" " -f1,2,4-; /env/bin/pip list --format=freeze | sort; ls /env/lib/python3.11/site-packages/pip/__pycache__']);
      expect(r.stdout).toMatch(/^1234\nNo broken requirements found\.\npip \d+\.\d+(\.\d+)? \/env\/lib\/python3\.11\/site-packages\/pip \(python 3\.11\)\npip==[\d.]+\ntool==1\.0\n__init__\.cpython-311\.pyc\n__main__\.cpython-311\.pyc\n(__[\w-]+__\.cpython-311\.pyc\n)*$/);
      const noPip = await cli([...common, '--no-pip', '--no-compile', '--output', `docker:${tags.none}`], { DOCKER_HOST: env.DOCKER_HOST });
      expect(noPip.code).toBe(0);
      await expectValidImage(tags.pip);
      await expectValidImage(tags.none);
      const n = await runInContainer(tags.none, ['sh', '-c', '/env/bin/python -m pip --version 2>&1; ls /env/bin | sort | tr "\\n" " "; find /env -name "*.pyc"']);
      expect(n.stdout).toBe('/env/bin/python: No module named pip\npython python3 python3.11 tool ');
    } finally {
      for (const tag of Object.values(tags)) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  }, 600_000);
});

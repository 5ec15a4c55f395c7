import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringifyLock } from '@dstack/recipe';
import { BlobCache, appendLayers, emptyImage, openImage, parseImageSpec, validateImage, writeImage, writeLayer } from '@dstack/image';
import { isolatedPipEnv, runInContainer, sharedBaseImage, sharedEngine, sharedFactoryImage, sharedRuntimeImage, writeWheel } from '@dstack/testing';
import { createContext } from '../context.js';
import { reportError, EXIT_USAGE } from '../errors.js';
import type { Runner } from '../context.js';
import { registerImageCommands } from './image.js';

const exec = promisify(execFile);
let dir: string;

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const ctx = createContext({ stdout, stderr, env: { NO_COLOR: '1', PATH: process.env.PATH, DSTACK_IMAGE_CACHE: path.join(dir, 'cache'), ...env }, cwd: dir }, { quiet: true, logFormat: 'json' });
  let code = 0;
  const run = ((action: (c: typeof ctx, ...a: unknown[]) => Promise<number>) =>
    async (...a: unknown[]) => {
      code = await action(ctx, ...a);
    }) as Runner;
  const program = new Command('dstack-factory').exitOverride().configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s) });
  registerImageCommands(program, run);
  try {
    await program.parseAsync(['node', 'dstack-factory', ...args]);
  } catch (e) {
    code = e instanceof CommanderError ? (e.exitCode === 0 ? 0 : EXIT_USAGE) : reportError(e, stderr);
  }
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Every image the CLI writes here goes through validateImage (digests, sizes, diff_ids, media types, tar paths). */
const validated = async (spec: string): Promise<void> =>
  validateImage(await openImage(parseImageSpec(spec), { cache: new BlobCache(path.join(dir, 'validate-cache')) }));

const sha256 = async (f: string): Promise<string> => createHash('sha256').update(await readFile(f)).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-image-cli-'));
  // A base made in code (Debian-like: python3.11 3.11.2 per dpkg), as an OCI layout.
  const cache = new BlobCache(path.join(dir, 'base-cache'));
  const layer = await writeLayer(
    [
      { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
      { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/bash\n') },
      { path: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\n') },
      { path: 'var/lib/dpkg/status', type: 'file', data: Buffer.from('Package: python3.11-minimal\nVersion: 3.11.2-6+deb12u6\n\n') },
    ],
    { cache },
  );
  await writeImage(appendLayers(emptyImage(), [{ layer }]), { kind: 'oci', dir: path.join(dir, 'base'), ref: 'bookworm' });
  await mkdir(path.join(dir, 'wheelhouse'));
  const tool = await writeWheel(path.join(dir, 'wheelhouse'), {
    name: 'tool',
    version: '1.0',
    files: { 'tool/__init__.py': 'def main():\n    print("tool ran")\n' },
    extraMembers: [{ path: 'tool-1.0.dist-info/entry_points.txt', data: '[console_scripts]\ntool = tool:main\n', listed: true }],
  });
  const lock = {
    lockVersion: '1.0' as const,
    createdBy: 'dstack-factory',
    environments: ['implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "x86_64"'],
    packages: [{ name: 'tool', version: '1.0', wheels: [{ name: path.basename(tool), path: `wheelhouse/${path.basename(tool)}`, hashes: { sha256: await sha256(tool) } }] }],
  };
  await writeFile(path.join(dir, 'pylock.cp311-linux_x86_64.toml'), stringifyLock(lock));
  await mkdir(path.join(dir, 'src'));
  await writeFile(path.join(dir, 'src', 'app.py'), 'print("v1")\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const appArgs = ['image', 'app', '--base', 'oci:base:bookworm', '--lock', 'pylock.cp311-linux_x86_64.toml', '--source', 'src', '--uid', '1234'];

describe('image app', () => {
  it('builds daemonless into an OCI layout; a second run reuses the dependencies layer; same digest', async () => {
    const first = await cli([...appArgs, '--output', 'oci:out:app', '--json']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const r1 = JSON.parse(first.stdout);
    expect(r1.layers.map((l: { role: string; cached: boolean }) => [l.role, l.cached])).toEqual([['runtime', false], ['dependencies', false], ['app', false]]);
    await validated(`oci:${dir}/out:app`);
    const cfg = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${dir}/out:app`])).stdout);
    expect(cfg.config.User).toBe('1234:1234');
    expect(cfg.config.Labels['org.dstack-factory.lock.digest']).toBe(`sha256:${await sha256(path.join(dir, 'pylock.cp311-linux_x86_64.toml'))}`);
    expect(cfg.config.Labels['org.opencontainers.image.base.name']).toBe('oci:base:bookworm');
    const second = await cli([...appArgs, '--output', 'oci:out:app']);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^dependencies +sha256:[0-9a-f]{64} {2}\d+ B {2}\(cached\)$/m);
    expect(second.stdout).toContain(`image ${r1.digest} -> OCI layout ${dir}/out:app  ${r1.digest}`);
  });

  it('writes a docker archive that skopeo reads', async () => {
    const r = await cli([...appArgs, '--output', 'archive:app.tar', '--tag', 'dstack-test/cli:1']);
    expect(r.code).toBe(0);
    await validated(`archive:${dir}/app.tar`);
    const { stdout } = await exec('skopeo', ['inspect', '--config', `docker-archive:${dir}/app.tar`]);
    expect(JSON.parse(stdout).config.WorkingDir).toBe('/app');
  });

  it('--compression none writes plain tar layers (digest = diffID) that skopeo and umoci read', async () => {
    const r = await cli([...appArgs, '--output', 'oci:plain:app', '--compression', 'none']);
    expect(r.code).toBe(0);
    await validated(`oci:${dir}/plain:app`);
    const manifest = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${dir}/plain:app`])).stdout);
    const cfg = JSON.parse((await exec('skopeo', ['inspect', '--config', `oci:${dir}/plain:app`])).stdout);
    const added = manifest.layers.slice(1) as { mediaType: string; digest: string }[];
    expect(added.map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.oci.image.layer.v1.tar'));
    expect(cfg.rootfs.diff_ids.slice(1)).toEqual(added.map((l) => l.digest));
    expect(manifest.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip'); // the base's, as it was
    await exec('umoci', ['unpack', '--image', `${dir}/plain:app`, path.join(dir, 'plain-bundle')]);
    expect(await readFile(path.join(dir, 'plain-bundle/rootfs/app/app.py'), 'utf8')).toBe('print("v1")\n');
  });

  it.each([
    [['--lock', 'l', '--output', 'oci:x', '--compression', 'zstd'], 'error: --compression is gzip or none, not "zstd"'],
    [['--lock', 'l', '--engine', '--output', 'oci:x'], 'error: --engine builds on the engine: --output docker:TAG, not "oci:x"'],
    [['--lock', 'l', '--python', 'p', '--output', 'oci:x'], 'error: --python and --factory-image lock --requirements; a --lock is used as it is'],
    [['--requirements', 'r', '--python', 'p', '--factory-image', 'f', '--output', 'oci:x'], 'error: give at most one of --python PATH or --factory-image REF'],
    [['--output', 'oci:x'], 'error: give exactly one of --requirements FILE or --lock FILE'],
    [['--lock', 'l', '--requirements', 'r', '--output', 'oci:x'], 'error: give exactly one of --requirements FILE or --lock FILE'],
    [['--lock', 'l', '--source', 's', '--wheel', 'w', '--output', 'oci:x'], 'error: give at most one of --source DIR or --wheel FILE'],
  ])('refuses %j', async (args, message) => {
    const r = await cli(['image', 'app', '--base', 'oci:base', ...args]);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.stderr).toContain(message.replace('error: ', ''));
  });

  it('refuses --python of another version than the base\'s before building anything', async () => {
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'app-reqs.txt', '--python', '/root/.pyenv/versions/3.11.7/bin/python', '--output', 'oci:never:app']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error[LOCK_NO_INTERPRETER]: --python /root/.pyenv/versions/3.11.7/bin/python is Python 3.11.7, the base's is 3.11.2: its lock would not fit the image");
    const missing = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'app-reqs.txt', '--python', 'no-such-python', '--output', 'oci:never:app']);
    expect(missing.stderr).toContain(`error[LOCK_NO_INTERPRETER]: --python ${dir}/no-such-python does not run`);
  });

  it('refuses a lock made for another interpreter with a clear message', async () => {
    const text = (await readFile(path.join(dir, 'pylock.cp311-linux_x86_64.toml'), 'utf8')).replace('3.11.2', '3.11.7');
    await writeFile(path.join(dir, 'other.toml'), text);
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--lock', 'other.toml', '--output', 'oci:x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error[LOCK_ENVIRONMENT_MISMATCH]: ${dir}/other.toml was made for`);
    expect(r.stderr).toContain("not for the base's Python 3.11.2 (/usr/bin/python3.11)");
  });

  it('locks --requirements first with a local interpreter of the base\'s full version (Debian 3.11.2 here)', async () => {
    await writeFile(path.join(dir, 'app-reqs.txt'), `--no-index\n--find-links ${path.join(dir, 'wheelhouse')}\ntool\n`);
    const r = await cli(['image', 'app', '--base', 'oci:base:bookworm', '--requirements', 'app-reqs.txt', '--output', 'oci:out-req:app', '--json'], isolatedPipEnv({ NO_COLOR: '1', DSTACK_IMAGE_CACHE: path.join(dir, 'cache') }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).layers.map((l: { role: string }) => l.role)).toEqual(['runtime', 'dependencies']);
    await validated(`oci:${dir}/out-req:app`);
  });
});

describe('image prune', () => {
  it('removes what no build used within --older-than, says how much, and refuses a bad age', async () => {
    const cacheDir = path.join(dir, 'prune-cache');
    const env = { DSTACK_IMAGE_CACHE: cacheDir };
    expect((await cli([...appArgs, '--output', 'oci:out-prune:app'], env)).code).toBe(0);
    const kept = await cli(['image', 'prune'], env);
    expect(kept.code).toBe(0);
    expect(kept.stdout).toMatch(new RegExp(`^${cacheDir}: removed 0 blobs \\(0\\.0 MB\\) and 0 records; kept [1-9]\\d* blobs \\(\\d+\\.\\d MB\\)\\n$`));
    await new Promise((r) => setTimeout(r, 1100));
    const all = await cli(['image', 'prune', '--older-than', '1s', '--json'], env);
    expect(all.code).toBe(0);
    const r = JSON.parse(all.stdout);
    expect(r).toMatchObject({ cache: cacheDir, keptBlobs: 0, keptBytes: 0 });
    expect(r.blobs).toBeGreaterThan(0);
    expect(r.records).toBeGreaterThan(0);
    // The OCI layout written from the cache keeps its (hard-linked) blobs.
    const manifest = JSON.parse((await exec('skopeo', ['inspect', '--raw', `oci:${dir}/out-prune:app`])).stdout) as { layers: { digest: string; size: number }[] };
    for (const l of manifest.layers) {
      expect((await stat(path.join(dir, 'out-prune/blobs/sha256', l.digest.slice(7)))).size).toBe(l.size);
    }
    const bad = await cli(['image', 'prune', '--older-than', 'soon'], env);
    expect(bad.code).toBe(EXIT_USAGE);
    expect(bad.stderr).toContain('--older-than takes a number of days or NUMBER[d|h|m|s], not "soon"');
  });
});

describe('image app with a Docker engine', () => {
  it('--output docker: loads plain layers (their digests are the engine\'s diffIDs); --engine builds the same app through images/app', async () => {
    const { env, docker } = await sharedEngine();
    const runtime = await sharedRuntimeImage();
    const id = randomBytes(4).toString('hex');
    const tags = { daemonless: `dstack-test/cli-app:d-${id}`, engine: `dstack-test/cli-app:e-${id}` };
    const common = ['image', 'app', '--base', `docker:${runtime}`, '--lock', 'pylock.cp311-linux_x86_64.toml', '--source', 'src', '--uid', '1234'];
    try {
      const daemonless = await cli([...common, '--output', `docker:${tags.daemonless}`, '--json'], { DOCKER_HOST: env.DOCKER_HOST });
      expect(daemonless.stderr).toBe('');
      expect(daemonless.code).toBe(0);
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
      }
    } finally {
      for (const tag of [tags.daemonless, tags.engine, `${tags.engine}-deps`]) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
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
    const lock = await readFile(path.join(dir, 'engine-recipes/locks/tools/pylock.cp311-linux_x86_64.toml'), 'utf8');
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

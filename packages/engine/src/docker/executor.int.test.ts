// The docker executor on the private engine, in the factory image built from the debootstrapped base:
// real pip in the container, offline; inputs in and wheels out through archives; labelled containers that
// are always removed; a missing engine, a missing image, an engine lost mid-build and an errorDetail in a
// build stream each give a clear error.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootstrapWheelhouse,
  buildSourceWheel,
  dockerFor,
  expectValidImage,
  isolatedPipEnv,
  makeGitRepo,
  makeSdist,
  runInContainer,
  sharedBaseImage,
  sharedEngine,
  sharedRuntimeImage,
  testPython,
  writeCExtPackage,
  writeOldSetupPackage,
  writePurePackage,
  type SharedEngine,
} from '@dstack/testing';
import type { BuildEvent, BuildJob, BuildResult } from '../executor.js';
import { CONTAINER_LABEL, DockerExecutor, JOB_LABEL } from './executor.js';
import { CONTENT_LABEL, buildImage, ensureFactoryImage } from './image.js';

const python = testPython('3.11');
let engine: SharedEngine;
let factory: string;
let root: string;
let wheelhouse: string;
let result: BuildResult;
const events: BuildEvent[] = [];
let executor: DockerExecutor;

function job(id: string, recipePath: string, outputDir: string): BuildJob {
  return {
    id,
    recipePath,
    fromWheel: null,
    wheelhouse,
    outputDir,
    python: '3.11',
    jobs: 2,
    prebuild: [],
    rebuild: [],
    buildLockDir: null,
    env: isolatedPipEnv(),
  };
}

async function containersOf(jobId: string): Promise<string[]> {
  const list = await engine.docker.listContainers({
    all: true,
    filters: { label: [`${CONTAINER_LABEL}=docker`, `${JOB_LABEL}=${jobId}`] },
  });
  return list.map((c) => c.Id);
}

beforeAll(async () => {
  engine = await sharedEngine();
  factory = await ensureFactoryImage({ docker: engine.docker, baseImage: await sharedBaseImage() });
  executor = new DockerExecutor({ image: factory, docker: engine.docker, dockerHost: engine.dockerHost });
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-docker-'));
  wheelhouse = path.join(root, 'wheelhouse');
  await bootstrapWheelhouse(python, wheelhouse);
  const src = path.join(root, 'src');
  const findLinks = path.join(root, 'find-links');
  // C is already a wheel in the wheelhouse; B an sdist in --find-links; A a local path; a git repo; two C
  // extensions linking zlib and libpq (the factory image's -dev libraries).
  const c = await writePurePackage(src, { name: 'chain-c', version: '1.0' });
  await buildSourceWheel(python, c, wheelhouse, wheelhouse);
  const bSpec = { name: 'chain-b', version: '2.0', dependencies: ['chain-c>=1'] };
  await makeSdist(await writePurePackage(src, bSpec), findLinks, bSpec);
  const a = await writePurePackage(src, { name: 'chain-a', version: '3.0', dependencies: ['chain-b==2.0'] });
  const git = await makeGitRepo(
    await writePurePackage(src, { name: 'gitpkg', version: '0.5' }),
    'v0.5',
    'gitpkg',
  );
  const zext = await writeCExtPackage(src, { name: 'zext', version: '1.0', library: 'z' });
  const pqext = await writeCExtPackage(src, { name: 'pqext', version: '1.0', library: 'pq' });
  const recipe = path.join(root, 'recipes', 'app.txt');
  await fs.mkdir(path.dirname(recipe), { recursive: true });
  await fs.writeFile(path.join(root, 'recipes', 'base.txt'), `${zext}\n${pqext}\n`);
  await fs.writeFile(recipe, `--no-index\n--find-links ${findLinks}\n-r base.txt\n${a}\n${git}\n`);
  result = await executor.run(job(`docker-ok-${process.pid}`, recipe, path.join(root, 'out')), (e) => {
    events.push(e);
  });
}, 600_000);

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe('DockerExecutor', () => {
  it("builds the closure in the factory container with the image's Python 3.11", () => {
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.interpreter).toMatchObject({ implementation: 'cp', pythonFullVersion: '3.11.2' });
    expect(result.builtBy).toMatchObject({ executor: 'docker', image: factory });
    expect(result.builtBy.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.cached.map((w) => w.filename)).toContain('chain_c-1.0-py3-none-any.whl');
    expect(result.built.map((w) => w.filename).sort()).toEqual([
      'chain_a-3.0-py3-none-any.whl',
      'chain_b-2.0-py3-none-any.whl',
      'gitpkg-0.5-py3-none-any.whl',
      'pqext-1.0-cp311-cp311-linux_x86_64.whl',
      'zext-1.0-cp311-cp311-linux_x86_64.whl',
    ]);
  });

  it('copies every built wheel out of the container into outputDir before reporting it', async () => {
    const out = (await fs.readdir(path.join(root, 'out'))).sort();
    expect(out).toEqual(result.built.map((w) => w.filename).sort());
    const built = events.filter((e): e is Extract<BuildEvent, { type: 'built' }> => e.type === 'built');
    for (const e of built) {
      expect(e.path).toBe(path.join(root, 'out', e.filename));
      expect((await fs.readFile(e.path)).subarray(0, 2).toString()).toBe('PK');
    }
    expect(events[0]).toMatchObject({ type: 'started', executor: 'docker' });
  });

  it("names its target after the image's interpreter, not the host's (Decision 3)", async () => {
    const target = await executor.target();
    expect(target).toMatchObject({
      id: 'cp311-linux_x86_64',
      interpreter: `docker:${factory}`,
      implementation: 'cp',
      pythonVersion: '3.11',
      pythonFullVersion: '3.11.2',
      name: 'cp3_11_2-manylinux_2_36_x86_64',
      abi: 'cp311',
      os: 'linux',
      architecture: 'x86_64',
      libc: { kind: 'glibc', version: '2.36' },
    });
    expect(target.tags[0]).toBe('cp311-cp311-manylinux_2_36_x86_64');
    expect(target.markers).toMatchObject({
      python_full_version: '3.11.2',
      sys_platform: 'linux',
      platform_machine: 'x86_64',
    });
    expect(await containersOf(`interpreter-${process.pid}`)).toEqual([]);
  });

  it('removed its labelled container', async () => {
    expect(await containersOf(`docker-ok-${process.pid}`)).toEqual([]);
    expect(executor.runs).toBe(1);
  });

  it('makes wheels that import in a container of the runtime image (same base)', async () => {
    const runtime = await sharedRuntimeImage();
    const dir = path.join(root, 'install');
    await fs.mkdir(dir);
    for (const f of await fs.readdir(path.join(root, 'out')))
      await fs.copyFile(path.join(root, 'out', f), path.join(dir, f));
    for (const f of await fs.readdir(wheelhouse))
      if (f.startsWith('chain_c')) await fs.copyFile(path.join(wheelhouse, f), path.join(dir, f));
    const run = await runInContainer(
      runtime,
      [
        'sh',
        '-c',
        'pip install -q --no-index --find-links /in chain-a gitpkg zext pqext && python -c "import chain_a, chain_b, chain_c, gitpkg, zext, pqext, zlib; print(zext.crc() == zlib.crc32(b\'dstack\'), pqext.libpq_version() >= 150000)"',
      ],
      { input: { dir, path: '/in' } },
    );
    expect(run).toMatchObject({ exitCode: 0, stdout: 'True True\n', stderr: '' });
  });

  it('reports a failing package with its log, keeps going, and still removes the container', async () => {
    const src = path.join(root, 'src2');
    const broken = await writeOldSetupPackage(src, {
      name: 'broken',
      version: '1.0',
      buildImport: 'no_such_module_xyz',
    });
    const recipe = path.join(root, 'broken.txt');
    await fs.writeFile(recipe, `--no-index\n${broken}\n`);
    const failed = await executor.run(
      job(`docker-broken-${process.pid}`, recipe, path.join(root, 'out-broken')),
      () => undefined,
    );
    expect(failed.ok).toBe(false);
    expect(failed.failures.length).toBeGreaterThan(0);
    expect(failed.failures.map((f) => f.logTail.join('\n')).join('\n')).toContain('no_such_module_xyz');
    expect(await fs.readdir(path.join(root, 'out-broken'))).toEqual([]);
    expect(await containersOf(`docker-broken-${process.pid}`)).toEqual([]);
  });
});

describe('DockerExecutor errors', () => {
  it('says clearly that no engine answers', async () => {
    const gone = new DockerExecutor({
      image: factory,
      docker: dockerFor('unix:///tmp/dstack-no-engine.sock'),
      dockerHost: 'unix:///tmp/dstack-no-engine.sock',
    });
    await expect(
      gone.run(job('x', path.join(root, 'broken.txt'), path.join(root, 'o1')), () => undefined),
    ).rejects.toMatchObject({
      code: 'DOCKER_UNAVAILABLE',
      message: expect.stringMatching(
        /^no Docker engine answers at unix:\/\/\/tmp\/dstack-no-engine\.sock: .*ENOENT/,
      ),
    });
  });

  it("refuses a job for another Python than the image's", async () => {
    await expect(
      executor.run(
        { ...job('x', path.join(root, 'broken.txt'), path.join(root, 'o3')), python: '3.12' },
        () => undefined,
      ),
    ).rejects.toMatchObject({
      code: 'PYTHON_MISMATCH',
      message: `the factory image ${factory} has Python 3.11, the build asks for 3.12`,
    });
  });

  it('names a factory image the engine does not have', async () => {
    const missing = new DockerExecutor({
      image: 'dstack-factory/factory:no-such-tag',
      docker: engine.docker,
      dockerHost: engine.dockerHost,
    });
    await expect(
      missing.run(job('x', path.join(root, 'broken.txt'), path.join(root, 'o2')), () => undefined),
    ).rejects.toMatchObject({
      code: 'IMAGE_NOT_FOUND',
      message: `the factory image dstack-factory/factory:no-such-tag is not in the engine at ${engine.dockerHost}`,
      hint: 'build it with `dstack-factory image factory`',
    });
  });

  it('fails clearly when the engine goes away mid-build', async () => {
    // The engine is shared, so its loss is injected: a proxy in front of its socket is cut once the build runs.
    const socket = path.join(root, 'proxy.sock');
    const target = engine.dockerHost.replace('unix://', '');
    const conns = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const upstream = net.connect(target);
      conns.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    await new Promise<void>((resolve) => proxy.listen(socket, resolve));
    const src = path.join(root, 'src3');
    const slow = await writePurePackage(src, { name: 'slowpkg', version: '1.0' });
    await fs.writeFile(
      path.join(slow, 'setup.py'),
      'import time\ntime.sleep(60)\nfrom setuptools import setup\nsetup()\n',
    );
    const recipe = path.join(root, 'slow.txt');
    await fs.writeFile(recipe, `--no-index\n--find-links ${wheelhouse}\n${slow}\n`);
    const viaProxy = new DockerExecutor({
      image: factory,
      docker: dockerFor(`unix://${socket}`),
      dockerHost: `unix://${socket}`,
    });
    let cutAt = 0;
    try {
      await expect(
        viaProxy.run(job(`docker-lost-${process.pid}`, recipe, path.join(root, 'out-lost')), (e) => {
          if (e.type === 'started') {
            cutAt = Date.now();
            proxy.close();
            for (const c of conns) c.destroy();
          }
        }),
      ).rejects.toMatchObject({
        code: 'DOCKER_UNAVAILABLE',
        message: expect.stringMatching(
          new RegExp(
            `^the Docker engine at unix://${socket.replace(/[.]/g, '\\.')} stopped answering during build docker-lost-${process.pid}`,
          ),
        ),
      });
      // The watchdog notices within a few pings (every 2 s), not after the build's own 60 s.
      expect(Date.now() - cutAt).toBeLessThan(20_000);
    } finally {
      proxy.close();
      // The real engine still runs the orphaned container: remove it by its label.
      for (const id of await containersOf(`docker-lost-${process.pid}`))
        await engine.docker.getContainer(id).remove({ force: true });
    }
  });
});

describe('buildImage', () => {
  it('treats an errorDetail inside the 200 build stream as a failure', async () => {
    const context = path.join(root, 'bad-image');
    await fs.mkdir(context);
    await fs.writeFile(
      path.join(context, 'Dockerfile'),
      'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about to fail && exit 3\n',
    );
    await expect(
      buildImage({
        docker: engine.docker,
        context,
        repository: 'dstack-test/bad',
        buildArgs: { BASE_IMAGE: await sharedBaseImage() },
      }),
    ).rejects.toMatchObject({
      code: 'IMAGE_BUILD_FAILED',
      message: expect.stringContaining(
        "The command '/bin/sh -c echo about to fail && exit 3' returned a non-zero code: 3",
      ),
      hint: expect.stringContaining('about to fail'),
    });
  });

  it('reuses an image of the same content without building, and rebuilds when a file changes', async () => {
    const context = path.join(root, 'small-image');
    await fs.mkdir(context);
    await fs.writeFile(
      path.join(context, 'Dockerfile'),
      'ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY hello.txt /hello.txt\n',
    );
    await fs.writeFile(path.join(context, 'hello.txt'), `one ${process.pid}\n`);
    const build = async () => {
      let lines = 0;
      const tag = await buildImage({
        docker: engine.docker,
        context,
        repository: 'dstack-test/small',
        buildArgs: { BASE_IMAGE: await sharedBaseImage() },
        onLine: () => void lines++,
      });
      return { tag, lines };
    };
    const tags: string[] = [];
    try {
      const first = await build();
      tags.push(first.tag);
      expect(first.tag).toMatch(/^dstack-test\/small:c-[0-9a-f]{16}$/);
      expect(first.lines).toBeGreaterThan(0);
      expect(await build()).toEqual({ tag: first.tag, lines: 0 });
      const labels = (await engine.docker.getImage(first.tag).inspect()).Config.Labels ?? {};
      expect(labels[CONTENT_LABEL]).toMatch(/^[0-9a-f]{64}$/);
      expect(labels[CONTENT_LABEL]!.slice(0, 16)).toBe(first.tag.split(':c-')[1]);
      // The image built, read back from the engine and checked by validateImage (one export, on the base: ~8 s).
      await expectValidImage(first.tag);
      await fs.writeFile(path.join(context, 'hello.txt'), `two ${process.pid}\n`);
      const changed = await build();
      tags.push(changed.tag);
      expect(changed.tag).not.toBe(first.tag);
      expect(changed.lines).toBeGreaterThan(0);
    } finally {
      for (const tag of tags)
        await engine.docker
          .getImage(tag)
          .remove({ force: true })
          .catch(() => undefined);
    }
  }, 120_000);
});

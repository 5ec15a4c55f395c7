// `npm run bench regcache` (issue 22): a cold CI runner building the app image of the 25-wheel closure (the same
// real wheels as `bench cli` and `bench image`) after one source change, and pushing it to the registry — whole
// processes timed by hyperfine, side by side in one run (Decision 23):
//  (a)  dstack-factory, empty HOME and cache, with the warm registry layer cache (--cache-from and --cache-to);
//  (a') the same from nothing: a checkout of the lock and the source, no wheelhouse at all;
//  (b)  dstack-factory, empty HOME and cache, no registry cache (every wheel installed, compressed, pushed);
//  (c)  the docker path on a cold engine, as a CI runner has one: a throwaway dockerd (tools/bench/cold-dockerd.sh)
//       wiped and restarted before each run (untimed), then `docker pull` of the previous image (the base's layers
//       included), `docker build --cache-from` it, `docker push`;
//  (c') the same on the shared engine, which keeps the base between runs (only prev/next are removed): a head start.
// Goal: (a) >= 5x faster than (c), and under 2 s. Each run changes one source file first.
// The CLI is the built one (bin/ + dist/: run `npm run build` first).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isolatedPipEnv, registryPort, sharedEngine, sharedRuntimeImage } from '@dstack/testing';
import type { Scenario } from '../lib.js';
import { APP_REQUIREMENTS, appWheels, hyperfine, writeDockerContext, type Figure } from './cli.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../apps/cli/bin/dstack-factory.cjs', import.meta.url));
const COLD_DOCKERD = fileURLToPath(new URL('../cold-dockerd.sh', import.meta.url));
const q = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
const cmd = (...a: string[]): string => a.map(q).join(' ');
const s = (f: Figure): string => `${(f.median * 1000).toFixed(0)} ms`;

const scenario: Scenario = {
  name: 'regcache',
  description: 'a cold CI runner: the app image (25 wheels) after a source change, pushed — registry layer cache (with and without a wheelhouse) vs none vs docker pull/build --cache-from/push on a cold and on the shared engine (issue 22)',
  async run() {
    if (!existsSync(BIN.replace(/bin\/dstack-factory\.cjs$/, 'dist/main.cjs'))) throw new Error('build the CLI first: npm run build');
    const root = await mkdtemp(join(tmpdir(), 'bench-regcache-'));
    const { env: engineEnv } = await sharedEngine();
    const dockerHost = engineEnv.DOCKER_HOST!;
    const registry = `127.0.0.1:${registryPort}`;
    const tag = `${process.pid}`;
    const repo = (name: string): string => `${registry}/dstack-bench/regcache-${name}`;
    const dockerEnv = { ...process.env, DOCKER_HOST: dockerHost, DOCKER_BUILDKIT: '0' };
    try {
      const runtime = await sharedRuntimeImage();
      const wheelsDir = await appWheels();
      const nWheels = (await readdir(wheelsDir)).filter((f) => f.endsWith('.whl')).length;
      const wheelhouse = join(root, 'wheelhouse');
      await cp(wheelsDir, wheelhouse, { recursive: true });
      await writeFile(join(root, 'app.txt'), APP_REQUIREMENTS.join('\n') + '\n');
      const src = join(root, 'src');
      await mkdir(join(src, 'app'), { recursive: true });
      for (let i = 0; i < 20; i++) await writeFile(join(src, 'app', `m${i}.py`), `VALUE = ${i}\n`);
      // The base in the registry, as a CI runner finds it.
      const baseRef = `${repo('base')}:${tag}`;
      await run('skopeo', ['copy', '-q', '--src-daemon-host', dockerHost, '--dest-tls-verify=false', `docker-daemon:${runtime}`, `docker://${baseRef}`]);
      // The warm machine: locks with the base's interpreter, builds, pushes, writes the registry cache.
      const cacheRef = `${repo('app')}:cache-${tag}`;
      const warmEnv = isolatedPipEnv({ HOME: join(root, 'warm-home'), XDG_CACHE_HOME: join(root, 'warm-home', '.cache'), DOCKER_HOST: dockerHost, NO_COLOR: '1' });
      const warm = await run('node', [BIN, 'image', 'app', '--base', `registry:${baseRef}`, '--requirements', 'app.txt', '--wheelhouse', wheelhouse, '--source', src, '--output', `registry:${repo('app')}:prev-${tag}`, '--cache-to', `registry:${cacheRef}`, '--json'], { env: warmEnv, cwd: root, maxBuffer: 64 << 20 }).catch((e: { stderr: string }) => {
        throw new Error(`the warm build failed:\n${e.stderr}`);
      });
      const warmDigest = (JSON.parse(warm.stdout) as { digest: string }).digest;
      const lock = join(root, 'locks', 'app', (await readdir(join(root, 'locks', 'app')))[0]!);

      // The cold runner: a fresh HOME and cache each run (the lock and the wheelhouse are in its checkout).
      const cold = join(root, 'cold');
      const touch = (dir: string): string => `rm -rf ${q(cold)} && mkdir -p ${q(cold)} && date +%s%N > ${q(join(dir, 'app', 'changed.py'))}`;
      const coldEnv = isolatedPipEnv({ HOME: cold, XDG_CACHE_HOME: join(cold, '.cache'), NO_COLOR: '1' });
      // (a'): the lock copied into a checkout that has no wheelhouse (its paths relative to the lock lead nowhere).
      const bare = join(root, 'checkout');
      const bareLock = join(bare, 'locks', 'app', basename(lock));
      await mkdir(dirname(bareLock), { recursive: true });
      await cp(lock, bareLock);
      const ours = (extra: string[], out: string, from: { lock: string; wheelhouse: string } = { lock, wheelhouse }): string =>
        cmd('node', BIN, 'image', 'app', '--base', `registry:${baseRef}`, '--lock', from.lock, '--wheelhouse', from.wheelhouse, '--source', src, '--output', `registry:${repo(out)}:${tag}`, ...extra);
      const cached = ['--cache-from', `registry:${cacheRef}`, '--cache-to', `registry:${cacheRef}`];
      const nothing = { lock: bareLock, wheelhouse: join(bare, 'wheelhouse') };
      // Once, untimed: from nothing, before any source change, the warm machine's digest.
      const check = await run('sh', ['-c', `${cmd('rm', '-rf', cold)} && ${ours([...cached, '--json'], 'app-nothing', nothing)}`], { env: coldEnv, cwd: root, maxBuffer: 64 << 20 }).catch((e: { stderr: string }) => {
        throw new Error(`the runner from nothing failed:\n${e.stderr}`);
      });
      const nothingDigest = (JSON.parse(check.stdout) as { digest: string }).digest;
      if (nothingDigest !== warmDigest) throw new Error(`the runner from nothing got ${nothingDigest}, the warm machine ${warmDigest}`);
      const [withCache, fromNothing, withoutCache] = await hyperfine(
        [ours(cached, 'app-cold'), ours(cached, 'app-nothing', nothing), ours([], 'app-nocache')],
        { runs: 5, warmup: 1, prepare: touch(src), env: coldEnv, cwd: root },
      );

      // The docker path: the previous image built (FROM the base in the registry, as a runner finds it) and pushed
      // once; then per run pull, build --cache-from, push (classic builder: Docker 20.10 here; --network host, as
      // the cold engine has no bridge).
      const ctx = join(root, 'ctx');
      await mkdir(join(ctx, 'src'), { recursive: true });
      await writeDockerContext(ctx, wheelsDir, baseRef);
      await cp(src, join(ctx, 'src'), { recursive: true });
      const prev = `${repo('docker')}:prev-${tag}`;
      const next = `${repo('docker')}:next-${tag}`;
      await run('docker', ['build', '-q', '--network', 'host', '-t', prev, ctx], { env: dockerEnv, maxBuffer: 16 << 20 });
      await run('docker', ['push', '-q', prev], { env: dockerEnv, maxBuffer: 16 << 20 }).catch(() => run('docker', ['push', prev], { env: dockerEnv, maxBuffer: 16 << 20 }));
      const dockerPath = `docker pull -q ${q(prev)} >/dev/null && docker build -q --network host --cache-from ${q(prev)} -t ${q(next)} ${q(ctx)} >/dev/null && docker push ${q(next)} >/dev/null`;
      // (c) a cold engine per run, with the shared engine's storage driver (overlay2 here).
      const { stdout: driver } = await run('docker', ['info', '--format', '{{.Driver}}'], { env: dockerEnv });
      const engineDir = join(root, 'engine');
      await mkdir(engineDir);
      const coldDockerEnv = { ...process.env, DOCKER_HOST: `unix://${join(engineDir, 'docker.sock')}`, DOCKER_BUILDKIT: '0' };
      let coldDocker: Figure;
      try {
        [coldDocker] = (await hyperfine([dockerPath], {
          runs: 3,
          warmup: 1,
          prepare: `${cmd(COLD_DOCKERD, 'restart', engineDir, driver.trim())} && ${touch(join(ctx, 'src'))}`,
          env: coldDockerEnv,
          shell: true,
        })) as [Figure];
        // The last run's image is the previous one rebuilt from its cache: every layer the same but the source's
        // (a pip install run again would write other bytes).
        const layers = async (ref: string): Promise<string[]> =>
          JSON.parse((await run('docker', ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref], { env: coldDockerEnv })).stdout) as string[];
        const [was, now] = [await layers(prev), await layers(next)];
        if (was.length !== now.length || was.slice(0, -1).some((l, i) => now[i] !== l)) {
          throw new Error(`docker build --cache-from on the cold engine did not reuse the previous image's layers: ${was.join(' ')} vs ${now.join(' ')}`);
        }
      } finally {
        await run(COLD_DOCKERD, ['stop', engineDir]).catch((e: { stderr: string }) => console.error(`stopping the throwaway dockerd: ${e.stderr}`));
      }
      // (c') the shared engine: per run its local prev/next removed, the base kept.
      const dockerPrepare = `docker rmi -f ${q(prev)} ${q(next)} >/dev/null 2>&1; ${touch(join(ctx, 'src'))}`;
      const [sharedDocker] = await hyperfine([dockerPath], { runs: 3, warmup: 1, prepare: dockerPrepare, env: dockerEnv, shell: true });
      await run('docker', ['rmi', '-f', prev, next, baseRef], { env: dockerEnv }).catch(() => undefined);

      const { stdout: load } = await run('uptime');
      const x = (f: Figure): string => (f.median / withCache!.median).toFixed(1);
      return [
        `load: ${load.trim()}`,
        `app: ${nWheels} real wheels, 21 source files (one changed per run), base ${runtime} from the registry; each run a fresh HOME and cache, output registry:`,
        `(a)  cold runner, warm registry cache (--cache-from + --cache-to): ${s(withCache!)} (goal < 2 s)`,
        `(a') the same from nothing (no wheelhouse; the warm machine's digest, checked once): ${s(fromNothing!)}`,
        `(b)  cold runner, no registry cache: ${s(withoutCache!)} -> (a) is ${x(withoutCache!)}x faster`,
        `(c)  docker pull + docker build --cache-from + docker push, cold engine (a throwaway dockerd, ${driver.trim()}, wiped before each run): ${s(coldDocker!)} -> (a) is ${x(coldDocker!)}x faster (goal >= 5x)`,
        `(c') the same on the shared engine, which keeps the base between runs: ${s(sharedDocker!)} -> (a) is ${x(sharedDocker!)}x faster`,
      ];
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  },
};
export default scenario;

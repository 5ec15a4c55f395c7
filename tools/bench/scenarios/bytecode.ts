// Issue 13 point 7: bytecode at assembly. On the runtime image, the bench wheel set of the image scenario (real
// wheels from this machine's mirror: django, flask, requests, sqlalchemy and their closure):
//  (a) what compiling adds to a daemonless build: cold (every wheel compiled), and after one dependency changed
//      (its segment only), against the same builds with compile: false;
//  (b) the start of a worker, as the image's user: a new process importing django.db.models, sqlalchemy,
//      requests, flask, in the daemonless image with .pyc, without (--no-compile), and in a `docker build` image
//      of the same wheels (pip install, timestamp .pyc). Wall time and CPU time (user + sys of the children: it
//      holds still on a loaded machine) per start, median of 15, measured inside one container per image.
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BlobCache, buildAppImage, buildDockerfile, inspectBase, openImage, writeImage, type Image } from '@dstack/image';
import { runInContainer, sharedEngine, sharedRuntimeImage, writeWheel } from '@dstack/testing';
import { ms, time, type Scenario } from '../lib.js';

const run = promisify(execFile);
const WHEELS_DIR = join(tmpdir(), 'dstack-bench-image', 'wheels'); // the image scenario's (it downloads them)
const IMPORTS = 'import django.db.models, sqlalchemy, requests, flask';
const STARTS = 15;
const DRIVER = [
  'import resource, statistics, subprocess, sys, time',
  'walls = []',
  `for _ in range(${STARTS}):`,
  '    t = time.perf_counter()',
  `    subprocess.run([sys.executable, '-c', ${JSON.stringify(IMPORTS)}], check=True)`,
  '    walls.append(time.perf_counter() - t)',
  'r = resource.getrusage(resource.RUSAGE_CHILDREN)',
  `print(statistics.median(walls), min(walls), (r.ru_utime + r.ru_stime) / ${STARTS})`,
].join('\n');

async function startTimes(tag: string): Promise<{ median: number; min: number; cpu: number; user: string }> {
  const r = await runInContainer(tag, ['sh', '-c', `id -u; python -c '${DRIVER.replaceAll("'", "'\\''")}'; find /env -newer /proc/1 -name '*.pyc' | wc -l`], { timeoutMs: 600_000 });
  if (r.exitCode !== 0) throw new Error(`${tag}: ${r.stderr}`);
  const [user, figures, written] = r.stdout.trim().split('\n');
  const [median, min, cpu] = figures!.split(' ').map((x) => Number(x) * 1000);
  if (written !== '0') throw new Error(`${tag}: ${written} .pyc written at run time`);
  return { median: median!, min: min!, cpu: cpu!, user: user! };
}

const scenario: Scenario = {
  name: 'bytecode',
  description: 'bytecode at assembly: what compiling adds to a build; worker start-up with .pyc, without, and in a docker build image (issue 13)',
  async run() {
    const lines: string[] = [];
    const { docker } = await sharedEngine();
    const runtime = await sharedRuntimeImage();
    const wheels = (await readdir(WHEELS_DIR)).filter((f) => f.endsWith('.whl')).sort().map((f) => join(WHEELS_DIR, f));
    if (wheels.length < 25) throw new Error(`run the image scenario first: it downloads the bench wheels into ${WHEELS_DIR}`);
    const work = await mkdtemp(join(tmpdir(), 'dstack-bench-bytecode-'));
    const tags = { pyc: 'dstack-bench/bytecode-pyc:latest', none: 'dstack-bench/bytecode-none:latest', docker: 'dstack-bench/bytecode-docker:latest' };
    try {
      const baseCache = new BlobCache(join(tmpdir(), 'dstack-image-bench-cache'));
      const base: Image = await openImage({ kind: 'docker', name: runtime }, { cache: baseCache, docker: () => docker });
      const baseInfo = await inspectBase(base, { cache: baseCache });
      lines.push(`${wheels.length} wheels, base ${runtime} (Python ${baseInfo.pythonFullVersion}); load ${(await run('uptime')).stdout.trim().replace(/.*load average: /, '')}`);

      // (a) cold builds, with and without .pyc (plain layers, as for an engine).
      let n = 0;
      const build = (compile: boolean, cache?: BlobCache, extra: string[] = []) =>
        buildAppImage({ base, baseInfo, cache: cache ?? new BlobCache(join(work, `cache-${n++}`)), compression: 'none', compile, wheels: [...wheels, ...extra].map((p) => ({ path: p })) });
      const coldNone = await time(() => build(false), 3, 0);
      const coldPyc = await time(() => build(true), 3, 0);
      lines.push(`(a) cold build: ${ms(coldPyc.median)} with .pyc vs ${ms(coldNone.median)} without: +${ms(coldPyc.median - coldNone.median)} (+${((100 * (coldPyc.median - coldNone.median)) / coldNone.median).toFixed(0)}%)`);
      // One dependency changes: its segment is installed (and compiled) again, the others copied with their .pyc.
      const extraDir = join(work, 'extra');
      await mkdir(extraDir);
      for (const compile of [false, true]) {
        const cache = new BlobCache(join(work, `cache-warm-${compile}`));
        await build(compile, cache, [await writeWheel(extraDir, { name: `bench-extra-${compile}`, version: '1.0' })]);
        let k = 2;
        const warm = await time(async () => {
          const { layers } = await build(compile, cache, [await writeWheel(extraDir, { name: `bench-extra-${compile}`, version: `${k++}.0` })]);
          const d = layers.find((l) => l.role === 'dependencies')!;
          if (d.segments?.built !== 1) throw new Error(`expected one segment built, got ${JSON.stringify(d.segments)}`);
        }, 3, 0);
        lines.push(`(a) one dependency changed (1 segment installed, ${wheels.length} reused), ${compile ? 'with' : 'without'} .pyc: ${ms(warm.median)}`);
      }

      // (b) worker start-up, as the image's user.
      for (const [tag, compile] of [[tags.pyc, true], [tags.none, false]] as const) {
        const { image } = await build(compile);
        await writeImage(image, { kind: 'docker', name: tag }, { docker: () => docker, reuseFrom: [runtime] });
      }
      const ctx = join(work, 'ctx');
      await mkdir(ctx);
      await cp(WHEELS_DIR, join(ctx, 'wheelhouse'), { recursive: true });
      await writeFile(
        join(ctx, 'Dockerfile'),
        [`FROM ${runtime}`, 'COPY wheelhouse /wheelhouse', 'RUN pip install --no-index --no-deps --no-cache-dir /wheelhouse/*.whl && rm -rf /wheelhouse', 'USER 4801', ''].join('\n'),
      );
      await buildDockerfile(docker, { context: ctx, tag: tags.docker });
      const pyc = await startTimes(tags.pyc);
      const none = await startTimes(tags.none);
      const dockerBuilt = await startTimes(tags.docker);
      const row = (label: string, t: { median: number; min: number; cpu: number; user: string }) =>
        `${label} (uid ${t.user}): wall ${ms(t.median)} (min ${ms(t.min)}), CPU ${ms(t.cpu)}`;
      lines.push(`(b) \`${IMPORTS}\` in a new process, median of ${STARTS}:`);
      lines.push(`    ${row('daemonless, .pyc (checked hash-based)', pyc)}`);
      lines.push(`    ${row('daemonless, --no-compile', none)}`);
      lines.push(`    ${row('docker build (pip install, timestamp .pyc)', dockerBuilt)}`);
      lines.push(
        `    .pyc vs docker build: wall ${(pyc.median / dockerBuilt.median).toFixed(2)}x, CPU ${(pyc.cpu / dockerBuilt.cpu).toFixed(2)}x (goal: within 10%); ` +
          `--no-compile vs .pyc: wall ${(none.median / pyc.median).toFixed(2)}x, CPU ${(none.cpu / pyc.cpu).toFixed(2)}x`,
      );
      lines.push(`load after: ${(await run('uptime')).stdout.trim().replace(/.*load average: /, '')}`);
    } finally {
      for (const tag of Object.values(tags)) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
      await rm(work, { recursive: true, force: true });
    }
    return lines;
  },
};

export default scenario;

// Issue 5's figures, side by side in one run, for one app (about 30 real wheels from the machine's local mirror,
// several with C extensions, plus a small source tree) on the runtime image:
//  (a) daemonless full build (+ load into the engine) vs `docker build` of the equivalent Dockerfile
//      (pip install --no-index from the wheelhouse), no build cache;            goal: >= 5x faster
//  (b) writing the dependencies layer vs the floor `tar -c | gzip -6` of the same installed tree;  goal: <= 1.3x
//  (c) rebuild after an app-only change, with all the wheels and with 5 of them;  goal: < 1 s, independent of size
//  (d) rebuild after one dependency changes (per-wheel segments)
//  (e) the shared-library check `image app` runs first (issue 14): cold (every wheel's ELF files read) and warm
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BlobCache,
  buildAppImage,
  buildDockerfile,
  checkWheelLibraries,
  inspectBase,
  openImage,
  readImageFiles,
  writeImage,
  writeWheelsLayer,
  type Image,
} from '@dstack/image';
import { sharedBaseImage, sharedEngine, sharedRuntimeImage, writeWheel } from '@dstack/testing';
import { ms, time, type Scenario } from '../lib.js';

const run = promisify(execFile);
const WHEELS_DIR = join(tmpdir(), 'dstack-bench-image', 'wheels');
const REQUIREMENTS = [
  'django', 'flask', 'requests', 'pyyaml', 'sqlalchemy', 'pygments', 'docutils', 'babel', 'python-dateutil',
  'pytz', 'attrs', 'click', 'packaging', 'rich', 'jsonschema', 'gunicorn',
];

/** Real wheels for the runtime's Python (Debian 3.11) from this machine's pip configuration (its local mirror). */
async function benchWheels(): Promise<string[]> {
  if (!existsSync(WHEELS_DIR) || (await readdir(WHEELS_DIR)).filter((f) => f.endsWith('.whl')).length < 25) {
    await mkdir(WHEELS_DIR, { recursive: true });
    await run('/usr/bin/python3', ['-m', 'pip', 'download', '-q', '--only-binary', ':all:', '-d', WHEELS_DIR, ...REQUIREMENTS], {
      maxBuffer: 16 * 1024 * 1024,
    });
  }
  return (await readdir(WHEELS_DIR)).filter((f) => f.endsWith('.whl')).sort().map((f) => join(WHEELS_DIR, f));
}

const scenario: Scenario = {
  name: 'image',
  description:
    'daemonless app image vs docker build; dependencies layer vs tar|gzip floor; app-only rebuild (issue 5)',
  async run() {
    const lines: string[] = [];
    const { docker } = await sharedEngine();
    const runtime = await sharedRuntimeImage();
    const wheels = await benchWheels();
    const work = await mkdtemp(join(tmpdir(), 'dstack-bench-image-'));
    try {
      const src = join(work, 'src');
      await mkdir(join(src, 'app'), { recursive: true });
      for (let i = 0; i < 20; i++) await writeFile(join(src, 'app', `m${i}.py`), `# module ${i}\nVALUE = ${i}\n`);
      await writeFile(join(src, 'main.py'), 'import django, flask, yaml, sqlalchemy\nprint("ok")\n');
      // The base is exported from the engine and inspected once (both cached by diffID, as the CLI's cache keeps
      // them), as `docker build` has it locally too; everything of the app is built from nothing in every run.
      const baseCache = new BlobCache(join(tmpdir(), 'dstack-image-bench-cache'));
      const base: Image = await openImage({ kind: 'docker', name: runtime }, { cache: baseCache, docker: () => docker });
      const baseInfo = await inspectBase(base, { cache: baseCache });
      const wheelBytes = (await run('du', ['-cb', ...wheels])).stdout.trim().split('\n').pop()!.split('\t')[0];
      lines.push(`app: ${wheels.length} wheels (${wheelBytes} B; C extensions: ${wheels.filter((w) => /-cp3\d+-/.test(w)).length}), 21 source files, base ${runtime}`);

      // (a) full builds: as `image app` does them, plain layers for an engine, gzip for an OCI layout. The image
      // loaded before is removed first (not timed): the engine would otherwise skip layers it holds already.
      let n = 0;
      const removeLoaded = () => docker.getImage('dstack-bench/daemonless:latest').remove({ force: true }).catch(() => undefined);
      const app = { kind: 'source' as const, dir: src };
      const daemonless = await time(async () => {
        const cache = new BlobCache(join(work, `cache-a${n++}`));
        const { image } = await buildAppImage({ base, baseInfo, cache, compression: 'none', wheels: wheels.map((p) => ({ path: p })), app });
        await writeImage(image, { kind: 'docker', name: 'dstack-bench/daemonless:latest' }, { docker: () => docker, reuseFrom: [runtime] });
      }, 3, 1, removeLoaded);
      const daemonlessOci = await time(async () => {
        const cache = new BlobCache(join(work, `cache-a${n++}`));
        const { image } = await buildAppImage({ base, baseInfo, cache, wheels: wheels.map((p) => ({ path: p })), app });
        await writeImage(image, { kind: 'oci', dir: join(work, `oci-${n}`), ref: null });
      }, 3, 0);
      const ctx = join(work, 'ctx');
      await mkdir(ctx);
      await cp(WHEELS_DIR, join(ctx, 'wheelhouse'), { recursive: true });
      await cp(src, join(ctx, 'src'), { recursive: true });
      await writeFile(join(ctx, 'requirements.txt'), REQUIREMENTS.join('\n') + '\n');
      await writeFile(
        join(ctx, 'Dockerfile'),
        [
          `FROM ${runtime}`,
          'COPY wheelhouse /wheelhouse',
          'COPY requirements.txt /requirements.txt',
          'RUN pip install --pre --no-index --no-cache-dir -f /wheelhouse -r /requirements.txt && rm -rf /wheelhouse',
          'COPY --chown=4801:4801 src /app',
          'USER 4801',
          '',
        ].join('\n'),
      );
      const dockerBuild = await time(() => buildDockerfile(docker, { context: ctx, tag: 'dstack-bench/docker-build:latest', noCache: true }), 2, 0);
      lines.push(`(a) daemonless build (plain layers) + load into the engine: ${ms(daemonless.median)} vs docker build (pip install --no-index, no cache) ${ms(dockerBuild.median)} -> ${(dockerBuild.median / daemonless.median).toFixed(2)}x faster (goal >= 5x)`);
      lines.push(`(a) daemonless build (gzip layers) + OCI layout: ${ms(daemonlessOci.median)} -> ${(dockerBuild.median / daemonlessOci.median).toFixed(2)}x faster than docker build`);

      // (b) the dependencies layer vs tar | gzip of the same installed tree.
      let m = 0;
      const scheme = { prefix: '/env', pythonVersion: '3.11' };
      let layerFile = '';
      const layer = await time(async () => {
        const cache = new BlobCache(join(work, `cache-b${m++}`));
        const l = await writeWheelsLayer(wheels, { scheme, cache });
        layerFile = cache.pathOf(l.digest);
      }, 3, 1);
      const tree = join(work, 'tree');
      await mkdir(tree);
      await run('sh', ['-c', `gzip -dc < ${layerFile} | tar -x -C ${tree}`]);
      const floor = await time(() => run('sh', ['-c', `tar -C ${tree} -cf - . | gzip -6 > /dev/null`]), 3, 1);
      const size = (await run('sh', ['-c', `gzip -dc < ${layerFile} | wc -c`])).stdout.trim();
      lines.push(`(b) dependencies layer (${size} B uncompressed): ${ms(layer.median)} vs tar -c | gzip -6 ${ms(floor.median)} -> ${(layer.median / floor.median).toFixed(2)}x the floor (goal <= 1.3x)`);

      // (c) app-only rebuilds with a warm cache, all wheels and 5 wheels.
      for (const subset of [wheels, wheels.slice(0, 5)]) {
        const cache = new BlobCache(join(work, `cache-c${subset.length}`));
        const opts = { base, cache, wheels: subset.map((p) => ({ path: p })), app: { kind: 'source' as const, dir: src } };
        await buildAppImage(opts);
        let v = 0;
        const rebuild = await time(async () => {
          await writeFile(join(src, 'app', 'm0.py'), `# module 0\nVALUE = ${v++}\n`);
          const { image, layers } = await buildAppImage(opts);
          if (!layers.find((l) => l.role === 'dependencies')?.cached) throw new Error('dependencies layer not reused');
          await writeImage(image, { kind: 'oci', dir: join(work, `oci-c${subset.length}`), ref: null });
        }, 5, 1);
        lines.push(`(c) app-only rebuild + OCI layout, ${subset.length} wheels: ${ms(rebuild.median)} (min ${ms(rebuild.min)}; goal < 1 s, independent of the wheels)`);
      }
      // (d) one dependency changes (a small wheel gets a new version): only its segment is installed again.
      {
        const cache = new BlobCache(join(work, 'cache-d'));
        const extra = join(work, 'extra');
        await mkdir(extra);
        const opts = (w: string) => ({ base, cache, wheels: [...wheels, w].map((p) => ({ path: p })), app: { kind: 'source' as const, dir: src } });
        await buildAppImage(opts(await writeWheel(extra, { name: 'bench-extra', version: '1.0' })));
        let k = 2;
        let report = '';
        const change = await time(async () => {
          const w = await writeWheel(extra, { name: 'bench-extra', version: `${k++}.0` });
          const { layers } = await buildAppImage(opts(w));
          const d = layers.find((l) => l.role === 'dependencies')!;
          report = `${d.segments?.built ?? '?'} installed, ${d.segments?.reused ?? '?'} reused`;
        }, 3, 0);
        lines.push(`(d) one dependency changed (${report}): ${ms(change.median)} vs full build ${ms(daemonlessOci.median)}`);
      }
      // (e) the library check: its base index is read once per base (cached by diffIDs, like inspectBase); per
      // wheel, ELF headers and dynamic segments are read once (cached by sha256). Cold = every wheel read.
      {
        const baseFiles = await time(() => readImageFiles(base), 1, 0);
        const files = await readImageFiles(base, { cache: baseCache });
        let e = 0;
        let checked = 0;
        const check = (cache: BlobCache) => checkWheelLibraries({ base, baseFiles: files, cache, scheme, wheels: wheels.map((p) => ({ path: p })) });
        const cold = await time(async () => {
          const r = await check(new BlobCache(join(work, `cache-e${e++}`)));
          if (r.problems.length > 0) throw new Error(`library check: ${JSON.stringify(r.problems)}`);
          checked = r.checked;
        }, 3, 0);
        const warmCache = new BlobCache(join(work, 'cache-e-warm'));
        await check(warmCache);
        const warm = await time(() => check(warmCache), 5, 1);
        lines.push(
          `(e) library check, ${checked} ELF files in ${wheels.length} wheels: cold ${ms(cold.median)} = ${((100 * cold.median) / daemonlessOci.median).toFixed(1)}% of the cold build (goal < 10%); ` +
            `warm (app-only rebuild) ${ms(warm.median)}; the base's file index ${ms(baseFiles.median)} once per base`,
        );
        // psycopg2-binary from the machine's mirror (auditwheel's layout: libpq and its stack bundled in
        // psycopg2_binary.libs/, found by $ORIGIN RPATHs) is accepted on the bare debootstrapped base.
        const pgDir = join(tmpdir(), 'dstack-bench-image', 'psycopg2');
        await mkdir(pgDir, { recursive: true });
        await run('/usr/bin/python3', ['-m', 'pip', 'download', '-q', '--only-binary', ':all:', '--no-deps', '-d', pgDir, 'psycopg2-binary']);
        const pg = (await readdir(pgDir)).filter((f) => f.endsWith('.whl')).map((f) => join(pgDir, f));
        const bare = await openImage({ kind: 'docker', name: await sharedBaseImage() }, { cache: baseCache, docker: () => docker });
        const r = await checkWheelLibraries({ base: bare, cache: baseCache, scheme, wheels: pg.map((p) => ({ path: p })) });
        lines.push(`(e) ${pg.map((p) => p.split('/').pop()).join(', ')} on the bare base: ${r.checked} ELF files, ${r.problems.length === 0 ? 'accepted' : `refused: ${JSON.stringify(r.problems)}`}`);
      }
      await docker.getImage('dstack-bench/daemonless:latest').remove({ force: true }).catch(() => undefined);
      await docker.getImage('dstack-bench/docker-build:latest').remove({ force: true }).catch(() => undefined);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    return lines;
  },
};

export default scenario;

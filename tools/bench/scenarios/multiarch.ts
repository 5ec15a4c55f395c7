// Issue 15's figure: an arm64 app image assembled on this x86 machine costs what the amd64 one costs — nothing
// runs, so nothing is emulated. The same app on both (the image bench's pure-Python wheels, ~30, plus one C
// extension compiled for each machine, and a small source tree), on the two debootstrapped bases as one OCI index:
//  (a) whole processes, cold cache each run: `image app --platform linux/amd64`, `--platform linux/arm64`, and both
//      at once (an index);                                      goal: arm64 within 10% of amd64, both ~ the sum
//  (b) in process (buildAppImage, cold cache): the same per platform.
// The CLI is the built one (bin/ + dist/: run `npm run build` first).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BlobCache, ImageIndex, buildAppImage, inspectBase, openImage, parsePlatform, writeImageIndex } from '@dstack/image';
import { stringifyLock } from '@dstack/recipe';
import { compilePythonExtension, sharedBaseImage, sharedEngine, writeWheel } from '@dstack/testing';
import { ms, time, type Scenario } from '../lib.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../apps/cli/bin/dstack-factory.cjs', import.meta.url));
const WORK = join(tmpdir(), 'dstack-bench-multiarch');
const REQUIREMENTS = ['django', 'flask', 'requests', 'pygments', 'docutils', 'babel', 'python-dateutil', 'pytz', 'attrs', 'click', 'packaging', 'rich', 'jsonschema', 'gunicorn'];
const MACHINES = { 'linux/amd64': 'x86_64', 'linux/arm64': 'aarch64' } as const;

/** Pure-Python wheels (they fit both machines) from this machine's pip configuration, once. */
async function pureWheels(): Promise<string[]> {
  const dir = join(WORK, 'pure');
  if (!existsSync(dir) || (await readdir(dir)).length < 20) {
    await mkdir(dir, { recursive: true });
    await run('/usr/bin/python3', ['-m', 'pip', 'download', '-q', '--only-binary', ':all:', '--no-deps', '-d', dir, ...REQUIREMENTS, 'asgiref', 'sqlparse', 'blinker', 'itsdangerous', 'jinja2', 'werkzeug', 'certifi', 'idna', 'urllib3', 'six', 'markdown-it-py', 'mdurl', 'referencing', 'jsonschema-specifications', 'typing-extensions'], { maxBuffer: 16 * 1024 * 1024 });
  }
  return (await readdir(dir)).filter((f) => f.endsWith('-none-any.whl')).sort().map((f) => join(dir, f));
}

const sha256 = async (f: string): Promise<string> => (await import('node:crypto')).createHash('sha256').update(await readFile(f)).digest('hex');

const scenario: Scenario = {
  name: 'multiarch',
  description: 'an arm64 app image assembled on x86 (no emulation) vs the amd64 one, and both as an index (issue 15)',
  async run() {
    const lines: string[] = [];
    const { docker } = await sharedEngine();
    const work = await mkdtemp(join(tmpdir(), 'dstack-bench-multiarch-'));
    try {
      // The bases as one index in an OCI layout (exported from the engine once per run).
      const baseCache = new BlobCache(join(WORK, 'base-cache'));
      const bases = await Promise.all([sharedBaseImage(), sharedBaseImage({ arch: 'arm64' })].map(async (name) => openImage({ kind: 'docker', name: await name }, { cache: baseCache, docker: () => docker })));
      await writeImageIndex(new ImageIndex(bases), { kind: 'oci', dir: join(work, 'bases'), ref: 'bookworm' });
      const pure = await pureWheels();
      const wheelhouse = join(work, 'wheelhouse');
      await mkdir(wheelhouse);
      await mkdir(join(work, 'ext'));
      const src = join(work, 'src');
      await mkdir(join(src, 'app'), { recursive: true });
      for (let i = 0; i < 20; i++) await writeFile(join(src, 'app', `m${i}.py`), `# module ${i}\nVALUE = ${i}\n`);
      const wheelsOf: Record<string, string[]> = {};
      for (const [platform, machine] of Object.entries(MACHINES)) {
        const so = await compilePythonExtension({ dir: join(work, 'ext'), name: 'hello', machine });
        const ext = await writeWheel(wheelhouse, { name: 'hello', version: '1.0', tag: `cp311-cp311-linux_${machine}`, files: { [`hello.cpython-311-${machine}-linux-gnu.so`]: await readFile(so) } });
        wheelsOf[platform] = [...pure, ext];
        const packages = [];
        for (const w of wheelsOf[platform]) {
          const name = w.split('/').pop()!;
          const [dist, version] = name.split('-') as [string, string];
          packages.push({ name: dist.replace(/_/g, '-'), version, wheels: [{ name, path: w, hashes: { sha256: await sha256(w) } }] });
        }
        await writeFile(join(work, `lock-${machine}.toml`), stringifyLock({
          lockVersion: '1.0',
          createdBy: 'dstack-factory bench',
          environments: [`implementation_name == "cpython" and python_full_version == "3.11.2" and sys_platform == "linux" and platform_machine == "${machine}"`],
          packages,
        }));
      }
      const bytes = (await run('du', ['-cb', ...wheelsOf['linux/amd64']!])).stdout.trim().split('\n').pop()!.split('\t')[0];
      lines.push(`app: ${wheelsOf['linux/amd64']!.length} wheels per platform (${bytes} B; one C extension each), 20 source files; bases dstack-factory/base:bookworm and its arm64 twin as one OCI index`);

      // (a) whole processes, as a user runs them, each with an empty image cache.
      const cli = (platforms: string[], out: string) => [
        BIN, 'image', 'app', '--base', `oci:${join(work, 'bases')}:bookworm`, '--platform', platforms.join(','),
        ...platforms.map((p) => `--lock=${p}=${join(work, `lock-${MACHINES[p as keyof typeof MACHINES]}.toml`)}`),
        '--wheelhouse', wheelhouse, '--source', src, '--no-check-libs', '--output', `oci:${join(work, out)}:app`,
      ];
      const whole = async (platforms: string[], out: string) => {
        let n = 0;
        return time(async () => {
          await run(process.execPath, cli(platforms, out), { env: { ...process.env, DSTACK_IMAGE_CACHE: join(work, `cache-${out}-${n++}`) }, maxBuffer: 16 * 1024 * 1024 });
        }, 3, 1);
      };
      const amd = await whole(['linux/amd64'], 'amd');
      const arm = await whole(['linux/arm64'], 'arm');
      const both = await whole(['linux/amd64', 'linux/arm64'], 'both');
      lines.push(`(a) image app, whole process, cold cache: linux/amd64 ${ms(amd.median)}, linux/arm64 ${ms(arm.median)} -> arm64/amd64 ${(arm.median / amd.median).toFixed(2)}x; both as an index ${ms(both.median)} (${(both.median / (amd.median + arm.median)).toFixed(2)}x the sum)`);

      // (b) in process: buildAppImage per platform, cold cache, the base read from the index.
      const inProcess: Record<string, number> = {};
      for (const [platform] of Object.entries(MACHINES)) {
        const base = await openImage({ kind: 'oci', dir: join(work, 'bases'), ref: 'bookworm' }, { cache: baseCache, platform: parsePlatform(platform) });
        const baseInfo = await inspectBase(base, { cache: baseCache });
        let n = 0;
        const t = await time(async () => {
          await buildAppImage({ base, baseInfo, cache: new BlobCache(join(work, `cache-b-${platform.replace('/', '-')}-${n++}`)), wheels: wheelsOf[platform]!.map((p) => ({ path: p })), app: { kind: 'source', dir: src } });
        }, 3, 1);
        inProcess[platform] = t.median;
      }
      lines.push(`(b) buildAppImage, in process, cold cache: linux/amd64 ${ms(inProcess['linux/amd64']!)}, linux/arm64 ${ms(inProcess['linux/arm64']!)} -> ${(inProcess['linux/arm64']! / inProcess['linux/amd64']!).toFixed(2)}x`);
      return lines;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};

export default scenario;

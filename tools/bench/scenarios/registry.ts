// `npm run bench registry`: moving a wheelhouse through an OCI registry (issue 21), timed as a user runs it (whole
// processes, hyperfine): `dstack-factory wheelhouse pull registry:HOST/REPO` of the ~57-wheel closure of the `cli`
// scenario's recipe (real wheels from this machine's local mirror, as that scenario gets them; generated ones where there is none) into an
// empty folder, against `pip download --no-deps` of the same pinned files from a local index (`dstack-factory
// serve` of the same wheels over HTTP), in the same run. Also the push (only what is missing: a no-op push).
// The CLI is the built one (bin/ + dist/: run `npm run build`, or `node bundle.mjs` in apps/cli, first).
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isolatedPipEnv, registryPort, testPython, writeWheel } from '@dstack/testing';
import type { Scenario } from '../lib.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../apps/cli/bin/dstack-factory.cjs', import.meta.url));
const MIRROR = 'file:///opt/pypi/simple';
const WARM_RECIPE = ['django', 'flask', 'requests', 'sqlalchemy', 'sphinx', 'httpx', 'pydantic', 'fastapi', 'jinja2', 'boto3', 'pytest', 'rich', 'pyyaml'];

interface Figure {
  command: string;
  median: number;
}

const q = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
const cmd = (...a: string[]): string => a.map(q).join(' ');
const ms = (f: Figure): string => `${(f.median * 1000).toFixed(0)} ms`;

async function hyperfine(commands: string[], prepares: string[], runs: number, env: NodeJS.ProcessEnv): Promise<Figure[]> {
  const out = join(tmpdir(), `bench-registry-${process.pid}-${Date.now()}.json`);
  const args = ['--style', 'none', '--runs', String(runs), '--warmup', '1', '--export-json', out];
  for (let i = 0; i < commands.length; i++) args.push('--prepare', prepares[i]!, commands[i]!);
  await run('hyperfine', args, { env, maxBuffer: 16 * 1024 * 1024 });
  const json = JSON.parse(await readFile(out, 'utf8')) as { results: Figure[] };
  await rm(out, { force: true });
  return json.results;
}

/** The closure's wheels: downloaded through this machine's pip configuration (its local mirrors), else generated. */
async function closure(dir: string, python: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  if (existsSync('/opt/pypi/simple')) {
    // As the cli scenario's recipe does: the local mirror as the index (no PyPI here).
    await run(python, ['-m', 'pip', 'download', '-q', '--only-binary', ':all:', '--index-url', MIRROR, '-d', dir, ...WARM_RECIPE], { maxBuffer: 64 * 1024 * 1024 });
    return `real wheels from ${MIRROR}`;
  } else {
    for (let i = 0; i < 57; i++) await writeWheel(dir, { name: `gen${i}`, version: '1.0', requires: i < 56 ? [`gen${i + 1}>=1`] : [] });
    return 'generated wheels (no pip mirror here)';
  }
}

const scenario: Scenario = {
  name: 'registry',
  description: '`wheelhouse pull` of the ~57-wheel closure from a registry vs `pip download --no-deps` of the same from a local index',
  async run() {
    if (!existsSync(BIN.replace('bin/dstack-factory.cjs', 'dist/main.cjs'))) throw new Error('build the CLI first (cd apps/cli && node bundle.mjs)');
    const root = await mkdtemp(join(tmpdir(), 'dstack-bench-registry-'));
    const python = testPython('3.11');
    const downloaded = join(root, 'downloaded');
    const source = await closure(downloaded, python);
    const folder = join(root, 'wheelhouse');
    const env = { ...process.env, NO_COLOR: '1' };
    await run('node', [BIN, 'wheelhouse', 'add', downloaded, '--wheelhouse', folder], { env, maxBuffer: 16 * 1024 * 1024 });
    const files = (await readdir(folder)).filter((f) => f.endsWith('.whl')).sort();
    let bytes = 0;
    for (const f of files) bytes += (await readFile(join(folder, f))).length;
    const store = `registry:127.0.0.1:${registryPort}/dstack-bench/wheels-${process.pid}`;
    const push = await run('node', [BIN, 'wheelhouse', 'push', store, '--wheelhouse', folder], { env, maxBuffer: 16 * 1024 * 1024 });
    const pushLine = push.stdout.trim().split('\n').at(-1)!;

    // The local index: the same wheels served over HTTP by `dstack-factory serve`.
    const server = spawn('node', [BIN, '--quiet', 'serve', '--wheelhouse', folder, '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const url = await new Promise<string>((resolve, reject) => {
      let err = '';
      server.stderr.on('data', (c: Buffer) => {
        err += c.toString();
        const m = /at (http:\/\/\S+?)\/?\n/.exec(err);
        if (m) resolve(m[1]!);
      });
      server.on('exit', () => reject(new Error(`serve exited: ${err}`)));
    });
    try {
      const pinned = join(root, 'pinned.txt');
      const names = (await run('node', [BIN, 'wheelhouse', 'list', '--json', '--wheelhouse', folder], { env, maxBuffer: 16 * 1024 * 1024 })).stdout;
      await writeFile(pinned, (JSON.parse(names) as { name: string; version: string }[]).map((e) => `${e.name}==${e.version}`).join('\n') + '\n');
      const pullDest = join(root, 'pulled');
      const pipDest = join(root, 'pip-downloaded');
      const pipEnv = isolatedPipEnv({ PIP_NO_CACHE_DIR: '1' });
      const [pull, pip, noop] = await hyperfine(
        [
          cmd('node', BIN, 'wheelhouse', 'pull', store, '--wheelhouse', pullDest),
          cmd(python, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary', ':all:', '--index-url', `${url}/simple/`, '-d', pipDest, '-r', pinned),
          cmd('node', BIN, 'wheelhouse', 'push', store, '--wheelhouse', folder),
        ],
        [`rm -rf ${q(pullDest)}`, `rm -rf ${q(pipDest)}`, 'true'],
        5,
        pipEnv,
      );
      const pulled = (await readdir(pullDest)).filter((f) => f.endsWith('.whl')).length;
      const viaPip = (await readdir(pipDest)).filter((f) => f.endsWith('.whl')).length;
      return [
        `${files.length} wheels, ${(bytes / 1e6).toFixed(1)} MB (${source}); first push: ${pushLine}`,
        `wheelhouse pull (${pulled} wheels, into an empty folder, 8 at once) ${ms(pull!)} vs pip download --no-deps of the same ${viaPip} from a local index (dstack-factory serve) ${ms(pip!)} -> ${(pip!.median / pull!.median).toFixed(2)}x`,
        `wheelhouse push with nothing missing ${ms(noop!)}`,
      ];
    } finally {
      server.kill('SIGTERM');
      await rm(root, { recursive: true, force: true });
    }
  },
};

export default scenario;

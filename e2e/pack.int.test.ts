// The packages work when installed (issue 17, point 3): @dstack/engine, the CLI and their workspace dependencies
// are packed with `npm pack` (the tarballs a registry would serve), installed into an empty folder, and run there
// — far from this repository, so the factory script and the Dockerfiles can only come from inside the packages
// (their builds copy images/ into dist/images/).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootstrapWheelhouse,
  isolatedPipEnv,
  makeSdist,
  testPython,
  writePurePackage,
} from '@dstack/testing';

const exec = promisify(execFile);
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
/**
 * @dstack/engine, the CLI, and every workspace package they depend on (read from the package.json files, so a new
 * package is packed as soon as one of them depends on it).
 */
const WORKSPACES = workspaceClosure(['apps/cli', 'packages/engine']);

function workspaceClosure(roots: string[]): string[] {
  const byName = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const parent of ['packages', 'apps']) {
    for (const d of readdirSync(path.join(repoRoot, parent))) {
      const file = path.join(repoRoot, parent, d, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name: string; dependencies?: Record<string, string> };
      byName.set(pkg.name, `${parent}/${d}`);
      deps.set(`${parent}/${d}`, Object.keys(pkg.dependencies ?? {}));
    }
  }
  const seen = new Set<string>();
  const visit = (w: string): void => {
    if (seen.has(w)) return;
    seen.add(w);
    for (const name of deps.get(w) ?? []) {
      const dep = byName.get(name);
      if (dep) visit(dep);
    }
  };
  roots.forEach(visit);
  return [...seen].sort();
}

const python = testPython('3.11');
let dir: string;
let project: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-pack-'));
  const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false' };
  // The builds (cached by nx when current) make dist/, images included.
  await exec(
    'npx',
    [
      'nx',
      'run-many',
      '-t',
      'build',
      '--output-style=static',
      '--projects',
      WORKSPACES.map((w) =>
        path.basename(w) === 'cli' ? 'dstack-factory' : `@dstack/${path.basename(w)}`,
      ).join(','),
    ],
    { cwd: repoRoot, env, maxBuffer: 64 << 20 },
  );
  const tarballs = path.join(dir, 'tarballs');
  await mkdir(tarballs);
  await exec(
    'npm',
    ['pack', '--silent', '--pack-destination', tarballs, ...WORKSPACES.flatMap((w) => ['-w', w])],
    { cwd: repoRoot, env, maxBuffer: 64 << 20 },
  );
  project = path.join(dir, 'project');
  await mkdir(project);
  await writeFile(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'a-user', private: true, type: 'module' }),
  );
  const files = (await readdir(tarballs)).map((f) => path.join(tarballs, f));
  expect(files).toHaveLength(WORKSPACES.length);
  await exec(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...files],
    { cwd: project, env, maxBuffer: 64 << 20 },
  );
}, 600_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

async function dstackFactory(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = path.join(project, 'node_modules', '.bin', 'dstack-factory');
  try {
    const { stdout, stderr } = await exec(bin, args, {
      cwd: project,
      env: { PATH: process.env.PATH, NO_COLOR: '1', ...env },
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('installed from npm pack tarballs', () => {
  it('the tarballs carry the factory script and the Dockerfiles; @dstack/engine finds its script inside itself', async () => {
    const engine = path.join(project, 'node_modules', '@dstack', 'engine');
    expect(existsSync(path.join(engine, 'dist/images/factory/factory.py'))).toBe(true);
    expect(existsSync(path.join(engine, 'dist/images/factory/Dockerfile'))).toBe(true);
    const { stdout } = await exec(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { FACTORY_SCRIPT, FACTORY_CONTEXT } from '@dstack/engine'; console.log(JSON.stringify([FACTORY_SCRIPT, FACTORY_CONTEXT]))",
      ],
      { cwd: project },
    );
    expect(JSON.parse(stdout)).toEqual([
      path.join(engine, 'dist/images/factory/factory.py'),
      path.join(engine, 'dist/images/factory'),
    ]);
    const cli = path.join(project, 'node_modules', 'dstack-factory', 'dist', 'images');
    expect((await readdir(cli)).sort()).toEqual(['app', 'factory', 'runtime']);
  });

  it('dstack-factory build builds a recipe offline with the packaged factory script', async () => {
    await bootstrapWheelhouse(python, path.join(project, 'wheelhouse'));
    const spec = { name: 'packedpkg', version: '1.0' };
    await makeSdist(await writePurePackage(path.join(dir, 'src'), spec), path.join(dir, 'links'), spec);
    await mkdir(path.join(project, 'recipes'));
    await writeFile(
      path.join(project, 'recipes', 'app.txt'),
      `--no-index\n--find-links ${path.join(dir, 'links')}\npackedpkg==1.0\n`,
    );
    const env = isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache'), CEXT: 'False' });
    const r = await dstackFactory(['--quiet', 'build', 'app', '--python', python, '--jobs', '1'], env);
    expect(r.stderr).toContain('[cp311-linux_x86_64] added packedpkg-1.0-py3-none-any.whl');
    expect(r.code).toBe(0);
    expect(existsSync(path.join(project, 'wheelhouse', 'packedpkg-1.0-py3-none-any.whl'))).toBe(true);
  }, 300_000);

  it('dstack-factory image factory --help, and init copies the app Dockerfiles from inside the package', async () => {
    const help = await dstackFactory(['image', 'factory', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: dstack-factory image factory \[options\]/);
    const app = path.join(dir, 'app');
    await mkdir(app);
    const init = await exec(path.join(project, 'node_modules', '.bin', 'dstack-factory'), ['init'], {
      cwd: app,
      env: { PATH: process.env.PATH, NO_COLOR: '1' },
    });
    expect(init.stdout).toContain('created Dockerfile\n');
    expect((await readdir(app)).filter((f) => f.startsWith('Dockerfile')).sort()).toEqual([
      'Dockerfile',
      'Dockerfile-source',
      'Dockerfile-wheel',
    ]);
  });
});

// `dstack-factory build` with real pip, offline: the seed's switches from .env, progress lines, the lock,
// a warm second run, and failures reported with pip's verdict, the command and the full log's path.
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  bootstrapWheelhouse,
  isolatedPipEnv,
  makeSdist,
  testPython,
  writePurePackage,
  writeWheel,
} from '@dstack/testing';
import { runCli } from '../run-cli.test-support.js';

vi.setConfig({ testTimeout: 300_000 });
const python = testPython('3.11');
let dir: string;

// The real command tree (main.ts), quiet logs, NO_COLOR: exactly what a user's shell would run.
async function cli(
  args: string[],
  env: NodeJS.ProcessEnv = isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache') }),
): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await runCli(['--quiet', '--log-format', 'json', ...args], {
    env: { NO_COLOR: '1', ...env },
    cwd: dir,
  });
  return { code, stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-build-cli-'));
  await bootstrapWheelhouse(python, path.join(dir, 'wheelhouse'));
  const spec = { name: 'clipkg', version: '1.0' };
  await makeSdist(await writePurePackage(path.join(dir, 'src'), spec), path.join(dir, 'links'), spec);
  await mkdir(path.join(dir, 'recipes'));
  await writeFile(
    path.join(dir, 'recipes', 'app.txt'),
    `--no-index\n--find-links ${path.join(dir, 'links')}\nclipkg==1.0\n`,
  );
  await writeFile(path.join(dir, 'recipes', 'missing.txt'), '--no-index\nno-such-package==1.0\n');
  await writeFile(path.join(dir, '.env'), 'CEXT=False\nRECIPE=app\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('dstack-factory build', () => {
  it('with no argument builds $RECIPE from .env (CEXT=False), prints progress and writes the lock', async () => {
    const r = await cli(['build', '--python', python, '--jobs', '1']);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('['))).toEqual([
      '[cp311-linux_x86_64] planned 1 distributions',
      '[cp311-linux_x86_64] building clipkg 1.0',
      '[cp311-linux_x86_64] added clipkg-1.0-py3-none-any.whl',
      `[cp311-linux_x86_64] done: 1 distributions, 0 cached, 1 added; lock ${path.join(dir, 'recipes', 'locks', 'app', 'pylock.cp3_11_7-manylinux_2_36_x86_64.toml')}`,
    ]);
    expect(r.code).toBe(0);
    expect(existsSync(path.join(dir, 'wheelhouse', 'clipkg-1.0-py3-none-any.whl'))).toBe(true);
  });

  it('a second run is finished by the lock', async () => {
    const r = await cli(['build', 'app', '--python', python]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('[cp311-linux_x86_64] cached clipkg 1.0 (clipkg-1.0-py3-none-any.whl)\n');
    expect(r.stderr).toContain('[cp311-linux_x86_64] up to date (lock): 1 distributions, 1 cached, 0 added');
  });

  it('a failure names the package, the command and the last log lines, and exits 1', async () => {
    const r = await cli(['build', 'missing', '--python', python]);
    expect(r.code).toBe(1);
    // What pip could not find, pip's last ERROR: lines, the command, and where the full log is: no -v needed.
    expect(r.stderr).toContain(
      'error: (plan) failed for cp311-linux_x86_64 (exit 1)\n' +
        '  not found: no-such-package==1.0\n' +
        '  ERROR: Could not find a version that satisfies the requirement no-such-package==1.0 (from versions: none)\n' +
        '  ERROR: No matching distribution found for no-such-package==1.0\n' +
        'command: ',
    );
    expect(r.stderr).toContain('-m pip install --dry-run --ignore-installed --report');
    expect(r.stderr).toMatch(new RegExp(`\nfull log: ${path.join(dir, 'cache', 'dstack-factory', 'logs')}/[^/]+/main\\.log\n`));
  });

  it('explains a missing recipe and a missing app wheel', async () => {
    expect((await cli(['build', 'nope', '--python', python])).stderr).toBe(
      `error[RECIPE_NOT_FOUND]: no recipe ${path.join(dir, 'recipes', 'nope.txt')}\nhint: write it, or set RECIPE / pass the recipe's name or path\n`,
    );
    const w = await cli(['build', 'myapp', '--from-wheel', '--python', python]);
    expect([w.code, w.stderr.split('\n')[0]]).toEqual([
      1,
      `error[WHEEL_NOT_FOUND]: BUILD_REQ=False: no wheel named myapp in ${path.join(dir, 'wheelhouse')}`,
    ]);
  });
});

describe('dstack-factory build with an archive (ARCHIVE, the original\'s /archive)', () => {
  it('puts every wheel into the archive; after rm wheelhouse/*.whl the next build takes them from it, building nothing', async () => {
    const project = path.join(dir, 'archived');
    await bootstrapWheelhouse(python, path.join(project, 'wheelhouse'));
    const spec = { name: 'archpkg', version: '2.0' };
    const links = path.join(project, 'links');
    await makeSdist(await writePurePackage(path.join(project, 'src'), spec), links, spec);
    await mkdir(path.join(project, 'recipes'));
    await writeFile(path.join(project, 'recipes', 'requirements.txt'), `--no-index\n--find-links ${links}\narchpkg==2.0\n`);
    await writeFile(path.join(project, '.env'), 'CEXT=False\nARCHIVE=archive\n');
    const run = async (): Promise<{ code: number; stderr: string }> => {
      const { code, stderr } = await runCli(['--quiet', '--log-format', 'json', 'build', '--python', python, '--jobs', '1'], {
        env: { NO_COLOR: '1', ...isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache') }) },
        cwd: project,
      });
      return { code, stderr };
    };
    const whls = async (d: string): Promise<string[]> => (await readdir(d)).filter((f) => f.endsWith('.whl')).sort();

    const first = await run();
    expect(first.code).toBe(0);
    expect(first.stderr).toContain('building archpkg 2.0');
    const all = await whls(path.join(project, 'wheelhouse'));
    expect(all).toContain('archpkg-2.0-py3-none-any.whl');
    expect(await whls(path.join(project, 'archive'))).toEqual(all);
    expect(first.stderr).toContain(`archive: ${all.length} copied, 0 present\n`);
    // Nothing half-written is left beside them.
    expect((await readdir(path.join(project, 'archive'))).filter((f) => !f.endsWith('.whl'))).toEqual([]);

    // The wheelhouse cleaned, the sources gone: the archive alone brings the wheels back.
    for (const f of all) await rm(path.join(project, 'wheelhouse', f));
    await rm(links, { recursive: true });
    const second = await run();
    expect(second.code).toBe(0);
    expect(second.stderr).not.toContain('building ');
    expect(second.stderr).toContain('downloading archpkg 2.0');
    expect(second.stderr).toContain('added archpkg-2.0-py3-none-any.whl');
    expect(await whls(path.join(project, 'wheelhouse'))).toEqual(['archpkg-2.0-py3-none-any.whl']);
    expect(second.stderr).toContain("archive: 0 copied, 1 present\n");
    // Taken from the archive means ingested like any add: recorded in the store with its sha256.
    const list = await runCli(['--quiet', 'wheelhouse', 'list', '--json'], { env: { NO_COLOR: '1' }, cwd: project });
    expect(list.stdout).toContain('archpkg-2.0-py3-none-any.whl');
  });
});

describe("BUILD_REQ=False as the original's `pip wheel /wheelhouse/${RECIPE:-*}.whl` (select_wheels.py, both doors)", () => {
  it('RECIPE unset: the dependencies of every wheel; a project name with dashes, a full wheel stem; where the lock goes', async () => {
    const project = path.join(dir, 'from-wheels');
    const wh = path.join(project, 'wheelhouse');
    await bootstrapWheelhouse(python, wh);
    await writeWheel(wh, { name: 'my-app', version: '1.0', requires: ['dep-a==1.0'] });
    await writeWheel(wh, { name: 'tool', version: '2.0', requires: ['dep-b==1.0'] });
    const links = path.join(project, 'links');
    for (const name of ['dep-a', 'dep-b']) {
      const spec = { name, version: '1.0' };
      await makeSdist(await writePurePackage(path.join(project, 'src', name), spec), links, spec);
    }
    await mkdir(path.join(project, 'recipes'));
    await writeFile(path.join(project, '.env'), 'CEXT=False\nBUILD_REQ=False\n');
    const run = async (extra: Record<string, string> = {}): Promise<{ code: number; stderr: string }> => {
      const env = isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache'), PIP_NO_INDEX: '1', PIP_FIND_LINKS: links, ...extra });
      const { code, stderr } = await runCli(['--quiet', '--log-format', 'json', 'build', '--python', python, '--jobs', '1'], { env: { NO_COLOR: '1', ...env }, cwd: project });
      return { code, stderr };
    };
    const lockOf = (name: string) => path.join(project, 'recipes', 'locks', name);

    const all = await run();
    expect(all.code).toBe(0);
    expect(all.stderr).toContain('building dep-a 1.0');
    expect(all.stderr).toContain('building dep-b 1.0');
    const allLock = (await readdir(lockOf('wheelhouse'))).filter((f) => f.startsWith('pylock.'));
    expect(allLock).toHaveLength(1);
    expect(all.stderr).toContain(`; lock ${path.join(lockOf('wheelhouse'), allLock[0]!)}`);
    // The recipe naming the chosen wheels was the run's own temp file: the lock does not point at it.
    const allLockText = await readFile(path.join(lockOf('wheelhouse'), allLock[0]!), 'utf8');
    expect(allLockText).toMatch(/\[tool\.dstack-factory\]\nkey = "[0-9a-f]{64}"\ntarget = "[^"]+"\n$/);

    // A project name holding a dash (the old split at the first '-' missed it), and a full wheel stem.
    const named = await run({ RECIPE: 'my-app' });
    expect(named.code).toBe(0);
    expect(named.stderr).toContain('cached my-app 1.0 (my_app-1.0-py3-none-any.whl)');
    expect(named.stderr).toContain('cached dep-a 1.0');
    expect(named.stderr).not.toContain('tool');
    expect(await readdir(lockOf('my-app'))).toEqual(allLock);
    const stem = await run({ RECIPE: 'my_app-1.0-py3-none-any' });
    expect(stem.code).toBe(0);
    expect(stem.stderr).toContain('cached dep-a 1.0');
    const version = await run({ RECIPE: 'my-app-1.0' });
    expect(version.code).toBe(0);

    const none = await run({ RECIPE: 'my-app-9.9' });
    expect([none.code, none.stderr.split('\n')[0]]).toEqual([1, `error[WHEEL_NOT_FOUND]: BUILD_REQ=False: no wheel named my-app-9.9 in ${wh}`]);
  });
});

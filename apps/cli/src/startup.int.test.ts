// The CLI as a user runs it: the built `dstack-factory` (bin/ + the esbuild bundle in dist/), one whole process per
// command. A warm build (lock current, every wheel present) starts no child process at all: no Python, no pip, no
// flock. A preload module wraps every child_process entry point and writes what was started to a file; the cold
// build shows that the wrapper does see a spawn.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolatedPipEnv, testPython, writeWheel } from '@dstack/testing';

const exec = promisify(execFile);
const bin = fileURLToPath(new URL('../bin/dstack-factory.cjs', import.meta.url));
const bundle = fileURLToPath(new URL('../dist/main.cjs', import.meta.url));
const python = testPython('3.11');
let dir: string;

const PRELOAD = `
import cp from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { promisify } from 'node:util';
const logged = (name, real) =>
  function (...args) {
    appendFileSync(process.env.SPAWN_LOG, name + ' ' + String(args[0]) + '\\n');
    return real.apply(this, args);
  };
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
  const real = cp[name];
  cp[name] = logged(name, real);
  // promisify(execFile) and promisify(exec) use their own promise versions.
  if (real[promisify.custom]) cp[name][promisify.custom] = logged(name, real[promisify.custom]);
}
syncBuiltinESMExports();
`;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string; spawned: string[] }> {
  const log = path.join(dir, `spawn-${Date.now()}.log`);
  await writeFile(log, '');
  const env = isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache'), SPAWN_LOG: log, NO_COLOR: '1' });
  const run = await exec(
    process.execPath,
    // The global option after the command: `build` stays the first word, so its own bundle runs (dist/build.cjs).
    ['--import', path.join(dir, 'preload.mjs'), bin, ...args, '--log-format', 'json'],
    { cwd: dir, env },
  ).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
  const spawned = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  return { ...run, spawned };
}

beforeAll(async () => {
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: build the CLI first (npm run build)`);
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-startup-'));
  await writeFile(path.join(dir, 'preload.mjs'), PRELOAD);
  const links = path.join(dir, 'links');
  await mkdir(links);
  await writeWheel(links, { name: 'alpha', version: '1.0', requires: ['beta>=2'] });
  await writeWheel(links, { name: 'beta', version: '2.1' });
  await writeFile(path.join(dir, 'app.txt'), `--no-index\n--find-links ${links}\nalpha==1.0\n`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('dstack-factory as a process', () => {
  it('a cold build runs the build script with Python (the spawn is seen)', async () => {
    const r = await cli(['build', './app.txt', '--python', python, '--no-cext', '--jobs', '1']);
    expect(r.stderr).toContain('[cp311-linux_x86_64] done: 2 distributions, 0 cached, 2 added');
    expect(r.code).toBe(0);
    expect(r.spawned.some((s) => s === `spawn ${python}`)).toBe(true);
  });

  it('a warm build starts no child process', async () => {
    const r = await cli(['build', './app.txt', '--python', python, '--no-cext']);
    expect(r.stderr).toContain('[cp311-linux_x86_64] up to date (lock): 2 distributions, 2 cached, 0 added');
    expect(r.code).toBe(0);
    expect(r.spawned).toEqual([]);
  });

  it('a dry run of the warm recipe starts no child process (no Python, no pip) and plans every wheel reused', async () => {
    const r = await cli(['build', './app.txt', '--python', python, '--no-cext', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    expect(r.spawned).toEqual([]);
    const plan = JSON.parse(r.stdout) as { targets: { lock: string; steps: { action: string; name: string }[] }[] };
    expect(plan.targets[0]!.lock).toBe('current');
    expect(plan.targets[0]!.steps.map((s) => `${s.action} ${s.name}`)).toEqual(['reuse alpha', 'reuse beta']);
  });

  it('on a terminal (a pseudo-tty): one live line, lasting lines only for the plan, added wheels and the result', async () => {
    const tty = path.join(dir, 'tty');
    await mkdir(tty);
    await writeFile(path.join(tty, 'app.txt'), `--no-index\n--find-links ${path.join(dir, 'links')}\nalpha==1.0\n`);
    const env: NodeJS.ProcessEnv = { ...isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache'), NO_COLOR: '1', COLUMNS: '200' }) };
    delete env.CI;
    const command = [process.execPath, bin, 'build', './app.txt', '--python', python, '--no-cext', '--jobs', '1']
      .map((a) => `'${a}'`)
      .join(' ');
    // util-linux script(1) runs the command on a new pseudo-terminal and copies what it writes.
    const { stdout } = await exec('script', ['-qec', command, '/dev/null'], { cwd: tty, env });
    // What stays on the screen: on each line, the text after its last "clear line".
    const lasting = stdout
      .split(/\r?\n/)
      .map((l) => l.split('\r\x1b[2K').at(-1)!)
      .filter(Boolean);
    expect(lasting).toEqual([
      '[cp311-linux_x86_64] planned 2 distributions',
      '[cp311-linux_x86_64] added alpha-1.0-py3-none-any.whl',
      '[cp311-linux_x86_64] added beta-2.1-py3-none-any.whl',
      `[cp311-linux_x86_64] done: 2 distributions, 0 cached, 2 added; lock ${path.join(tty, 'locks', 'app', 'pylock.cp3_11_7-manylinux_2_36_x86_64.toml')}`,
    ]);
    expect(stdout).toMatch(/\r\x1b\[2K\[cp311-linux_x86_64\] [0-2]\/2 \d+\.\ds( downloading (alpha|beta))?/);
    expect(stdout).not.toContain('downloading alpha 1.0\r\n');
  });

  it('in a pipe: plain lines, no control characters', async () => {
    const r = await cli(['build', './app.txt', '--python', python, '--no-cext']);
    expect(r.stderr).not.toMatch(/[\r\x1b]/);
  });

  it('keeps V8 code caches per command, uses them, adds what a run compiled beyond them, rewrites one V8 refuses', async () => {
    const home = path.join(dir, 'cc');
    const env = isolatedPipEnv({ XDG_CACHE_HOME: home, NO_COLOR: '1' });
    const v8dir = path.join(home, 'dstack-factory', 'v8');
    const files = async (): Promise<string[]> => (existsSync(v8dir) ? (await readdir(v8dir)).sort() : []);
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => exec(process.execPath, [bin, ...args], { cwd: dir, env: { ...env, ...extra } });
    const build = ['build', './app.txt', '--python', python, '--no-cext'];
    // The recipe built (when this test runs alone), with the cache off: nothing written.
    await run(build, { DSTACK_FACTORY_CODE_CACHE: '0' });
    await run(['--version'], { DSTACK_FACTORY_CODE_CACHE: '0' });
    expect(await files()).toEqual([]);
    await run(['--version']);
    await run([...build, '--dry-run', '--json']);
    await run(['wheelhouse', 'list', '--wheelhouse', './wheelhouse']);
    const names = await files();
    expect(names.map((f) => f.replace(/^(?:[0-9a-z]+-){3}/, '')).sort()).toEqual(['build.bin', 'none.bin', 'wheelhouse.list.bin']);
    // `build` runs its own bundle (dist/build.cjs), the others dist/main.cjs: the file names start with the bundle.
    const ofBuild = names.find((f) => f.endsWith('-build.bin'))!;
    const place = ofBuild.split('-')[0]!;
    expect(names.filter((f) => f.startsWith(`${place}-`))).toEqual([ofBuild]);
    // A write renames a new file into place: another inode. It removes an older build's files of this
    // installation (the bundle's path), not another installation's.
    const cacheOfBuild = path.join(v8dir, ofBuild);
    const dry = await stat(cacheOfBuild);
    await writeFile(path.join(v8dir, `${place}-0ldbuild-0node-build.bin`), 'an older build');
    await writeFile(path.join(v8dir, `0therplace-0build-0node-build.bin`), 'another installation');
    // A real build runs code the dry run did not: the cache is written again, larger.
    const first = await run(build);
    expect(first.stderr).toContain('up to date (lock): 2 distributions');
    const grown = await stat(cacheOfBuild);
    expect(grown.ino).not.toBe(dry.ino);
    expect(grown.size).toBeGreaterThan(dry.size);
    expect(await files()).toEqual(['0therplace-0build-0node-build.bin', ...names].sort());
    // The same build again reads the cache: V8 took it and nothing was added, so it is not written again. The
    // first byte counts the runs left that check for more (4 after a write); then none checks.
    const checksLeft = async (): Promise<number> => (await readFile(cacheOfBuild))[0]!;
    expect(await checksLeft()).toBe(4);
    const again = await run(build);
    expect(again.stderr).toContain('up to date (lock): 2 distributions');
    expect((await stat(cacheOfBuild)).ino).toBe(grown.ino);
    expect(await checksLeft()).toBe(3);
    for (let i = 0; i < 4; i++) await run(build);
    expect(await checksLeft()).toBe(0);
    expect((await stat(cacheOfBuild)).ino).toBe(grown.ino);
    // Bytes V8 refuses: the command runs as usual and the cache is written anew.
    await writeFile(cacheOfBuild, 'not a code cache');
    const refused = await run(build);
    expect(refused.stderr).toContain('up to date (lock): 2 distributions');
    expect((await stat(cacheOfBuild)).size).toBeGreaterThan(10_000);
    // A file others may write is not run: it is replaced by one only this user may write.
    await chmod(cacheOfBuild, 0o666);
    const shared = await stat(cacheOfBuild);
    await run(build);
    const replaced = await stat(cacheOfBuild);
    expect(replaced.ino).not.toBe(shared.ino);
    expect(replaced.mode & 0o777).toBe(0o600);
    // A cache folder that cannot be written is no failure.
    await rm(path.join(home, 'dstack-factory'), { recursive: true });
    await writeFile(path.join(home, 'dstack-factory'), 'a file where the folder would be');
    const { stdout } = await run(['--version']);
    expect(stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('a package kept out of the bundle is loaded when a command needs it (doctor asks an engine through dockerode)', async () => {
    const env = isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache'), NO_COLOR: '1', DOCKER_HOST: `unix://${path.join(dir, 'no-engine.sock')}` });
    const r = await exec(process.execPath, [bin, 'doctor'], { cwd: dir, env }).catch((e: { stdout: string; stderr: string }) => e);
    expect(r.stderr).not.toContain('ERR_VM');
    expect(r.stdout).toMatch(/FAIL engine +unix:\/\/\S+no-engine\.sock: no Docker engine answers \(connect ENOENT/);
  });

  it('`build` first runs dist/build.cjs (global options and build only); any other command line runs dist/main.cjs', async () => {
    // An installation whose dist/ lacks main.cjs: only a command line run by build.cjs works.
    const install = path.join(dir, 'install');
    await mkdir(path.join(install, 'bin'), { recursive: true });
    await mkdir(path.join(install, 'dist'));
    const cli = path.dirname(path.dirname(bin));
    await writeFile(path.join(install, 'package.json'), await readFile(path.join(cli, 'package.json')));
    await writeFile(path.join(install, 'bin', 'dstack-factory.cjs'), await readFile(bin));
    await writeFile(path.join(install, 'dist', 'build.cjs'), await readFile(path.join(cli, 'dist', 'build.cjs')));
    await cp(path.join(cli, 'dist', 'images'), path.join(install, 'dist', 'images'), { recursive: true });
    // The packages kept out of the bundle (pino): the workspace's.
    await symlink(path.join(cli, '..', '..', 'node_modules'), path.join(install, 'node_modules'));
    const env = isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache'), NO_COLOR: '1' });
    const run = (args: string[]) =>
      exec(process.execPath, [path.join(install, 'bin', 'dstack-factory.cjs'), ...args], { cwd: dir, env }).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    const built = await run(['build', './app.txt', '--python', python, '--no-cext']);
    expect(built.stderr).toMatch(/\] (done|up to date \(lock\)): 2 distributions/);
    expect(built.code).toBe(0);
    const help = await run(['build', '--help']);
    expect(help.stdout).toMatch(/^Usage: dstack-factory build \[options\] \[recipe\]/);
    for (const args of [['-v', 'build', './app.txt'], ['--version'], ['wheelhouse', 'build']]) {
      const r = await run(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(path.join(install, 'dist', 'main.cjs'));
    }
  });

  it('the built --version prints the version', async () => {
    const { stdout } = await exec(process.execPath, [bin, '--version']);
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(stdout).toBe(`${pkg.version}\n`);
  });
});

// `build --dry-run` and `build --upgrade NAME` with real pip, offline, and `lock diff` of the two locks: the plan
// writes nothing (no wheelhouse, no lock, no cache file), a current lock is planned without pip, and an upgrade
// changes exactly the project it names.
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { bootstrapWheelhouse, isolatedPipEnv, makeSdist, testPython, writePurePackage, writeWheel } from '@dstack/testing';
import { runCli } from '../run-cli.test-support.js';

vi.setConfig({ testTimeout: 300_000 });
const python = testPython('3.11');
let dir: string;
const lockName = 'pylock.cp3_11_7-manylinux_2_36_x86_64.toml';

const cli = (args: string[]) =>
  runCli(['--quiet', '--log-format', 'json', ...args], {
    env: { NO_COLOR: '1', ...isolatedPipEnv({ XDG_CACHE_HOME: path.join(dir, 'cache') }) },
    cwd: dir,
  });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-plan-cli-'));
  const links = path.join(dir, 'links');
  await mkdir(links);
  await writeWheel(links, { name: 'alpha', version: '1.0', requires: ['beta>=2'] });
  await writeWheel(links, { name: 'beta', version: '2.1' });
  await writeWheel(links, { name: 'gamma', version: '1.0' });
  await writeFile(path.join(dir, 'app.txt'), `--no-index\n--find-links ${links}\nalpha\ngamma\n`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('build --dry-run, build --upgrade, lock diff', () => {
  it('a dry run without a lock resolves with pip and writes nothing', async () => {
    const r = await cli(['build', './app.txt', '--python', python, '--no-cext', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const links = path.join(dir, 'links');
    expect(r.stdout.split('\n')).toEqual([
      `[cp311-linux_x86_64] lock ${path.join('locks', 'app', lockName)}: not written yet: pip resolves`,
      `  download alpha 1.0  alpha-1.0-py3-none-any.whl from file://${links}/alpha-1.0-py3-none-any.whl`,
      `  download gamma 1.0  gamma-1.0-py3-none-any.whl from file://${links}/gamma-1.0-py3-none-any.whl`,
      `  download beta 2.1   beta-2.1-py3-none-any.whl from file://${links}/beta-2.1-py3-none-any.whl`,
      '[cp311-linux_x86_64] 3 distributions: 0 reused, 3 downloaded, 0 built',
      '',
    ]);
    // Nothing written: no wheelhouse, no lock, no cache (not even the interpreter's target record).
    expect((await readdir(dir)).sort()).toEqual(['app.txt', 'links']);
  });

  it('a dry run of a current lock lists each wheel reused with its sha256 and builder; --json for machines', async () => {
    const built = await cli(['build', './app.txt', '--python', python, '--no-cext']);
    expect(built.code).toBe(0);
    const r = await cli(['build', './app.txt', '--python', python, '--no-cext', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.ok).toBe(true);
    expect(plan.targets[0].lock).toBe('current');
    expect(plan.targets[0].lockFile).toBe(path.join(dir, 'locks', 'app', lockName));
    expect(plan.targets[0].steps.map((s: { action: string; name: string; version: string; from: string }) => [s.action, s.name, s.version, s.from])).toEqual([
      ['reuse', 'alpha', '1.0', path.join(dir, 'wheelhouse', 'alpha-1.0-py3-none-any.whl')],
      ['reuse', 'beta', '2.1', path.join(dir, 'wheelhouse', 'beta-2.1-py3-none-any.whl')],
      ['reuse', 'gamma', '1.0', path.join(dir, 'wheelhouse', 'gamma-1.0-py3-none-any.whl')],
    ]);
    for (const s of plan.targets[0].steps) {
      expect(s.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(s.builder).toEqual({ executor: 'local', interpreter: `${python} (cp 3.11.7)`, target: 'cp311-linux_x86_64' });
    }
  });

  it('--upgrade alpha re-resolves alpha only; lock diff of the two locks names exactly alpha', async () => {
    const lock = path.join(dir, 'locks', 'app', lockName);
    await copyFile(lock, path.join(dir, 'before.toml'));
    await writeWheel(path.join(dir, 'links'), { name: 'alpha', version: '1.1', requires: ['beta>=2'] });
    await writeWheel(path.join(dir, 'links'), { name: 'beta', version: '2.2' });
    await writeWheel(path.join(dir, 'links'), { name: 'gamma', version: '1.1' });

    const plan = await cli(['build', './app.txt', '--python', python, '--no-cext', '--upgrade', 'alpha', '--dry-run']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('  kept from the lock: beta==2.1 gamma==1.0\n');
    expect(plan.stdout).toMatch(/^ {2}download alpha 1\.1 +alpha-1\.1-py3-none-any\.whl from file:/m);

    const r = await cli(['build', './app.txt', '--python', python, '--no-cext', '--upgrade', 'alpha']);
    expect(r.code).toBe(0);
    const diff = await cli(['lock', 'diff', 'before.toml', lock]);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toMatch(/^changed alpha 1\.0 -> 1\.1 \(sha256 [0-9a-f]{12} -> [0-9a-f]{12}\)\n1 changed, 0 added, 0 removed, 2 unchanged\n$/);
    const json = JSON.parse((await cli(['lock', 'diff', 'before.toml', lock, '--json'])).stdout);
    expect(json.changed.map((c: { name: string; from: { version: string }; to: { version: string } }) => [c.name, c.from.version, c.to.version])).toEqual([['alpha', '1.0', '1.1']]);
    expect([json.added, json.removed, json.unchanged]).toEqual([[], [], 2]);
  });

  it('a source to build is planned with its sdist (URL and sha256) and builder; once built, reused with the same source', async () => {
    const spec = { name: 'srcpkg', version: '1.0' };
    const wheelhouse = path.join(dir, 'wh-src');
    await bootstrapWheelhouse(python, wheelhouse);
    const sdist = await makeSdist(await writePurePackage(path.join(dir, 'srcpkgs'), spec), path.join(dir, 'sdists'), spec);
    const sha256 = createHash('sha256').update(await readFile(sdist)).digest('hex');
    await writeFile(path.join(dir, 'src.txt'), `--no-index\n--find-links ${path.join(dir, 'sdists')}\nsrcpkg==1.0\n`);
    const args = ['build', './src.txt', '--python', python, '--no-cext', '--wheelhouse', wheelhouse];
    const cold = await cli([...args, '--dry-run', '--json']);
    expect(cold.code).toBe(0);
    const step = JSON.parse(cold.stdout).targets[0].steps[0];
    expect(step).toMatchObject({ name: 'srcpkg', version: '1.0', action: 'build', filename: null, source: { kind: 'sdist', url: `file://${sdist}`, sha256 } });
    expect(step.builder).toMatchObject({ executor: 'local', target: 'cp311-linux_x86_64' });
    const text = await cli([...args, '--dry-run']);
    expect(text.stdout).toContain(`  build    srcpkg 1.0  from sdist file://${sdist} sha256:${sha256.slice(0, 12)} by local, `);

    expect((await cli(args)).code).toBe(0);
    const warm = JSON.parse((await cli([...args, '--dry-run', '--json'])).stdout).targets[0];
    expect(warm.lock).toBe('current');
    expect(warm.steps[0]).toMatchObject({ action: 'reuse', filename: 'srcpkg-1.0-py3-none-any.whl', source: { kind: 'sdist', url: `file://${sdist}`, sha256 } });
  });

  it.each([
    [['--upgrade', 'delta'], `error[LOCK_UPGRADE_INVALID]: --upgrade delta: not in the lock {LOCK}`],
    [['--upgrade', 'alpha', '--refresh'], 'error[USAGE]: --upgrade keeps the rest of the lock, --refresh ignores it: give one'],
    [['--json'], 'error[USAGE]: --json prints the plan of --dry-run'],
  ])('%j is refused', async (extra, message) => {
    const r = await cli(['build', './app.txt', '--python', python, '--no-cext', ...extra]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toBe(message.replace('{LOCK}', path.join(dir, 'locks', 'app', lockName)));
  });

  it('lock diff of an unreadable file says which', async () => {
    const r = await cli(['lock', 'diff', 'nope.toml', 'before.toml']);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe(`error[LOCK_UNREADABLE]: cannot read ${path.join(dir, 'nope.toml')}: ENOENT: no such file or directory, open '${path.join(dir, 'nope.toml')}'`);
  });
});

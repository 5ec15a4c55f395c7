import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdtemp, mkdir, rm, symlink, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openWheelhouse } from '@dstack/wheelhouse';
import { testPython, writeWheel } from '@dstack/testing';
import { interpreterCandidates, type Check } from './doctor.js';
import { runCli } from '../run-cli.test-support.js';

let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-doctor-'));
  // A pyenv root with one interpreter (the test target 3.11) and no python3 on PATH.
  await mkdir(path.join(dir, 'pyenv/versions/3.11.7/bin'), { recursive: true });
  await symlink(testPython('3.11'), path.join(dir, 'pyenv/versions/3.11.7/bin/python'));
  await mkdir(path.join(dir, 'pyenv/versions/2.7.18/bin'), { recursive: true });
  await writeFile(path.join(dir, 'pyenv/versions/2.7.18/bin/python'), '');
  env = {
    PATH: '/usr/bin:/bin',
    HOME: dir,
    PYENV_ROOT: path.join(dir, 'pyenv'),
    DOCKER_HOST: `unix://${dir}/no-engine.sock`,
    NO_COLOR: '1',
  };
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('interpreterCandidates', () => {
  test('finds python3 on PATH and pyenv 3.x versions, never Python 2', () => {
    const found = interpreterCandidates({ PATH: '', PYENV_ROOT: path.join(dir, 'pyenv') });
    expect(found).toEqual([path.join(dir, 'pyenv/versions/3.11.7/bin/python')]);
  });
});

describe('dstack-factory doctor', () => {
  test('reports the interpreter, a missing engine with its fix, and a healthy wheelhouse', async () => {
    const wh = path.join(dir, 'wh-ok');
    const store = openWheelhouse(wh);
    await store.add(await writeWheel(dir, { name: 'alpha', version: '1.0' }));
    const r = await runCli(['doctor', '--json', '--wheelhouse', wh], { env: { ...env, PATH: '' }, cwd: dir });
    expect(r.code).toBe(0);
    const checks = JSON.parse(r.stdout) as Check[];
    const py = checks.find((c) => c.area === 'interpreter')!;
    expect(py).toMatchObject({ ok: true, name: path.join(dir, 'pyenv/versions/3.11.7/bin/python') });
    expect(py.detail).toMatch(/^Python 3\.11\.\d+, target cp311-linux_x86_64, best tag cp311-cp311-manylinux_2_\d+_x86_64, pip \d+/);
    const engine = checks.find((c) => c.area === 'engine')!;
    expect(engine.ok).toBe(false);
    expect(engine.detail).toContain('no Docker engine answers');
    expect(engine.fix).toContain('DOCKER_HOST');
    expect(checks.find((c) => c.area === 'wheelhouse')).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^1 wheels of 1 projects, [\d.]+ MB, all hashes verified$/),
    });
  });

  test('a corrupt wheelhouse fails with the file named and exits 1', async () => {
    const wh = path.join(dir, 'wh-bad');
    const store = openWheelhouse(wh);
    const { entry } = await store.add(await writeWheel(dir, { name: 'beta', version: '2.0' }));
    await appendFile(store.pathOf(entry.filename), 'tampered');
    const r = await runCli(['doctor', '--wheelhouse', wh], { env: { ...env, PATH: '' }, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL wheelhouse {2}.*wh-bad: 1 corrupt: beta-2\.0-py3-none-any\.whl \(/m);
    expect(r.stdout).toContain('fix: remove them');
  });

  test('no usable interpreter is a required failure', async () => {
    const r = await runCli(['doctor', '--json', '--wheelhouse', path.join(dir, 'none')], {
      env: { ...env, PATH: '', PYENV_ROOT: path.join(dir, 'empty') },
      cwd: dir,
    });
    expect(r.code).toBe(1);
    const checks = JSON.parse(r.stdout) as Check[];
    expect(checks[0]).toMatchObject({ area: 'interpreter', ok: false, required: true });
  });
});

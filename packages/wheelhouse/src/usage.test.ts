// The README's Usage, run: a wheelhouse filled, the wheel pip would pick for this machine's Python, a static index.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { testPython, writeWheel } from '@dstack/testing';
import { FsWheelStore, bestWheel, detectTarget, writeStaticIndex } from './index.js';

let tmp: string;
const wheels: string[] = [];
const python = testPython('3.11');

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'wh-usage-'));
  await mkdir(path.join(tmp, 'dist'));
  for (const tag of ['py3-none-any', 'cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64', 'cp310-cp310-manylinux_2_17_x86_64'])
    wheels.push(await writeWheel(path.join(tmp, 'dist'), { name: 'multi', version: '1.0', tag }));
});
const cwd = process.cwd();
afterAll(async () => {
  process.chdir(cwd);
  await rm(tmp, { recursive: true, force: true });
});

it('README usage', async () => {
  process.chdir(tmp);
  // README usage: begin
  const store = new FsWheelStore('wheelhouse'); // or openWheelhouse(): $WHEELHOUSE, else ./wheelhouse
  for (const wheel of wheels) {
    const { status } = await store.add(wheel, { builtBy: { executor: 'local' } });
    expect(status).toBe('added'); // 'present' the second time; other bytes under the same name: WHEEL_CONFLICT
  }

  const target = await detectTarget(python); // e.g. /root/.pyenv/versions/3.11.7/bin/python
  const best = bestWheel(await store.list(), { name: 'multi', specifier: '' }, target);
  expect(best?.filename).toBe('multi-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'); // pip's pick

  await writeStaticIndex(store, 'site'); // pip install --index-url file://$PWD/site/simple multi
  expect(existsSync('site/simple/multi/index.html')).toBe(true);
  // README usage: end
});

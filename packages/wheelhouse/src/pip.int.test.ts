// Real pip reads our static index through file:// (PEP 503 HTML, PEP 658 metadata), and picks the same wheel
// as bestWheel for each interpreter.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolatedPipEnv, writeWheel } from '@dstack/testing';
import { bestWheel, detectTarget, FsWheelStore, writeStaticIndex } from './index.js';

const run = promisify(execFile);
const PYTHONS = { '3.11': '/root/.pyenv/versions/3.11.7/bin/python', '3.10': '/root/.pyenv/versions/3.10.13/bin/python' };
const MULTI_TAGS = [
  'py3-none-any',
  'cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64',
  'cp311-abi3-manylinux_2_28_x86_64',
  'cp311-cp311-manylinux_2_99_x86_64',
  'cp310-cp310-manylinux_2_17_x86_64',
  'cp311-cp311-musllinux_1_2_x86_64',
];

let tmp: string;
let store: FsWheelStore;
let indexUrl: string;

async function pip(python: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(python, ['-m', 'pip', ...args], { env: isolatedPipEnv(), maxBuffer: 64 * 1024 * 1024 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`pip ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

beforeAll(async () => {
  for (const python of Object.values(PYTHONS)) {
    try {
      await run(python, ['-m', 'pip', '--version']);
    } catch {
      throw new Error(`${python} with pip is needed (pyenv install 3.11.7 / 3.10.13)`);
    }
  }
  tmp = await mkdtemp(join(tmpdir(), 'wh-pip-'));
  const src = join(tmp, 'src');
  await mkdir(src);
  store = new FsWheelStore(join(tmp, 'wheelhouse'));
  const specs = [
    { name: 'chain-a', version: '1.0', requires: ['chain-b'] },
    { name: 'chain_b', version: '1.0', requires: ['Chain.C>=1.5'] },
    { name: 'chain-c', version: '1.0' },
    { name: 'chain-c', version: '2.0' },
    { name: 'newpy', version: '1.0', requiresPython: '>=3.8' },
    { name: 'newpy', version: '2.0', requiresPython: '>=3.99' },
    ...MULTI_TAGS.map((tag) => ({ name: 'multi', version: '1.0', tag })),
  ];
  for (const spec of specs) await store.add(await writeWheel(src, spec));
  await writeStaticIndex(store, join(tmp, 'index'));
  indexUrl = pathToFileURL(join(tmp, 'index', 'simple')).href;
}, 120_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe.each(Object.entries(PYTHONS))('pip on Python %s', (version, python) => {
  it('installs a dependency chain and the wheel bestWheel picks, into a fresh venv', async () => {
    const venv = join(tmp, `venv-${version}`);
    await run(python, ['-m', 'venv', '--without-pip', venv]);
    const vpy = join(venv, 'bin', 'python');
    const out = await pip(python, ['--python', vpy, 'install', '--no-cache-dir', '--index-url', indexUrl, 'chain-a', 'multi', 'newpy']);
    expect(out).toContain('Successfully installed');
    const { stdout } = await run(vpy, [
      '-c',
      'import json, chain_a, chain_b, chain_c, multi, newpy; print(json.dumps([chain_c.VERSION, multi.TAG, newpy.VERSION]))',
    ]);
    const [c, multiTag, newpy] = JSON.parse(stdout) as string[];
    const target = await detectTarget(vpy);
    const entries = await store.list();
    const best = (name: string, specifier = '') => bestWheel(entries, { name, specifier }, target)!.filename;
    expect(c).toBe('2.0');
    expect(best('chain-c', '>=1.5')).toBe('chain_c-2.0-py3-none-any.whl');
    expect(newpy).toBe('1.0'); // 2.0 requires Python >= 3.99
    expect(best('newpy')).toBe('newpy-1.0-py3-none-any.whl');
    expect(`multi-1.0-${multiTag}.whl`).toBe(best('multi'));
    expect(multiTag).toBe(version === '3.11' ? 'cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64' : 'cp310-cp310-manylinux_2_17_x86_64');
  });

  it('pip download (--only-binary :all:) fetches the same files', async () => {
    const dest = join(tmp, `download-${version}`);
    await pip(python, ['download', '--no-cache-dir', '--only-binary', ':all:', '--index-url', indexUrl, '-d', dest, 'chain-a', 'multi']);
    const target = await detectTarget(python);
    const entries = await store.list();
    expect((await readdir(dest)).sort()).toEqual(
      [
        'chain_a-1.0-py3-none-any.whl',
        'chain_b-1.0-py3-none-any.whl',
        'chain_c-2.0-py3-none-any.whl',
        bestWheel(entries, { name: 'multi', specifier: '' }, target)!.filename,
      ].sort(),
    );
  });
});

it('pip reads the PEP 658 metadata files while resolving, when the static tree is served over HTTP', async () => {
  // pip takes file:// links as local files and never asks for metadata: serve the same tree with http.server.
  const server = spawn(PYTHONS['3.11'], ['-u', '-m', 'http.server', '--bind', '127.0.0.1', '0', '--directory', join(tmp, 'index')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const port = await new Promise<string>((resolve, reject) => {
      server.stdout.on('data', (d: Buffer) => {
        const m = /port (\d+)/.exec(String(d));
        if (m) resolve(m[1]!);
      });
      server.once('exit', (code) => reject(new Error(`http.server exited with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}/simple`;
    const out = await pip(PYTHONS['3.11'], ['install', '-vv', '--dry-run', '--ignore-installed', '--no-cache-dir', '--index-url', url, '--target', join(tmp, 't'), 'chain-a']);
    expect(out).toContain(`Obtaining dependency information for chain-b from ${url}/chain-b/chain_b-1.0-py3-none-any.whl.metadata`);
    expect(out).toContain(`"GET /simple/chain-c/chain_c-2.0-py3-none-any.whl.metadata HTTP/1.1" 200`);
    expect(/Would install (.*)/.exec(out)?.[1]?.split(' ').sort()).toEqual(['chain-a-1.0', 'chain-c-2.0', 'chain_b-1.0']);
  } finally {
    server.kill('SIGTERM');
  }
});

it('wheels pip writes straight into a wheelhouse folder are picked up (validated and recorded when listed)', async () => {
  const dir = join(tmp, 'pip-wrote-here');
  await pip(PYTHONS['3.11'], ['download', '--no-cache-dir', '--only-binary', ':all:', '--index-url', indexUrl, '-d', dir, 'chain-a']);
  const theirs = new FsWheelStore(dir);
  const listed = await theirs.list();
  expect(listed.map((e) => [e.filename, e.builtBy])).toEqual([
    ['chain_a-1.0-py3-none-any.whl', null],
    ['chain_b-1.0-py3-none-any.whl', null],
    ['chain_c-2.0-py3-none-any.whl', null],
  ]);
  for (const e of listed) expect(e.sha256).toBe((await store.get(e.filename))!.sha256);
  expect((await theirs.verify()).corrupt).toEqual([]);
  expect((await readdir(join(dir, '.dstack', 'wheels'))).sort()).toEqual(listed.map((e) => `${e.filename}.json`));
});

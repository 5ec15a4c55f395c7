import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../cache/blob-cache.js';
import { validateImage } from '../../validate/validate-image.js';
import { appendLayers, emptyImage } from '../../core/mutate.js';
import { writeSegmentedWheelsLayer } from './segments.js';
import { hostBytecodeCompiler, type BytecodeCompiler } from './bytecode.js';
import { umociUnpack } from '@dstack/testing';
import { installerFixtures, makeWheel } from '../../fixtures/wheel.test-support.js';
import { writeOciLayout } from '../../sinks/oci-layout.js';

const run = promisify(execFile);
const scheme = { prefix: '/env', pythonVersion: '3.11' };
let tmp: string;
let wheels: string[];

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-seg-'));
  const dir = path.join(tmp, 'wheels');
  await fs.mkdir(dir);
  wheels = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(dir, w));
  wheels.push(await makeWheel(dir, { name: 'gamma', version: '1.0', files: { 'gamma/__init__.py': 'V = 1\n' } }));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const listing = async (file: string): Promise<string[]> =>
  (await run('sh', ['-c', `gzip -dc < ${file} | tar -t`], { maxBuffer: 1 << 24 })).stdout.trim().split('\n');

describe('per-wheel segments', () => {
  it('rebuilds only the changed wheel, and gives what a build from scratch gives', async () => {
    const cache = new BlobCache(path.join(tmp, 'cache'));
    const first = await writeSegmentedWheelsLayer(wheels.map((p) => ({ path: p })), { scheme, cache });
    expect(first.built).toHaveLength(3);
    expect(first.reused).toHaveLength(0);
    // The blob is one gzip stream (several members) whose bytes hash to the diffID, and a valid tar.
    const { stdout } = await run('sh', ['-c', `gzip -dc < ${cache.pathOf(first.layer.digest)} | sha256sum`]);
    expect(`sha256:${stdout.split(' ')[0]}`).toBe(first.layer.diffId);
    const files = await listing(cache.pathOf(first.layer.digest));
    expect(files).toContain('env/lib/python3.11/site-packages/gamma/__init__.py');
    expect(files).toContain('env/bin/alpha-cli');
    await validateImage(appendLayers(emptyImage(), [{ layer: first.layer }]));

    // gamma 2.0 replaces gamma 1.0: one wheel installed, two reused.
    const g2 = await makeWheel(path.join(tmp, 'wheels'), { name: 'gamma', version: '2.0', files: { 'gamma/__init__.py': 'V = 2\n' } });
    const next = wheels.filter((w) => !w.includes('gamma-1.0')).concat(g2);
    const second = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache });
    expect(second.built).toEqual(['gamma-2.0-py3-none-any.whl']);
    expect(second.reused).toEqual(['Beta_Pkg-2.0-cp311-cp311-linux_x86_64.whl', 'alpha-1.0-py3-none-any.whl']);
    const scratch = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache: new BlobCache(path.join(tmp, 'scratch')) });
    expect(scratch.layer.digest).toBe(second.layer.digest);
    expect(scratch.layer.diffId).toBe(second.layer.diffId);
    expect(second.layer.digest).not.toBe(first.layer.digest);

    // umoci applies the multi-member, repeated-directory layer.
    const oci = path.join(tmp, 'oci');
    const image = appendLayers(emptyImage(), [{ layer: second.layer }]);
    await validateImage(image);
    await writeOciLayout(image, oci, { ref: 'x' });
    const { rootfs } = await umociUnpack(`${oci}:x`, path.join(tmp, 'bundle'));
    expect(await fs.readFile(path.join(rootfs, 'env/lib/python3.11/site-packages/gamma/__init__.py'), 'utf8')).toBe('V = 2\n');
  });

  it('plain (uncompressed) segments: digest = diffID, reused from the previous blob, rebuilt when it is gone', async () => {
    const cache = new BlobCache(path.join(tmp, 'cache-plain'));
    const opts = { scheme, cache, compression: 'none' as const };
    const first = await writeSegmentedWheelsLayer(wheels.map((p) => ({ path: p })), opts);
    expect(first.layer.digest).toBe(first.layer.diffId);
    expect(first.layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    const { stdout } = await run('sha256sum', [cache.pathOf(first.layer.digest)]);
    expect(`sha256:${stdout.split(' ')[0]}`).toBe(first.layer.digest);
    const { stdout: names } = await run('tar', ['-tf', cache.pathOf(first.layer.digest)]);
    expect(names.split('\n')).toContain('env/lib/python3.11/site-packages/gamma/__init__.py');

    const g3 = await makeWheel(path.join(tmp, 'wheels'), { name: 'gamma', version: '3.0', files: { 'gamma/__init__.py': 'V = 3\n' } });
    const next = wheels.filter((w) => !w.includes('gamma-1.0')).concat(g3);
    const second = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), opts);
    expect(second.built).toEqual(['gamma-3.0-py3-none-any.whl']);
    const scratch = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { ...opts, cache: new BlobCache(path.join(tmp, 'scratch-plain')) });
    expect(second.layer.digest).toBe(scratch.layer.digest);

    // The segments now live in the second blob: without it, every wheel is installed again, to the same bytes.
    await fs.rm(cache.pathOf(second.layer.digest));
    const third = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), opts);
    expect(third.built).toHaveLength(3);
    expect(third.layer.digest).toBe(second.layer.digest);
  });

  it('installs a wheel again when the blob holding its segment was cut short', async () => {
    const cache = new BlobCache(path.join(tmp, 'cache-short'));
    const first = await writeSegmentedWheelsLayer(wheels.map((p) => ({ path: p })), { scheme, cache });
    const blob = cache.pathOf(first.layer.digest);
    await fs.truncate(blob, Math.floor((await fs.stat(blob)).size / 2));
    const again = await writeSegmentedWheelsLayer(wheels.map((p) => ({ path: p })), { scheme, cache });
    expect(again.reused.length).toBeLessThan(3);
    expect(again.built.length).toBeGreaterThan(0);
    expect(again.layer.digest).toBe(first.layer.digest);
  });

  it('keeps the .pyc in each wheel\'s segment: a warm build starts no interpreter, a changed wheel compiles only itself', async () => {
    const cache = new BlobCache(path.join(tmp, 'cache-pyc'));
    const compiled: string[][] = [];
    const host = hostBytecodeCompiler('/root/.pyenv/versions/3.11.7/bin/python', 'cpython-311');
    // The real compiler, watched: which sources each build hands it.
    const watched: BytecodeCompiler = {
      ...host,
      compile: async (chunks, onResult) => {
        const seen: string[] = [];
        async function* tap() {
          for await (const c of chunks) {
            seen.push(...c.map((s) => s.path.replace(/^.*site-packages\//, '')));
            yield c;
          }
        }
        await host.compile(tap(), onResult);
        compiled.push(seen);
      },
    };
    let asked = 0;
    const bytecode = { cacheTag: 'cpython-311', compiler: async () => (asked++, watched) };
    const first = await writeSegmentedWheelsLayer(wheels.map((p) => ({ path: p })), { scheme, cache, bytecode });
    expect(first.built).toHaveLength(3);
    expect(compiled).toEqual([['beta_extra.py', 'beta_pkg/__init__.py', 'alpha/__init__.py', 'alpha/cli.py', 'gamma/__init__.py']]); // wheels in file-name order
    expect(await listing(cache.pathOf(first.layer.digest))).toContain('env/lib/python3.11/site-packages/gamma/__pycache__/__init__.cpython-311.pyc');

    const warm = await writeSegmentedWheelsLayer(wheels.map((p) => ({ path: p })), { scheme, cache, bytecode });
    expect(warm.reused).toHaveLength(3);
    expect(warm.layer.digest).toBe(first.layer.digest);
    expect(asked).toBe(1);

    const g4 = await makeWheel(path.join(tmp, 'wheels'), { name: 'gamma', version: '4.0', files: { 'gamma/__init__.py': 'V = 4\n' } });
    const next = wheels.filter((w) => !w.includes('gamma-1.0')).concat(g4);
    const changed = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache, bytecode });
    expect(changed.built).toEqual(['gamma-4.0-py3-none-any.whl']);
    expect(compiled[1]).toEqual(['gamma/__init__.py']);
    // The same bytes as a cold build in another cache; and without bytecode, other segments (not these).
    const cold = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache: new BlobCache(path.join(tmp, 'cache-pyc-cold')), bytecode });
    expect(cold.layer.digest).toBe(changed.layer.digest);
    const none = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache });
    expect(none.built).toHaveLength(3);
    expect(await listing(cache.pathOf(none.layer.digest))).not.toContain('env/lib/python3.11/site-packages/gamma/__pycache__/__init__.cpython-311.pyc');
    // Keyed by the target's full version too: a base of another patch release does not take these .pyc.
    const for2 = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache, bytecode: { ...bytecode, pythonFullVersion: '3.11.2' } });
    expect(for2.built).toHaveLength(3);
    const for9 = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache, bytecode: { ...bytecode, pythonFullVersion: '3.11.9' } });
    expect(for9.built).toHaveLength(3);
    const for2Again = await writeSegmentedWheelsLayer(next.map((p) => ({ path: p })), { scheme, cache, bytecode: { ...bytecode, pythonFullVersion: '3.11.2' } });
    expect(for2Again.reused).toHaveLength(3);
    expect(for2Again.layer.digest).toBe(for2.layer.digest);
  }, 60_000);

  it('writes each segment as its .pyc come back; a module that does not compile leaves no __pycache__ (directories written again)', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'broken-'));
    const delta = await makeWheel(dir, { name: 'delta', version: '1.0', files: { 'delta/__init__.py': 'V = 1\n', 'delta/legacy/py2.py': 'print "python 2"\n' } });
    const set = [...wheels, delta].map((p) => ({ path: p }));
    const host = hostBytecodeCompiler('/root/.pyenv/versions/3.11.7/bin/python', 'cpython-311');
    const bytecode = { cacheTag: 'cpython-311', compiler: async () => host };
    const cache = new BlobCache(path.join(dir, 'cache'));
    const told: string[] = [];
    const first = await writeSegmentedWheelsLayer(set, { scheme, cache, bytecode, onWheel: (w, done, total) => told.push(`${w} ${done}/${total}`) });
    // Progress counts each wheel once: the second pass copies, it does not tell again.
    expect(told).toEqual(['Beta_Pkg-2.0-cp311-cp311-linux_x86_64.whl', 'alpha-1.0-py3-none-any.whl', 'delta-1.0-py3-none-any.whl', 'gamma-1.0-py3-none-any.whl'].map((w, i) => `${w} ${i + 1}/4`));
    const names = await listing(cache.pathOf(first.layer.digest));
    const site = 'env/lib/python3.11/site-packages';
    expect(names).toContain(`${site}/delta/__pycache__/__init__.cpython-311.pyc`);
    expect(names).toContain(`${site}/delta/legacy/py2.py`);
    expect(names.filter((n) => n.startsWith(`${site}/delta/legacy/`))).toEqual([`${site}/delta/legacy/`, `${site}/delta/legacy/py2.py`]);
    // Directories first, each once: the directories segment was written again without the __pycache__.
    const firstFile = names.findIndex((n) => !n.endsWith('/'));
    expect(names.slice(firstFile).filter((n) => n.endsWith('/'))).toEqual([]);
    expect(new Set(names).size).toBe(names.length);
    const { stdout } = await run('sh', ['-c', `gzip -dc < ${cache.pathOf(first.layer.digest)} | sha256sum`]);
    expect(`sha256:${stdout.split(' ')[0]}`).toBe(first.layer.diffId);
    await validateImage(appendLayers(emptyImage(), [{ layer: first.layer }]));
    // The first pass's blob is not kept; the ranges recorded are those of the final blob: a change elsewhere
    // reuses delta's segment and gives what a build from scratch gives.
    expect((await fs.readdir(path.join(dir, 'cache', 'blobs', 'sha256'))).length).toBe(1);
    const g5 = await makeWheel(dir, { name: 'gamma', version: '5.0', files: { 'gamma/__init__.py': 'V = 5\n' } });
    const next = set.filter((w) => !w.path.includes('gamma-1.0')).concat({ path: g5 });
    const changed = await writeSegmentedWheelsLayer(next, { scheme, cache, bytecode });
    expect(changed.built).toEqual(['gamma-5.0-py3-none-any.whl']);
    const scratch = await writeSegmentedWheelsLayer(next, { scheme, cache: new BlobCache(path.join(dir, 'scratch')), bytecode });
    expect(scratch.layer.digest).toBe(changed.layer.digest);
  }, 60_000);

  it('leaves nothing behind when the compiler fails after its last answer (no blob, no temp file, no record)', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'dies-'));
    const cache = new BlobCache(path.join(dir, 'cache'));
    const dying: BytecodeCompiler = {
      cacheTag: 'cpython-311',
      description: 'a compiler that fails at its exit',
      compile: async (chunks, onResult) => {
        let c = 0;
        for await (const chunk of chunks) {
          for (let f = 0; f < chunk.length; f++) await onResult(c, f, Buffer.from('not really bytecode'));
          c++;
        }
        throw new Error('the compiler exited with 1 after its last answer');
      },
    };
    await expect(writeSegmentedWheelsLayer(wheels.map((p) => ({ path: p })), { scheme, cache, bytecode: { cacheTag: 'cpython-311', compiler: async () => dying } })).rejects.toThrow(
      'the compiler exited with 1 after its last answer',
    );
    const left = async (sub: string) => fs.readdir(path.join(dir, 'cache', sub)).catch(() => []);
    expect(await left('tmp')).toEqual([]);
    expect(await left('blobs/sha256')).toEqual([]);
    expect(await left('keys/segments')).toEqual([]);
  });

  it('refuses two wheels writing one path, cached or not', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'clash-'));
    const a = await makeWheel(dir, { name: 'one', version: '1', files: { 'shared/x.py': 'a' } });
    const b = await makeWheel(dir, { name: 'two', version: '1', files: { 'shared/x.py': 'b' } });
    const cache = new BlobCache(path.join(dir, 'c'));
    await writeSegmentedWheelsLayer([{ path: a }], { scheme, cache });
    await expect(writeSegmentedWheelsLayer([{ path: a }, { path: b }], { scheme, cache })).rejects.toThrow(
      'two-1-py3-none-any.whl and one-1-py3-none-any.whl both install /env/lib/python3.11/site-packages/shared/x.py',
    );
  });
});

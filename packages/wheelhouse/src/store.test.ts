import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWheel, describeWheelStoreContract, wheelFilenameOf, writeWheel } from '@dstack/testing';
import { FsWheelStore, openWheelhouse, WheelError } from './index.js';

let tmp: string;
let src: string; // wheels to add
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const text = async (s: NodeJS.ReadableStream) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wh-store-'));
  src = join(tmp, 'src');
  await (await import('node:fs/promises')).mkdir(src);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function freshStore(name: string) {
  return new FsWheelStore(join(tmp, name));
}

describe('FsWheelStore', () => {
  it('keeps one set of bytes per release whatever the spelling (canonical name, PEP 440 equality, tags)', async () => {
    const store = await freshStore('spellings');
    const mine = await buildWheel({ name: 'demo_pkg', version: '1.0.0' });
    const theirs = await buildWheel({ name: 'demo_pkg', version: '1.0.0', files: { 'demo_pkg/__init__.py': 'EVIL = 1\n' } });
    const add = (bytes: Buffer, filename: string, extra = {}) => store.add(Readable.from([bytes]), { filename, ...extra });
    const first = await add(mine, 'Demo_Pkg-1.0.0-py3-none-any.whl');
    expect(first.entry.filename).toBe('demo_pkg-1.0.0-py3-none-any.whl'); // PEP 427 escaped
    for (const spelling of ['Demo_Pkg-1.0.0-py3-none-any.whl', 'demo.pkg-1.0.0-py3-none-any.whl', 'demo_pkg-1.0.0-py3-none-any.whl']) {
      const err = (await add(theirs, spelling).catch((e: unknown) => e)) as WheelError;
      expect(err.code).toBe('WHEEL_CONFLICT');
      expect(err.message).toBe(
        (spelling === 'demo_pkg-1.0.0-py3-none-any.whl'
          ? `${spelling} is already in the wheelhouse`
          : `${spelling} is the release the wheelhouse holds as demo_pkg-1.0.0-py3-none-any.whl`) +
          ` with different bytes (sha256 ${sha(mine)}, new ${sha(theirs)})`,
      );
      expect((await add(mine, spelling)).status).toBe('present');
    }
    const zeros = await buildWheel({ name: 'demo_pkg', version: '1.0.0.0' });
    await expect(add(zeros, 'demo_pkg-1.0.0.0-py3-none-any.whl')).rejects.toMatchObject({
      code: 'WHEEL_CONFLICT',
      message: expect.stringContaining('is the release the wheelhouse holds as demo_pkg-1.0.0-py3-none-any.whl'),
    });
    // Another tag set is another wheel of the release.
    expect((await add(await buildWheel({ name: 'demo_pkg', version: '1.0.0', tag: 'py2.py3-none-any' }), 'demo_pkg-1.0.0-py2.py3-none-any.whl')).status).toBe('added');
    // overwrite replaces the release's wheel under whichever spelling it had
    const replaced = await add(zeros, 'demo_pkg-1.0.0.0-py3-none-any.whl', { overwrite: true });
    expect(replaced.entry.filename).toBe('demo_pkg-1.0.0.0-py3-none-any.whl');
    expect((await store.list('demo-pkg')).map((e) => e.filename)).toEqual([
      'demo_pkg-1.0.0-py2.py3-none-any.whl',
      'demo_pkg-1.0.0.0-py3-none-any.whl',
    ]);
  });

  it('checks wheels already there under other spellings (PyYAML-…) too, and refuses build tags when asked', async () => {
    const store = await freshStore('legacy');
    const yaml = await buildWheel({ name: 'PyYAML', version: '6.0' });
    await (await import('node:fs/promises')).mkdir(store.dir, { recursive: true });
    await writeFile(join(store.dir, 'PyYAML-6.0-py3-none-any.whl'), yaml);
    const other = await buildWheel({ name: 'pyyaml', version: '6.0' });
    await expect(store.add(Readable.from([other]), { filename: 'pyyaml-6.0-py3-none-any.whl' })).rejects.toThrow(
      `pyyaml-6.0-py3-none-any.whl is the release the wheelhouse holds as PyYAML-6.0-py3-none-any.whl with different bytes (sha256 ${sha(yaml)}, new ${sha(other)})`,
    );
    const same = await store.add(Readable.from([yaml]), { filename: 'pyyaml-6.0-py3-none-any.whl' });
    expect([same.status, same.entry.filename]).toEqual(['present', 'PyYAML-6.0-py3-none-any.whl']);

    const tagged = await buildWheel({ name: 'demo', version: '1.0', build: '1' });
    const err = (await store
      .add(Readable.from([tagged]), { filename: 'demo-1.0-1-py3-none-any.whl', refuseBuildTag: true })
      .catch((e: unknown) => e)) as WheelError;
    expect([err.code, err.message, err.hint]).toEqual([
      'WHEEL_BUILD_TAG',
      'demo-1.0-1-py3-none-any.whl: the build tag "1" is not taken here',
      'a build tag lets two different wheels of one release coexist; upload the wheel without it, or allow build tags (server: allow_build_tags = true; wheelhouse add --allow-build-tag)',
    ]);
    expect((await store.add(Readable.from([tagged]), { filename: 'demo-1.0-1-py3-none-any.whl' })).status).toBe('added');
  });

  it('adds a wheel, records it, and says "present" for the same bytes again', async () => {
    const store = await freshStore('basic');
    const path = await writeWheel(src, { name: 'Alpha', version: '1.0', requiresPython: '>=3.8' });
    const bytes = await readFile(path);
    const first = await store.add(path, { builtBy: { executor: 'local', interpreter: '3.11.7' } });
    expect(first.status).toBe('added');
    expect(first.entry).toEqual({
      filename: 'alpha-1.0-py3-none-any.whl',
      name: 'alpha',
      version: '1.0',
      sha256: sha(bytes),
      size: bytes.length,
      requiresPython: '>=3.8',
      metadataSha256: sha(await store.metadata('alpha-1.0-py3-none-any.whl')),
      addedAt: first.entry.addedAt,
      builtBy: { executor: 'local', interpreter: '3.11.7' },
      needs: [],
    });
    expect(Date.now() - Date.parse(first.entry.addedAt)).toBeLessThan(60_000);
    const again = await store.add(path);
    expect(again).toEqual({ status: 'present', entry: first.entry });
    expect(await readFile(store.pathOf('alpha-1.0-py3-none-any.whl'))).toEqual(bytes);
    expect((await readdir(store.dir)).sort()).toEqual(['.dstack', 'alpha-1.0-py3-none-any.whl']);
    expect(await readdir(join(store.dir, '.dstack', 'wheels'))).toEqual(['alpha-1.0-py3-none-any.whl.json']);
    expect(await store.metadata('alpha-1.0-py3-none-any.whl')).toMatch(/^Metadata-Version: 2.1\nName: Alpha\nVersion: 1.0\n/);
    // A second store object on the same folder reads the records (builtBy survives).
    expect(await new FsWheelStore(store.dir).get('alpha-1.0-py3-none-any.whl')).toEqual(first.entry);
  });

  it('records what a wheel was built from, and keeps it when the wheel is re-recorded', async () => {
    const store = await freshStore('source');
    const path = await writeWheel(await mkdtemp(join(tmp, 'src-source-')), { name: 'gamma', version: '1.0' });
    const source = { kind: 'sdist' as const, url: 'https://files.example/gamma-1.0.tar.gz', sha256: 'ab'.repeat(32) };
    const { entry } = await store.add(path, { builtBy: { executor: 'local' }, source });
    expect(entry.source).toEqual(source);
    const again = new FsWheelStore(store.dir);
    expect((await again.get('gamma-1.0-py3-none-any.whl'))?.source).toEqual(source);
    // A touched file (same bytes) is indexed again: its builder and source stay.
    const later = new Date(Date.now() + 5000);
    await utimes(store.pathOf('gamma-1.0-py3-none-any.whl'), later, later);
    expect(await new FsWheelStore(store.dir).get('gamma-1.0-py3-none-any.whl')).toMatchObject({ builtBy: { executor: 'local' }, source });
  });

  it('refuses different bytes under the same name (WHEEL_CONFLICT) unless overwrite', async () => {
    const store = await freshStore('conflict');
    const a = await writeWheel(join(tmp, 'src'), { name: 'beta', version: '1.0' });
    await store.add(a);
    const otherDir = await mkdtemp(join(tmp, 'other-'));
    const b = await writeWheel(otherDir, { name: 'beta', version: '1.0', files: { 'beta/__init__.py': 'X = 2\n' } });
    const err = await store.add(b).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WheelError);
    expect((err as WheelError).code).toBe('WHEEL_CONFLICT');
    expect((err as WheelError).message).toBe(
      `beta-1.0-py3-none-any.whl is already in the wheelhouse with different bytes (sha256 ${sha(await readFile(a))}, new ${sha(await readFile(b))})`,
    );
    expect(await readFile(store.pathOf('beta-1.0-py3-none-any.whl'))).toEqual(await readFile(a));
    const replaced = await store.add(b, { overwrite: true });
    expect(replaced.status).toBe('added');
    expect(replaced.entry.sha256).toBe(sha(await readFile(b)));
    expect((await store.get('beta-1.0-py3-none-any.whl'))?.sha256).toBe(sha(await readFile(b)));
    expect((await readdir(store.dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('adds from a stream (filename required), checks expectedSha256, and honours an abort signal', async () => {
    const store = await freshStore('stream');
    const bytes = await buildWheel({ name: 'gamma', version: '3.0' });
    const filename = wheelFilenameOf({ name: 'gamma', version: '3.0' });
    await expect(store.add(Readable.from([bytes]))).rejects.toThrow('options.filename is required for a stream');
    const bad = await store.add(Readable.from([bytes]), { filename, expectedSha256: '0'.repeat(64) }).catch((e: WheelError) => e);
    expect((bad as WheelError).code).toBe('WHEEL_HASH_MISMATCH');
    expect(await store.list()).toEqual([]);
    const controller = new AbortController();
    const slow = new Readable({
      read() {
        setTimeout(() => this.push(bytes.subarray(0, 10)), 20);
      },
    });
    setTimeout(() => controller.abort(), 50);
    await expect(store.add(slow, { filename, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(await readdir(store.dir)).toEqual(['.dstack']);
    const ok = await store.add(Readable.from([bytes.subarray(0, 100), bytes.subarray(100)]), { filename, expectedSha256: sha(bytes) });
    expect(ok.status).toBe('added');
    expect(await text(await store.openRead(filename, { start: 0, end: 3 }))).toEqual(Buffer.from('PK\x03\x04', 'latin1'));
    expect(await text(await store.openRead(filename))).toEqual(bytes);
    await expect(store.openRead('nope-1.0-py3-none-any.whl')).rejects.toMatchObject({ code: 'WHEEL_NOT_FOUND' });
  });

  it('lists, filters by project, sorts by PEP 440 version, removes, and counts', async () => {
    const store = await freshStore('queries');
    for (const [name, version] of [['Zeta.Pkg', '1.10'], ['zeta-pkg', '1.9'], ['zeta_pkg', '1.10rc1'], ['alpha', '0.1']] as const) {
      const d = await mkdtemp(join(tmp, 'q-'));
      await store.add(await writeWheel(d, { name, version }));
    }
    expect((await store.list()).map((e) => e.filename)).toEqual([
      'alpha-0.1-py3-none-any.whl',
      'zeta_pkg-1.9-py3-none-any.whl',
      'zeta_pkg-1.10rc1-py3-none-any.whl',
      'zeta_pkg-1.10-py3-none-any.whl',
    ]);
    expect((await store.list('ZETA.pkg')).length).toBe(3);
    expect(await store.projects()).toEqual(['alpha', 'zeta-pkg']);
    const stats = await store.stats();
    expect(stats.projects).toBe(2);
    expect(stats.wheels).toBe(4);
    expect(stats.bytes).toBe((await store.list()).reduce((n, e) => n + e.size, 0));
    expect(await store.remove('alpha-0.1-py3-none-any.whl')).toBe(true);
    expect(await store.remove('alpha-0.1-py3-none-any.whl')).toBe(false);
    expect(await store.get('alpha-0.1-py3-none-any.whl')).toBeNull();
    expect(await store.projects()).toEqual(['zeta-pkg']);
    expect(await readdir(join(store.dir, '.dstack', 'metadata'))).not.toContain('alpha-0.1-py3-none-any.whl.metadata');
  });

  it('picks up wheels other tools drop into the folder, and never lists invalid or temp files', async () => {
    const store = await freshStore('dropped');
    await (await import('node:fs/promises')).mkdir(store.dir, { recursive: true });
    const d = await mkdtemp(join(tmp, 'drop-'));
    const wheel = await writeWheel(d, { name: 'dropped', version: '1.0' });
    await copyFile(wheel, join(store.dir, 'dropped-1.0-py3-none-any.whl')); // as `pip wheel -w` does
    await writeFile(join(store.dir, 'broken-1.0-py3-none-any.whl'), 'not a zip');
    await writeFile(join(store.dir, '.dropped-2.0-py3-none-any.whl.1234.abcdef.tmp'), 'partial');
    await writeFile(join(store.dir, 'README.txt'), 'hello');
    const list = await store.list();
    expect(list.map((e) => [e.filename, e.builtBy, e.sha256])).toEqual([['dropped-1.0-py3-none-any.whl', null, sha(await readFile(wheel))]]);
    const verified = await store.verify();
    expect(verified.ok.map((e) => e.filename)).toEqual(['dropped-1.0-py3-none-any.whl']);
    expect(verified.corrupt).toEqual([
      { filename: 'broken-1.0-py3-none-any.whl', reason: expect.stringMatching(/^WHEEL_NOT_ZIP: broken-1.0-py3-none-any.whl is not a readable zip/) },
    ]);
    // Young temp files are kept (a writer may be working), old ones are swept.
    expect(await store.sweep()).toBe(0);
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(store.dir, '.dropped-2.0-py3-none-any.whl.1234.abcdef.tmp'), old, old);
    expect(await store.sweep()).toBe(1);
    expect((await readdir(store.dir)).sort()).toEqual(['.dstack', 'README.txt', 'broken-1.0-py3-none-any.whl', 'dropped-1.0-py3-none-any.whl']);
  });

  it('verify finds a wheel whose bytes changed behind the store’s back', async () => {
    const store = await freshStore('rot');
    const d = await mkdtemp(join(tmp, 'rot-'));
    const { entry } = await store.add(await writeWheel(d, { name: 'rot', version: '1.0' }));
    const path = store.pathOf(entry.filename);
    const before = await stat(path);
    const bytes = await readFile(path);
    bytes[40] = bytes[40]! ^ 0xff; // flip a byte, keep size and times (bit rot)
    await writeFile(path, bytes);
    await utimes(path, before.atime, before.mtime);
    const result = await store.verify();
    expect(result.ok).toEqual([]);
    expect(result.corrupt).toEqual([
      { filename: 'rot-1.0-py3-none-any.whl', reason: `sha256 ${sha(bytes)} (${bytes.length} bytes) differs from the recorded ${entry.sha256} (${entry.size} bytes)` },
    ]);
  });

  it('openWheelhouse defaults to $WHEELHOUSE, then ./wheelhouse', () => {
    const saved = process.env.WHEELHOUSE;
    try {
      process.env.WHEELHOUSE = join(tmp, 'from-env');
      expect(openWheelhouse().dir).toBe(join(tmp, 'from-env'));
      delete process.env.WHEELHOUSE;
      expect(openWheelhouse().dir).toBe(join(process.cwd(), 'wheelhouse'));
      expect(openWheelhouse(join(tmp, 'x')).dir).toBe(join(tmp, 'x'));
    } finally {
      if (saved === undefined) delete process.env.WHEELHOUSE;
      else process.env.WHEELHOUSE = saved;
    }
  });
});

// Inside this file's temp folder (its beforeAll runs first), removed with it.
describeWheelStoreContract('FsWheelStore', async () => new FsWheelStore(join(tmp, 'contract')));

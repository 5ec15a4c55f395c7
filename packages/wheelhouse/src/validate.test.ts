import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapWheels, hostileWheels, writeWheel } from '@dstack/testing';
import { FsWheelStore, parseMetadata, readWheelMetadata, validateWheel, WheelError } from './index.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wh-validate-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('validateWheel', () => {
  it('reads METADATA straight from the zip', async () => {
    const path = await writeWheel(tmp, {
      name: 'Foo.Bar',
      version: '2.0rc1',
      metadataVersion: '2.4',
      requires: ['idna>=2; python_version >= "3.8"', 'pysocks; extra == "socks"'],
      requiresPython: '>=3.8,<4',
      providesExtra: ['socks'],
    });
    const v = await validateWheel(path);
    expect(v.filename.normalizedName).toBe('foo-bar');
    expect(v.size).toBeGreaterThan(500);
    expect(v.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect({ ...v.metadata, text: undefined }).toEqual({
      name: 'Foo.Bar',
      version: '2.0rc1',
      metadataVersion: '2.4',
      requiresDist: ['idna>=2; python_version >= "3.8"', 'pysocks; extra == "socks"'],
      requiresPython: '>=3.8,<4',
      providesExtra: ['socks'],
      summary: 'test package Foo.Bar',
      description: 'A test package made by @dstack/testing.\n',
      descriptionContentType: null,
      text: undefined,
    });
    expect(v.metadata.text.startsWith('Metadata-Version: 2.4\nName: Foo.Bar\n')).toBe(true);
    expect(await readWheelMetadata(path)).toEqual(v.metadata);
  });

  it('reads the long description (the body, else the Description header) and its content type', async () => {
    const md = await writeWheel(tmp, { name: 'mdpkg', version: '1.0', description: '# Title\n\nSome *text*.\n', descriptionContentType: 'text/markdown; charset=UTF-8' });
    const m = (await validateWheel(md)).metadata;
    expect([m.description, m.descriptionContentType]).toEqual(['# Title\n\nSome *text*.\n', 'text/markdown; charset=UTF-8']);
    expect(parseMetadata('Metadata-Version: 1.2\nName: old\nVersion: 1\nDescription: one line\n', 'old').description).toBe('one line');
    expect(parseMetadata('Metadata-Version: 2.1\nName: bare\nVersion: 1\n\n\n', 'bare').description).toBe(null);
  });

  it('accepts every real bootstrap wheel on this machine and reads its metadata', async () => {
    const wheels = bootstrapWheels();
    const names = wheels.map((w) => basename(w));
    expect(names).toContain('pip-23.2.1-py3-none-any.whl');
    expect(names).toContain('setuptools-65.5.0-py3-none-any.whl');
    if (process.env.CI) expect(names, 'apt-get install python3-wheel-whl').toContain('wheel-0.38.4-py3-none-any.whl');
    for (const path of wheels) {
      const v = await validateWheel(path);
      const [name, version] = basename(path).split('-');
      expect([v.metadata.name.toLowerCase(), v.metadata.version]).toEqual([name, version]);
      expect(v.metadata.metadataVersion).toBe('2.1');
    }
    const pip = await validateWheel(wheels.find((w) => w.endsWith('/python3.11/ensurepip/_bundled/pip-23.2.1-py3-none-any.whl'))!);
    expect(pip.metadata.requiresPython).toBe('>=3.7');
    expect(pip.metadata.requiresDist).toEqual([]);
  });
});

describe('what real wheels do', () => {
  it('accepts hex digests in RECORD (gmsh 4.15 writes them) but still checks them', async () => {
    const toHex = (rows: string[][]) =>
      rows.map((r) => (r[1] ? [r[0]!, `sha256=${Buffer.from(r[1].slice(7), 'base64url').toString('hex')}`, r[2]!] : r));
    const d = await mkdtemp(join(tmp, 'hex-'));
    expect((await validateWheel(await writeWheel(d, { name: 'hexrec', version: '1.0', tamperRecord: toHex }))).metadata.name).toBe('hexrec');
    const bad = await writeWheel(d, {
      name: 'hexbad',
      version: '1.0',
      tamperRecord: (rows) => toHex(rows).map((r) => (r[0] === 'hexbad/__init__.py' ? [r[0], `sha256=${'0'.repeat(64)}`, r[2]!] : r)),
    });
    await expect(validateWheel(bad)).rejects.toMatchObject({ code: 'WHEEL_RECORD_MISMATCH' });
  });

  it('accepts a member that compresses 1000x inside an ordinary wheel (onnx ships such test data)', async () => {
    const { randomBytes } = await import('node:crypto');
    const d = await mkdtemp(join(tmp, 'ratio-'));
    const path = await writeWheel(d, {
      name: 'squeezed',
      version: '1.0',
      files: { 'squeezed/zeros.pb': Buffer.alloc(2 * 1024 * 1024), 'squeezed/noise.bin': randomBytes(64 * 1024) },
    });
    expect((await validateWheel(path)).size).toBeLessThan(80 * 1024);
  });
});

describe('hostile wheels', () => {
  const table = hostileWheels();

  it('has at least 15 entries, covering every refusal code', () => {
    expect(table.length).toBeGreaterThanOrEqual(15);
    expect(new Set(table.map((h) => h.code))).toEqual(
      new Set([
        'WHEEL_NAME_INVALID', 'WHEEL_NOT_ZIP', 'WHEEL_DIST_INFO_MISSING', 'WHEEL_DIST_INFO_DUPLICATE', 'WHEEL_DIST_INFO_MISMATCH',
        'WHEEL_VERSION_UNSUPPORTED', 'WHEEL_WHEEL_FILE_MISSING', 'WHEEL_METADATA_MISSING', 'WHEEL_METADATA_INVALID',
        'WHEEL_PATH_UNSAFE', 'WHEEL_SYMLINK', 'WHEEL_WHITEOUT', 'WHEEL_MEMBER_DUPLICATE', 'WHEEL_RECORD_MISSING',
        'WHEEL_RECORD_MISMATCH', 'WHEEL_RECORD_INVALID', 'WHEEL_BOMB',
      ]),
    );
  });

  it.each(table.map((h) => [h.id, h] as const))('%s is refused with its code and nothing is stored', async (_id, h) => {
    const src = join(tmp, `hostile-${h.id}`);
    await writeFile(src, await h.bytes());
    const dir = join(tmp, `store-${h.id}`);
    const store = new FsWheelStore(dir, { limits: h.limits ?? {} });
    const err = await store.add(src, { filename: h.filename }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WheelError);
    expect((err as WheelError).code).toBe(h.code);
    expect((err as WheelError).message).toContain(h.filename);
    expect(await store.list()).toEqual([]);
    // Nothing in the folder but the (empty) record folders: no wheel, no temp file.
    const files: string[] = await readdir(dir).catch(() => []);
    expect(files.filter((f: string) => f !== '.dstack')).toEqual([]);
    if (files.includes('.dstack')) {
      expect(await readdir(join(dir, '.dstack', 'wheels'))).toEqual([]);
      expect(await readdir(join(dir, '.dstack', 'metadata'))).toEqual([]);
    }
  });
});

describe('validateWheel without member hashes (recordHashes: false)', () => {
  it.each(hostileWheels().map((h) => [h.id, h] as const))('%s: same refusal, except a wrong hash, left to the caller', async (_id, h) => {
    const src = join(tmp, `listing-${h.id}`, h.filename);
    await mkdir(dirname(src), { recursive: true });
    await writeFile(src, await h.bytes());
    const result = await validateWheel(src, h.limits, { recordHashes: false }).then(
      (v) => v,
      (e: unknown) => e,
    );
    if (h.id === 'record-hash') expect(result).toMatchObject({ filename: { filename: h.filename } });
    else expect(result).toMatchObject({ code: h.code });
  });
});

describe('damaged wheels', () => {
  it('a wheel with any bytes flipped validates or is refused with a WheelError, never another error', async () => {
    const fc = (await import('fast-check')).default;
    const { buildWheel } = await import('@dstack/testing');
    const good = await buildWheel({ name: 'fuzz', version: '1.0', requires: ['a>=1'], files: { 'fuzz/__init__.py': 'x = 1\n'.repeat(50) } });
    const path = join(tmp, 'fuzz-1.0-py3-none-any.whl');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), async (flips) => {
        const bytes = Buffer.from(good);
        for (const [at, x] of flips) bytes[at] = bytes[at]! ^ x;
        await writeFile(path, bytes);
        const outcome = await validateWheel(path).then(
          () => 'ok',
          (e: unknown) => (e instanceof WheelError ? 'refused' : e),
        );
        expect(['ok', 'refused']).toContain(outcome);
      }),
      { numRuns: 150 },
    );
  });
});

// The contract every WheelStore implementation must keep: one suite, run against each (FsWheelStore, and any
// store a server or tool brings). Call it at the top level of a test file.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WheelStore } from '@dstack/wheelhouse';
import { buildWheel, wheelFilenameOf, type WheelSpec } from './wheels.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function describeWheelStoreContract(name: string, makeStore: () => Promise<WheelStore>): void {
  describe(`WheelStore contract: ${name}`, () => {
    let tmp: string;
    let store: WheelStore;
    const wheel = async (spec: WheelSpec) => {
      const bytes = await buildWheel(spec);
      const path = join(tmp, `${Math.random().toString(36).slice(2)}-${wheelFilenameOf(spec)}`);
      await writeFile(path, bytes);
      return { bytes, path, filename: wheelFilenameOf(spec) };
    };
    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'wheel-store-contract-'));
      store = await makeStore();
    });
    afterAll(async () => {
      await rm(tmp, { recursive: true, force: true });
    });

    it('adds from a stream, then says present for the same bytes', async () => {
      const w = await wheel({ name: 'Contract.One', version: '1.0', requiresPython: '>=3.8' });
      const added = await store.add(Readable.from([w.bytes]), {
        filename: w.filename,
        builtBy: { by: 'contract' },
      });
      expect(added.status).toBe('added');
      expect(added.entry).toMatchObject({
        filename: 'contract_one-1.0-py3-none-any.whl', // stored under its PEP 427 escaped name
        name: 'contract-one',
        version: '1.0',
        sha256: sha(w.bytes),
        size: w.bytes.length,
        requiresPython: '>=3.8',
        builtBy: { by: 'contract' },
      });
      const again = await store.add(Readable.from([w.bytes]), { filename: w.filename });
      expect(again.status).toBe('present');
      expect(again.entry.sha256).toBe(sha(w.bytes));
    });

    it('refuses different bytes under the same name with WHEEL_CONFLICT', async () => {
      const w = await wheel({
        name: 'Contract.One',
        version: '1.0',
        files: { 'contract_one/__init__.py': 'other = True\n' },
      });
      await expect(store.add(Readable.from([w.bytes]), { filename: w.filename })).rejects.toMatchObject({
        code: 'WHEEL_CONFLICT',
      });
    });

    it('refuses a wheel that is not one, storing nothing', async () => {
      await expect(
        store.add(Readable.from([Buffer.from('nope')]), { filename: 'broken-1.0-py3-none-any.whl' }),
      ).rejects.toMatchObject({
        code: 'WHEEL_NOT_ZIP',
      });
      expect(await store.get('broken-1.0-py3-none-any.whl')).toBeNull();
    });

    it('lists, filters by project (any spelling), gets, reads bytes, ranges and METADATA', async () => {
      const two = await wheel({ name: 'contract-two', version: '2.0' });
      await store.add(Readable.from([two.bytes]), { filename: two.filename });
      expect((await store.list()).map((e) => e.filename)).toEqual([
        'contract_one-1.0-py3-none-any.whl',
        'contract_two-2.0-py3-none-any.whl',
      ]);
      expect((await store.list('CONTRACT_two')).map((e) => e.filename)).toEqual([
        'contract_two-2.0-py3-none-any.whl',
      ]);
      expect(await store.projects()).toEqual(['contract-one', 'contract-two']);
      expect((await store.get(two.filename))?.sha256).toBe(sha(two.bytes));
      expect(await store.get('absent-1.0-py3-none-any.whl')).toBeNull();
      expect(await readAll(await store.openRead(two.filename))).toEqual(two.bytes);
      expect(await readAll(await store.openRead(two.filename, { start: 2, end: 5 }))).toEqual(
        two.bytes.subarray(2, 6),
      );
      expect(await store.metadata(two.filename)).toMatch(
        /^Metadata-Version: 2\.1\nName: contract-two\nVersion: 2\.0\n/,
      );
    });

    it('verifies, and removes', async () => {
      const result = await store.verify();
      expect(result.corrupt).toEqual([]);
      expect(result.ok.map((e) => e.filename)).toEqual([
        'contract_one-1.0-py3-none-any.whl',
        'contract_two-2.0-py3-none-any.whl',
      ]);
      expect(await store.remove('contract_two-2.0-py3-none-any.whl')).toBe(true);
      expect(await store.remove('contract_two-2.0-py3-none-any.whl')).toBe(false);
      expect(await store.projects()).toEqual(['contract-one']);
    });
  });
}

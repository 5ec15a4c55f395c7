import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zipBuffer } from '@dstack/testing';
import { openZip } from './index.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wh-zip-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const collect = async (s: AsyncIterable<unknown>) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

/** A zip whose one member's content was changed after its CRC was written (same size, same deflate length). */
function corrupted(data: string): Buffer {
  const zip = zipBuffer([{ path: 'pkg/a.py', data, store: true }]);
  const at = zip.indexOf(Buffer.from(data));
  zip[at] = zip[at]! ^ 1;
  return zip;
}

describe('openZip (the one wheel zip reader)', () => {
  it('reads members whole and as streams, from memory and from a file', async () => {
    const big = Buffer.alloc(3 << 20, 'x');
    const bytes = zipBuffer([{ path: 'pkg/a.py', data: 'print(1)\n' }, { path: 'pkg/big.bin', data: big }]);
    const file = join(tmp, 'ok.zip');
    await writeFile(file, bytes);
    for (const source of [bytes, file]) {
      const z = await openZip(source, 'ok.zip', 10);
      try {
        expect(z.members.map((m) => m.name)).toEqual(['pkg/a.py', 'pkg/big.bin']);
        expect(z.read(z.members[0]!).toString()).toBe('print(1)\n');
        const streamed = await collect(await z.open(z.members[1]!));
        expect(crc32(streamed)).toBe(crc32(big));
        z.release();
        expect(z.read(z.members[0]!).toString()).toBe('print(1)\n');
      } finally {
        z.close();
      }
    }
  });

  it('checks the CRC-32 when reading whole and when streaming', async () => {
    const file = join(tmp, 'bad.zip');
    await writeFile(file, corrupted('print("hello")\n'));
    const z = await openZip(file, 'bad.zip', 10);
    try {
      expect(() => z.read(z.members[0]!)).toThrow('pkg/a.py fails its CRC-32 check');
      await expect(collect(await z.open(z.members[0]!))).rejects.toThrow('pkg/a.py fails its CRC-32 check');
    } finally {
      z.close();
    }
  });

  it('refuses more members than the limit as a bomb', async () => {
    const bytes = zipBuffer([{ path: 'a', data: '1' }, { path: 'b', data: '2' }]);
    await expect(openZip(bytes, 'two.whl', 1)).rejects.toMatchObject({ code: 'WHEEL_BOMB', message: 'two.whl has 2 members, more than the limit of 1' });
    await expect(openZip(Buffer.from('not a zip'), 'x.whl', 1)).rejects.toMatchObject({ code: 'WHEEL_NOT_ZIP' });
  });
});

import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLock, stringifyLock, type Lock } from '@dstack/recipe';
import { readLockCached } from './lock-cache.js';

const lockOf = (version: string): Lock => ({
  lockVersion: '1.0',
  createdBy: 'dstack-factory',
  environments: ['python_full_version == "3.11.2"'],
  packages: [
    {
      name: 'alpha',
      version,
      wheels: [
        {
          name: `alpha-${version}-py3-none-any.whl`,
          path: `alpha-${version}-py3-none-any.whl`,
          hashes: { sha256: 'a'.repeat(64) },
        },
      ],
    },
  ],
  tool: { 'dstack-factory': { key: 'k'.repeat(64) } },
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-lock-cache-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('readLockCached', () => {
  it('parses a lock once, serves the same lock from its entry, and parses it again once the file changed', async () => {
    const cache = join(dir, 'cache');
    const file = join(dir, 'pylock.toml');
    await writeFile(file, stringifyLock(lockOf('1.0')));
    const first = readLockCached(file, cache, false);
    expect(first).toEqual(parseLock(await readFile(file, 'utf8'), file));
    const [entry] = await readdir(join(cache, 'locks'));
    // Served from the entry: an entry changed behind its back is what comes out (the file itself is unchanged).
    const entryFile = join(cache, 'locks', entry!);
    const saved = JSON.parse(await readFile(entryFile, 'utf8')) as { lock: Lock };
    saved.lock.createdBy = 'from the entry';
    await writeFile(entryFile, JSON.stringify(saved));
    expect(readLockCached(file, cache, false)!.createdBy).toBe('from the entry');
    // Rewritten with the same size, its mtime set back: the ctime still differs, so the TOML is parsed again.
    const before = await stat(file);
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(file, stringifyLock(lockOf('2.0')));
    await utimes(file, before.atime, before.mtime);
    expect((await stat(file)).size).toBe(before.size);
    expect(readLockCached(file, cache, false)!.packages[0]!.version).toBe('2.0');
    expect(readLockCached(file, cache, false)!.createdBy).toBe('dstack-factory');
  });

  it('writes nothing read-only or without a cache folder; a missing lock is null; a TOML date is never cached', async () => {
    const cache = join(dir, 'ro');
    const file = join(dir, 'ro.toml');
    await writeFile(file, stringifyLock(lockOf('1.0')));
    expect(readLockCached(file, cache, true)!.packages[0]!.name).toBe('alpha');
    expect(existsSync(cache)).toBe(false);
    expect(readLockCached(file, null, false)!.packages[0]!.name).toBe('alpha');
    expect(readLockCached(join(dir, 'none.toml'), cache, false)).toBeNull();
    const dated = join(dir, 'dated.toml');
    await writeFile(dated, `${stringifyLock(lockOf('1.0'))}\n[tool.other]\nwhen = 2026-12-06T00:00:00Z\n`);
    const lock = readLockCached(dated, cache, false)!;
    expect((lock.tool!.other as { when: unknown }).when).toBeInstanceOf(Date);
    expect(existsSync(join(cache, 'locks'))).toBe(false);
  });
});

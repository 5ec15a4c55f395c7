import { describe, expect, it } from 'vitest';
import type { WheelEntry, WheelStore } from '@dstack/wheelhouse';
import { IndexCache } from './index-cache.js';

const entry = (name: string): WheelEntry => ({
  filename: `${name}-1.0-py3-none-any.whl`,
  name: name as WheelEntry['name'],
  version: '1.0',
  sha256: '0'.repeat(64),
  size: 1,
  requiresPython: null,
  metadataSha256: '1'.repeat(64),
  addedAt: '2026-12-05T00:00:00.000Z',
  builtBy: null,
});

/** A store without a folder (as the registry store is) whose listing the test changes or breaks. */
function folderless(): { store: WheelStore; entries: WheelEntry[]; fail: boolean; lists: number } {
  const state = { entries: [entry('one')], fail: false, lists: 0, store: undefined as unknown as WheelStore };
  state.store = {
    list: async () => {
      state.lists++;
      if (state.fail) throw new Error('registry unreachable');
      return [...state.entries];
    },
  } as unknown as WheelStore;
  return state;
}

describe('IndexCache over a store without a folder (a registry)', () => {
  it('lists again once the snapshot is storeMaxAgeMs old; keeps the last listing while the store fails', async () => {
    const s = folderless();
    const cache = new IndexCache(s.store, { fileUrl: (e) => `/files/${e.filename}`, storeMaxAgeMs: 50 });
    expect((await cache.snapshot()).projects).toEqual(['one']);
    s.entries.push(entry('two'));
    expect((await cache.snapshot()).projects).toEqual(['one']); // within the cache time
    expect(s.lists).toBe(1);
    await new Promise((r) => setTimeout(r, 60));
    expect((await cache.snapshot()).projects).toEqual(['one', 'two']);
    s.fail = true;
    await new Promise((r) => setTimeout(r, 60));
    expect((await cache.snapshot()).projects).toEqual(['one', 'two']); // the store failed: the last listing
    const lists = s.lists;
    expect((await cache.snapshot()).projects).toEqual(['one', 'two']);
    expect(s.lists).toBe(lists); // and not asked again before another storeMaxAgeMs
    const fresh = new IndexCache(s.store, { fileUrl: (e) => `/files/${e.filename}`, storeMaxAgeMs: 50 });
    await expect(fresh.snapshot()).rejects.toThrow('registry unreachable');
  });
});

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseRecipe } from '@dstack/recipe';
import { describeTarget } from '@dstack/wheelhouse';
import { cacheKey } from './index.js';

const target = describeTarget({
  pythonFullVersion: '3.11.2',
  architecture: 'x86_64',
  libc: { kind: 'glibc', version: '2.36' },
});

describe('cacheKey', () => {
  it('is the key earlier versions wrote into locks (they stay current): sha256 of the material as UTF-8 JSON', async () => {
    const recipe = await parseRecipe(
      '--index-url https://pypi.example/simple\nrequests[socks]>=2.31 ; python_version >= "3.8"\nflask==3.0.*\n',
      { file: 'requirements.txt', cwd: '/', env: {} },
    );
    const key = cacheKey({
      recipe,
      fromWheelSha256: null,
      target,
      env: { PIP_EXTRA_INDEX_URL: 'https://café.example/simple', HOME: '/root' },
      prebuild: ['b', 'a'],
      noIndex: true,
    });
    // Pinned: a change to the key's material or hash makes every lock users have stale (pip runs again).
    expect(key).toBe('b73b06a1e9a2820f11a84095a6e5f067982ceaf4dacb079ff24b8a88d247860e');
    // Another input gives another key: sha256 of its material as UTF-8 JSON.
    const other = cacheKey({
      recipe: null,
      fromWheelSha256: 'ab'.repeat(32),
      target,
      env: { PIP_INDEX_URL: 'https://ünï.example/' },
      prebuild: [],
    });
    const material = {
      v: 1,
      requirements: [],
      options: null,
      pipEnv: { PIP_INDEX_URL: 'https://ünï.example/' },
      fromWheel: 'ab'.repeat(32),
      target: { id: target.id, pythonFullVersion: '3.11.2', markers: target.markers },
      prebuild: [],
    };
    expect(other).toBe(createHash('sha256').update(JSON.stringify(material)).digest('hex'));
  });
});

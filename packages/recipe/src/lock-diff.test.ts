import { describe, expect, it } from 'vitest';
import { diffLocks, type Lock, type LockPackage } from './index.js';

const pkg = (name: string, version: string, sha: string, marker?: string): LockPackage => ({
  name,
  version,
  ...(marker ? { marker } : {}),
  wheels: [{ name: `${name}-${version}-py3-none-any.whl`, hashes: { sha256: sha.repeat(64) } }],
});
const lock = (...packages: LockPackage[]): Lock => ({ lockVersion: '1.0', createdBy: 'test', packages });

describe('diffLocks', () => {
  it.each([
    ['identical', lock(pkg('a', '1', 'a')), lock(pkg('a', '1', 'a')), { added: [], removed: [], changed: [], unchanged: 1 }],
    [
      'one upgrade, names normalised',
      lock(pkg('Alpha', '1.0', 'a'), pkg('beta', '2', 'b')),
      lock(pkg('alpha', '1.1', 'c'), pkg('beta', '2', 'b')),
      {
        added: [],
        removed: [],
        changed: [
          {
            name: 'alpha',
            from: { name: 'alpha', version: '1.0', sha256: ['a'.repeat(64)] },
            to: { name: 'alpha', version: '1.1', sha256: ['c'.repeat(64)] },
          },
        ],
        unchanged: 1,
      },
    ],
    [
      'same version, other bytes',
      lock(pkg('a', '1', 'a')),
      lock(pkg('a', '1', 'b')),
      { added: [], removed: [], unchanged: 0, changed: [{ name: 'a', from: { name: 'a', version: '1', sha256: ['a'.repeat(64)] }, to: { name: 'a', version: '1', sha256: ['b'.repeat(64)] } }] },
    ],
    [
      'added and removed, sorted; a marker makes another entry',
      lock(pkg('z', '1', 'a'), pkg('m', '1', 'b')),
      lock(pkg('m', '1', 'b', 'python_version < "3.12"'), pkg('c', '2', 'c')),
      {
        added: [
          { name: 'c', version: '2', sha256: ['c'.repeat(64)] },
          { name: 'm', version: '1', marker: 'python_version < "3.12"', sha256: ['b'.repeat(64)] },
        ],
        removed: [
          { name: 'm', version: '1', sha256: ['b'.repeat(64)] },
          { name: 'z', version: '1', sha256: ['a'.repeat(64)] },
        ],
        changed: [],
        unchanged: 0,
      },
    ],
  ])('%s', (_name, a, b, expected) => {
    expect(diffLocks(a, b)).toEqual(expected);
  });
});

import { describe, expect, it } from 'vitest';
import { FailureDigest, debianPackageForHeader } from './failure.js';

const digest = (lines: string[]): FailureDigest => {
  const d = new FailureDigest();
  for (const l of lines) d.add(l);
  return d;
};

describe('FailureDigest', () => {
  it.each([
    {
      name: 'a dependency missing under a marker (pip 23, --no-index)',
      lines: [
        'Looking in links: /wh',
        'Processing /wh/redis-5.0.1-py3-none-any.whl',
        'ERROR: Could not find a version that satisfies the requirement async-timeout>=4.0.3; python_full_version < "3.11.3" (from redis) (from versions: none)',
        'ERROR: No matching distribution found for async-timeout>=4.0.3; python_full_version < "3.11.3"',
      ],
      missing: { requirement: 'async-timeout>=4.0.3', marker: 'python_full_version < "3.11.3"', neededBy: 'redis' },
      summary: [
        'not in the wheelhouse: async-timeout>=4.0.3 (redis needs it when python_full_version < "3.11.3")',
        'ERROR: Could not find a version that satisfies the requirement async-timeout>=4.0.3; python_full_version < "3.11.3" (from redis) (from versions: none)',
        'ERROR: No matching distribution found for async-timeout>=4.0.3; python_full_version < "3.11.3"',
      ],
    },
    {
      name: 'a top-level requirement nowhere',
      lines: [
        'ERROR: Could not find a version that satisfies the requirement nope==1.0 (from versions: none)',
        'ERROR: No matching distribution found for nope==1.0',
      ],
      missing: { requirement: 'nope==1.0', marker: null, neededBy: null },
      summary: [
        'not in the wheelhouse: nope==1.0',
        'ERROR: Could not find a version that satisfies the requirement nope==1.0 (from versions: none)',
        'ERROR: No matching distribution found for nope==1.0',
      ],
    },
    {
      name: 'a missing header: the compiler\'s first error, the Debian package, the last ERROR block only',
      lines: [
        'ERROR: an early problem pip recovered from',
        '  running build_ext',
        '  x86_64-linux-gnu-gcc -fPIC -I/usr/include/python3.11 -c saslext/_native.c -o build/_native.o',
        '  saslext/_native.c:2:10: fatal error: sasl/sasl.h: No such file or directory',
        '      2 | #include <sasl/sasl.h>',
        '  compilation terminated.',
        '  error: command \'/usr/bin/x86_64-linux-gnu-gcc\' failed with exit code 1',
        '  ERROR: Failed building wheel for saslext',
        'ERROR: Failed to build one or more wheels',
      ],
      missing: null,
      summary: [
        'missing header sasl/sasl.h: install libsasl2-dev where it builds',
        'compiler: saslext/_native.c:2:10: fatal error: sasl/sasl.h: No such file or directory',
        'ERROR: Failed building wheel for saslext',
        'ERROR: Failed to build one or more wheels',
      ],
    },
  ])('$name', ({ lines, missing, summary }) => {
    const d = digest(lines);
    expect(d.missing).toEqual(missing);
    expect(d.summary('in the wheelhouse')).toEqual(summary);
  });

  it('names a header it has no package for, and knows the common ones', () => {
    expect(digest(['x.c:1:10: fatal error: foo/bar.h: No such file or directory']).summary('found')).toEqual([
      'missing header foo/bar.h (install the -dev package that provides it)',
      'compiler: x.c:1:10: fatal error: foo/bar.h: No such file or directory',
    ]);
    expect(debianPackageForHeader('libpq-fe.h')).toBe('libpq-dev');
    expect(debianPackageForHeader('zlib.h')).toBe('zlib1g-dev');
    expect(debianPackageForHeader('nothing.h')).toBeNull();
  });
});

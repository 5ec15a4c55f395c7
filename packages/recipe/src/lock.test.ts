import { describe, expect, it } from 'vitest';
import { RecipeError, lockPath, parseLock, stringifyLock, type Lock } from './index.js';

const lock: Lock = {
  lockVersion: '1.0',
  createdBy: 'dstack-factory',
  environments: [
    'python_full_version == "3.11.7" and sys_platform == "linux" and platform_machine == "x86_64"',
  ],
  requiresPython: '>=3.11',
  packages: [
    {
      name: 'sqlparse',
      version: '0.4.4',
      wheels: [
        {
          name: 'sqlparse-0.4.4-py3-none-any.whl',
          path: '../../../wheelhouse/sqlparse-0.4.4-py3-none-any.whl',
          size: 41178,
          hashes: { sha256: 'AB'.repeat(32) },
        },
      ],
      // What the wheel was built from (dstack-factory's own table in the package).
      tool: { 'dstack-factory': { sdist: { url: 'https://files.example.org/sqlparse-0.4.4.tar.gz', hashes: { sha256: 'cd'.repeat(32) } } } },
    },
    {
      name: 'django',
      version: '4.2.5',
      requiresPython: '>=3.8',
      dependencies: [{ name: 'sqlparse' }, { name: 'asgiref' }],
      wheels: [
        {
          name: 'Django-4.2.5-py3-none-any.whl',
          url: 'https://files.example.org/Django-4.2.5-py3-none-any.whl',
          hashes: { sha256: '12'.repeat(32) },
        },
      ],
    },
    {
      name: 'asgiref',
      version: '3.7.2',
      marker: 'python_version >= "3.8"',
      wheels: [
        {
          name: 'asgiref-3.7.2-py3-none-any.whl',
          path: 'asgiref-3.7.2-py3-none-any.whl',
          hashes: { sha512: 'ff', sha256: 'ee' },
        },
      ],
    },
  ],
  tool: { 'dstack-factory': { target: 'cp311-linux_x86_64', key: 'abc', recipe: 'recipes/app.txt' } },
};

describe('PEP 751 locks', () => {
  it('writes deterministic TOML: PEP key order, packages and wheels sorted, hashes lower-case on read', () => {
    const text = stringifyLock(lock);
    expect(text).toBe(stringifyLock({ ...lock, packages: [...lock.packages].reverse() }));
    expect(text.split('\n').slice(0, 6)).toEqual([
      'lock-version = "1.0"',
      'environments = [ "python_full_version == \\"3.11.7\\" and sys_platform == \\"linux\\" and platform_machine == \\"x86_64\\"" ]',
      'requires-python = ">=3.11"',
      'created-by = "dstack-factory"',
      '',
      '[[packages]]',
    ]);
    expect([...text.matchAll(/^name = "([^"]+)"$/gm)].map((m) => m[1])).toEqual([
      'asgiref',
      'asgiref-3.7.2-py3-none-any.whl',
      'django',
      'asgiref',
      'sqlparse',
      'Django-4.2.5-py3-none-any.whl',
      'sqlparse',
      'sqlparse-0.4.4-py3-none-any.whl',
    ]);
    expect(text).toContain(
      '[tool.dstack-factory]\nkey = "abc"\nrecipe = "recipes/app.txt"\ntarget = "cp311-linux_x86_64"\n',
    );
    expect(text).toContain(
      `[packages.wheels.hashes]\nsha256 = "${'ab'.repeat(32)}"\n\n[packages.tool.dstack-factory.sdist]\nurl = "https://files.example.org/sqlparse-0.4.4.tar.gz"\n\n[packages.tool.dstack-factory.sdist.hashes]\nsha256 = "${'cd'.repeat(32)}"\n`,
    );
  });

  it('round-trips: parse(stringify(lock)) is the lock, sorted', () => {
    const back = parseLock(stringifyLock(lock), 'pylock.toml');
    expect(back.packages.map((p) => p.name)).toEqual(['asgiref', 'django', 'sqlparse']);
    expect(back).toEqual({
      ...lock,
      packages: [
        lock.packages[2],
        { ...lock.packages[1], dependencies: [{ name: 'asgiref' }, { name: 'sqlparse' }] },
        {
          ...lock.packages[0],
          wheels: [{ ...lock.packages[0]!.wheels[0], hashes: { sha256: 'ab'.repeat(32) } }],
        },
      ],
    });
    expect(stringifyLock(back)).toBe(stringifyLock(lock));
  });

  it.each([
    ['not TOML at all = = =', 'invalid TOML: Invalid TOML document: unexpected character'.slice(0, 30), 1],
    ['created-by = "x"\npackages = []\n', 'invalid lock: the lock has no lock-version', 1],
    [
      'lock-version = "2.0"\ncreated-by = "x"\npackages = []\n',
      'invalid lock: lock-version "2.0" is not supported (only "1.0")',
      1,
    ],
    ['lock-version = "1.0"\npackages = []\n', 'invalid lock: the lock has no created-by', 1],
    ['lock-version = "1.0"\ncreated-by = "x"\n', 'invalid lock: the lock has no packages array', 1],
    [
      'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "Django"\nversion = "1"\n',
      'invalid lock: packages[0].name "Django" is not normalized (PEP 503: "django")',
      4,
    ],
    [
      'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\n',
      'invalid lock: packages[0] has no version',
      1,
    ],
    [
      'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\nversion = "1"\n[[packages.wheels]]\nname = "a-1-py3-none-any.whl"\nhashes = { sha256 = "ab" }\n',
      'invalid lock: packages[0].wheels[0] needs a url or a path',
      1,
    ],
    [
      'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\nversion = "1"\n[[packages.wheels]]\npath = "a-1-py3-none-any.whl"\n',
      'invalid lock: packages[0].wheels[0] needs hashes (a table like { sha256 = "…" })',
      1,
    ],
    [
      'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\nversion = "1"\n[[packages.wheels]]\npath = "a-1-py3-none-any.whl"\nhashes = { sha256 = "zz" }\n',
      'invalid lock: packages[0].wheels[0].hashes.sha256 must be a hex digest',
      1,
    ],
  ])('refuses an invalid lock with LOCK_INVALID: %s', (text, reason, line) => {
    try {
      parseLock(text, 'recipes/locks/app/pylock.cp311.toml');
    } catch (e) {
      expect(e).toBeInstanceOf(RecipeError);
      const r = e as RecipeError;
      expect(r.code).toBe('LOCK_INVALID');
      expect(r.file).toBe('recipes/locks/app/pylock.cp311.toml');
      expect(r.reason.startsWith(reason)).toBe(true);
      expect(r.line).toBe(line);
      return;
    }
    throw new Error('accepted');
  });

  it('takes a wheel name from its path or url when the name is left out', () => {
    const l = parseLock(
      'lock-version = "1.0"\ncreated-by = "x"\n[[packages]]\nname = "a"\nversion = "1"\n[[packages.wheels]]\nurl = "https://x.org/w/a-1-py3-none-any.whl"\nhashes = { sha256 = "AB" }\n',
    );
    expect(l.packages[0]!.wheels).toEqual([
      { name: 'a-1-py3-none-any.whl', url: 'https://x.org/w/a-1-py3-none-any.whl', hashes: { sha256: 'ab' } },
    ]);
  });

  it('places locks beside the recipe: recipes/locks/<recipe>/pylock.<target>.toml', () => {
    expect(lockPath('recipes/django-1.10.5.txt', 'cp311-linux_x86_64')).toBe(
      'recipes/locks/django-1.10.5/pylock.cp311-linux_x86_64.toml',
    );
    expect(lockPath('/srv/app/requirements.txt', 'cp310-manylinux_2_36_x86_64')).toBe(
      '/srv/app/locks/requirements/pylock.cp310-manylinux_2_36_x86_64.toml',
    );
  });

  it.each(['cp3.11', 'a/b', '', 'x y'])('refuses a lock name PEP 751 does not allow: %j', (target) => {
    expect(() => lockPath('recipes/app.txt', target)).toThrow(
      /PEP 751 names are pylock.<name>.toml with no dot in <name>/,
    );
  });
});

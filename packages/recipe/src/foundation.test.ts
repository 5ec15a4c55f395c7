import { describe, expect, it } from 'vitest';
import { DstackError } from '@dstack/errors';
import {
  RecipeError,
  canonicalizeName,
  compareVersions,
  evaluateMarker,
  normalizeMarker,
  parsePep508,
  versionSatisfies,
  type MarkerEnvironment,
} from './index.js';

const cp311linux: MarkerEnvironment = {
  implementation_name: 'cpython',
  implementation_version: '3.11.7',
  os_name: 'posix',
  platform_machine: 'x86_64',
  platform_release: '6.1.0-13-amd64',
  platform_system: 'Linux',
  platform_version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)',
  platform_python_implementation: 'CPython',
  python_full_version: '3.11.7',
  python_version: '3.11',
  sys_platform: 'linux',
};
const cp310win: MarkerEnvironment = {
  ...cp311linux,
  implementation_version: '3.10.13',
  os_name: 'nt',
  platform_machine: 'AMD64',
  platform_system: 'Windows',
  python_full_version: '3.10.13',
  python_version: '3.10',
  sys_platform: 'win32',
};

describe('RecipeError', () => {
  it('RecipeError shows file:line:col, the line and a caret', () => {
    const e = new RecipeError('RECIPE_SYNTAX', 'bad', {
      file: 'r.txt',
      line: 3,
      column: 7,
      spanStart: 5,
      source: 'foo bar baz',
    });
    expect(e).toBeInstanceOf(DstackError);
    expect(e.message).toBe('r.txt:3:7: bad\n    foo bar baz\n        ~~^');
    expect([e.file, e.line, e.column, e.reason, e.name]).toEqual(['r.txt', 3, 7, 'bad', 'RecipeError']);
  });
});

describe('canonicalizeName', () => {
  it.each([
    ['Django', 'django'],
    ['zope.interface', 'zope-interface'],
    ['Foo__Bar-.-baz', 'foo-bar-baz'],
    ['awx_plugins.interfaces', 'awx-plugins-interfaces'],
  ])('%s -> %s', (name, normal) => expect(canonicalizeName(name)).toBe(normal));
});

describe('versions (PEP 440, not SemVer)', () => {
  it.each([
    ['1.0', '1.0.0', 0],
    ['1.0rc1', '1.0', -1],
    ['1.0.post1', '1.0', 1],
    ['2!1.0', '3.0', 1],
    ['1.0.dev1', '1.0a1', -1],
    ['1.10', '1.9', 1],
  ])('compareVersions(%s, %s) = %i', (a, b, r) => expect(compareVersions(a, b)).toBe(r));
  it('refuses an invalid version', () => {
    expect(() => compareVersions('1.0', 'not a version')).toThrow(RecipeError);
    expect(() => compareVersions('1.0', 'not a version')).toThrow(/invalid PEP 440 version: "not a version"/);
  });
  it.each([
    ['1.10.5', '==1.10.5', true],
    ['1.10.5', '>=1.10,<1.11', true],
    ['1.11', '~=1.10.0', false],
    ['1.10.7', '~=1.10.0', true],
    ['2.0rc1', '>=1.0', false],
    ['2.0rc1', '>=2.0rc1', true],
    ['1.4.2', '==1.4.*', true],
    ['1.0+cu121', '==1.0', true],
    ['1.0', '', true],
    ['banana', '>=1', false],
  ])('versionSatisfies(%s, %s) = %s', (v, s, r) => expect(versionSatisfies(v, s)).toBe(r));
  it('lets pre-releases in when asked', () =>
    expect(versionSatisfies('2.0rc1', '>=1.0', { prereleases: true })).toBe(true));
  it('refuses an invalid specifier', () =>
    expect(() => versionSatisfies('1.0', '>>1')).toThrow(/invalid PEP 440 specifier: ">>1"/));
});

describe('markers', () => {
  it.each([
    ['python_version < "3.12"', true, true],
    ['python_version >= "3.11"', true, false],
    ['python_version > "3.9"', true, true],
    ['python_full_version >= "3.11.4"', true, false],
    ['python_version == "3.1*"', false, false],
    ['python_version == "3.1*" or python_version == "3.11"', true, false],
    ['sys_platform == "win32"', false, true],
    ['sys.platform == "win32"', false, true],
    ['os.name == "nt" and platform.machine == "AMD64"', false, true],
    [
      'platform_system != "Windows" and (python_version < "3.11" or implementation_name == "cpython")',
      true,
      false,
    ],
    ['"linux" in sys_platform', true, false],
    ['"lin" in sys_platform', true, false],
    ['sys_platform not in "win32 cygwin"', true, false],
    ['platform_release >= "5"', true, true],
    ["python_implementation == 'CPython'", true, true],
    ['"3.10" < python_version', true, false],
    ['python_version < "3.10" and sys_platform == "win32" or python_version == "3.11"', true, false],
    ['python_version < "3.10" and (sys_platform == "win32" or python_version == "3.11")', false, false],
    ['extra == "test"', false, false],
  ])('%s: linux 3.11 %s, windows 3.10 %s', (marker, a, b) => {
    expect(evaluateMarker(marker, cp311linux)).toBe(a);
    expect(evaluateMarker(marker, cp310win)).toBe(b);
  });
  it('compares extras normalised, true when any extra matches', () => {
    expect(evaluateMarker('extra == "Foo_Bar"', cp311linux, ['foo-bar'])).toBe(true);
    expect(evaluateMarker('extra == "test"', cp311linux, ['docs', 'test'])).toBe(true);
    expect(evaluateMarker('extra == "test"', cp311linux, ['docs'])).toBe(false);
  });
  it('compares pre-release interpreters as versions', () => {
    expect(
      evaluateMarker('python_full_version >= "3.13.0a1"', { ...cp311linux, python_full_version: '3.13.0b2' }),
    ).toBe(true);
    // PEP 440: `<V` excludes pre-releases of V itself
    expect(
      evaluateMarker('python_full_version < "3.13"', { ...cp311linux, python_full_version: '3.13.0b2' }),
    ).toBe(false);
    expect(
      evaluateMarker('python_full_version < "3.14"', { ...cp311linux, python_full_version: '3.13.0b2' }),
    ).toBe(true);
  });
  it.each([
    ["python_version>'2.7'", 'python_version > "2.7"'],
    ['sys.platform=="win32"', 'sys_platform == "win32"'],
    ['(python_version < "3") and os_name=="nt"', 'python_version < "3" and os_name == "nt"'],
    ['a' === 'a' ? '"a" not in extra' : '', '"a" not in extra'],
  ])('normalizeMarker(%s) = %s', (m, n) => expect(normalizeMarker(m)).toBe(n));
  it.each([
    [
      'python_version',
      'invalid marker: expected a marker operator (==, !=, <, <=, >, >=, ~=, ===, in, not in)',
      15,
    ],
    [
      'python_version == 3',
      'invalid marker: expected a marker variable (python_version, sys_platform, extra, …) or a quoted string',
      19,
    ],
    ['(os_name == "nt"', "invalid marker: expected ')' to close the '(' of the marker", 17],
    ['os_name == "nt" xor', "invalid marker: expected 'and', 'or' or the end of the marker", 17],
    ['os_name == "nt', 'invalid marker: unterminated string in marker', 12],
  ])('refuses %s', (m, reason, column) => {
    const e = (() => {
      try {
        evaluateMarker(m, cp311linux);
      } catch (err) {
        return err as RecipeError;
      }
      throw new Error('no error');
    })();
    expect(e).toBeInstanceOf(RecipeError);
    expect([e.code, e.reason, e.column]).toEqual(['RECIPE_SYNTAX', reason, column]);
  });
  it('refuses ~= between strings that are not versions', () =>
    expect(() => evaluateMarker('sys_platform ~= "linux"', cp311linux)).toThrow(
      /undefined comparison ~= on "linux" and "linux"/,
    ));
});

describe('parsePep508', () => {
  it.each([
    ['django==1.10.5', { name: 'django', extras: [], specifier: '==1.10.5', marker: null, url: null }],
    [
      'Foo.Bar[b, a ,a] (>=1.0,<2 ,  !=1.5) ; python_version<"3" and (sys.platform=="win32" or os_name == \'nt\')',
      {
        name: 'Foo.Bar',
        extras: ['a', 'b'],
        specifier: '!=1.5,<2,>=1.0',
        marker: 'python_version < "3" and (sys_platform == "win32" or os_name == "nt")',
        url: null,
      },
    ],
    [
      'pip @ https://example.com/pip-23.2.tar.gz ; python_version >= "3.8"',
      {
        name: 'pip',
        extras: [],
        specifier: '',
        marker: 'python_version >= "3.8"',
        url: 'https://example.com/pip-23.2.tar.gz',
      },
    ],
    [
      'x @ https://a/b.whl;extra=="t"',
      { name: 'x', extras: [], specifier: '', marker: null, url: 'https://a/b.whl;extra=="t"' },
    ],
    [
      'local @ file:///srv/pkgs/local-1.0.tar.gz',
      { name: 'local', extras: [], specifier: '', marker: null, url: 'file:///srv/pkgs/local-1.0.tar.gz' },
    ],
    // packaging 21.3 keeps legacy (non-PEP 440) specifiers, as pip 23.2 does
    ['x>=1.0<2', { name: 'x', extras: [], specifier: '>=1.0<2', marker: null, url: null }],
    ['x==1.0,==1.0.0', { name: 'x', extras: [], specifier: '==1.0', marker: null, url: null }],
    [
      'torch==2.1.0+cu121',
      { name: 'torch', extras: [], specifier: '==2.1.0+cu121', marker: null, url: null },
    ],
  ])('%s', (text, expected) => expect(parsePep508(text)).toEqual(expected));

  it.each([
    [
      'foo bar',
      5,
      "invalid requirement: expected a version specifier, '@', ';', '[' or the end after the name",
      '    foo bar\n        ^',
    ],
    ['x[a,]', 4, "invalid requirement: expected an extra name, ',' or ']'", '    x[a,]\n     ~~^'],
    [
      'x @ file:relative/path',
      5,
      'invalid requirement: Invalid URL given',
      '    x @ file:relative/path\n        ^',
    ],
    [
      'x @ https:///nohost',
      5,
      'invalid requirement: Invalid URL: https:///nohost',
      '    x @ https:///nohost\n        ^',
    ],
    ['-e .', 1, 'invalid requirement: expected a package name', '    -e .\n    ^'],
    [
      'x>=1 ; python_version',
      22,
      'invalid requirement: invalid marker: expected a marker operator (==, !=, <, <=, >, >=, ~=, ===, in, not in)',
      '    x>=1 ; python_version\n                         ^',
    ],
  ])('refuses %s', (text, column, reason, excerpt) => {
    try {
      parsePep508(text);
    } catch (e) {
      expect(e).toBeInstanceOf(RecipeError);
      const r = e as RecipeError;
      expect([r.code, r.file, r.line, r.column, r.reason, r.excerpt]).toEqual([
        'RECIPE_SYNTAX',
        '<string>',
        1,
        column,
        reason,
        excerpt,
      ]);
      return;
    }
    throw new Error(`accepted ${text}`);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WheelError } from './errors.js';
import { isWheelFilename, parseWheelFilename } from './filename.js';
import { describeTarget, expandPlatforms, manylinuxPlatforms, wheelTagRank } from './tags.js';

describe('parseWheelFilename', () => {
  it('parses compressed tag sets and build tags', () => {
    expect(parseWheelFilename('Foo_Bar-1.0.post1-2b-py2.py3-none-any.whl')).toEqual({
      filename: 'Foo_Bar-1.0.post1-2b-py2.py3-none-any.whl',
      name: 'Foo_Bar',
      normalizedName: 'foo-bar',
      version: '1.0.post1',
      build: '2b',
      pythonTags: ['py2', 'py3'],
      abiTags: ['none'],
      platformTags: ['any'],
      tags: ['py2-none-any', 'py3-none-any'],
    });
    expect(parseWheelFilename('numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl').tags).toEqual([
      'cp311-cp311-manylinux_2_17_x86_64',
      'cp311-cp311-manylinux2014_x86_64',
    ]);
  });

  it.each([
    ['foo.whl', 'expected 5 or 6 dash-separated parts, found 1'],
    ['foo-1.0-py3-none-any.tar.gz', 'it does not end in ".whl"'],
    ['foo-1.0-py3-none.whl', 'expected 5 or 6 dash-separated parts, found 4'],
    ['foo-bar-1.0-x-py3-none-any.whl', 'expected 5 or 6 dash-separated parts, found 7'],
    ['foo-one-py3-none-any.whl', '"one" is not a PEP 440 version'],
    ['foo-1.0-b1-py3-none-any.whl', 'build tag "b1" must start with a digit'],
    ['foo__bar-1.0-py3-none-any.whl', 'bad distribution name "foo__bar"'],
    ['_foo-1.0-py3-none-any.whl', 'bad distribution name "_foo"'],
    ['foo-1.0-py3-none-any$.whl', 'bad platform tag "any$" in "any$"'],
    ['foo-1.0-py3..py2-none-any.whl', 'bad python tag "" in "py3..py2"'],
    ['../foo-1.0-py3-none-any.whl', 'a file name has no directory part'],
  ])('refuses %s: %s', (name, why) => {
    const err = (() => {
      try {
        parseWheelFilename(name);
      } catch (e) {
        return e;
      }
    })() as WheelError;
    expect(err).toBeInstanceOf(WheelError);
    expect(err.code).toBe('WHEEL_NAME_INVALID');
    expect(err.message).toBe(`invalid wheel file name ${JSON.stringify(name)}: ${why}`);
  });

  it('never throws anything but a WheelError, on any input', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          parseWheelFilename(`${s}.whl`);
        } catch (e) {
          expect(e).toBeInstanceOf(WheelError);
        }
        expect(typeof isWheelFilename(s)).toBe('boolean');
      }),
    );
  });
});

describe('targets', () => {
  it('expands manylinux with its legacy aliases, best first', () => {
    expect(manylinuxPlatforms([2, 17], 'aarch64')).toEqual(['manylinux_2_17_aarch64', 'manylinux2014_aarch64']);
    expect(manylinuxPlatforms([2, 12], 'x86_64').slice(0, 2)).toEqual(['manylinux_2_12_x86_64', 'manylinux2010_x86_64']);
    expect(manylinuxPlatforms([2, 12], 'x86_64').slice(-2)).toEqual(['manylinux_2_5_x86_64', 'manylinux1_x86_64']);
    expect(expandPlatforms(['musllinux_1_2_x86_64'])).toEqual([
      'musllinux_1_2_x86_64',
      'musllinux_1_1_x86_64',
      'musllinux_1_0_x86_64',
      'linux_x86_64',
    ]);
    expect(expandPlatforms(['linux_x86_64'])).toEqual(['linux_x86_64']);
  });

  it('describes a Debian bookworm image: cp311, glibc 2.36, x86_64', () => {
    const t = describeTarget({ pythonFullVersion: '3.11.2', platforms: ['manylinux_2_36_x86_64'] });
    expect(t.id).toBe('cp311-linux_x86_64');
    expect(t.pythonVersion).toBe('3.11');
    expect(t.markers.python_full_version).toBe('3.11.2');
    expect(t.markers.platform_machine).toBe('x86_64');
    expect(t.tags.slice(0, 3)).toEqual([
      'cp311-cp311-manylinux_2_36_x86_64',
      'cp311-cp311-manylinux_2_35_x86_64',
      'cp311-cp311-manylinux_2_34_x86_64',
    ]);
    expect(t.tags.at(-1)).toBe('py30-none-any');
    const rank = (f: string) => wheelTagRank(parseWheelFilename(f), t);
    expect(rank('x-1-cp311-cp311-manylinux_2_37_x86_64.whl')).toBeNull();
    expect(rank('x-1-cp311-cp311-musllinux_1_1_x86_64.whl')).toBeNull();
    expect(rank('x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl')).toBe(19);
    expect(rank('x-1-cp311-cp311-manylinux_2_17_x86_64.whl')).toBe(19);
    expect(rank('x-1-cp311-cp311-manylinux2014_x86_64.whl')).toBe(20);
    expect(rank('x-1-py3-none-any.whl')).toBe(t.tags.indexOf('py3-none-any'));
  });

  it('refuses a Python version it cannot read', () => {
    expect(() => describeTarget({ pythonFullVersion: 'three', platforms: ['any'] })).toThrow(/invalid Python version "three"/);
  });
});

import { describe, expect, it } from 'vitest';
import { parseWheelTag, releaseHash, stemMayBeProject, tagStem, wheelTag } from './tags.js';

const SHA = 'ab'.repeat(32);
const TAG_RULE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

describe('the tag of a wheel', () => {
  it('is the escaped file name, the release hash and the content hash', () => {
    const tag = wheelTag('Demo.Pkg-1.0-py3-none-any.whl', SHA);
    expect(tag).toBe(`demo_pkg-1.0-py3-none-any--${releaseHash('demo_pkg-1.0-py3-none-any.whl')}-abababababababab`);
    expect(parseWheelTag(tag)).toEqual({ tag, stem: 'demo_pkg-1.0-py3-none-any', release: releaseHash('demo_pkg-1.0-py3-none-any.whl'), content: 'abababababababab' });
  });

  it('is the same release for every spelling of one release, another for another release', () => {
    const one = releaseHash('demo_pkg-1.0-py3-none-any.whl');
    expect(releaseHash('Demo.Pkg-1.0.0-py3-none-any.whl')).toBe(one);
    expect(releaseHash('DEMO_PKG-1.0-py3-none-any.whl')).toBe(one);
    expect(releaseHash('demo_pkg-1.0-py2.py3-none-any.whl')).not.toBe(one);
    expect(releaseHash('demo_pkg-1.0-1-py3-none-any.whl')).not.toBe(one);
  });

  it('keeps to the tag rules for long names, local versions and epochs', () => {
    const long = `${'a'.repeat(150)}-1!2.0+cpu.local-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl`;
    const tag = wheelTag(long, SHA);
    expect(tag).toMatch(TAG_RULE);
    expect(tag.length).toBe(90 + 2 + 16 + 1 + 16);
    expect(tagStem(long)).toBe('a'.repeat(90));
    expect(tagStem('torch-2.1.0+cpu-cp311-cp311-linux_x86_64.whl')).toBe('torch-2.1.0_cpu-cp311-cp311-linux_x86_64');
    expect(wheelTag('torch-2.1.0+cpu-cp311-cp311-linux_x86_64.whl', SHA)).toMatch(TAG_RULE);
    expect(stemMayBeProject(tagStem(long), 'a'.repeat(150))).toBe(true);
    expect(stemMayBeProject('demo_pkg-1.0-py3-none-any', 'demo')).toBe(false);
    expect(stemMayBeProject('demo_pkg-1.0-py3-none-any', 'demo_pkg')).toBe(true);
  });

  it('is not read from tags of other schemes', () => {
    expect(parseWheelTag('latest')).toBeNull();
    expect(parseWheelTag(`x--${'0'.repeat(16)}`)).toBeNull();
  });
});

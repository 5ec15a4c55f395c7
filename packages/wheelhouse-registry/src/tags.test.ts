import { describe, expect, it } from 'vitest';
import { parseWheelTag, projectTag, releaseHash, stemMayBeProject, tagProject, tagStem, wheelTag } from './tags.js';

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

describe('the tag of a project', () => {
  it('is project.<canonical name>, never read as a wheel tag, and names the project of its wheel tags', () => {
    expect(projectTag('zope-interface')).toBe('project.zope-interface');
    expect(projectTag('zope-interface')).toMatch(TAG_RULE);
    expect(parseWheelTag(projectTag('zope-interface')!)).toBeNull();
    expect(tagProject(parseWheelTag(wheelTag('Zope.Interface-6.0-cp311-cp311-linux_x86_64.whl', SHA))!)).toBe('zope-interface');
    // A name of 89 characters still fits its wheels' readable part; one of 90 is cut there: no project tag.
    const long89 = 'a'.repeat(89);
    expect(projectTag(long89)).toBe(`project.${long89}`);
    expect(tagProject(parseWheelTag(wheelTag(`${long89}-1.0-py3-none-any.whl`, SHA))!)).toBe(long89);
    expect(projectTag('a'.repeat(90))).toBeNull();
    expect(tagProject(parseWheelTag(wheelTag(`${'a'.repeat(90)}-1.0-py3-none-any.whl`, SHA))!)).toBeNull();
    expect(projectTag('Not_Canonical')).toBeNull();
  });
});

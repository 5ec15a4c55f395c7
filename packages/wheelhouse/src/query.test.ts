import { describe, expect, it } from 'vitest';
import { bestWheel, describeTarget, whyNoWheel, type NormalizedName, type WheelEntry } from './index.js';

const wheel = (filename: string, requiresPython: string | null = null): WheelEntry => {
  const [name, version] = filename.split('-') as [string, string];
  return {
    filename,
    name: name.toLowerCase().replace(/_/g, '-') as NormalizedName,
    version,
    sha256: '0'.repeat(64),
    size: 1,
    requiresPython,
    metadataSha256: '1'.repeat(64),
    addedAt: '2026-01-01T00:00:00.000Z',
    builtBy: null,
  };
};

const bookworm = describeTarget({ pythonFullVersion: '3.11.2', platforms: ['manylinux_2_36_x86_64'] });
const entries = [
  wheel('multi-1.0-py3-none-any.whl'),
  wheel('multi-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'),
  wheel('multi-1.0-cp311-abi3-manylinux_2_28_x86_64.whl'),
  wheel('multi-1.0-cp311-cp311-manylinux_2_39_x86_64.whl'),
  wheel('multi-1.0-cp310-cp310-manylinux_2_17_x86_64.whl'),
  wheel('multi-1.0-cp311-cp311-musllinux_1_2_x86_64.whl'),
  wheel('multi-0.9-1-py3-none-any.whl'),
  wheel('multi-0.9-2-py3-none-any.whl'),
  wheel('multi-0.9-py3-none-any.whl'),
  wheel('multi-2.0-py3-none-any.whl', '>=3.12'),
  wheel('multi-3.0b1-py3-none-any.whl'),
  wheel('other-5.0-py3-none-any.whl'),
];
const best = (specifier: string, extra: { prereleases?: boolean; marker?: string } = {}, target = bookworm) =>
  bestWheel(entries, { name: 'Multi', specifier, ...extra }, target)?.filename ?? null;

describe('bestWheel', () => {
  it('takes the highest allowed version, then the best tag, then the highest build', () => {
    // 3.0b1 is a pre-release and 2.0 needs Python 3.12: 1.0 wins, with its most specific compatible tag.
    expect(best('')).toBe('multi-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl');
    expect(best('<1')).toBe('multi-0.9-2-py3-none-any.whl');
    expect(best('>=3.0b1')).toBe('multi-3.0b1-py3-none-any.whl');
    expect(best('', { prereleases: true })).toBe('multi-3.0b1-py3-none-any.whl');
    expect(best('>=3.0')).toBe(null);
    expect(best('>2.5')).toBe('multi-3.0b1-py3-none-any.whl'); // only a pre-release matches: pip takes it
    expect(best('', { marker: 'python_version < "3.10"' })).toBe(null);
    expect(best('', { marker: 'python_version >= "3.10"' })).toBe('multi-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl');
  });

  it('depends on the target: musl, Python 3.12, a plain linux_x86_64', () => {
    const alpine = describeTarget({ pythonFullVersion: '3.11.6', platforms: ['musllinux_1_2_x86_64'] });
    expect(best('', {}, alpine)).toBe('multi-1.0-cp311-cp311-musllinux_1_2_x86_64.whl');
    const py312 = describeTarget({ pythonFullVersion: '3.12.1', platforms: ['manylinux_2_36_x86_64'] });
    expect(best('', {}, py312)).toBe('multi-2.0-py3-none-any.whl');
    const centos7 = describeTarget({ pythonFullVersion: '3.11.7', platforms: ['manylinux_2_17_x86_64'] });
    expect(best('==1.0', {}, centos7)).toBe('multi-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl');
    const glibc228 = describeTarget({ pythonFullVersion: '3.11.7', platforms: ['manylinux_2_28_x86_64'] });
    expect(best('==1.0', {}, glibc228)).toBe('multi-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl');
    const py310 = describeTarget({ pythonFullVersion: '3.10.13', platforms: ['manylinux_2_36_x86_64'] });
    expect(best('==1.0', {}, py310)).toBe('multi-1.0-cp310-cp310-manylinux_2_17_x86_64.whl');
  });
});

describe('whyNoWheel', () => {
  it('says why each wheel of the project was rejected for the target', () => {
    const them = [
      wheel('native-1.0-cp311-cp311-manylinux_2_39_x86_64.whl'),
      wheel('native-1.0-cp312-cp312-manylinux_2_17_x86_64.whl'),
      wheel('native-2.0-py3-none-any.whl', '>=3.12'),
      wheel('native-0.5-py3-none-any.whl'),
      wheel('other-1.0-py3-none-any.whl'),
    ];
    expect(whyNoWheel(them, { name: 'Native', specifier: '>=1' }, bookworm, { subject: 'the base' })).toEqual([
      { filename: 'native-1.0-cp311-cp311-manylinux_2_39_x86_64.whl', reason: 'manylinux_2_39 needs glibc ≥ 2.39; the base has glibc 2.36' },
      { filename: 'native-1.0-cp312-cp312-manylinux_2_17_x86_64.whl', reason: 'cp312-cp312 is for CPython 3.12; the base has CPython 3.11.2' },
      { filename: 'native-2.0-py3-none-any.whl', reason: 'Requires-Python >=3.12; the base has Python 3.11.2' },
      { filename: 'native-0.5-py3-none-any.whl', reason: '0.5 is not >=1' },
    ]);
    expect(whyNoWheel(them, { name: 'absent' }, bookworm)).toEqual([]);
  });
});

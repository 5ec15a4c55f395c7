import { describe, expect, it } from 'vitest';
import { DstackError, ERROR_CODES, caretExcerpt, type WheelErrorCode } from './index.js';

describe('DstackError', () => {
  it('carries code, hint and cause', () => {
    const cause = new Error('inner');
    const e = new DstackError('WHEEL_NOT_ZIP', 'bad wheel x.whl', { hint: 'rebuild it', cause });
    expect(e).toBeInstanceOf(Error);
    expect([e.code, e.message, e.hint, e.cause, e.name]).toEqual([
      'WHEEL_NOT_ZIP',
      'bad wheel x.whl',
      'rebuild it',
      cause,
      'DstackError',
    ]);
    const bare = new DstackError('USAGE', 'y');
    expect([bare.hint, bare.cause, 'cause' in bare]).toEqual([undefined, undefined, false]);
  });

  it('names a subclass after itself and narrows its code', () => {
    class WheelishError extends DstackError<WheelErrorCode> {}
    const e = new WheelishError('WHEEL_BOMB', 'x.whl expands 2000x');
    expect([e.name, e.code, e instanceof DstackError]).toEqual(['WheelishError', 'WHEEL_BOMB', true]);
  });
});

describe('caretExcerpt', () => {
  it.each([
    ['foo bar baz', 7, 5, '    foo bar baz\n        ~~^'],
    ['foo bar baz', 1, undefined, '    foo bar baz\n    ^'],
    // tabs stay tabs in the padding so the caret lines up under a tab-indented line
    ['\tfoo ==', 6, 2, '    \tfoo ==\n    \t~~~~^'],
    // line breaks inside the source are shown as spaces
    ['a \\\nb', 4, undefined, '    a \\ b\n       ^'],
    // a span that starts after the caret is clamped to the caret
    ['abc', 2, 3, '    abc\n     ^'],
  ])('%j at %i (span from %s)', (source, column, spanStart, expected) => {
    expect(caretExcerpt(source, column, spanStart)).toBe(expected);
  });
});

describe('the catalogue', () => {
  it('names each code once, with a summary and a hint', () => {
    const codes = ERROR_CODES.map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of ERROR_CODES) {
      expect(c.code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(c.summary.length, c.code).toBeGreaterThan(10);
      expect(c.hint.length, c.code).toBeGreaterThan(10);
    }
  });

  it('lists the owners in the order of the dependency direction', () => {
    expect([...new Set(ERROR_CODES.map((c) => c.owner))]).toEqual([
      '@dstack/recipe',
      '@dstack/wheelhouse',
      '@dstack/engine',
      '@dstack/oci',
      '@dstack/image',
      '@dstack/server',
      'dstack-factory (CLI)',
    ]);
    expect(ERROR_CODES.find((c) => c.code === 'WHEEL_CONFLICT')?.owner).toBe('@dstack/wheelhouse');
    expect(ERROR_CODES.find((c) => c.code === 'REGISTRY_UNAUTHORIZED')?.owner).toBe('@dstack/oci');
  });
});

it('README usage', () => {
  // README usage: begin
  class WheelError extends DstackError<WheelErrorCode> {}

  const err = new WheelError('WHEEL_BOMB', 'x-1.0-py3-none-any.whl expands 2000x', { hint: 'rebuild it' });
  expect([err.code, err.name, err.hint]).toEqual(['WHEEL_BOMB', 'WheelError', 'rebuild it']);
  // new WheelError('WHEEL_BOOM', …) does not compile: the code is one of WheelErrorCode

  expect(caretExcerpt('django>=4.2 ; python_version >> "3"', 30, 29)).toBe(
    '    django>=4.2 ; python_version >> "3"\n' + '                                ~^',
  );
  expect(ERROR_CODES.find((c) => c.code === 'WHEEL_BOMB')?.owner).toBe('@dstack/wheelhouse');
  // README usage: end
});

// Differential fuzzing: parsePep508 and normalizeMarker against pip 23.2's vendored packaging, on thousands of
// generated strings sent to test/pep508_oracle.py in one process. Accept/reject and every field must agree.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { isolatedPipEnv } from '@dstack/testing';
import { describe, expect, it } from 'vitest';
import { RecipeError, normalizeMarker, parsePep508 } from './index.js';

const oracle = fileURLToPath(new URL('../test/pep508_oracle.py', import.meta.url));
const COUNT = process.env.CI === 'true' ? 3_000 : 1_500;

function pip(kind: 'requirement' | 'marker', texts: string[]): Record<string, unknown>[] {
  const run = spawnSync('python3', [oracle], {
    input: JSON.stringify({ kind, texts }),
    env: isolatedPipEnv(),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (run.error || run.status !== 0)
    throw new Error(
      `python3 with pip 23.2 is needed (apt-get install python3-pip): ${run.error?.message ?? run.stderr}`,
    );
  return JSON.parse(run.stdout) as Record<string, unknown>[];
}

const REQ_TOKENS = [
  'name',
  'N.a_m-e',
  'x1',
  '[',
  ']',
  'a',
  'B_c',
  ',',
  ' ',
  '\t',
  '(',
  ')',
  ';',
  '@',
  '==',
  '===',
  '!=',
  '<=',
  '>=',
  '<',
  '>',
  '~=',
  '=',
  '1',
  '1.0',
  '.*',
  'rc1',
  '.post1',
  '.dev0',
  '+local.1',
  '-foo',
  'v2',
  '2!',
  'https://h.org/p.whl',
  'file:///x',
  'file:x',
  'http:///',
  'git+ssh://g/r',
  ' and ',
  ' or ',
  'python_version',
  'os.name',
  'extra',
  'platform.python_implementation',
  ' in ',
  ' not in ',
  '"3.8"',
  "'x'",
  '"',
  "'",
];
const MARKER_TOKENS = [
  'python_version',
  'python_full_version',
  'sys.platform',
  'os.name',
  'platform.machine',
  'python_implementation',
  'extra',
  'implementation_name',
  ' ',
  '==',
  '!=',
  '<',
  '>=',
  '~=',
  '===',
  ' in ',
  ' not in ',
  'in',
  '"3.8"',
  "'linux'",
  '"a b"',
  '""',
  '(',
  ')',
  ' and ',
  ' or ',
  'and',
  'or',
  '"',
  "'",
];

function sample(tokens: string[], seed: number): string[] {
  return fc.sample(
    fc.array(fc.constantFrom(...tokens), { minLength: 1, maxLength: 12 }).map((t) => t.join('')),
    { numRuns: COUNT, seed },
  );
}

function ours<T>(fn: () => T): T | { error: string } {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RecipeError) return { error: e.reason };
    throw e;
  }
}

describe('PEP 508 strings and markers agree with pip 23.2 packaging on generated input', () => {
  it(`requirements (${COUNT} strings)`, () => {
    const texts = ['django==1.10.5', ...sample(REQ_TOKENS, 42)];
    const theirs = pip('requirement', texts);
    let accepted = 0;
    texts.forEach((text, i) => {
      const mine = ours(() => parsePep508(text));
      const expected = theirs[i]!;
      if ('error' in expected)
        expect({ text, accepted: !('error' in mine) }).toEqual({ text, accepted: false });
      else {
        accepted++;
        expect({ text, parsed: mine }).toEqual({ text, parsed: expected });
      }
    });
    expect(accepted).toBeGreaterThan(COUNT / 50);
  });

  it(`markers (${COUNT} strings)`, () => {
    const value = fc.constantFrom(
      'python_version',
      'sys.platform',
      'extra',
      'os_name',
      'platform.python_implementation',
      '"3.8"',
      "'linux'",
      '"1.0.*"',
      '""',
      '"a\'b"',
    );
    const ws = fc.constantFrom('', ' ', '  ', '\t');
    const atom = fc
      .tuple(value, ws, fc.constantFrom('==', '!=', '<', '>=', '~=', '===', 'in', 'not in', '='), ws, value)
      .map((p) => p.join(''));
    const { expr } = fc.letrec<{ expr: string }>((tie) => ({
      expr: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        atom,
        fc
          .tuple(tie('expr'), fc.constantFrom(' and ', ' or ', 'and', ' or'), tie('expr'))
          .map((p) => p.join('')),
        fc.tuple(ws, tie('expr'), ws).map(([a, e, b]) => `(${a}${e}${b})`),
      ),
    }));
    const structured = fc.sample(expr, { numRuns: COUNT, seed: 11 });
    const texts = ['python_version < "3"', ...sample(MARKER_TOKENS, 7), ...structured];
    const theirs = pip('marker', texts);
    let accepted = 0;
    texts.forEach((text, i) => {
      const mine = ours(() => ({ marker: normalizeMarker(text) }));
      const expected = theirs[i]!;
      if ('error' in expected)
        expect({ text, accepted: !('error' in mine) }).toEqual({ text, accepted: false });
      else {
        accepted++;
        expect({ text, normal: mine }).toEqual({ text, normal: expected });
      }
    });
    expect(accepted).toBeGreaterThan(COUNT / 50);
  });
});

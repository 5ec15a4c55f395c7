// Property tests (fast-check): no input makes the parsers throw anything but RecipeError, and what parses
// renders back to an equivalent requirement. 10,000 runs for the main property in CI, fewer locally.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  RecipeError,
  evaluateMarker,
  formatRequirement,
  parsePep508,
  parseRecipe,
  type MarkerEnvironment,
} from './index.js';

const CI = process.env.CI === 'true';
const MAIN_RUNS = CI ? 10_000 : 2_000;
const RUNS = CI ? 3_000 : 500;

const env: MarkerEnvironment = {
  implementation_name: 'cpython',
  implementation_version: '3.11.7',
  os_name: 'posix',
  platform_machine: 'x86_64',
  platform_release: '6.1.0',
  platform_system: 'Linux',
  platform_version: '#1 SMP',
  platform_python_implementation: 'CPython',
  python_full_version: '3.11.7',
  python_version: '3.11',
  sys_platform: 'linux',
};

/** Pieces of requirements-file syntax, so generated text reaches deep into the parser, not just its first check. */
const TOKENS = [
  'django',
  'Foo.Bar_baz',
  'a',
  '1',
  '[',
  ']',
  ',',
  '(',
  ')',
  ';',
  ' ; ',
  '@',
  ' @ ',
  '==',
  '>=',
  '<',
  '!=',
  '~=',
  '===',
  '.*',
  '1.0',
  '2!1.0rc1.post2.dev3+local',
  'python_version',
  'sys.platform',
  'extra',
  ' and ',
  ' or ',
  ' in ',
  ' not in ',
  '"3.8"',
  "'linux'",
  '"',
  "'",
  ' ',
  '\t',
  '\n',
  '\r\n',
  '\\\n',
  '\\',
  '#',
  ' # c',
  '${HOME}',
  '${DSTACK_X}',
  '$X',
  '-e ',
  '-r ',
  '-c ',
  '-i ',
  '--index-url=',
  '--hash=sha256:ab',
  '--hash',
  '--no-binary',
  ':all:',
  '--pre',
  '--no',
  '--config-settings',
  'k=v',
  '-C',
  '--global-option',
  '--frob',
  'https://x.org/p-1.0.tar.gz',
  'git+https://g.org/r.git@v1#egg=n&subdirectory=s',
  'file:///tmp/x.whl',
  './pkg',
  '.',
  '../up',
  'x-1.0-py3-none-any.whl',
  '#egg=',
  'file:',
  '-',
  '--',
  '\uFEFF',
  '\f',
  '\u2028',
  '\x00',
  'é',
];
const tokenText = fc.array(fc.constantFrom(...TOKENS), { maxLength: 24 }).map((t) => t.join(''));
const anyText = fc.oneof(
  tokenText,
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 80 }),
);

/** Runs `fn`; fails the property if it throws anything other than a RecipeError. */
function onlyRecipeErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof RecipeError)) throw e;
    expect(e.line).toBeGreaterThanOrEqual(0);
    expect(e.column).toBeGreaterThanOrEqual(0);
  }
}

describe('no input makes a parser throw anything but RecipeError', () => {
  it(`parseRecipe (${MAIN_RUNS} runs)`, async () => {
    const files: Record<string, string> = { 'inc.txt': 'requests\n-r inc.txt\n', 'sub/x.txt': 'flask==2\n' };
    await fc.assert(
      fc.asyncProperty(anyText, async (text) => {
        try {
          const recipe = await parseRecipe(text, {
            file: 'main.txt',
            cwd: '/srv/app',
            env: { DSTACK_X: 'v' },
            readFile: (f) => {
              const t = files[f];
              if (t === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
              return t;
            },
          });
          for (const r of recipe.requirements) expect(r.line).toBeGreaterThanOrEqual(1);
        } catch (e) {
          if (!(e instanceof RecipeError)) throw e;
        }
      }),
      { numRuns: MAIN_RUNS },
    );
  });

  it(`parseRecipe collecting every error (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(anyText, async (text) => {
        const errors: RecipeError[] = [];
        await parseRecipe(text, { file: 'main.txt', cwd: '/srv/app', errors });
        for (const e of errors) expect(e).toBeInstanceOf(RecipeError);
      }),
      { numRuns: RUNS },
    );
  });

  it(`parsePep508 (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(anyText, (text) => onlyRecipeErrors(() => parsePep508(text))),
      { numRuns: RUNS },
    );
  });

  it(`evaluateMarker (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(
        anyText,
        fc.array(fc.constantFrom('test', 'Docs_X', ''), { maxLength: 2 }),
        (text, extras) => onlyRecipeErrors(() => evaluateMarker(text, env, extras)),
      ),
      { numRuns: RUNS },
    );
  });
});

const name = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?$/);
const version = fc.stringMatching(
  /^[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc)[0-9])?(\.post[0-9])?(\.dev[0-9])?$/,
);
const clause = fc.oneof(
  fc.tuple(fc.constantFrom('==', '!=', '<=', '>=', '<', '>'), version).map(([op, v]) => `${op}${v}`),
  fc
    .tuple(fc.constantFrom('==', '!='), version)
    .map(([op, v]) => `${op}${v.replace(/(a|b|rc|\.post|\.dev).*$/, '')}.*`),
  version.filter((v) => /^[0-9]+\.[0-9]/.test(v)).map((v) => `~=${v}`),
);
const markerAtom = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('python_version', 'python_full_version', 'implementation_version'),
      fc.constantFrom('<', '>=', '==', '!=', '~='),
      version,
    )
    .map(([v, op, ver]) => `${v} ${op} "${ver}"`),
  fc
    .tuple(
      fc.constantFrom('sys_platform', 'os_name', 'platform_machine', 'sys.platform', 'os.name'),
      fc.constantFrom('==', '!=', 'in', 'not in'),
      fc.constantFrom('linux', 'win32', 'x86_64', 'posix'),
    )
    .map(([v, op, s]) => `${v} ${op} '${s}'`),
  name.map((e) => `extra == "${e}"`),
);
const marker = fc
  .array(markerAtom, { minLength: 1, maxLength: 3 })
  .chain((atoms) =>
    fc
      .array(fc.constantFrom(' and ', ' or '), { minLength: atoms.length - 1, maxLength: atoms.length - 1 })
      .map((ops) => atoms.reduce((acc, a, i) => (i === 0 ? a : `(${acc})${ops[i - 1]}${a}`), '')),
  );
const url = fc.oneof(
  fc.tuple(name, version).map(([n, v]) => `https://files.example.org/${n}-${v}.tar.gz`),
  fc
    .tuple(name, fc.stringMatching(/^[a-z0-9]{1,8}$/))
    .map(([n, ref]) => `git+https://git.example.org/${n}.git@${ref}#subdirectory=src`),
  fc.tuple(name, version).map(([n, v]) => `file:///srv/dist/${n.replace(/[-.]/g, '_')}-${v}.tar.gz`),
);
const requirementLine = fc
  .record({
    name,
    extras: fc.array(name, { maxLength: 3 }),
    clauses: fc.array(clause, { maxLength: 3 }),
    marker: fc.option(marker, { nil: null }),
    url: fc.option(url, { nil: null }),
    parens: fc.boolean(),
  })
  .map(({ name: n, extras, clauses, marker: m, url: u, parens }) => {
    const ex = extras.length > 0 ? `[${extras.join(', ')}]` : '';
    const spec = clauses.length > 0 ? (parens ? ` (${clauses.join(', ')})` : ` ${clauses.join(',')}`) : '';
    return `${n}${ex}${u !== null ? ` @ ${u}` : spec}${m !== null ? ` ; ${m}` : ''}`;
  });

describe('what parses renders back to an equivalent requirement', () => {
  it(`recipe lines: parse -> formatRequirement -> parse is the same requirement (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        requirementLine,
        fc.array(fc.stringMatching(/^[0-9a-f]{8}$/), { maxLength: 2 }),
        async (line, digests) => {
          const text = `${line}${digests.map((d) => ` --hash=sha256:${d}`).join('')}\n`;
          const first = (await parseRecipe(text, { file: 'r.txt', cwd: '/srv/app' })).requirements;
          expect(first).toHaveLength(1);
          const again = (
            await parseRecipe(`${formatRequirement(first[0]!)}\n`, { file: 'r.txt', cwd: '/srv/app' })
          ).requirements;
          expect(again).toEqual(first);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it(`PEP 508 strings: any string parsePep508 accepts renders back to itself (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(fc.oneof(requirementLine, tokenText), (text) => {
        let req;
        try {
          req = parsePep508(text);
        } catch (e) {
          if (e instanceof RecipeError) return;
          throw e;
        }
        expect(parsePep508(formatRequirement(req))).toEqual(req);
      }),
      { numRuns: RUNS },
    );
  });

  it('examples', () => {
    expect(formatRequirement(parsePep508('Foo[b,a] (>=1,<2) ; python_version<"3"'))).toBe(
      'Foo[a,b]<2,>=1 ; python_version < "3"',
    );
    expect(formatRequirement(parsePep508('pip @ https://x.org/pip.tar.gz;extra=="x"'))).toBe(
      'pip @ https://x.org/pip.tar.gz;extra=="x"',
    );
  });
});

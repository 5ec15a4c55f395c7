import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RecipeError,
  decodeRecipeBytes,
  formatRequirement,
  parseRecipe,
  preprocessLines,
  readRecipeFile,
  recipeToJSON,
  resolveRecipePath,
  type PathKind,
} from './index.js';

const base = {
  extras: [],
  specifier: '',
  marker: null,
  url: null,
  editable: false,
  constraint: false,
  hashes: [],
};

async function firstError(
  text: string,
  options: Parameters<typeof parseRecipe>[1] = { file: 'r.txt', cwd: '/srv' },
): Promise<RecipeError> {
  try {
    await parseRecipe(text, options);
  } catch (e) {
    if (e instanceof RecipeError) return e;
    throw e;
  }
  throw new Error(`accepted: ${text}`);
}

describe('parseRecipe', () => {
  it('reads a recipe with includes through the injected reader (the README example)', async () => {
    // README usage: begin
    const files: Record<string, string> = {
      'recipes/base.txt': 'requests[socks]>=2.31 --hash=sha256:0123abcd\n',
      'recipes/pins.txt': 'urllib3==2.0.7\n',
    };
    const recipe = await parseRecipe(
      [
        '--index-url ${INDEX}',
        '-r base.txt',
        '-c pins.txt',
        'django==4.2.7 ; python_version >= "3.8"',
        '',
      ].join('\n'),
      {
        file: 'recipes/app.txt',
        env: { INDEX: 'https://pypi.example.org/simple' },
        readFile: (f) => files[f]!,
      },
    );
    expect(recipe.files).toEqual(['recipes/app.txt', 'recipes/base.txt', 'recipes/pins.txt']);
    expect(recipe.options.indexUrl).toBe('https://pypi.example.org/simple');
    expect(recipe.requirements[1]).toMatchObject({
      name: 'urllib3',
      specifier: '==2.0.7',
      constraint: true,
      line: 1,
    });
    // README usage: end
    expect(recipe.requirements).toEqual([
      {
        ...base,
        name: 'requests',
        extras: ['socks'],
        specifier: '>=2.31',
        hashes: ['sha256:0123abcd'],
        file: 'recipes/base.txt',
        line: 1,
      },
      { ...base, name: 'urllib3', specifier: '==2.0.7', constraint: true, file: 'recipes/pins.txt', line: 1 },
      {
        ...base,
        name: 'django',
        specifier: '==4.2.7',
        marker: 'python_version >= "3.8"',
        file: 'recipes/app.txt',
        line: 4,
      },
    ]);
  });

  it.each([
    ['django==1.10.5', { name: 'django', specifier: '==1.10.5' }],
    ['  Django >= 1.8 , < 2  # comment', { name: 'Django', specifier: '<2,>=1.8' }],
    ['foo[Bar,baz]', { name: 'foo', extras: ['bar', 'baz'] }],
    ['foo (==1.0)', { name: 'foo', specifier: '==1.0' }],
    ['foo; sys.platform == "win32"', { name: 'foo', marker: 'sys_platform == "win32"' }],
    [
      'name @ https://x.org/n-1.tar.gz ; python_version < "3"',
      { name: 'name', url: 'https://x.org/n-1.tar.gz', marker: 'python_version < "3"' },
    ],
    [
      'name @ https://x.org/n-1.tar.gz;python_version < "3"',
      { name: 'name', url: 'https://x.org/n-1.tar.gz', marker: 'python_version < "3"' },
    ],
    ['https://x.org/n-1.tar.gz#egg=n', { name: 'n', url: 'https://x.org/n-1.tar.gz#egg=n' }],
    [
      'https://x.org/w_x-1.0-py3-none-any.whl',
      { name: 'w-x', specifier: '==1.0', url: 'https://x.org/w_x-1.0-py3-none-any.whl' },
    ],
    [
      'git+https://g.org/r.git@v1#egg=r[a]&subdirectory=s',
      { name: 'r', extras: ['a'], url: 'git+https://g.org/r.git@v1#egg=r[a]&subdirectory=s' },
    ],
    ['./local/pkg[x]', { name: null, extras: ['x'], url: 'file:///srv/local/pkg' }],
    [
      './dist/a_b-2.0-py3-none-any.whl',
      { name: 'a-b', specifier: '==2.0', url: 'file:///srv/dist/a_b-2.0-py3-none-any.whl' },
    ],
    ['dist/my pkg-1.0.tar.gz', { name: null, url: 'file:///srv/dist/my%20pkg-1.0.tar.gz' }],
    ['-e .', { name: null, url: 'file:///srv', editable: true }],
    ['-e git+https://g.org/r.git#egg=r', { name: 'r', url: 'git+https://g.org/r.git#egg=r', editable: true }],
    ['--editable=svn+https://s.org/x#egg=x', { name: 'x', url: 'svn+https://s.org/x#egg=x', editable: true }],
  ])('%s', async (line, expected) => {
    const recipe = await parseRecipe(`${line}\n`, { file: 'r.txt', cwd: '/srv' });
    expect(recipe.requirements).toEqual([{ ...base, file: 'r.txt', line: 1, ...expected }]);
  });

  it('keeps per-requirement --config-settings and --global-option', async () => {
    const [r] = (
      await parseRecipe('x --config-settings=a=1 -C a=2 -C b=3 --global-option=--quiet\n', { file: 'r.txt' })
    ).requirements;
    expect(r!.configSettings).toEqual({ a: ['1', '2'], b: '3' });
    expect(r!.globalOptions).toEqual(['--quiet']);
  });

  it('aggregates global options over lines and files', async () => {
    const recipe = await parseRecipe(
      '-i a\n--extra-index-url b\n-f c\n--no-index\n--pre\n--no-binary :all:\n--only-binary=X_y\n--prefer-binary\n--trusted-host h\n--require-hashes\n--use-feature=fast-deps\n',
      { file: 'r.txt' },
    );
    expect(recipe.options).toEqual({
      indexUrl: 'a',
      extraIndexUrls: ['b'],
      findLinks: ['c'],
      noIndex: true,
      pre: true,
      noBinary: [':all:'],
      onlyBinary: ['x-y'],
      preferBinary: true,
      trustedHosts: ['h'],
      requireHashes: true,
    });
  });

  it('expands ${VAR} only for set, non-empty, upper-case variables', async () => {
    const recipe = await parseRecipe('a==${V}\nb @ https://x/${UNSET}/b.tgz\nc @ https://x/$V/c.tgz\n', {
      file: 'r.txt',
      env: { V: '1.0' },
    });
    expect(recipe.requirements.map((r) => r.specifier || r.url)).toEqual([
      '==1.0',
      'https://x/${UNSET}/b.tgz',
      'https://x/$V/c.tgz',
    ]);
  });

  it.each([
    [
      'foo bar\n',
      1,
      5,
      'RECIPE_SYNTAX',
      "invalid requirement \"foo bar\": expected a version specifier, '@', ';', '[' or the end after the name",
      '    foo bar\n        ^',
    ],
    [
      'ok\n\nx \\\n  >=1 ; python_version >> "3"\n',
      3,
      27,
      'RECIPE_SYNTAX',
      'invalid marker "python_version >> \\"3\\"": expected a marker variable (python_version, sys_platform, extra, …) or a quoted string',
      '    x   >=1 ; python_version >> "3"\n                              ^',
    ],
    ['--frobnicate\n', 1, 1, 'RECIPE_SYNTAX', 'no such option: --frobnicate', '    --frobnicate\n    ^'],
    [
      '--no x\n',
      1,
      1,
      'RECIPE_SYNTAX',
      'ambiguous option: --no (--no-binary, --no-index?)',
      '    --no x\n    ^',
    ],
    [
      'x --hash=md5:00\n',
      1,
      3,
      'RECIPE_SYNTAX',
      'Allowed hash algorithms for --hash are sha256, sha384, sha512.',
      '    x --hash=md5:00\n      ^',
    ],
    ['--pre=yes\n', 1, 1, 'RECIPE_SYNTAX', '--pre option does not take a value', '    --pre=yes\n    ^'],
    ['-i\n', 1, 1, 'RECIPE_SYNTAX', '-i option requires 1 argument', '    -i\n    ^'],
    [
      '--use-feature=warp\n',
      1,
      1,
      'RECIPE_SYNTAX',
      "option --use-feature: invalid choice: 'warp' (choose from 'fast-deps', 'truststore', 'no-binary-enable-wheel-cache')",
      '    --use-feature=warp\n    ^',
    ],
    [
      '-e https://x.org/a.tgz\n',
      1,
      1,
      'RECIPE_SYNTAX',
      expect.stringContaining('https://x.org/a.tgz is not a valid editable requirement.'),
      expect.any(String),
    ],
    [
      '-e git+https://x.org/a\n',
      1,
      1,
      'RECIPE_SYNTAX',
      "Could not detect requirement name for 'git+https://x.org/a', please specify one with #egg=your_package_name",
      expect.any(String),
    ],
    ['a>=1.0[x]\n', 1, 9, 'RECIPE_SYNTAX', "extras after version '>=1.0[x]'", '    a>=1.0[x]\n            ^'],
    [
      '-r other.txt\n',
      1,
      4,
      'RECIPE_INCLUDE_UNREADABLE',
      'cannot read other.txt: no file reader was given',
      '    -r other.txt\n       ^',
    ],
  ])('refuses %j at line %i col %i', async (text, line, column, code, reason, excerpt) => {
    const e = await firstError(text);
    expect({
      code: e.code,
      file: e.file,
      line: e.line,
      column: e.column,
      reason: e.reason,
      excerpt: e.excerpt,
    }).toEqual({ code, file: 'r.txt', line, column, reason, excerpt });
    expect(e.message.startsWith(`r.txt:${line}:${column}: `)).toBe(true);
  });

  it('detects include cycles and names the chain', async () => {
    const files: Record<string, string> = { 'a.txt': 'x\n-r b.txt\n', 'b.txt': '\n-r ./a.txt\n' };
    const e = await firstError('-r a.txt\n', { file: 'top.txt', cwd: '/srv', readFile: (f) => files[f]! });
    expect([e.code, e.file, e.line, e.reason]).toEqual([
      'RECIPE_INCLUDE_CYCLE',
      'b.txt',
      2,
      'include cycle: a.txt -> b.txt -> a.txt',
    ]);
  });

  it('reads absolute includes as they are, relative ones beside the including file', async () => {
    const read: string[] = [];
    await parseRecipe('-r /etc/abs.txt\n-c sub/../rel.txt\n', {
      file: 'recipes/app.txt',
      readFile: (f) => (read.push(f), ''),
    });
    expect(read).toEqual(['/etc/abs.txt', 'recipes/rel.txt']);
  });

  it('collects every error when asked, and keeps what it could read', async () => {
    const errors: RecipeError[] = [];
    const recipe = await parseRecipe('a\nb c\nd\n--bad\n-r missing.txt\ne\n', {
      file: 'r.txt',
      errors,
      readFile: () => Promise.reject(Object.assign(new Error('x'), { code: 'ENOENT' })),
    });
    expect(recipe.requirements.map((r) => r.name)).toEqual(['a', 'd', 'e']);
    expect(errors.map((e) => `${e.line}:${e.column} ${e.code}`)).toEqual([
      '2:3 RECIPE_SYNTAX',
      '4:1 RECIPE_SYNTAX',
      '5:4 RECIPE_INCLUDE_UNREADABLE',
    ]);
    expect(errors[2]!.reason).toBe('could not open requirements file missing.txt: no such file');
  });

  it('asks an injected pathKind, sync or async, as pip asks the file system', async () => {
    const kinds: Record<string, PathKind> = {
      '/srv/proj': 'project',
      '/srv/plain': 'directory',
      '/srv/w-1.0-py3-none-any.whl': 'file',
    };
    for (const pathKind of [
      (p: string) => kinds[p] ?? 'missing',
      async (p: string) => kinds[p] ?? 'missing',
    ]) {
      const recipe = await parseRecipe('./proj\n-e proj\nw-1.0-py3-none-any.whl\n', {
        file: 'r.txt',
        cwd: '/srv',
        pathKind,
      });
      expect(recipe.requirements.map((r) => [r.name, r.url, r.editable])).toEqual([
        [null, 'file:///srv/proj', false],
        [null, 'file:///srv/proj', true],
        ['w', 'file:///srv/w-1.0-py3-none-any.whl', false],
      ]);
      const e = await firstError('./plain\n', { file: 'r.txt', cwd: '/srv', pathKind });
      expect([e.code, e.reason]).toEqual([
        'RECIPE_PATH_NOT_INSTALLABLE',
        "Directory './plain' is not installable. Neither 'setup.py' nor 'pyproject.toml' found.",
      ]);
      const missing = await firstError('./nothing-here\n', { file: 'r.txt', cwd: '/srv', pathKind });
      expect(missing.hint).toBe(
        'It looks like a path; a local project must exist as a directory with setup.py or pyproject.toml.',
      );
    }
  });

  it('recipeToJSON is exactly the shape of issue 2', async () => {
    const recipe = await parseRecipe('x --config-settings=a=1\n', { file: 'r.txt' });
    expect(Object.keys(recipeToJSON(recipe))).toEqual(['requirements', 'options']);
    expect(recipeToJSON(recipe)).toEqual({
      requirements: [
        {
          name: 'x',
          extras: [],
          specifier: '',
          marker: null,
          url: null,
          editable: false,
          constraint: false,
          hashes: [],
          file: 'r.txt',
          line: 1,
        },
      ],
      options: recipe.options,
    });
  });
});

describe('long pathological lines stay linear', () => {
  it.each([
    ['spaces then no comment', `a${' '.repeat(200_000)}b`],
    ['spaces before a late #', ` x${' '.repeat(200_000)}y#z`],
    ['many [ before ]', `p${'['.repeat(200_000)}]`],
    ['a long marker', `x ; ${Array(20_000).fill('os_name == "a"').join(' or ')}`],
    ['deeply nested parentheses', `x ; ${'('.repeat(50_000)}os_name == "a"${')'.repeat(50_000)}`],
  ])('%s', async (_what, line) => {
    const start = performance.now();
    const errors: RecipeError[] = [];
    await parseRecipe(line, { file: 'r.txt', cwd: '/srv', errors });
    expect(performance.now() - start).toBeLessThan(2_000);
  });
});

describe('preprocessLines (req_file.preprocess)', () => {
  it('joins continuations on the first line, drops comments and blanks, splits like str.splitlines', () => {
    expect(preprocessLines('a \\\n b\\\\\n# c \\\nd #e\n\fz\r\ny\u2028x\\')).toEqual([
      { line: 1, text: 'a  b' },
      { line: 4, text: 'd' },
      { line: 6, text: 'z' },
      { line: 7, text: 'y' },
      { line: 8, text: 'x' },
    ]);
    expect(preprocessLines('u @ https://h/p#egg=u # comment')).toEqual([
      { line: 1, text: 'u @ https://h/p#egg=u' },
    ]);
  });
});

describe('files on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dstack-recipe-'));
    await mkdir(path.join(dir, 'proj'));
    await writeFile(path.join(dir, 'proj/setup.py'), 'from setuptools import setup\nsetup()\n');
    await writeFile(
      path.join(dir, 'utf16.txt'),
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('six==1.16.0\r\n-r bom.txt\r\n', 'utf16le')]),
    );
    await writeFile(
      path.join(dir, 'bom.txt'),
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('-e ./proj\n')]),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('readRecipeFile decodes BOMs (UTF-16 too) and checks local paths on disk', async () => {
    const recipe = await readRecipeFile('utf16.txt', { cwd: dir, env: {} });
    expect(recipe.requirements.map((r) => [r.name, r.url, r.file, r.line])).toEqual([
      ['six', null, 'utf16.txt', 1],
      [null, `file://${dir}/proj`, 'bom.txt', 1],
    ]);
  });

  it('a missing top file is RECIPE_NOT_FOUND', async () => {
    await expect(readRecipeFile('nope.txt', { cwd: dir })).rejects.toMatchObject({
      code: 'RECIPE_NOT_FOUND',
      file: 'nope.txt',
    });
  });

  it('decodeRecipeBytes: UTF-8 without BOM as is', () =>
    expect(decodeRecipeBytes(Buffer.from('é\n'))).toBe('é\n'));

  it.each([
    ['latin-1 on line 1', Buffer.from('# -*- coding: latin-1 -*-\ncaf\xe9\n', 'latin1'), '# -*- coding: latin-1 -*-\ncafé\n'],
    ['ISO-8859-1 spelled otherwise', Buffer.from('#coding=ISO_8859-1\n\xe9\n', 'latin1'), '#coding=ISO_8859-1\né\n'],
    ['cp1252 on line 2', Buffer.from([...Buffer.from('x\n# vim: fileencoding=cp1252\n'), 0x80]), 'x\n# vim: fileencoding=cp1252\n€'],
    ['a coding line on line 3 is not read', Buffer.from('a\nb\n# coding: latin-1\né\n'), 'a\nb\n# coding: latin-1\né\n'],
    ['not a comment: not a coding line', Buffer.from('x # coding: latin-1\né\n'), 'x # coding: latin-1\né\n'],
  ])('decodeRecipeBytes, PEP 263: %s', (_name, bytes, text) => expect(decodeRecipeBytes(bytes)).toBe(text));

  it('decodeRecipeBytes: an encoding pip does not know is an error at its coding line', () => {
    expect(() => decodeRecipeBytes(Buffer.from('# coding: klingon\nfoo\n'), 'r.txt')).toThrow(
      'r.txt:1:11: unknown encoding "klingon" in the coding line\n    # coding: klingon\n              ^',
    );
  });
});

describe('resolveRecipePath (the seed naming)', () => {
  it.each([
    ['django-1.10.5', 'recipes', 'recipes/django-1.10.5.txt'],
    ['', 'recipes', 'recipes/requirements.txt'],
    ['requirements', '/srv/recipes', '/srv/recipes/requirements.txt'],
    ['other/app.txt', 'recipes', 'other/app.txt'],
    ['app.txt', 'recipes', 'app.txt'],
  ])('%j in %s -> %s', (name, dir, expected) => expect(resolveRecipePath(name, dir)).toBe(expected));
});

describe('formatRequirement', () => {
  it.each([
    [
      {
        name: 'a',
        extras: ['x'],
        specifier: '<2,>=1',
        marker: 'os_name == "nt"',
        url: null,
        hashes: ['sha256:ab'],
      },
      'a[x]<2,>=1 ; os_name == "nt" --hash=sha256:ab',
    ],
    [{ name: 'a', extras: [], specifier: '', marker: null, url: 'https://x/a.tgz' }, 'a @ https://x/a.tgz'],
    [
      { name: null, extras: ['e'], specifier: '', marker: null, url: 'file:///srv/p', editable: true },
      '-e /srv/p[e]',
    ],
    [
      { name: 'w', extras: [], specifier: '==1.0', marker: null, url: 'file:///srv/w-1.0-py3-none-any.whl' },
      '/srv/w-1.0-py3-none-any.whl',
    ],
  ])('%j', (r, text) => expect(formatRequirement(r)).toBe(text));
});

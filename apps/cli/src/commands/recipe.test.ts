import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../run-cli.test-support.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-recipe-cli-'));
  await mkdir(path.join(dir, 'recipes/inc'), { recursive: true });
  await writeFile(path.join(dir, 'pyproject.toml'), '[project]\nname = "app"\n');
  await writeFile(
    path.join(dir, 'recipes/app.txt'),
    [
      '--index-url ${DSTACK_TEST_INDEX}',
      '-e .',
      'django==1.10.5 ; python_version < "3.12"',
      '-r inc/base.txt',
      '-c inc/pins.txt',
      'ldap3 \\',
      '  ==2.1.1',
      '',
    ].join('\n'),
  );
  await writeFile(path.join(dir, 'recipes/inc/base.txt'), 'requests[socks]>=2 --hash=sha256:abcd\n');
  await writeFile(path.join(dir, 'recipes/inc/pins.txt'), 'urllib3==1.26.18\n');
  await writeFile(
    path.join(dir, 'recipes/bad.txt'),
    'ok\nfoo bar\n--frobnicate\nx; python_version >> "3"\n-r nope.txt\nrequests=2.0\n',
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const env = (): NodeJS.ProcessEnv => ({
  NO_COLOR: '1',
  DSTACK_TEST_INDEX: 'https://pypi.example.org/simple',
});

describe('dstack-factory recipe show', () => {
  test('--json prints the recipe in the shape of issue 2, includes expanded in place', async () => {
    const r = await runCli(['recipe', 'show', 'recipes/app.txt', '--json'], { cwd: dir, env: env() });
    expect([r.code, r.stderr]).toEqual([0, '']);
    const base = {
      extras: [],
      specifier: '',
      marker: null,
      url: null,
      editable: false,
      constraint: false,
      hashes: [],
    };
    expect(JSON.parse(r.stdout)).toEqual({
      requirements: [
        { ...base, name: null, url: `file://${dir}`, editable: true, file: 'recipes/app.txt', line: 2 },
        {
          ...base,
          name: 'django',
          specifier: '==1.10.5',
          marker: 'python_version < "3.12"',
          file: 'recipes/app.txt',
          line: 3,
        },
        {
          ...base,
          name: 'requests',
          extras: ['socks'],
          specifier: '>=2',
          hashes: ['sha256:abcd'],
          file: 'recipes/inc/base.txt',
          line: 1,
        },
        {
          ...base,
          name: 'urllib3',
          specifier: '==1.26.18',
          constraint: true,
          file: 'recipes/inc/pins.txt',
          line: 1,
        },
        { ...base, name: 'ldap3', specifier: '==2.1.1', file: 'recipes/app.txt', line: 6 },
      ],
      options: {
        indexUrl: 'https://pypi.example.org/simple',
        extraIndexUrls: [],
        findLinks: [],
        noIndex: false,
        pre: false,
        noBinary: [],
        onlyBinary: [],
        preferBinary: false,
        trustedHosts: [],
        requireHashes: false,
      },
    });
  });

  test('prints one requirement a line with file:line for people', async () => {
    const r = await runCli(['recipe', 'show', 'recipes/app.txt'], { cwd: dir, env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `recipes/app.txt:2       -e ${dir}`,
        'recipes/app.txt:3       django==1.10.5 ; python_version < "3.12"',
        'recipes/inc/base.txt:1  requests[socks]>=2  (1 hash)',
        'recipes/inc/pins.txt:1  urllib3==1.26.18  (constraint)',
        'recipes/app.txt:6       ldap3==2.1.1',
        '',
        'options:',
        '  --index-url https://pypi.example.org/simple',
        '',
        '4 requirements, 1 constraint, 3 files',
        '',
      ].join('\n'),
    );
  });

  test('an invalid recipe is one clear error and exit 1', async () => {
    const r = await runCli(['recipe', 'show', 'recipes/bad.txt'], { cwd: dir, env: env() });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      "error[RECIPE_SYNTAX]: recipes/bad.txt:2:5: invalid requirement \"foo bar\": expected a version specifier, '@', ';', '[' or the end after the name\n    foo bar\n        ^\n",
    );
  });

  test('a missing file is an error naming it', async () => {
    const r = await runCli(['recipe', 'show', 'recipes/none.txt'], { cwd: dir, env: env() });
    expect([r.code, r.stderr]).toEqual([
      1,
      'error[RECIPE_NOT_FOUND]: recipes/none.txt:0:0: could not open requirements file: no such file\n',
    ]);
  });
});

describe('dstack-factory recipe check', () => {
  test('a valid recipe: exit 0', async () => {
    const r = await runCli(['recipe', 'check', 'recipes/app.txt'], { cwd: dir, env: env() });
    expect([r.code, r.stdout]).toEqual([0, 'recipes/app.txt: ok, 5 requirements in 3 files\n']);
  });

  test('every error as file:line:col with the line and a caret, then exit 1', async () => {
    const r = await runCli(['recipe', 'check', 'recipes/bad.txt'], { cwd: dir, env: env() });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      [
        "recipes/bad.txt:2:5: invalid requirement \"foo bar\": expected a version specifier, '@', ';', '[' or the end after the name",
        '    foo bar',
        '        ^',
        'recipes/bad.txt:3:1: no such option: --frobnicate',
        '    --frobnicate',
        '    ^',
        'recipes/bad.txt:4:20: invalid marker "python_version >> \\"3\\"": expected a marker variable (python_version, sys_platform, extra, …) or a quoted string',
        '    x; python_version >> "3"',
        '                       ^',
        'recipes/bad.txt:5:4: could not open requirements file recipes/nope.txt: no such file',
        '    -r nope.txt',
        '       ^',
        "recipes/bad.txt:6:9: invalid requirement \"requests=2.0\": expected a version specifier, '@', ';', '[' or the end after the name",
        '    requests=2.0',
        '            ^',
        '    hint: = is not a valid operator. Did you mean == ?',
        'recipes/bad.txt: 5 errors',
        '',
      ].join('\n'),
    );
  });
});

// Fuzz test of the build policy (issue 12): 2,000 generated recipes — pip's line breaks, option abbreviations,
// tabs, comments, continuations, URL schemes, local paths, includes, ${VAR} — go through prepareRemoteRecipe.
// Every recipe it accepts is then read by pip 23.2's own parse_requirements (packages/recipe/test/pip_parse.py,
// the oracle of the recipe tests), all in one python process, twice:
//   - the text as sent, with an include file beside it that names a local find-links folder: pip must read it
//     without error and find no local path, file: URL or include in it;
//   - the text the build gets (rendered from the parse), with a hostile environment (HOME, a file: index in
//     PIP_INDEX_URL, a local path in SECRET): pip must read the same recipe, ${VAR} left literal.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolatedPipEnv } from '@dstack/testing';
import fc from 'fast-check';
import { afterAll, expect, it } from 'vitest';
import { prepareRemoteRecipe } from './recipe-policy.js';

const PIP_PARSE = join(import.meta.dirname, '../../../packages/recipe/test/pip_parse.py');
const COUNT = 2000;
const HOSTILE_ENV = {
  HOME: '/root',
  PIP_INDEX_URL: 'file:///srv/index',
  SECRET: '/srv/secret',
  TOKEN: 's3cret',
};

const BREAKS = ['\n', '\r\n', '\r', '\f', '\v', '\x1c', '\x1d', '\x1e', '\x85', '\u2028', '\u2029'];
const SPACE = fc.constantFrom('', ' ', '  ', '\t', ' \t');
const REMOTE = fc.constantFrom(
  'https://pypi.example/simple/',
  'http://127.0.0.1:8080/simple',
  'https://user:pw@idx.example/s/',
  'https://idx.example/${TOKEN}/',
  'https://files.example/wheels/',
);
const LOCAL = fc.constantFrom(
  '/srv/wheels',
  './wheels',
  '../up',
  'wheels',
  'file:///srv/wheels',
  'FILE:/srv',
  'https:/srv/wheels',
  'https://@/srv',
  '${SECRET}',
  '${HOME}/wheels',
  '~/wheels',
  'C:\\wheels',
);
const INDEX_OPTION = fc.constantFrom(
  '-f',
  '--find-links',
  '--find',
  '--fi',
  '-i',
  '--index-url',
  '--index',
  '--extra-index-url',
  '--extra',
  '--ex',
);
const INCLUDE_OPTION = fc.constantFrom('-r', '--requirement', '--req', '-c', '--constraint', '--constr');
const EDIT_OPTION = fc.constantFrom('-e', '--editable', '--edit', '--ed');
const NAMED = fc.constantFrom(
  'requests',
  'Flask[async]>=2.0',
  'lxml==5.1.0 ; python_version >= "3.8"',
  'six',
  'typing-extensions~=4.0',
  'attrs --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000',
  'pip-tools; sys_platform == "linux"',
);
const URL_REQ = fc.constantFrom(
  'pkg @ https://files.example/pkg-1.0.tar.gz',
  'pkg @ file:///srv/pkg',
  'https://files.example/pkg-1.0-py3-none-any.whl',
  'git+https://github.com/x/y@v1#egg=y',
  'git+file:///srv/repo#egg=y',
  'hg+ssh://hg@host/repo#egg=z',
  'svn+svn://host/repo#egg=w',
  'ftp://files.example/pkg-1.0.zip',
  'pkg @ https://host/${TOKEN}/pkg-1.0.tar.gz',
);
const PATH_REQ = fc.constantFrom(
  './local/pkg',
  '../pkg',
  '/abs/pkg-1.0.tar.gz',
  'pkg-1.0-py3-none-any.whl',
  'pkg-1.0.tbz',
  'pkg-1.0.txz',
  'pkg-1.0.tlz',
  'pkg-1.0.tar.lz',
  'pkg-1.0.tar.lzma',
  'src/pkg',
  '.',
);
const EDITABLE = fc.constantFrom(
  'git+https://github.com/x/y#egg=y',
  './src',
  '/srv/src',
  'git+file:///srv/repo#egg=x',
  'file:///srv/src',
);
const FLAG = fc.constantFrom(
  '--pre',
  '--prefer-binary',
  '--no-binary :all:',
  '--only-binary lxml',
  '--trusted-host idx.example',
);

/** One logical line, as a user (or an attacker) might write it. */
const LINE = fc.oneof(
  NAMED,
  URL_REQ,
  PATH_REQ,
  FLAG,
  fc
    .tuple(INDEX_OPTION, fc.constantFrom(' ', '=', '\t', ' \t'), fc.oneof(REMOTE, LOCAL))
    .map((p) => p.join('')),
  fc
    .tuple(
      INDEX_OPTION.filter((o) => o.length === 2),
      fc.oneof(REMOTE, LOCAL),
    )
    .map((p) => p.join('')),
  fc
    .tuple(
      INCLUDE_OPTION,
      fc.constantFrom(' ', '=', '\t'),
      fc.constantFrom('inc.txt', 'https://h.example/r.txt'),
    )
    .map((p) => p.join('')),
  fc.tuple(EDIT_OPTION, fc.constantFrom(' ', '=', '\t'), EDITABLE).map((p) => p.join('')),
  fc.constantFrom('# just a comment', '   # indented comment', '#'),
);

/** Decorations pip reads through: spaces and tabs, trailing comments, a comment line ending in `\`. */
const DECORATED = fc
  .tuple(SPACE, LINE, SPACE, fc.constantFrom('', '', ' # note', '\t#x', ' # ends \\'))
  .map(([a, line, b, comment]) => `${a}${line}${b}${comment}`);

const RECIPE = fc
  .array(fc.tuple(DECORATED, fc.constantFrom(...BREAKS), fc.boolean()), { minLength: 1, maxLength: 6 })
  .map((lines) =>
    lines
      .map(([line, br, split]) => {
        // A continuation: the line broken after one of its spaces with `\` and a line break.
        const at = line.indexOf(' ', 1);
        return split && at > 0 ? `${line.slice(0, at)} \\${br}${line.slice(at + 1)}${br}` : `${line}${br}`;
      })
      .join(''),
  );

const REMOTE_SCHEMES = /^(https?|ftp|(git|hg|svn|bzr)\+(https?|ssh|git|svn|static-http|sftp|ftp)):\/\//i;
/** Remote: a network scheme and a host; judged here independently of the policy's own code. */
function remote(url: string): boolean {
  if (!REMOTE_SCHEMES.test(url)) return false;
  const authority = url.replace(/^[^:]+:\/\//, '').split(/[/?#]/)[0]!;
  return authority.slice(authority.lastIndexOf('@') + 1).replace(/:\d*$/, '') !== '';
}

interface PipResult {
  error?: true;
  message?: string;
  requirements?: {
    name: string | null;
    url: string | null;
    editable: boolean;
    constraint: boolean;
    file: string;
  }[];
  options?: { indexUrl: string | null; extraIndexUrls: string[]; findLinks: string[] };
}

let dir: string;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it(`accepts only what pip 23.2 reads as remote, over ${COUNT} generated recipes`, async () => {
  dir = await mkdtemp(join(tmpdir(), 'dstack-policy-fuzz-'));
  const recipes = fc.sample(RECIPE, { numRuns: COUNT, seed: 20261205 });
  const accepted: { text: string; rendered: string }[] = [];
  let refused = 0;
  for (const text of recipes) {
    try {
      const prepared = await prepareRemoteRecipe(text, { allowLocalPaths: false, vars: {} });
      accepted.push({ text, rendered: prepared.text });
    } catch (err) {
      expect((err as { code?: string }).code, String(err)).toMatch(/^RECIPE_/);
      refused++;
    }
  }
  // Neither side may be empty: the generator reaches both.
  expect(accepted.length).toBeGreaterThan(COUNT / 5);
  expect(refused).toBeGreaterThan(COUNT / 5);

  const cases: string[] = [];
  for (const [i, { text, rendered }] of accepted.entries()) {
    const sent = join(dir, `${i}-sent`);
    const built = join(dir, `${i}-built`);
    await mkdir(sent);
    await mkdir(built);
    await writeFile(join(sent, 'main.txt'), text);
    // An include the policy missed would bring this local find-links folder into pip's reading.
    await writeFile(join(sent, 'inc.txt'), '--find-links /srv/included\n');
    await writeFile(join(built, 'main.txt'), rendered);
    await writeFile(join(built, 'env.json'), JSON.stringify(HOSTILE_ENV));
    cases.push(sent, built);
  }
  const run = spawnSync('python3', [PIP_PARSE], {
    input: JSON.stringify({ cases }),
    env: isolatedPipEnv(),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  expect(run.status, run.stderr).toBe(0);
  const results = JSON.parse(run.stdout) as PipResult[];

  const literal = (u: string | null) => (u === null ? null : u.replace(/%24%7B([A-Z0-9_]+)%7D/g, '${$1}'));
  const meaning = (r: PipResult) => ({
    options: {
      ...r.options,
      indexUrl: literal(r.options!.indexUrl),
      extraIndexUrls: r.options!.extraIndexUrls.map(literal),
      findLinks: r.options!.findLinks.map(literal),
    },
    requirements: r.requirements!.map((q) => ({ ...q, url: literal(q.url), line: undefined })),
  });
  for (const [i, { text, rendered }] of accepted.entries()) {
    const sent = results[2 * i]!;
    const built = results[2 * i + 1]!;
    const what = JSON.stringify({ text, rendered, sent, built });
    expect(sent.error, what).toBeUndefined();
    const o = sent.options!;
    for (const url of [...(o.indexUrl === null ? [] : [o.indexUrl]), ...o.extraIndexUrls, ...o.findLinks])
      expect(/^https?:\/\//i.test(url) && remote(url), what).toBe(true);
    for (const r of sent.requirements!) {
      if (r.url !== null) expect(remote(r.url), what).toBe(true);
      expect([r.constraint, r.file], what).toEqual([false, 'main.txt']);
    }
    expect(built.error, what).toBeUndefined();
    expect(meaning(built), what).toEqual(meaning(sent));
  }
}, 600_000);

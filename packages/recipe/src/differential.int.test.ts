// Differential test: our parser against pip 23.2's own (req_file.parse_requirements +
// install_req_from_parsed_requirement, run live through test/pip_parse.py) over every case of test/corpus,
// and against the expected.json stored with each case. Compares meaning, not text.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isolatedPipEnv } from '@dstack/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { RecipeError, readRecipeFile, recipeToJSON } from './index.js';

const testDir = fileURLToPath(new URL('../test/', import.meta.url));
const corpusDir = path.join(testDir, 'corpus');
const cases = readdirSync(corpusDir)
  .filter((c) => statSync(path.join(corpusDir, c)).isDirectory())
  .sort();

interface JsonRequirement {
  name: string | null;
  extras: string[];
  specifier: string;
  marker: string | null;
  url: string | null;
  editable: boolean;
  constraint: boolean;
  hashes: string[];
  file: string;
  line: number;
}
type Result =
  | { requirements: JsonRequirement[]; options: Record<string, unknown> }
  | { error: true; file: string; line: number; message: string; type?: string };

/** The meaning of a result: sets where order does not matter, local paths resolved against the case folder. */
function meaning(result: Result, caseDir: string): unknown {
  if ('error' in result) return { error: true, file: path.normalize(result.file), line: result.line };
  const url = (u: string | null): string | null => {
    if (u === null) return null;
    if (u.startsWith('file://'))
      return fileURLToPath(u.split('#')[0]!) + (u.includes('#') ? `#${u.split('#')[1]}` : '');
    if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(u)) return u;
    return path.resolve(caseDir, u); // expected.json stores local paths relative to the case folder
  };
  return {
    options: result.options,
    requirements: result.requirements.map((r) => ({
      name: r.name,
      extras: [...new Set(r.extras)].sort(),
      specifier: r.specifier.split(',').filter(Boolean).sort(),
      marker: r.marker,
      url: url(r.url),
      editable: r.editable,
      constraint: r.constraint,
      hashes: [...new Set(r.hashes)].sort(),
      file: path.normalize(r.file),
      line: r.line,
    })),
  };
}

async function ours(caseDir: string): Promise<Result> {
  const envFile = path.join(caseDir, 'env.json');
  const env = existsSync(envFile)
    ? (JSON.parse(readFileSync(envFile, 'utf8')) as Record<string, string>)
    : {};
  try {
    return recipeToJSON(await readRecipeFile('main.txt', { cwd: caseDir, env })) as Result;
  } catch (e) {
    if (e instanceof RecipeError) return { error: true, file: e.file, line: e.line, message: e.message };
    throw e;
  }
}

let pip: Result[] = [];

beforeAll(() => {
  const run = spawnSync('python3', [path.join(testDir, 'pip_parse.py')], {
    input: JSON.stringify({ cases: cases.map((c) => path.join(corpusDir, c)) }),
    env: isolatedPipEnv(),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error || run.status !== 0) {
    throw new Error(
      `could not run pip's parser (python3 with pip 23.2 is needed: apt-get install python3-pip, or put pyenv's python3 on PATH): ${run.error?.message ?? run.stderr}`,
    );
  }
  pip = JSON.parse(run.stdout) as Result[];
});

describe('differential: @dstack/recipe vs pip 23.2 over the corpus', () => {
  it('has at least 50 cases, real-world and hand-made, valid and invalid', () => {
    expect(cases.length).toBeGreaterThanOrEqual(50);
    expect(
      cases.filter(
        (c) => c.startsWith('edge-') || (c.startsWith('invalid-') && !c.startsWith('invalid-real')),
      ).length,
    ).toBeGreaterThanOrEqual(12);
    expect(cases.filter((c) => c.startsWith('invalid-')).length).toBeGreaterThanOrEqual(10);
  });

  it('pip read the pip version we compare with', () => {
    const v = spawnSync('python3', ['-c', 'import pip; print(pip.__version__)'], {
      env: isolatedPipEnv(),
      encoding: 'utf8',
    });
    expect(v.stdout.trim()).toMatch(/^23\.2(\.|$)/);
  });

  it.each(cases)('%s: same as pip live, and as the stored expected.json', async (c) => {
    const caseDir = path.join(corpusDir, c);
    const live = pip[cases.indexOf(c)]!;
    const stored = JSON.parse(readFileSync(path.join(caseDir, 'expected.json'), 'utf8')) as Result;
    const mine = await ours(caseDir);
    expect(meaning(mine, caseDir)).toEqual(meaning(live, caseDir));
    expect(meaning(mine, caseDir)).toEqual(meaning(stored, caseDir));
    if ('error' in live && live.type === 'RecursionError')
      expect((mine as { message: string }).message).toMatch(/include cycle/);
  });
});

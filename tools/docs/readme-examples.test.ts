// Every package README starts with what the package is for, then a Usage example that a test runs: the example's
// code (its imports aside) is the region between "README usage: begin" and "README usage: end" in the test file
// the README names, so the example cannot drift from code that runs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url);
const PACKAGES = ['errors', 'recipe', 'wheelhouse', 'wheelhouse-registry', 'engine', 'oci', 'image'];

function usageOf(readme: string): { from: string; code: string } {
  const m = /\n## Usage\n\nFrom `([^`]+)`[^\n]*\n\n```ts\n([\s\S]*?)```\n/.exec(readme);
  if (!m) throw new Error('no "## Usage" section with "From `FILE`" and a ```ts block');
  const code = m[2]!.replace(/^import [\s\S]*?;\n(\n)?/gm, '');
  return { from: m[1]!, code };
}

function regionOf(test: string): string {
  const m = /\n([ \t]*)\/\/ README usage: begin\n([\s\S]*?)\n[ \t]*\/\/ README usage: end\n/.exec(test);
  if (!m) throw new Error('no "// README usage: begin" ... "// README usage: end" region');
  const indent = m[1]!;
  return `${m[2]!
    .split('\n')
    .map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line))
    .join('\n')}\n`;
}

describe.each(PACKAGES)('packages/%s/README.md', (name) => {
  const readme = readFileSync(new URL(`packages/${name}/README.md`, root), 'utf8');

  it('starts with the package name, then what it is for, then its Usage', () => {
    expect(readme).toMatch(new RegExp(`^# @dstack/${name}\\n\\n[^#\\s][^#]+\\n## Usage\\n`));
  });

  it('shows as usage the code its test runs', () => {
    const { from, code } = usageOf(readme);
    const test = readFileSync(new URL(`packages/${name}/${from}`, root), 'utf8');
    expect(code).toBe(regionOf(test));
  });
});

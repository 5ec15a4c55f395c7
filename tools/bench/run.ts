// `npm run bench`: runs every scenario in tools/bench/scenarios/ (or those named on the command line)
// one after another, each against its baseline in the same run, and prints their figures and ratios.
// A scenario module default-exports a `Scenario`.
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Scenario } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const files = readdirSync(join(here, 'scenarios'))
  .filter((f) => f.endsWith('.ts'))
  .sort()
  .filter((f) => wanted.length === 0 || wanted.includes(basename(f, '.ts')));

let failures = 0;
for (const file of files) {
  const scenario = (await import(pathToFileURL(join(here, 'scenarios', file)).href)).default as Scenario;
  console.log(`\n## ${scenario.name}\n${scenario.description}\n`);
  try {
    const results = await scenario.run();
    for (const r of results) console.log(`- ${r}`);
  } catch (err) {
    failures += 1;
    console.log(`- FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}
process.exitCode = failures > 0 ? 1 : 0;

import { expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { cliReference } from './reference.js';

test('docs/cli.md is the reference generated from the commands (run `npm run docs` after changing them)', () => {
  const committed = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');
  expect(committed).toBe(cliReference());
});

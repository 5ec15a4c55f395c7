import { expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { errorsReference } from './errors-reference.js';

test('docs/errors.md is the reference generated from @dstack/errors (run `npm run docs` after changing a code)', () => {
  const committed = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  expect(committed).toBe(errorsReference());
});

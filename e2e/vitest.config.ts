// Runs the end-to-end tests alone: `npx vitest run --config e2e/vitest.config.ts` (the root config's
// settings, with only e2e/ included). The root vitest.config.ts includes 'e2e/**/*.test.ts' for the suite.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import root from '../vitest.config.js';

export default defineConfig({
  ...root,
  root: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'),
  test: { ...root.test, include: ['e2e/**/*.test.ts'] },
});

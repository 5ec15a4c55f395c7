import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// `npm run test:unit`: the fast tests only — no *.int.test.ts, no globalSetup, so no Docker daemon, registry,
// network or root is needed (Python interpreters and pip with local files are). `npm test` runs everything.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    exclude: [...(base.test?.exclude ?? []), '**/*.int.test.ts'],
    globalSetup: [],
    reporters: ['default'],
  },
});

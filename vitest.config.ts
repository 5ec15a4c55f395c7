import { defineConfig } from 'vitest/config';

// Tests run against each package's src/ through the "@dstack/source" export condition: no build needed.
export default defineConfig({
  resolve: { conditions: ['@dstack/source', 'import', 'node', 'default'] },
  ssr: { resolve: { conditions: ['@dstack/source', 'import', 'node', 'default'] } },
  // The global setup runs in vitest's own environment: it resolves workspace packages from src/ too.
  environments: { __vitest__: { resolve: { conditions: ['@dstack/source', 'import', 'node', 'default'] } } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'tools/**/*.test.ts', 'e2e/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    // One private Docker engine, one registry and one cached base image for the whole run (Decision 15).
    globalSetup: ['tools/testing/src/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 600_000,
    reporters: ['default', ['json', { outputFile: '.tmp/vitest-report.json' }]],
  },
});

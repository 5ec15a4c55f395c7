import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { apiReport, reportPath, reportedPackages } from './api-report.js';

// Every package's public API is recorded in packages/<name>/api.md; a change to an index.ts (or to a type it
// exports) that is not written into the report fails here. Run `npm run docs` and review the diff.
describe('packages/<name>/api.md is the current public API (run `npm run docs` after changing an export)', () => {
  it.each(reportedPackages())('%s', (pkg) => {
    expect(apiReport(pkg)).toBe(readFileSync(reportPath(pkg), 'utf8'));
  });
});

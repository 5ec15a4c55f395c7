// Prints the closing line CI reads, "N passed, N failed", for the whole suite: vitest's tests plus the
// checks run before them (build, typecheck, lint), each counted as one test. Exits 1 on any failure or
// when no test ran at all.
import { existsSync, readFileSync } from 'node:fs';

const [reportPath, failedChecksArg = '0'] = process.argv.slice(2);
const failedChecks = Number(failedChecksArg);
let passed = 0;
let failed = 0;
let skipped = 0;
if (reportPath && existsSync(reportPath)) {
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  passed = report.numPassedTests ?? 0;
  // A file that failed to load or whose hooks failed has no failed test of its own: count it once.
  const brokenFiles = (report.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
  ).length;
  failed = (report.numFailedTests ?? 0) + brokenFiles;
  skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
} else {
  console.error(`no vitest report at ${reportPath}: the test run did not finish`);
  failed += 1;
}
failed += failedChecks;
const checks = 4; // system components, build, typecheck, lint
passed += checks - failedChecks;
if (skipped > 0 && process.env.CI === 'true') {
  console.error(`${skipped} tests were skipped; in CI a skip is a failure`);
  failed += skipped;
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === checks ? 1 : 0);

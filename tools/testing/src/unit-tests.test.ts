// `npm run test:unit` (vitest.unit.config.ts) runs every *.test.ts but no *.int.test.ts and no globalSetup: a
// unit test that reached for the shared Docker daemon, registry or images would fail there. This keeps them out.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url);
const DAEMON_HELPERS =
  /\b(sharedEngine|sharedRegistry|sharedImage|sharedBaseImage|sharedFactoryImage|sharedRuntimeImage|dockerFor|runInContainer|engineSocketPath)\b/;

it('no unit test (*.test.ts that is not *.int.test.ts) uses the shared Docker daemon, registry or images', () => {
  const files = execFileSync('git', ['ls-files', '*.test.ts', '*.test-support.ts'], { cwd: root, encoding: 'utf8' })
    .split('\n')
    .filter((f) => f !== '' && !f.endsWith('.int.test.ts') && !f.startsWith('tools/testing/'));
  const offenders = files.filter((f) => {
    const text = readFileSync(new URL(f, root), 'utf8');
    // a test-support module used only by integration tests may use them
    if (f.endsWith('.test-support.ts') && !usedByUnitTest(f, files)) return false;
    return DAEMON_HELPERS.test(text);
  });
  expect(offenders).toEqual([]);
});

function usedByUnitTest(support: string, files: string[]): boolean {
  const base = support.split('/').pop()!.replace(/\.ts$/, '.js');
  return files.some((f) => f.endsWith('.test.ts') && readFileSync(new URL(f, root), 'utf8').includes(base));
}

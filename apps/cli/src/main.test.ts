import { describe, expect, test } from 'vitest';
import { PassThrough } from 'node:stream';
import { readFileSync } from 'node:fs';
import { reportError, EXIT_FAILURE, EXIT_INTERNAL, EXIT_USAGE, UsageError } from './errors.js';
import { runCli } from './run-cli.test-support.js';
import { main as mainOfBuild } from './main-build.js';

const version = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

describe('dstack-factory', () => {
  test('--version prints the package version', async () => {
    expect(await runCli(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  test('--help lists the commands and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: dstack-factory \[options\] \[command\]/);
    expect(r.stdout).toContain('recipe');
  });

  test('no arguments prints help on stdout and exits with the usage code', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.stdout).toMatch(/^Usage: dstack-factory/);
  });

  test('an unknown command is a usage error', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.stderr).toContain("error: unknown command 'frobnicate'");
  });

  test('an unknown option is a usage error', async () => {
    const r = await runCli(['--no-such-option']);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.stderr).toContain("error: unknown option '--no-such-option'");
  });
});

describe('reportError', () => {
  const capture = () => {
    const s = new PassThrough();
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    return { s, text: () => Buffer.concat(chunks).toString('utf8') };
  };

  test('a coded error prints its code, message and hint, and exits 1', () => {
    const out = capture();
    const err = Object.assign(new Error('recipes/x.txt:3: bad'), {
      code: 'RECIPE_SYNTAX',
      hint: 'fix line 3',
    });
    expect(reportError(err, out.s)).toBe(EXIT_FAILURE);
    expect(out.text()).toBe('error[RECIPE_SYNTAX]: recipes/x.txt:3: bad\nhint: fix line 3\n');
  });

  test('a usage error exits 2', () => {
    const out = capture();
    expect(reportError(new UsageError('pick one of --source or --wheel'), out.s)).toBe(EXIT_USAGE);
    expect(out.text()).toBe('error[USAGE]: pick one of --source or --wheel\n');
  });

  test('node system errors (ENOENT) are reported by code; plain errors are internal errors', () => {
    const out = capture();
    const enoent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    expect(reportError(enoent, out.s)).toBe(EXIT_FAILURE);
    expect(out.text()).toBe('error[ENOENT]: ENOENT: no such file\n');
    const out2 = capture();
    expect(reportError(new TypeError('x is undefined'), out2.s)).toBe(EXIT_INTERNAL);
    expect(out2.text()).toContain('internal error: TypeError: x is undefined');
  });
});

describe('the bundle of `build`', () => {
  test('dist/build.cjs (main-build.ts) parses a `build` command line as the whole CLI does', async () => {
    for (const args of [
      ['build', '--help'],
      ['build', 'r.txt', '--no-such-option'],
      ['build', 'r.txt', '--jobs', 'many'],
      ['build', '--version'],
    ]) {
      const whole = await runCli(args);
      expect(await runCli(args, { main: mainOfBuild })).toEqual(whole);
    }
    expect((await runCli(['build', '--help'])).stdout).toMatch(
      /^Usage: dstack-factory build \[options\] \[recipe\]/,
    );
  });
});

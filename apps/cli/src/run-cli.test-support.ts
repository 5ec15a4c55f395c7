import { PassThrough } from 'node:stream';
import type { Io } from './context.js';
import { main as wholeCli } from './main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI (or another entry, `main`) in-process with captured output, as `dstack-factory ...args` would. For tests. */
export async function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; main?: (argv: string[], io: Io) => Promise<number> } = {},
): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const main = options.main ?? wholeCli;
  const code = await main(['node', 'dstack-factory', ...args], {
    stdout,
    stderr,
    env: options.env ?? { ...process.env, NO_COLOR: '1' },
    cwd: options.cwd ?? process.cwd(),
  });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

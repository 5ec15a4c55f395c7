// The entry of dist/build.cjs: bin/dstack-factory.cjs runs it for `dstack-factory build …`, the command run most
// often and the one whose start-up is timed (docs/benchmarks.md, cli). It holds the global options and the build
// command only, so V8 reads and deserializes less than half of the whole CLI (dist/main.cjs). A `build` argv
// parses the same in both (a test compares them).
import type { Io } from './context.js';
import { runProgram } from './program.js';
import { registerBuildCommands } from './commands/build.js';

/** Runs `dstack-factory build …` and resolves to its exit code; never calls process.exit itself. */
export async function main(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() },
): Promise<number> {
  return runProgram(argv, io, [registerBuildCommands]);
}

import type { Command } from 'commander';
import type { Io } from './context.js';
import { createProgram, runProgram, type Register } from './program.js';
import { registerBuildCommands } from './commands/build.js';
import { registerImageCommands } from './commands/image.js';
import { registerRecipeCommands } from './commands/recipe.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerInitCommand } from './commands/init.js';
import { registerLockCommands } from './commands/lock.js';
import { registerServeCommand } from './commands/serve.js';
import { registerWheelhouseCommands } from './commands/wheelhouse.js';

/** Every command, in the order --help lists them. */
const COMMANDS: readonly Register[] = [
  registerBuildCommands,
  registerRecipeCommands,
  registerWheelhouseCommands,
  registerImageCommands,
  registerLockCommands,
  registerServeCommand,
  registerDoctorCommand,
  registerInitCommand,
];

/** Builds the whole command tree. Exported so the README's CLI reference is generated from it. */
export function buildProgram(io: Io, onExit: (code: number) => void): Command {
  return createProgram(io, onExit, COMMANDS);
}

/** Runs the CLI and resolves to its exit code; never calls process.exit itself. */
export async function main(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() },
): Promise<number> {
  return runProgram(argv, io, COMMANDS);
}

import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { createContext, type CliContext, type GlobalOptions, type Io, type Runner } from './context.js';
import { EXIT_USAGE, reportError } from './errors.js';
import { registerBuildCommands } from './commands/build.js';
import { registerImageCommands } from './commands/image.js';
import { registerRecipeCommands } from './commands/recipe.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerInitCommand } from './commands/init.js';
import { registerLockCommands } from './commands/lock.js';
import { registerServeCommand } from './commands/serve.js';
import { registerWheelhouseCommands } from './commands/wheelhouse.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Builds the whole command tree. Exported so the README's CLI reference is generated from it. */
export function buildProgram(io: Io, onExit: (code: number) => void): Command {
  const program = new Command('dstack-factory');
  let context: CliContext | undefined;
  const ctx = (): CliContext => (context ??= createContext(io, program.opts<GlobalOptions>()));

  program
    .description('Build Python wheelhouses from pip recipes, and Docker images from wheelhouses.')
    .version(pkg.version, '-V, --version', 'print the version and exit')
    .addOption(new Option('--log-format <format>', 'log format on stderr').choices(['pretty', 'json']))
    .option('-q, --quiet', 'only errors on stderr')
    .option('-v, --verbose', 'debug logs and error causes')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Help wraps at the terminal's width, or at a fixed width when not on a terminal (so the generated
      // reference is the same everywhere).
      getOutHelpWidth: () => (io.stdout.isTTY ? ((io.stdout as { columns?: number }).columns ?? 100) : 100),
      getErrHelpWidth: () => (io.stderr.isTTY ? ((io.stderr as { columns?: number }).columns ?? 100) : 100),
      getOutHasColors: () => Boolean(io.stdout.isTTY) && io.env.NO_COLOR === undefined,
      getErrHasColors: () => Boolean(io.stderr.isTTY) && io.env.NO_COLOR === undefined,
    })
    .exitOverride();

  const run: Runner =
    <A extends unknown[]>(action: (ctx: CliContext, ...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      onExit(await action(ctx(), ...args));
    };

  registerBuildCommands(program, run);
  registerRecipeCommands(program, run);
  registerWheelhouseCommands(program, run);
  registerImageCommands(program, run);
  registerLockCommands(program, run);
  registerServeCommand(program, run);
  registerDoctorCommand(program, run);
  registerInitCommand(program, run);
  return program;
}

/** Runs the CLI and resolves to its exit code; never calls process.exit itself. */
export async function main(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() },
): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  if (argv.length <= 2) {
    program.outputHelp();
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    return reportError(err, io.stderr, program.opts<GlobalOptions>().verbose);
  }
}

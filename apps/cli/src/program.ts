import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { createContext, type CliContext, type GlobalOptions, type Io, type Runner } from './context.js';
import { EXIT_USAGE, reportError } from './errors.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Adds one command (or a group of them) to the program. */
export type Register = (program: Command, run: Runner) => void;

/** The program with the global options and the commands `register` adds. */
export function createProgram(
  io: Io,
  onExit: (code: number) => void,
  register: readonly Register[],
): Command {
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

  for (const r of register) r(program, run);
  return program;
}

/** Runs a program of these commands and resolves to its exit code; never calls process.exit itself. */
export async function runProgram(argv: string[], io: Io, register: readonly Register[]): Promise<number> {
  let exitCode = 0;
  const program = createProgram(
    io,
    (code) => {
      exitCode = code;
    },
    register,
  );
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

import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** What every command gets: where to write, how loud to be, and the root logger. */
export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** A terminal on stderr: progress bars and colours are allowed. */
  interactive: boolean;
  color: boolean;
  /**
   * The root logger. Commands that draw their own progress lines (build, image) leave it at `warn`;
   * long-running ones (serve) log at `info` through `serviceLogger()`. `--verbose` shows debug everywhere.
   */
  logger: Logger;
  quiet: boolean;
  verbose: boolean;
}

export interface GlobalOptions {
  logFormat?: 'pretty' | 'json';
  quiet?: boolean;
  verbose?: boolean;
}

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export function createContext(io: Io, options: GlobalOptions): CliContext {
  const interactive = Boolean(io.stderr.isTTY);
  const color = interactive && io.env.NO_COLOR === undefined && io.env.TERM !== 'dumb';
  const level = options.quiet ? 'error' : options.verbose ? 'debug' : 'warn';
  const format = options.logFormat ?? (interactive ? 'pretty' : 'json');
  const logger =
    format === 'pretty'
      ? pino({ level }, pretty({ destination: io.stderr, sync: true, colorize: color }))
      : pino({ level }, io.stderr);
  return {
    stdout: io.stdout,
    stderr: io.stderr,
    env: io.env,
    cwd: io.cwd,
    interactive,
    color,
    logger,
    quiet: Boolean(options.quiet),
    verbose: Boolean(options.verbose),
  };
}

/** The logger for a service (the server): its access and lifecycle logs are its output, so `info`. */
export function serviceLogger(ctx: CliContext): Logger {
  if (ctx.quiet || ctx.verbose || ctx.logger.level === 'silent') return ctx.logger;
  const child = ctx.logger.child({});
  child.level = 'info';
  return child;
}

import { createRequire } from 'node:module';
import type { Command } from 'commander';
import type { Logger, LevelWithSilent } from 'pino';

/** What every command gets: where to write, how loud to be, and the root logger. */
export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** A terminal on stderr, outside CI: live progress lines and colours are allowed. */
  interactive: boolean;
  color: boolean;
  /**
   * The root logger, made on first use (pino is not loaded by a command that logs nothing). Commands that draw
   * their own progress lines (build, image) leave it at `warn`; long-running ones (serve) log at `info` through
   * `serviceLogger()`. `--verbose` shows debug everywhere.
   */
  readonly logger: Logger;
  /** The root logger's level: a command may skip making log records nobody will see. */
  logLevel: LevelWithSilent;
  /** The log format on stderr: `json` lines are for machines (`--log-format json`). */
  logFormat: 'pretty' | 'json';
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

/**
 * Wraps a command's action: the action gets the context and returns the exit code. It lives here, not in
 * main.ts, so that no command module imports main.ts (no import cycle).
 */
export type Runner = <A extends unknown[]>(
  action: (ctx: CliContext, ...args: A) => Promise<number>,
) => (...args: A) => Promise<void>;

/** A command module's entry point: it adds its command(s) to the program. */
export type RegisterCommands = (program: Command, run: Runner) => void;

// pino and pino-pretty are CommonJS: required when the first log record is made, not at start-up.
const load = createRequire(import.meta.url);

export function createContext(io: Io, options: GlobalOptions): CliContext {
  // A terminal, and not CI (some CI runners give a pty): live progress lines and colours.
  const ci = io.env.CI !== undefined && !['', '0', 'false'].includes(io.env.CI.toLowerCase());
  const interactive = Boolean(io.stderr.isTTY) && !ci;
  const color = interactive && io.env.NO_COLOR === undefined && io.env.TERM !== 'dumb';
  const level = options.quiet ? 'error' : options.verbose ? 'debug' : 'warn';
  const format = options.logFormat ?? (interactive ? 'pretty' : 'json');
  let logger: Logger | undefined;
  const makeLogger = (): Logger => {
    const pino = load('pino') as typeof import('pino').pino;
    if (format === 'json') return pino({ level }, io.stderr);
    const pretty = load('pino-pretty') as typeof import('pino-pretty');
    return pino({ level }, pretty({ destination: io.stderr, sync: true, colorize: color }));
  };
  return {
    stdout: io.stdout,
    stderr: io.stderr,
    env: io.env,
    cwd: io.cwd,
    interactive,
    color,
    get logger(): Logger {
      return (logger ??= makeLogger());
    },
    logLevel: level,
    logFormat: format,
    quiet: Boolean(options.quiet),
    verbose: Boolean(options.verbose),
  };
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
type Level = (typeof LEVELS)[number];
const isLevel = (name: unknown): name is Level => typeof name === 'string' && (LEVELS as readonly string[]).includes(name);

/** Whether records at `level` reach the log (without making the logger). */
export function logs(ctx: Pick<CliContext, 'logLevel'>, level: Level): boolean {
  const order: string[] = [...LEVELS, 'silent'];
  return order.indexOf(ctx.logLevel) <= order.indexOf(level);
}

/**
 * A child of the root logger that is made (and pino loaded) only when a record at an enabled level is logged
 * or anything else of it is used: a command that logs nothing below the level pays nothing (~10 ms of start-up).
 */
export function lazyChild(ctx: Pick<CliContext, 'logger' | 'logLevel'>, bindings: Record<string, unknown>): Logger {
  let real: Logger | undefined;
  const make = (): Logger => (real ??= ctx.logger.child(bindings));
  return new Proxy({} as Logger, {
    get(_target, prop) {
      if (real === undefined) {
        if (isLevel(prop) && !logs(ctx, prop)) return () => undefined;
        if (prop === 'level') return ctx.logLevel;
        if (prop === 'isLevelEnabled') return (level: string) => isLevel(level) && logs(ctx, level);
        if (prop === 'child') return (more: Record<string, unknown>) => lazyChild(ctx, { ...bindings, ...more });
      }
      const logger = make();
      const value = (logger as unknown as Record<PropertyKey, unknown>)[prop];
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(logger) : value;
    },
    set(_target, prop, value) {
      (make() as unknown as Record<PropertyKey, unknown>)[prop] = value;
      return true;
    },
  });
}

/** The logger for a service (the server): its access and lifecycle logs are its output, so `info`. */
export function serviceLogger(ctx: CliContext): Logger {
  if (ctx.quiet || ctx.verbose || ctx.logger.level === 'silent') return ctx.logger;
  const child = ctx.logger.child({});
  child.level = 'info';
  return child;
}

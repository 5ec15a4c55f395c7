import { DstackError, type CliErrorCode, type DstackErrorOptions } from '@dstack/errors';

/**
 * The one place where errors become exit codes and messages. Libraries throw errors carrying a stable
 * `code` (and maybe a `hint`); anything else is a bug in dstack-factory and is shown with its stack.
 */
export const EXIT_OK = 0;
/** The command ran and found a problem: a recipe with errors, a refused wheel, a failed build. */
export const EXIT_FAILURE = 1;
/** The command line itself is wrong: unknown option, missing argument. */
export const EXIT_USAGE = 2;
/** An unexpected internal error. */
export const EXIT_INTERNAL = 70;

interface CodedError extends Error {
  code: string;
  hint?: string;
}

export function isCodedError(err: unknown): err is CodedError {
  if (!(err instanceof Error)) return false;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code);
}

/** Writes one clear message for `err` and returns the exit code to use. */
export function reportError(err: unknown, stderr: NodeJS.WritableStream, verbose = false): number {
  if (isCodedError(err)) {
    stderr.write(`error[${err.code}]: ${err.message}\n`);
    if (err.hint) stderr.write(`hint: ${err.hint}\n`);
    if (verbose && err.cause instanceof Error) stderr.write(`cause: ${err.cause.stack ?? err.cause.message}\n`);
    return err.code === 'USAGE' ? EXIT_USAGE : EXIT_FAILURE;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  stderr.write(`internal error: ${e.stack ?? e.message}\n`);
  stderr.write('This is a bug in dstack-factory; please report it with the command you ran.\n');
  return EXIT_INTERNAL;
}

/** An error the CLI raises itself (a recipe or wheel it cannot find, no interpreter to lock with, …). */
export class CliError extends DstackError<CliErrorCode> {
  constructor(code: CliErrorCode, message: string, options?: DstackErrorOptions) {
    super(code, message, options);
    this.name = 'CliError';
  }
}

/** A problem with how the command was called, found after commander's own checks. */
export class UsageError extends CliError {
  declare readonly code: 'USAGE';
  constructor(message: string) {
    super('USAGE', message);
    this.name = 'UsageError';
  }
}

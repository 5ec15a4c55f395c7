import type { ErrorCode } from './codes/index.js';

/** What an error may carry besides its code and message. */
export interface DstackErrorOptions {
  /** What the user can do about it. */
  hint?: string;
  /** The error underneath (a failed syscall, a subprocess, a parser's own error). */
  cause?: unknown;
}

/**
 * The base of every error dstack-factory's libraries throw: a stable machine-readable `code` (one of the
 * catalogue's, see docs/errors.md), a message naming the file/line/value at fault, an optional `hint` saying
 * what to do, and the `cause`. Programmer errors stay plain `Error`.
 */
export class DstackError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly hint?: string;

  constructor(code: C, message: string, options: DstackErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.hint !== undefined) this.hint = options.hint;
  }
}

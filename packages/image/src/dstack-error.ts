// Temporary stand-in until @dstack/recipe exports DstackError (the contract); same shape.
export class DstackError extends Error {
  readonly code: string;
  readonly hint?: string;
  constructor(code: string, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DstackError';
    this.code = code;
    if (options?.hint !== undefined) this.hint = options.hint;
  }
}

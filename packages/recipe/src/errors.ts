/**
 * The base of every error dstack-factory's libraries throw: a stable machine-readable `code`, a message naming
 * the file/line/value at fault, an optional `hint` saying what to do, and the `cause`.
 */
export class DstackError extends Error {
  readonly code: string;
  readonly hint?: string;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.hint !== undefined) this.hint = options.hint;
  }
}

/** Where a recipe error is, and the text to show under it. */
export interface RecipeErrorLocation {
  file: string;
  /** 1-based physical line where the logical line starts. */
  line: number;
  /** 1-based column of the fault in `source` (the logical line as shown). */
  column: number;
  /** The offending (logical) line, shown under the message with a caret. */
  source?: string;
  /** 1-based column where the offending span starts (tildes run from here to the caret). */
  spanStart?: number;
}

/**
 * An error in a requirements file, a PEP 508 string, a marker or a lock. `message` is
 * `file:line:col: reason` followed by the offending line and a `~~~^` caret; `reason` alone is kept too.
 */
export class RecipeError extends DstackError {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The message without location and excerpt. */
  readonly reason: string;
  /** The offending line, or "" when there is none to show. */
  readonly source: string;
  /** The two excerpt lines (source and caret), or "" when there is no source. */
  readonly excerpt: string;

  constructor(
    code: string,
    reason: string,
    where: RecipeErrorLocation,
    options: { hint?: string; cause?: unknown } = {},
  ) {
    const source = where.source ?? '';
    const excerpt =
      source === '' && where.column <= 1 ? '' : caretExcerpt(source, where.column, where.spanStart);
    super(
      code,
      `${where.file}:${where.line}:${where.column}: ${reason}${excerpt ? `\n${excerpt}` : ''}`,
      options,
    );
    this.file = where.file;
    this.line = where.line;
    this.column = where.column;
    this.reason = reason;
    this.source = source;
    this.excerpt = excerpt;
  }
}

/** "    text\n    ~~~~^": tildes under the span, the caret at `column` (1-based). Tabs are kept aligned. */
export function caretExcerpt(source: string, column: number, spanStart = column): string {
  const shown = source.replace(/[\r\n]/g, ' ');
  const start = Math.max(1, Math.min(spanStart, column));
  let pad = '';
  for (let i = 0; i < start - 1; i++) pad += shown[i] === '\t' ? '\t' : ' ';
  return `    ${shown}\n    ${pad}${'~'.repeat(column - start)}^`;
}

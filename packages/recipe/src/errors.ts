import { DstackError, caretExcerpt, type DstackErrorOptions, type RecipeErrorCode } from '@dstack/errors';

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
export class RecipeError extends DstackError<RecipeErrorCode> {
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
    code: RecipeErrorCode,
    reason: string,
    where: RecipeErrorLocation,
    options: DstackErrorOptions = {},
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

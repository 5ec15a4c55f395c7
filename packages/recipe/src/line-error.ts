import type { RecipeErrorCode } from '@dstack/errors';

/** The error for one line: `reason` at `pos` (0-based in the logical line `source`). */
export class LineError extends Error {
  constructor(
    readonly reason: string,
    readonly pos = 0,
    readonly spanStart = pos,
    readonly code: RecipeErrorCode = 'RECIPE_SYNTAX',
    readonly hint?: string,
  ) {
    super(reason);
  }
}

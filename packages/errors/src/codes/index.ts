import { CLI_CODES } from './cli.js';
import { ENGINE_CODES } from './engine.js';
import type { CodeEntry } from './entry.js';
import { IMAGE_CODES } from './image.js';
import { OCI_CODES } from './oci.js';
import { RECIPE_CODES } from './recipe.js';
import { SERVER_CODES } from './server.js';
import { WHEEL_CODES } from './wheelhouse.js';

/** Every code, each under the one package that owns it (defines its meaning). */
const OWNED = [
  ['@dstack/recipe', RECIPE_CODES],
  ['@dstack/wheelhouse', WHEEL_CODES],
  ['@dstack/engine', ENGINE_CODES],
  ['@dstack/oci', OCI_CODES],
  ['@dstack/image', IMAGE_CODES],
  ['@dstack/server', SERVER_CODES],
  ['dstack-factory (CLI)', CLI_CODES],
] as const;

/** Any code a DstackError may carry. */
export type ErrorCode =
  | keyof typeof RECIPE_CODES
  | keyof typeof WHEEL_CODES
  | keyof typeof ENGINE_CODES
  | keyof typeof OCI_CODES
  | keyof typeof IMAGE_CODES
  | keyof typeof SERVER_CODES
  | keyof typeof CLI_CODES;

export interface ErrorCodeInfo extends CodeEntry {
  readonly code: ErrorCode;
  /** The package that owns the code. */
  readonly owner: string;
}

/** The catalogue: every code with its owner, summary and hint, in the owners' order (docs/errors.md is made from it). */
export const ERROR_CODES: readonly ErrorCodeInfo[] = OWNED.flatMap(([owner, codes]) =>
  Object.entries(codes).map(([code, entry]) => ({ code: code as ErrorCode, owner, ...(entry as CodeEntry) })),
);

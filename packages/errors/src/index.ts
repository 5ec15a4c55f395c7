export { DstackError, type DstackErrorOptions } from './dstack-error.js';
export { caretExcerpt } from './caret.js';
export { ERROR_CODES, type ErrorCode, type ErrorCodeInfo } from './codes/index.js';
export type { RecipeErrorCode } from './codes/recipe.js';
export type { WheelErrorCode } from './codes/wheelhouse.js';
export type { EngineErrorCode } from './codes/engine.js';
export type { ImageErrorCode, RegistryErrorCode } from './codes/image.js';
export type { ServerErrorCode } from './codes/server.js';
export type { CliErrorCode } from './codes/cli.js';

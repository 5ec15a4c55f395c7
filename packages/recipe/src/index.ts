export { RecipeError, type RecipeErrorLocation } from './errors.js';
export { canonicalizeName, type NormalizedName } from './names.js';
export { compareVersions, isValidSpecifier, isValidVersion, versionSatisfies } from './version.js';
export { normalizeSpecifierSet } from './specifier.js';
export { evaluateMarker, normalizeMarker, type MarkerEnvironment } from './marker.js';
export { parsePep508, type Pep508Requirement } from './pep508.js';
export { parseRecipe } from './recipe.js';
export { preprocessLines } from './lines.js';
export { pathToFileUrl } from './links.js';
export { formatRequirement, recipeToJSON, type RequirementLike } from './format.js';
export type {
  ParseRecipeOptions,
  PathKind,
  ReadFile,
  Recipe,
  RecipeOptions,
  RecipeRequirement,
} from './recipe-types.js';
export {
  decodeRecipeBytes,
  pathKindOnDisk,
  readRecipeFile,
  readRecipeText,
  resolveRecipePath,
} from './io.js';
export { lockPath, parseLock, stringifyLock, type Lock, type LockPackage, type LockWheel } from './lock.js';
export {
  diffDistributions,
  diffLocks,
  lockedDistributions,
  type LockDiff,
  type LockedDistribution,
} from './lock-diff.js';

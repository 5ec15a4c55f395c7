export { RecipeError, type RecipeErrorLocation } from './errors.js';
export { canonicalizeName, type NormalizedName } from './names.js';
export { compareVersions, isValidSpecifier, isValidVersion, versionSatisfies } from './version.js';
export { normalizeSpecifierSet } from './specifier.js';
export { evaluateMarker, normalizeMarker, type MarkerEnvironment } from './marker.js';
export { parsePep508, type Pep508Requirement } from './pep508.js';
export {
  formatRequirement,
  parseRecipe,
  preprocessLines,
  pathToFileUrl,
  recipeToJSON,
  type ParseRecipeOptions,
  type PathKind,
  type ReadFile,
  type Recipe,
  type RecipeOptions,
  type RecipeRequirement,
  type RequirementLike,
} from './recipe.js';
export {
  decodeRecipeBytes,
  pathKindOnDisk,
  readRecipeFile,
  readRecipeText,
  resolveRecipePath,
} from './io.js';
export { lockPath, parseLock, stringifyLock, type Lock, type LockPackage, type LockWheel } from './lock.js';

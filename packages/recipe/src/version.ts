import { compare, explain, valid, validRange, satisfies } from '@renovatebot/pep440';
import { RecipeError } from './errors.js';

function invalid(what: string, value: string): RecipeError {
  return new RecipeError('VERSION_INVALID', `invalid PEP 440 ${what}: ${JSON.stringify(value)}`, {
    file: '<string>',
    line: 1,
    column: 1,
    source: value,
  });
}

/** True when `version` is a valid PEP 440 version. */
export function isValidVersion(version: string): boolean {
  return valid(version) !== null;
}

/** True when `specifier` (e.g. ">=1.0,<2") is a valid PEP 440 specifier set. "" is valid (any version). */
export function isValidSpecifier(specifier: string): boolean {
  return specifier.trim() === '' || validRange(specifier);
}

/**
 * Does `version` satisfy the PEP 440 `specifier` set? As packaging's `SpecifierSet.contains`: pre-releases are
 * excluded unless `prereleases` is true or a clause of the specifier itself names a pre-release; an invalid
 * version satisfies nothing. Throws RecipeError (VERSION_INVALID) for an invalid specifier.
 */
export function versionSatisfies(
  version: string,
  specifier: string,
  options: { prereleases?: boolean } = {},
): boolean {
  if (!isValidSpecifier(specifier)) throw invalid('specifier', specifier);
  if (!isValidVersion(version)) return false;
  const prereleases = options.prereleases ?? specifierNamesPrerelease(specifier);
  return satisfies(version, specifier, { prereleases });
}

function specifierNamesPrerelease(specifier: string): boolean {
  for (const clause of specifier.split(',')) {
    const m = /^\s*(?:===|~=|==|!=|<=|>=|<|>)\s*(.*?)\s*$/.exec(clause);
    if (!m || !m[1] || m[1].endsWith('.*')) continue;
    const e = explain(m[1]);
    if (e?.is_prerelease) return true;
  }
  return false;
}

/** PEP 440 order: negative, zero or positive. Throws RecipeError (VERSION_INVALID) for an invalid version. */
export function compareVersions(a: string, b: string): number {
  if (!isValidVersion(a)) throw invalid('version', a);
  if (!isValidVersion(b)) throw invalid('version', b);
  return Math.sign(compare(a, b));
}

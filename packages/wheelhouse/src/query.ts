import { canonicalizeName, compareVersions, evaluateMarker, versionSatisfies } from '@dstack/recipe';
import { buildTagKey, parseWheelFilename } from './filename.js';
import type { WheelEntry } from './store.js';
import { wheelCompatibility, type CompatibilityOptions } from './compat.js';
import type { Target } from './tags.js';

export interface WheelRequirement {
  name: string;
  /** PEP 440 specifier set, "" for any version. */
  specifier: string;
  /** Allow pre-releases; by default as pip: only when the specifier names one, or when nothing else matches. */
  prereleases?: boolean;
  /** A PEP 508 marker: when it is false for the target, no wheel is wanted (null). */
  marker?: string | null;
}

/** Whether `requiresPython` admits the target's interpreter (an invalid specifier is ignored, as pip does). */
export function requiresPythonAllows(requiresPython: string | null, target: Target): boolean {
  if (!requiresPython) return true;
  try {
    return versionSatisfies(target.pythonFullVersion, requiresPython, { prereleases: true });
  } catch {
    return true;
  }
}

/**
 * The wheel pip would install for `requirement` on `target`: among the wheels of the project whose tags the target
 * supports and whose Requires-Python admits it, the highest version the specifier allows, then the best tag rank,
 * then the highest build tag. Null when none fits.
 */
export function bestWheel(entries: WheelEntry[], requirement: WheelRequirement, target: Target): WheelEntry | null {
  if (requirement.marker && !evaluateMarker(requirement.marker, target.markers)) return null;
  const name = canonicalizeName(requirement.name);
  const candidates = entries.flatMap((entry) => {
    if (entry.name !== name) return [];
    const parsed = parseWheelFilename(entry.filename);
    const fit = wheelCompatibility(parsed, target);
    if (!fit.ok || !requiresPythonAllows(entry.requiresPython, target)) return [];
    return [{ entry, rank: fit.rank, build: buildTagKey(parsed.build) }];
  });
  const allowed = (prereleases: boolean | undefined) =>
    candidates.filter((c) => versionSatisfies(c.entry.version, requirement.specifier, prereleases === undefined ? {} : { prereleases }));
  let matching = allowed(requirement.prereleases);
  if (matching.length === 0 && requirement.prereleases === undefined) matching = allowed(true);
  matching.sort(
    (a, b) =>
      compareVersions(b.entry.version, a.entry.version) ||
      a.rank - b.rank ||
      b.build[0] - a.build[0] ||
      (a.build[1] < b.build[1] ? 1 : a.build[1] > b.build[1] ? -1 : 0),
  );
  return matching[0]?.entry ?? null;
}

/**
 * Why pip found no distribution of `name` for `target` among `entries` (e.g. the wheelhouse, when pip says "No
 * matching distribution found"): each wheel of the project with the reason it was rejected — its tag against the
 * target ({@link wheelCompatibility}), its Requires-Python, or the specifier. Empty when the project has no wheel.
 */
export function whyNoWheel(
  entries: WheelEntry[],
  requirement: { name: string; specifier?: string },
  target: Target,
  options: CompatibilityOptions = {},
): { filename: string; reason: string }[] {
  const name = canonicalizeName(requirement.name);
  const subject = options.subject ?? 'the target';
  return entries
    .filter((e) => e.name === name)
    .map((entry) => {
      const fit = wheelCompatibility(entry.filename, target, { subject });
      let reason: string;
      if (!fit.ok) reason = fit.reason;
      else if (!requiresPythonAllows(entry.requiresPython, target)) reason = `Requires-Python ${entry.requiresPython}; ${subject} has Python ${target.pythonFullVersion}`;
      else if (requirement.specifier && !versionSatisfies(entry.version, requirement.specifier, { prereleases: true })) reason = `${entry.version} is not ${requirement.specifier}`;
      else reason = 'it fits: pip rejected it for another reason (a hash, a constraint, --no-binary)';
      return { filename: entry.filename, reason };
    });
}

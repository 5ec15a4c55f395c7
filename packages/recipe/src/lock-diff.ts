// What changed between two closures: two locks (`lock diff A B`), or anything else that lists distributions with
// their wheels' hashes (an image's SBOM, mapped to `LockedDistribution`s by its reader).
import { canonicalizeName } from './names.js';
import type { Lock } from './lock.js';

/** One distribution of a closure: its name, version and the sha256 of its wheel(s). */
export interface LockedDistribution {
  name: string;
  version: string;
  /** The environment marker it is locked under, when the lock gives one. */
  marker?: string;
  /** sha256 hex of each wheel, sorted. */
  sha256: string[];
}

export interface LockDiff {
  added: LockedDistribution[];
  removed: LockedDistribution[];
  /** Same project (and marker), another version or other wheel bytes. */
  changed: { name: string; from: LockedDistribution; to: LockedDistribution }[];
  unchanged: number;
}

/** The distributions of a PEP 751 lock. */
export function lockedDistributions(lock: Lock): LockedDistribution[] {
  return lock.packages.map((p) => ({
    name: canonicalizeName(p.name),
    version: p.version,
    ...(p.marker ? { marker: p.marker } : {}),
    sha256: p.wheels.map((w) => w.hashes.sha256 ?? '').filter(Boolean).sort(),
  }));
}

const keyOf = (d: LockedDistribution): string => `${canonicalizeName(d.name)}${d.marker ? `; ${d.marker}` : ''}`;
const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Added, removed and changed (version or hashes) distributions from `a` to `b`, each list sorted by name. */
export function diffDistributions(a: LockedDistribution[], b: LockedDistribution[]): LockDiff {
  const before = new Map(a.map((d) => [keyOf(d), d]));
  const after = new Map(b.map((d) => [keyOf(d), d]));
  const diff: LockDiff = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const [key, to] of after) {
    const from = before.get(key);
    if (!from) diff.added.push(to);
    else if (from.version !== to.version || from.sha256.join(' ') !== to.sha256.join(' '))
      diff.changed.push({ name: canonicalizeName(to.name), from, to });
    else diff.unchanged += 1;
  }
  for (const [key, from] of before) if (!after.has(key)) diff.removed.push(from);
  diff.added.sort(byName);
  diff.removed.sort(byName);
  diff.changed.sort(byName);
  return diff;
}

/** `diffDistributions` of two locks. */
export function diffLocks(a: Lock, b: Lock): LockDiff {
  return diffDistributions(lockedDistributions(a), lockedDistributions(b));
}

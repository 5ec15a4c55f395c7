import { promises as fs } from 'node:fs';
import path from 'node:path';
import { canonicalizeName, evaluateMarker, parseLock, type Lock } from '@dstack/recipe';
import { describeTargetText, wheelCompatibility } from '@dstack/wheelhouse';
import type { BaseInfo } from '../layers/base-info.js';
import type { WheelInput } from './build-app-image.js';
import { sha256Digest } from '../core/digest.js';
import { ImageError } from '../errors.js';
import { WheelMissingError } from '../layers/wheels/wheel-file.js';

export interface LockedWheels {
  lock: Lock;
  /** sha256 of the lock file's bytes: the image's org.dstack-factory.lock.digest label. */
  digest: string;
  wheels: WheelInput[];
}

/**
 * The wheels a lock names for a base image's interpreter, found in the wheelhouse (by file name; a wheel's
 * `path` relative to the lock file is tried too). A lock made for another environment is refused
 * (Decision 3), and so is a lock whose wheel has no sha256. A wheel in no wheelhouse is refused only when it must
 * be read (see lockedWheelFile).
 */
export async function wheelsFromLock(lockFile: string, wheelhouse: string, base: BaseInfo, options: LockedWheelOptions = {}): Promise<LockedWheels> {
  const { text, lock } = await readLock(lockFile);
  const env = base.target.markers;
  if (lock.environments?.length && !lock.environments.some((m) => evaluateMarker(m, env))) {
    throw new ImageError(
      'LOCK_ENVIRONMENT_MISMATCH',
      `${lockFile} was made for ${lock.environments.join(' or ')}, not for the base's Python ${env.python_full_version} (${base.python})`,
      { hint: 'lock the recipe with an interpreter of the same full version as the base (image app --requirements does it), or choose a base that matches' },
    );
  }
  const depended = new Set(lock.packages.flatMap((p) => (p.dependencies ?? []).map((d) => canonicalizeName(d.name) as string)));
  const haveDependencies = lock.packages.some((p) => p.dependencies !== undefined);
  const picked: { w: LockedWheel; requested: boolean }[] = [];
  for (const pkg of lock.packages) {
    if (pkg.marker && !evaluateMarker(pkg.marker, env)) continue;
    // The lock chose; this guards, with the one compatibility check, and says why a wheel does not fit.
    const verdicts = pkg.wheels.map((w) => ({ w, fit: wheelCompatibility(w.name, base.target, { subject: 'the base' }) }));
    const fit = verdicts.filter((v) => v.fit.ok).sort((a, b) => (a.fit.ok && b.fit.ok ? a.fit.rank - b.fit.rank : 0));
    if (fit.length === 0) {
      const why = verdicts.map((v) => `${v.w.name}: ${v.fit.ok ? '' : v.fit.reason}`);
      throw new ImageError(
        'LOCK_NO_WHEEL',
        `${lockFile}: ${pkg.name} ${pkg.version} has no wheel for the base (${describeTargetText(base.target)})${why.length ? `: ${why.join('; ')}` : ''}`,
        { hint: 'lock for the base\'s own interpreter (image app --requirements does), or choose a base the wheels fit' },
      );
    }
    const w = fit[0]!.w;
    lockedSha256(w, lockFile); // refused in the lock's order, before any file is looked for
    picked.push({ w, requested: haveDependencies ? !depended.has(canonicalizeName(pkg.name) as string) : true });
  }
  const wheels = await Promise.all(picked.map(async ({ w, requested }) => ({ ...(await lockedWheelFile(w, lockFile, wheelhouse, options)), requested })));
  return { lock, digest: sha256Digest(text), wheels };
}

const parsedLocks = new Map<string, { mtimeMs: number; size: number; text: Buffer; lock: Lock }>();

/** A lock file's bytes and parse, once per process while the file is unchanged (both readers of a build ask). */
async function readLock(lockFile: string): Promise<{ text: Buffer; lock: Lock }> {
  const st = await fs.stat(lockFile);
  const hit = parsedLocks.get(lockFile);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
  const text = await fs.readFile(lockFile);
  const read = { mtimeMs: st.mtimeMs, size: st.size, text, lock: parseLock(text.toString('utf8'), lockFile) };
  parsedLocks.set(lockFile, read);
  return read;
}

type LockedWheel = Lock['packages'][number]['wheels'][number];

export interface LockedWheelOptions {
  /**
   * The wheelhouse is not a folder (`wheelhouse` only names it, `registry:HOST/REPO`): a wheel its lock-relative
   * path does not find is fetched by this when its bytes must be read — its local file, or null when the
   * wheelhouse has not got it (then LOCK_WHEEL_MISSING).
   */
  fetch?: (wheel: string, sha256: string) => Promise<string | null>;
}

/**
 * Where a locked wheel is (the wheelhouse, else its path relative to the lock), with the lock's sha256. A wheel
 * that is in neither is not an error yet: a runner whose layer cache has everything reads no wheel and needs no
 * wheelhouse. Its `locate` fetches it (`options.fetch`) or throws, once its bytes must be read (a segment to
 * install, an ELF list to read).
 */
function lockedSha256(w: LockedWheel, lockFile: string): string {
  const sha256 = w.hashes.sha256;
  if (!sha256) throw new ImageError('LOCK_NO_HASH', `${lockFile}: ${w.name} has no sha256`);
  return sha256;
}

async function lockedWheelFile(w: LockedWheel, lockFile: string, wheelhouse: string, options: LockedWheelOptions): Promise<WheelInput> {
  const sha256 = lockedSha256(w, lockFile);
  const candidates = options.fetch ? [] : [path.join(wheelhouse, w.name)];
  if (w.path) candidates.push(path.resolve(path.dirname(lockFile), w.path));
  for (const c of candidates) {
    try {
      await fs.access(c);
      return { path: c, sha256 };
    } catch {
      // try the next
    }
  }
  const fetch = options.fetch;
  return {
    path: path.join(wheelhouse, w.name),
    sha256,
    locate: async () => {
      const got = fetch ? await fetch(w.name, sha256) : null;
      if (!got) throw new WheelMissingError([w.name], lockFile, wheelhouse);
      return got;
    },
  };
}

/**
 * What a lock alone says its image will install, before any base is read: the Python of its environments
 * (`python_full_version == "3.11.2"` in every one of them) and its wheels, when no package has a marker or more
 * than one wheel to choose from. Else null: only the base can tell. A guess the base then confirms lets the
 * dependencies layer be written while the base is still being read (`wheelsFromLock` decides what is installed).
 */
export async function lockedWheelsBeforeBase(
  lockFile: string,
  wheelhouse: string,
  options: LockedWheelOptions = {},
): Promise<{ pythonVersion: string; pythonFullVersion: string; wheels: WheelInput[] } | null> {
  const { lock } = await readLock(lockFile);
  // Per environment [full, minor]: "3.11.2", "3.11".
  const stated = (lock.environments ?? []).map((m) => /python_full_version\s*==\s*["']((\d+\.\d+)\.\d+)["']/.exec(m));
  const versions = new Set(stated.map((m) => m?.[2] ?? null));
  if (versions.size !== 1 || versions.has(null)) return null;
  if (lock.packages.some((p) => p.marker || p.wheels.length !== 1)) return null;
  const depended = new Set(lock.packages.flatMap((p) => (p.dependencies ?? []).map((d) => canonicalizeName(d.name) as string)));
  const haveDependencies = lock.packages.some((p) => p.dependencies !== undefined);
  for (const pkg of lock.packages) lockedSha256(pkg.wheels[0]!, lockFile);
  const wheels = await Promise.all(
    lock.packages.map(async (pkg) => ({ ...(await lockedWheelFile(pkg.wheels[0]!, lockFile, wheelhouse, options)), requested: haveDependencies ? !depended.has(canonicalizeName(pkg.name) as string) : true })),
  );
  return { pythonVersion: [...versions][0]!, pythonFullVersion: stated[0]![1]!, wheels };
}

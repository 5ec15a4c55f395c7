import { promises as fs } from 'node:fs';
import path from 'node:path';
import { canonicalizeName, evaluateMarker, parseLock, type Lock, type MarkerEnvironment } from '@dstack/recipe';
import type { BaseInfo } from '../layers/base-info.js';
import type { WheelInput } from './build-app-image.js';
import { sha256Digest } from '../core/digest.js';
import { ImageError } from '../errors.js';

/** The marker environment of a base image's interpreter (CPython on linux/x86_64). */
export function baseMarkers(base: BaseInfo): MarkerEnvironment {
  const full = base.pythonFullVersion ?? `${base.pythonVersion}.0`;
  return {
    implementation_name: 'cpython',
    implementation_version: full,
    os_name: 'posix',
    platform_machine: 'x86_64',
    platform_release: '',
    platform_system: 'Linux',
    platform_version: '',
    platform_python_implementation: 'CPython',
    python_full_version: full,
    python_version: base.pythonVersion,
    sys_platform: 'linux',
  };
}

/** Is a wheel's tag set installable on CPython X.Y, linux x86_64? (The lock chose; this only guards.) */
export function wheelFitsBase(filename: string, base: BaseInfo): boolean {
  const parts = filename.replace(/\.whl$/, '').split('-');
  if (parts.length < 5) return false;
  const [py, abi, plat] = parts.slice(-3) as [string, string, string];
  const v = base.pythonVersion.replace('.', '');
  const minor = Number(base.pythonVersion.split('.')[1]);
  const pyOk = py.split('.').some((t) => t === 'py3' || t === `py${v}` || t === `cp${v}` || (/^cp3\d+$/.test(t) && abi.split('.').includes('abi3') && Number(t.slice(3)) <= minor));
  const abiOk = abi.split('.').some((a) => a === 'none' || a === 'abi3' || a === `cp${v}`);
  const platOk = plat.split('.').some((p) => p === 'any' || p === 'linux_x86_64' || /^manylinux[\w]*_x86_64$/.test(p) || p === 'manylinux1_x86_64');
  return pyOk && abiOk && platOk;
}

export interface LockedWheels {
  lock: Lock;
  /** sha256 of the lock file's bytes: the image's org.dstack-factory.lock.digest label. */
  digest: string;
  wheels: WheelInput[];
}

/**
 * The wheels a lock names for a base image's interpreter, found in the wheelhouse (by file name; a wheel's
 * `path` relative to the lock file is tried too). A lock made for another environment is refused
 * (Decision 3), and so is a lock whose wheel is missing or has no sha256.
 */
export async function wheelsFromLock(lockFile: string, wheelhouse: string, base: BaseInfo): Promise<LockedWheels> {
  const text = await fs.readFile(lockFile);
  const lock = parseLock(text.toString('utf8'), lockFile);
  const env = baseMarkers(base);
  if (lock.environments?.length && !lock.environments.some((m) => evaluateMarker(m, env))) {
    throw new ImageError(
      'LOCK_ENVIRONMENT_MISMATCH',
      `${lockFile} was made for ${lock.environments.join(' or ')}, not for the base's Python ${env.python_full_version} (${base.python})`,
      { hint: 'lock the recipe with an interpreter of the same full version as the base (image app --requirements does it), or choose a base that matches' },
    );
  }
  const depended = new Set(lock.packages.flatMap((p) => (p.dependencies ?? []).map((d) => canonicalizeName(d.name) as string)));
  const haveDependencies = lock.packages.some((p) => p.dependencies !== undefined);
  const wheels: WheelInput[] = [];
  for (const pkg of lock.packages) {
    if (pkg.marker && !evaluateMarker(pkg.marker, env)) continue;
    const fit = pkg.wheels.filter((w) => wheelFitsBase(w.name, base));
    if (fit.length === 0) {
      throw new ImageError('LOCK_NO_WHEEL', `${lockFile}: ${pkg.name} ${pkg.version} has no wheel for CPython ${base.pythonVersion} linux x86_64 (${pkg.wheels.map((w) => w.name).join(', ') || 'none'})`);
    }
    const w = fit[0]!;
    const sha256 = w.hashes.sha256;
    if (!sha256) throw new ImageError('LOCK_NO_HASH', `${lockFile}: ${w.name} has no sha256`);
    const candidates = [path.join(wheelhouse, w.name)];
    if (w.path) candidates.push(path.resolve(path.dirname(lockFile), w.path));
    let found: string | null = null;
    for (const c of candidates) {
      try {
        await fs.access(c);
        found = c;
        break;
      } catch {
        // try the next
      }
    }
    if (!found) {
      throw new ImageError('LOCK_WHEEL_MISSING', `${w.name} (locked in ${lockFile}) is not in the wheelhouse ${wheelhouse}`, {
        hint: 'run `dstack-factory build` for this recipe, or point --wheelhouse at the right folder',
      });
    }
    wheels.push({
      path: found,
      sha256,
      requested: haveDependencies ? !depended.has(canonicalizeName(pkg.name) as string) : true,
    });
  }
  return { lock, digest: sha256Digest(text), wheels };
}

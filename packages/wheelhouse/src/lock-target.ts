// A target from a lock (Decision 3: a lock records the environment it was made for): its PEP 751 `environments`
// marker gives the interpreter and machine; the target name under [tool.dstack-factory] (or the file's own
// name, pylock.<target>.toml) gives the C library, which no marker variable can say.
import type { Lock, MarkerEnvironment } from '@dstack/recipe';
import { WheelError } from './errors.js';
import type { Libc } from './platforms.js';
import { describeTarget, type Target } from './tags.js';

const NAME_RE = /^([a-z]+)(\d+(?:_\d+)*(?:(?:a|b|rc)\d+)?)([a-z]*)-(.+)$/;

/** Reads a target name (`cp3_11_7-manylinux_2_36_x86_64`, see `Target.name`), or null if it is not one. */
export function parseTargetName(name: string): Target | null {
  const m = NAME_RE.exec(name);
  if (!m || !m[2]!.includes('_')) return null;
  const [, impl, version, flags, platform] = m as unknown as [string, string, string, string, string];
  const pythonFullVersion = version.replace(/_/g, '.');
  const [major, minor] = pythonFullVersion.split('.');
  try {
    return describeTarget({
      implementation: impl,
      pythonFullVersion,
      platforms: [platform],
      ...(flags ? { abi: `${impl}${major}${minor}${flags}` } : {}),
    });
  } catch {
    return null;
  }
}

/** `a == "x" and b == "y"` -> { a: x, b: y }; null for any other shape. */
function equalities(marker: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const clause of marker.split(/\s+and\s+/)) {
    const m = /^\s*\(?\s*([a-z_]+)\s*==\s*(?:"([^"]*)"|'([^']*)')\s*\)?\s*$/.exec(clause);
    if (!m) return null;
    out[m[1]!] = m[2] ?? m[3]!;
  }
  return out;
}

/**
 * The target a lock was made for: from its `environments` (implementation_name, python_full_version,
 * sys_platform, platform_machine — as the engine writes them) and the target name the lock carries under
 * `[tool.dstack-factory] target` or in its file name. Null when the lock names no single environment.
 * Without a name that says the C library, `libc` is null (then only pure and linux_<arch> wheels fit).
 */
export function targetFromLock(lock: Pick<Lock, 'environments' | 'tool'>, file?: string): Target | null {
  const envs = lock.environments ?? [];
  if (envs.length !== 1) return null;
  const eq = equalities(envs[0]!);
  if (!eq) return null;
  const full = eq.python_full_version;
  if (!full) return null;
  const tool = lock.tool?.['dstack-factory'] as { target?: unknown } | undefined;
  const fileName = file ? /pylock\.([^.]+)\.toml$/.exec(file)?.[1] : undefined;
  const named = [typeof tool?.target === 'string' ? tool.target : undefined, fileName]
    .map((n) => (n ? parseTargetName(n) : null))
    .find((t) => t !== null && t.pythonFullVersion === full && (!eq.platform_machine || t.architecture === eq.platform_machine));
  const impl = eq.implementation_name === 'pypy' ? 'pp' : eq.implementation_name && eq.implementation_name !== 'cpython' ? eq.implementation_name : 'cp';
  const machine = eq.platform_machine ?? named?.architecture;
  if (!machine) return null;
  const libc: Libc | null = named?.libc ?? null;
  if (eq.sys_platform && eq.sys_platform !== 'linux') {
    throw new WheelError('TARGET_INVALID', `the lock's environment ${JSON.stringify(envs[0])} is not a Linux one`);
  }
  const described = describeTarget({
    implementation: impl,
    pythonFullVersion: full,
    architecture: machine,
    libc,
    ...(named?.abi ? { abi: named.abi } : {}),
    markers: Object.fromEntries(Object.entries(eq).filter(([k]) => k in MARKER_KEYS)) as Partial<MarkerEnvironment>,
  });
  return { ...described, interpreter: file ? `lock:${file}` : 'lock' };
}

const MARKER_KEYS: Record<keyof MarkerEnvironment, true> = {
  implementation_name: true,
  implementation_version: true,
  os_name: true,
  platform_machine: true,
  platform_release: true,
  platform_system: true,
  platform_version: true,
  platform_python_implementation: true,
  python_full_version: true,
  python_version: true,
  sys_platform: true,
};


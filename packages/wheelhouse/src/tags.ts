import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MarkerEnvironment } from '@dstack/recipe';
import { WheelError } from './errors.js';
import type { WheelFilename } from './filename.js';

/**
 * Where wheels are installed: an interpreter (implementation, version, ABI, platform) and the tags it supports,
 * best first, as `packaging.tags.sys_tags()` lists them. A wheel's rank for a target is the index of its best tag.
 */
export interface Target {
  /** e.g. "cp311-linux_x86_64": used in lock file names. */
  id: string;
  /** The interpreter it was detected from, or null for a described target. */
  interpreter: string | null;
  /** "cp" */
  implementation: string;
  /** "3.11" */
  pythonVersion: string;
  /** "3.11.7" */
  pythonFullVersion: string;
  /** Supported tags, best first. */
  tags: string[];
  markers: MarkerEnvironment;
}

export interface TargetSpec {
  /** Interpreter abbreviation (PEP 425): "cp" (default). */
  implementation?: string;
  /** "3.11.2" */
  pythonFullVersion: string;
  /**
   * Platform tags, most specific first. `manylinux_X_Y_<arch>` (or a legacy alias `manylinux1/2010/2014_<arch>`)
   * stands for a glibc X.Y system and expands to every manylinux tag it supports (PEP 600);
   * `musllinux_X_Y_<arch>` likewise; `linux_<arch>` is added after them, as `sys_tags()` does.
   * Anything else (`linux_x86_64`, `any`, `win_amd64`) is taken as is.
   */
  platforms: string[];
  /** The interpreter's ABI tag; default `cp311` for CPython 3.11 (`cp313t` for a free-threaded build). */
  abi?: string;
  /** Marker values to override (the defaults describe a Linux CPython). */
  markers?: Partial<MarkerEnvironment>;
}

const LEGACY_MANYLINUX: Record<string, [number, number]> = {
  manylinux1: [2, 5],
  manylinux2010: [2, 12],
  manylinux2014: [2, 17],
};
const LEGACY_BY_GLIBC = new Map(Object.entries(LEGACY_MANYLINUX).map(([k, [a, b]]) => [`${a}.${b}`, k]));

/** Every manylinux platform tag a glibc `major.minor` system of `arch` supports, best first (packaging's order). */
export function manylinuxPlatforms(glibc: [number, number], arch: string): string[] {
  const out: string[] = [];
  // The oldest glibc a manylinux tag exists for: 2.17 everywhere, 2.5 on x86.
  const tooOld: [number, number] = arch === 'x86_64' || arch === 'i686' ? [2, 4] : [2, 16];
  const maxList: [number, number][] = [glibc];
  // Compatibility is assumed across glibc major versions; earlier majors end at minor 50, as in packaging.
  for (let major = glibc[0] - 1; major > 1; major--) maxList.push([major, 50]);
  for (const [major, maxMinor] of maxList) {
    const minMinor = major === tooOld[0] ? tooOld[1] : -1;
    for (let minor = maxMinor; minor > minMinor; minor--) {
      out.push(`manylinux_${major}_${minor}_${arch}`);
      const legacy = LEGACY_BY_GLIBC.get(`${major}.${minor}`);
      if (legacy) out.push(`${legacy}_${arch}`);
    }
  }
  return out;
}

/** Every musllinux platform tag a musl `major.minor` system of `arch` supports, best first. */
export function musllinuxPlatforms(musl: [number, number], arch: string): string[] {
  const out: string[] = [];
  for (let minor = musl[1]; minor >= 0; minor--) out.push(`musllinux_${musl[0]}_${minor}_${arch}`);
  return out;
}

/** Expands a target's platform list as described in {@link TargetSpec.platforms}. */
export function expandPlatforms(platforms: string[]): string[] {
  const out: string[] = [];
  const linuxArches: string[] = [];
  for (const p of platforms) {
    let m = /^manylinux_(\d+)_(\d+)_(.+)$/.exec(p);
    const legacy = /^(manylinux1|manylinux2010|manylinux2014)_(.+)$/.exec(p);
    if (legacy) m = ['', String(LEGACY_MANYLINUX[legacy[1]!]![0]), String(LEGACY_MANYLINUX[legacy[1]!]![1]), legacy[2]!] as unknown as RegExpExecArray;
    if (m) {
      out.push(...manylinuxPlatforms([Number(m[1]), Number(m[2])], m[3]!));
      linuxArches.push(m[3]!);
      continue;
    }
    const mu = /^musllinux_(\d+)_(\d+)_(.+)$/.exec(p);
    if (mu) {
      out.push(...musllinuxPlatforms([Number(mu[1]), Number(mu[2])], mu[3]!));
      linuxArches.push(mu[3]!);
      continue;
    }
    out.push(p);
  }
  for (const arch of linuxArches) if (!out.includes(`linux_${arch}`)) out.push(`linux_${arch}`);
  return [...new Set(out)];
}

function pyInterpreterRange(major: number, minor: number): string[] {
  const out = [`py${major}${minor}`, `py${major}`];
  for (let m = minor - 1; m >= 0; m--) out.push(`py${major}${m}`);
  return out;
}

function parseVersion(full: string): { major: number; minor: number } {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?(?:[a-z]+\d*)?\+?$/.exec(full.trim());
  if (!m) throw new WheelError('TARGET_INVALID', `invalid Python version "${full}" (expected like 3.11.7)`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

/** The supported tags of a target, best first: the same list as `packaging.tags` (cpython_tags + compatible_tags). */
export function targetTags(spec: TargetSpec): string[] {
  const impl = spec.implementation ?? 'cp';
  const { major, minor } = parseVersion(spec.pythonFullVersion);
  const interpreter = `${impl}${major}${minor}`;
  const platforms = expandPlatforms(spec.platforms);
  const tags: string[] = [];
  if (impl === 'cp') {
    const abi = spec.abi ?? `cp${major}${minor}`;
    const abis = [abi].filter((a) => a !== 'abi3' && a !== 'none');
    for (const a of abis) for (const p of platforms) tags.push(`${interpreter}-${a}-${p}`);
    // abi3 (PEP 384) exists from 3.2 on; a free-threaded build (abi flag "t") takes abi3t (PEP 803) instead.
    const threaded = /^cp\d+\w*t/.test(abis[0] ?? '');
    const stable = major === 3 && minor >= 2 ? (threaded ? 'abi3t' : 'abi3') : null;
    if (stable) for (const p of platforms) tags.push(`${interpreter}-${stable}-${p}`);
    for (const p of platforms) tags.push(`${interpreter}-none-${p}`);
    if (stable) {
      for (let m = minor - 1; m > 1; m--) for (const p of platforms) tags.push(`cp${major}${m}-${stable}-${p}`);
    }
  } else {
    // packaging's generic_tags: the interpreter with its ABI, then "none".
    const abis = spec.abi ? [spec.abi] : [];
    if (!abis.includes('none')) abis.push('none');
    for (const a of abis) for (const p of platforms) tags.push(`${interpreter}-${a}-${p}`);
  }
  for (const v of pyInterpreterRange(major, minor)) for (const p of platforms) tags.push(`${v}-none-${p}`);
  tags.push(`${interpreter}-none-any`);
  for (const v of pyInterpreterRange(major, minor)) tags.push(`${v}-none-any`);
  return tags;
}

function genericPlatform(platforms: string[]): string {
  const expanded = expandPlatforms(platforms);
  return expanded.find((p) => p.startsWith('linux_')) ?? expanded[expanded.length - 1] ?? 'any';
}

/**
 * A target described explicitly. A Debian bookworm image's interpreter:
 * `describeTarget({ pythonFullVersion: '3.11.2', platforms: ['manylinux_2_36_x86_64'] })`.
 */
export function describeTarget(spec: TargetSpec): Target {
  const impl = spec.implementation ?? 'cp';
  const { major, minor } = parseVersion(spec.pythonFullVersion);
  const platform = genericPlatform(spec.platforms);
  const arch = /^linux_(.+)$/.exec(platform)?.[1] ?? '';
  const markers: MarkerEnvironment = {
    implementation_name: impl === 'cp' ? 'cpython' : impl === 'pp' ? 'pypy' : impl,
    implementation_version: spec.pythonFullVersion,
    os_name: 'posix',
    platform_machine: arch,
    platform_release: '',
    platform_system: platform.startsWith('linux_') ? 'Linux' : '',
    platform_version: '',
    platform_python_implementation: impl === 'cp' ? 'CPython' : impl === 'pp' ? 'PyPy' : impl,
    python_full_version: spec.pythonFullVersion,
    python_version: `${major}.${minor}`,
    sys_platform: platform.startsWith('linux_') ? 'linux' : '',
    ...spec.markers,
  };
  return {
    id: `${impl}${major}${minor}-${platform}`,
    interpreter: null,
    implementation: impl,
    pythonVersion: `${major}.${minor}`,
    pythonFullVersion: spec.pythonFullVersion,
    tags: targetTags(spec),
    markers,
  };
}

// Runs inside the target interpreter. pip's vendored packaging comes first: pip is what installs the wheels,
// and a venv may hold an older `packaging` than the pip in it. Without either, the facts to compute tags.
const DETECT_SCRIPT = String.raw`
import json, os, platform, sys, sysconfig
tags = None
try:
    from pip._vendor.packaging import tags
except Exception:
    try:
        from packaging import tags
    except Exception:
        tags = None
def fmt(info):
    v = '%d.%d.%d' % (info.major, info.minor, info.micro)
    if info.releaselevel != 'final':
        v += info.releaselevel[0] + str(info.serial)
    return v
glibc = None
try:
    glibc = os.confstr('CS_GNU_LIBC_VERSION').split()[1]
except Exception:
    pass
out = {
  'executable': sys.executable,
  'implementation': {'cpython': 'cp', 'pypy': 'pp'}.get(sys.implementation.name, sys.implementation.name),
  'abi': ('cp' + (sysconfig.get_config_var('SOABI') or '-').split('-')[1]) if sys.implementation.name == 'cpython' else None,
  'platform': sysconfig.get_platform().replace('-', '_').replace('.', '_'),
  'glibc': glibc,
  'tags': [str(t) for t in tags.sys_tags()] if tags else None,
  'markers': {
    'implementation_name': sys.implementation.name,
    'implementation_version': fmt(sys.implementation.version),
    'os_name': os.name,
    'platform_machine': platform.machine(),
    'platform_release': platform.release(),
    'platform_system': platform.system(),
    'platform_version': platform.version(),
    'python_full_version': platform.python_version(),
    'platform_python_implementation': platform.python_implementation(),
    'python_version': '.'.join(platform.python_version_tuple()[:2]),
    'sys_platform': sys.platform,
  },
}
print(json.dumps(out))
`;

interface Detected {
  executable: string;
  implementation: string;
  abi: string | null;
  platform: string;
  glibc: string | null;
  tags: string[] | null;
  markers: MarkerEnvironment;
}

/** Detects the target of an interpreter by running it (`python3`, a venv's `bin/python`, a pyenv version). */
export async function detectTarget(python: string): Promise<Target> {
  let detected: Detected;
  try {
    const { stdout } = await promisify(execFile)(python, ['-I', '-c', DETECT_SCRIPT], { timeout: 60_000 });
    detected = JSON.parse(stdout) as Detected;
  } catch (cause) {
    throw new WheelError('TARGET_DETECT_FAILED', `could not detect the target of the interpreter ${python}`, {
      cause,
      hint: 'pass the path of a working Python interpreter (3.x)',
    });
  }
  const { major, minor } = parseVersion(detected.markers.python_full_version);
  const platforms =
    detected.glibc && detected.platform.startsWith('linux_')
      ? [`manylinux_${detected.glibc.replace('.', '_')}_${detected.platform.slice('linux_'.length)}`]
      : [detected.platform];
  const tags =
    detected.tags ??
    targetTags({
      implementation: detected.implementation,
      pythonFullVersion: detected.markers.python_full_version,
      platforms,
      ...(detected.abi ? { abi: detected.abi } : {}),
    });
  return {
    id: `${detected.implementation}${major}${minor}-${genericPlatform(platforms)}`,
    interpreter: python,
    implementation: detected.implementation,
    pythonVersion: `${major}.${minor}`,
    pythonFullVersion: detected.markers.python_full_version,
    tags,
    markers: detected.markers,
  };
}

const rankCache = new WeakMap<Target, Map<string, number>>();

/** The rank of a wheel for a target: the index of its best tag in `target.tags` (lower is better), or null. */
export function wheelTagRank(wheel: Pick<WheelFilename, 'tags'>, target: Target): number | null {
  let index = rankCache.get(target);
  if (!index) {
    index = new Map();
    target.tags.forEach((t, i) => {
      if (!index!.has(t)) index!.set(t, i);
    });
    rankCache.set(target, index);
  }
  let best: number | null = null;
  for (const t of wheel.tags) {
    const i = index.get(t);
    if (i !== undefined && (best === null || i < best)) best = i;
  }
  return best;
}

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MarkerEnvironment } from '@dstack/recipe';
import { WheelError } from './errors.js';
import type { WheelFilename } from './filename.js';
import { LEGACY_MANYLINUX, oldestGlibc, platformNeeds, type Libc } from './platforms.js';

/**
 * Where wheels are installed (Decision 18): an interpreter (implementation, full version, ABI) on an OS, an
 * architecture and a C library, with the tags it supports, best first, as `packaging.tags.sys_tags()` lists them.
 * A wheel's rank for a target is the index of its best tag.
 */
export interface Target {
  /** e.g. "cp311-linux_x86_64": the short name in logs, events and `builtBy`. */
  id: string;
  /**
   * Everything that decides markers and tags, e.g. "cp3_11_7-manylinux_2_36_x86_64": names lock files
   * (`pylock.<name>.toml`, no dots as PEP 751 wants). Two targets that can resolve differently have different names.
   */
  name: string;
  /** The interpreter it was detected from (a path, `docker:<image>`, `image:<ref>`), or null for a described target. */
  interpreter: string | null;
  /** PEP 425 abbreviation: "cp", "pp". */
  implementation: string;
  /** "3.11" */
  pythonVersion: string;
  /** "3.11.7" */
  pythonFullVersion: string;
  /** The interpreter's ABI tag ("cp311", "cp313t"), or null when there is none to speak of. */
  abi: string | null;
  /** "linux" (else what the platform tag says: "windows", "macos", or "" for `any`). */
  os: string;
  /** The machine as tags name it (PEP 425 / 599): "x86_64", "aarch64", "armv7l"…; "" when unknown. */
  architecture: string;
  /** glibc or musl and its version; null when there is none (or it is not known: then only linux_<arch> fits). */
  libc: Libc | null;
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
   * Default: from `architecture` and `libc`.
   */
  platforms?: string[];
  /** With no `platforms`: the machine ("aarch64"), and its C library (none: only `linux_<arch>`). */
  architecture?: string;
  libc?: Libc | null;
  /** The interpreter's ABI tag; default `cp311` for CPython 3.11 (`cp313t` for a free-threaded build). */
  abi?: string;
  /** Marker values to override (the defaults describe a Linux CPython). */
  markers?: Partial<MarkerEnvironment>;
}

const LEGACY_BY_GLIBC = new Map(Object.entries(LEGACY_MANYLINUX).map(([k, [a, b]]) => [`${a}.${b}`, k]));

/** Every manylinux platform tag a glibc `major.minor` system of `arch` supports, best first (packaging's order). */
export function manylinuxPlatforms(glibc: [number, number], arch: string): string[] {
  const out: string[] = [];
  const oldest = oldestGlibc(arch);
  const tooOld: [number, number] = [oldest[0], oldest[1] - 1];
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
    const needs = platformNeeds(p);
    if (needs?.libc) {
      const { kind, version } = needs.libc;
      out.push(...(kind === 'glibc' ? manylinuxPlatforms(version, needs.machine) : musllinuxPlatforms(version, needs.machine)));
      linuxArches.push(needs.machine);
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

/** The platform tags a spec stands for before expansion. */
function specPlatforms(spec: TargetSpec): string[] {
  if (spec.platforms) return spec.platforms;
  const arch = spec.architecture;
  if (!arch) throw new WheelError('TARGET_INVALID', 'a target needs its platforms or its architecture');
  if (!spec.libc) return [`linux_${arch}`];
  const [major, minor] = libcVersion(spec.libc);
  return [`${spec.libc.kind === 'glibc' ? 'manylinux' : 'musllinux'}_${major}_${minor}_${arch}`];
}

function libcVersion(libc: Libc): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(libc.version);
  if (!m) throw new WheelError('TARGET_INVALID', `invalid ${libc.kind} version "${libc.version}" (expected like 2.36)`);
  return [Number(m[1]), Number(m[2])];
}

/** The supported tags of a target, best first: the same list as `packaging.tags` (cpython_tags + compatible_tags). */
export function targetTags(spec: TargetSpec): string[] {
  const impl = spec.implementation ?? 'cp';
  const { major, minor } = parseVersion(spec.pythonFullVersion);
  const interpreter = `${impl}${major}${minor}`;
  const platforms = expandPlatforms(specPlatforms(spec));
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

/** OS, architecture and libc as the (unexpanded) platform list says them: the first Linux tag decides. */
function platformFacts(platforms: string[]): { os: string; architecture: string; libc: Libc | null; generic: string } {
  for (const p of platforms) {
    const needs = platformNeeds(p);
    if (!needs) continue;
    const libc = needs.libc ? { kind: needs.libc.kind, version: needs.libc.version.join('.') } : null;
    return { os: 'linux', architecture: needs.machine, libc, generic: `linux_${needs.machine}` };
  }
  const first = platforms[0] ?? 'any';
  const os = first.startsWith('win') ? 'windows' : first.startsWith('macosx') ? 'macos' : first === 'any' ? '' : first.split('_')[0]!;
  const architecture = /^win_(.+)$/.exec(first)?.[1] ?? /^macosx_\d+_\d+_(.+)$/.exec(first)?.[1] ?? '';
  return { os, architecture, libc: null, generic: first };
}

/** The lock-file name of a target (see {@link Target.name}): "cp3_11_7-manylinux_2_36_x86_64", "cp3_13_0t-musllinux_1_2_aarch64". */
export function targetName(t: Pick<Target, 'implementation' | 'pythonFullVersion' | 'abi' | 'os' | 'architecture' | 'libc'>): string {
  const { major, minor } = parseVersion(t.pythonFullVersion);
  // ABI flags beyond the default (cp313t, cp311d) change what installs.
  const flags = t.abi && t.abi.startsWith(`${t.implementation}${major}${minor}`) ? t.abi.slice(`${t.implementation}${major}${minor}`.length) : '';
  const version = t.pythonFullVersion.replace(/[^A-Za-z0-9]+/g, '_');
  let platform: string;
  if (t.os === 'linux' && t.libc) {
    const [a, b] = libcVersion(t.libc);
    platform = `${t.libc.kind === 'glibc' ? 'manylinux' : 'musllinux'}_${a}_${b}_${t.architecture}`;
  } else if (t.os === 'linux') platform = `linux_${t.architecture}`;
  else platform = [t.os || 'any', t.architecture].filter(Boolean).join('_');
  return `${t.implementation}${version}${flags}-${platform}`;
}

/**
 * A target described explicitly. A Debian bookworm image's interpreter:
 * `describeTarget({ pythonFullVersion: '3.11.2', architecture: 'x86_64', libc: { kind: 'glibc', version: '2.36' } })`,
 * or with its platform tag: `describeTarget({ pythonFullVersion: '3.11.2', platforms: ['manylinux_2_36_x86_64'] })`.
 */
export function describeTarget(spec: TargetSpec): Target {
  const impl = spec.implementation ?? 'cp';
  const { major, minor } = parseVersion(spec.pythonFullVersion);
  const facts = platformFacts(specPlatforms(spec));
  const linux = facts.os === 'linux';
  const markers: MarkerEnvironment = {
    implementation_name: impl === 'cp' ? 'cpython' : impl === 'pp' ? 'pypy' : impl,
    implementation_version: spec.pythonFullVersion,
    os_name: 'posix',
    platform_machine: facts.architecture,
    platform_release: '',
    platform_system: linux ? 'Linux' : '',
    platform_version: '',
    platform_python_implementation: impl === 'cp' ? 'CPython' : impl === 'pp' ? 'PyPy' : impl,
    python_full_version: spec.pythonFullVersion,
    python_version: `${major}.${minor}`,
    sys_platform: linux ? 'linux' : '',
    ...spec.markers,
  };
  const abi = spec.abi ?? (impl === 'cp' ? `cp${major}${minor}` : null);
  const base = { implementation: impl, pythonFullVersion: spec.pythonFullVersion, abi, os: facts.os, architecture: facts.architecture, libc: facts.libc };
  return {
    id: `${impl}${major}${minor}-${facts.generic}`,
    name: targetName(base),
    interpreter: null,
    ...base,
    pythonVersion: `${major}.${minor}`,
    tags: targetTags(spec),
    markers,
  };
}

/**
 * A target from what an interpreter itself reported: its best-first tags (pip's `sys_tags()`, authoritative for
 * what that pip installs) and markers. Architecture and libc come from the best Linux tag.
 */
export function targetFromTags(info: {
  interpreter: string | null;
  implementation: string;
  pythonFullVersion: string;
  abi?: string | null;
  tags: string[];
  markers: MarkerEnvironment;
}): Target {
  const platforms = [...new Set(info.tags.map((t) => t.split('-')[2]!))];
  // The best manylinux/musllinux tag names the libc level; without one, the first Linux tag names the machine.
  const libcTag = platforms.find((p) => platformNeeds(p)?.libc);
  const described = describeTarget({
    implementation: info.implementation,
    pythonFullVersion: info.pythonFullVersion,
    platforms: libcTag ? [libcTag] : platforms,
    ...(info.abi ? { abi: info.abi } : {}),
  });
  const abi = info.abi ?? info.tags.find((t) => t.startsWith(`${info.implementation}`) && !/-(abi3t?|none)-/.test(t))?.split('-')[1] ?? described.abi;
  const facts = { ...described, abi };
  return { ...facts, name: targetName(facts), interpreter: info.interpreter, tags: info.tags, markers: info.markers };
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
  parseVersion(detected.markers.python_full_version);
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
  const target = targetFromTags({
    interpreter: python,
    implementation: detected.implementation,
    pythonFullVersion: detected.markers.python_full_version,
    abi: detected.abi,
    tags,
    markers: detected.markers,
  });
  // glibc from the C library itself (confstr) over what the tags imply: an interpreter whose pip is too old for
  // manylinux_2_X tags still runs on that glibc.
  if (detected.glibc && target.os === 'linux' && target.libc?.kind !== 'musl') {
    const libc: Libc = { kind: 'glibc', version: detected.glibc.split('.').slice(0, 2).join('.') };
    return { ...target, libc, name: targetName({ ...target, libc }) };
  }
  return target;
}

const rankCache = new WeakMap<Target, Map<string, number>>();

/** Each supported tag with its index in `target.tags` (its first occurrence). */
export function tagIndex(target: Target): Map<string, number> {
  let index = rankCache.get(target);
  if (!index) {
    index = new Map();
    target.tags.forEach((t, i) => {
      if (!index!.has(t)) index!.set(t, i);
    });
    rankCache.set(target, index);
  }
  return index;
}

/** The rank of a wheel for a target: the index of its best tag in `target.tags` (lower is better), or null. */
export function wheelTagRank(wheel: Pick<WheelFilename, 'tags'>, target: Target): number | null {
  const index = tagIndex(target);
  let best: number | null = null;
  for (const t of wheel.tags) {
    const i = index.get(t);
    if (i !== undefined && (best === null || i < best)) best = i;
  }
  return best;
}

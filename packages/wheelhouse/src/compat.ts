// The one wheel-compatibility function (Decision 18): does a wheel install on a target, how well (its rank),
// and if not, why — naming the wheel's tag and the target's side of it.
import { parseWheelFilename, type WheelFilename } from './filename.js';
import { platformNeeds } from './platforms.js';
import { tagIndex, type Target } from './tags.js';

export type WheelFit =
  /** `rank` is the index of `tag` (the wheel's best tag) in `target.tags`: lower is better. */
  | { ok: true; rank: number; tag: string }
  /** `reason` names both sides, e.g. "manylinux_2_39 needs glibc ≥ 2.39; the base has glibc 2.36". */
  | { ok: false; reason: string };

export interface CompatibilityOptions {
  /** What to call the target in a reason: "the target" (default), "the base". */
  subject?: string;
}

const IMPLEMENTATIONS: Record<string, string> = { cp: 'CPython', pp: 'PyPy', ip: 'IronPython', jy: 'Jython', gp: 'GraalPy' };

/** "CPython 3.11.2 on linux x86_64 with glibc 2.36": a target in words, for messages. */
export function describeTargetText(target: Target): string {
  const impl = IMPLEMENTATIONS[target.implementation] ?? target.implementation;
  const where = [target.os, target.architecture].filter(Boolean).join(' ');
  const libc = target.libc ? ` with ${target.libc.kind} ${target.libc.version}` : '';
  return `${impl} ${target.pythonFullVersion}${where ? ` on ${where}` : ''}${libc}`;
}

/**
 * Whether a wheel installs on a target, as pip decides it (PEP 425 tags against the target's supported tags, best
 * first; manylinux_X_Y against its glibc, legacy aliases, musllinux, abi3 ranges), and if not, why.
 */
export function wheelCompatibility(
  wheel: string | Pick<WheelFilename, 'tags'>,
  target: Target,
  options: CompatibilityOptions = {},
): WheelFit {
  const tags = typeof wheel === 'string' ? parseWheelFilename(wheel).tags : wheel.tags;
  const index = tagIndex(target);
  let best: { rank: number; tag: string } | null = null;
  for (const tag of tags) {
    const rank = index.get(tag);
    if (rank !== undefined && (best === null || rank < best.rank)) best = { rank, tag };
  }
  if (best) return { ok: true, ...best };
  return { ok: false, reason: whyNot(tags, target, options.subject ?? 'the target') };
}

interface Parts {
  py: string;
  abi: string;
  platform: string;
}

function whyNot(tags: string[], target: Target, subject: string): string {
  const parts: Parts[] = tags.map((t) => {
    const [py, abi, platform] = t.split('-') as [string, string, string];
    return { py, abi, platform };
  });
  const platforms = new Set(target.tags.map((t) => t.split('-')[2]!));
  const platformFits = parts.filter((p) => platforms.has(p.platform));
  if (platformFits.length === 0) {
    // Explain the platform closest to the target: its machine first, then any Linux one.
    const closest =
      parts.find((p) => platformNeeds(p.platform)?.machine === target.architecture) ??
      parts.find((p) => platformNeeds(p.platform)) ??
      parts[0];
    return closest ? platformReason(closest.platform, target, subject) : `it has no tags; ${subject} is ${describeTargetText(target)}`;
  }
  const implFits = platformFits.find((p) => p.py.startsWith(target.implementation)) ?? platformFits[0]!;
  return interpreterReason(implFits, target, subject);
}

function libcText(target: Target): string {
  return target.libc ? `${target.libc.kind} ${target.libc.version}` : 'no known C library';
}

function platformReason(platform: string, target: Target, subject: string): string {
  const needs = platformNeeds(platform);
  if (!needs) {
    const where = [target.os, target.architecture].filter(Boolean).join(' ') || 'a platform-independent target';
    return `${platform} is for another platform; ${subject} is ${where}`;
  }
  if (target.os !== 'linux') return `${platform} is for Linux; ${subject} is ${target.os || 'not an OS'}`;
  if (needs.machine !== target.architecture) return `${platform} is for ${needs.machine}; ${subject} is ${target.architecture || 'of unknown architecture'}`;
  if (!needs.libc) return `${platform} is not among the platforms ${subject} supports (${libcText(target)})`;
  const { kind, version } = needs.libc;
  const has = target.libc ? `${subject} has ${libcText(target)}` : `${subject}'s C library is not known`;
  if (target.libc?.kind !== kind) return `${needs.label} needs ${kind}; ${has}`;
  return `${needs.label} needs ${kind} ≥ ${version.join('.')}; ${has}`;
}

function interpreterReason(p: Parts, target: Target, subject: string): string {
  const impl = IMPLEMENTATIONS[target.implementation] ?? target.implementation;
  const has = `${subject} has ${impl} ${target.pythonFullVersion}`;
  const [major, minor] = target.pythonVersion.split('.').map(Number) as [number, number];
  const m = /^([a-z]+)(\d)(\d*)$/.exec(p.py);
  if (!m) return `${p.py}-${p.abi} is not a Python tag ${subject} supports; ${has}`;
  const [, prefix, wantMajor, wantMinor] = m as unknown as [string, string, string, string];
  const version = wantMinor ? `${wantMajor}.${wantMinor}` : wantMajor;
  const tag = `${p.py}-${p.abi}`;
  if (prefix === 'py') return `${tag} is for Python ${version}; ${has}`;
  if (prefix !== target.implementation) return `${tag} is for ${IMPLEMENTATIONS[prefix] ?? prefix}; ${has}`;
  if (p.abi === 'abi3' || p.abi === 'abi3t') {
    if (target.abi && p.abi === 'abi3' && /t$/.test(target.abi)) return `${tag} needs a build with the GIL; ${subject}'s ABI is ${target.abi}`;
    if (p.abi === 'abi3t' && !(target.abi && /t$/.test(target.abi))) return `${tag} needs a free-threaded build; ${subject}'s ABI is ${target.abi ?? 'unknown'}`;
    if (Number(wantMajor) !== major || Number(wantMinor) > minor) return `${tag} needs ${impl} ≥ ${version}; ${has}`;
  }
  if (Number(wantMajor) !== major || (wantMinor && Number(wantMinor) !== minor)) return `${tag} is for ${impl} ${version}; ${has}`;
  if (p.abi !== 'none' && p.abi !== target.abi) return `${tag} needs the ABI ${p.abi}; ${subject}'s is ${target.abi ?? 'unknown'}`;
  return `${tag} is not among the tags ${subject} supports; ${has}`;
}

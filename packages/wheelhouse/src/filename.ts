import { explain, valid } from '@renovatebot/pep440';
import { canonicalizeName, type NormalizedName } from '@dstack/recipe';
import { WheelError } from './errors.js';

/** A parsed PEP 427 wheel file name. */
export interface WheelFilename {
  filename: string;
  /** The distribution name as written in the file name (escaped: `_` for runs of `-_.`). */
  name: string;
  normalizedName: NormalizedName;
  version: string;
  /** The optional build tag (starts with a digit), or null. */
  build: string | null;
  pythonTags: string[];
  abiTags: string[];
  platformTags: string[];
  /** Every tag the compressed tag sets expand to, e.g. `py2.py3-none-any` -> `py2-none-any`, `py3-none-any`. */
  tags: string[];
}

const NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?$/;
const TAG_RE = /^[A-Za-z0-9_]+$/;

function invalid(filename: string, why: string): WheelError {
  return new WheelError('WHEEL_NAME_INVALID', `invalid wheel file name ${JSON.stringify(filename)}: ${why}`, {
    hint: 'a wheel is named {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl (PEP 427)',
  });
}

/** Parses and validates a wheel file name (PEP 427; compressed tag sets of PEP 425). */
export function parseWheelFilename(filename: string): WheelFilename {
  if (filename.includes('/') || filename.includes('\\')) throw invalid(filename, 'a file name has no directory part');
  if (!filename.endsWith('.whl')) throw invalid(filename, 'it does not end in ".whl"');
  const parts = filename.slice(0, -4).split('-');
  if (parts.length !== 5 && parts.length !== 6) {
    throw invalid(filename, `expected 5 or 6 dash-separated parts, found ${parts.length}`);
  }
  const [name, version] = parts as [string, string];
  if (!NAME_RE.test(name) || name.includes('__')) throw invalid(filename, `bad distribution name "${name}"`);
  if (valid(version) === null) throw invalid(filename, `"${version}" is not a PEP 440 version`);
  let build: string | null = null;
  if (parts.length === 6) {
    build = parts[2]!;
    if (!/^\d[A-Za-z0-9_.]*$/.test(build)) throw invalid(filename, `build tag "${build}" must start with a digit`);
  }
  const [py, abi, plat] = parts.slice(-3) as [string, string, string];
  const sets = [py, abi, plat].map((set, i) => {
    const members = set.split('.');
    for (const m of members) {
      if (!TAG_RE.test(m)) {
        throw invalid(filename, `bad ${['python', 'abi', 'platform'][i]} tag "${m}" in "${set}"`);
      }
    }
    return members.map((m) => m.toLowerCase());
  }) as [string[], string[], string[]];
  const tags: string[] = [];
  for (const p of sets[0]) for (const a of sets[1]) for (const t of sets[2]) tags.push(`${p}-${a}-${t}`);
  return {
    filename,
    name,
    normalizedName: canonicalizeName(name),
    version,
    build,
    pythonTags: sets[0],
    abiTags: sets[1],
    platformTags: sets[2],
    tags,
  };
}

/** Whether `filename` looks like a wheel file name (never throws). */
export function isWheelFilename(filename: string): boolean {
  try {
    parseWheelFilename(filename);
    return true;
  } catch {
    return false;
  }
}

/** The build tag as pip sorts it: (number, rest); no build tag sorts first. */
export function buildTagKey(build: string | null): [number, string] {
  if (build === null) return [-1, ''];
  const m = /^(\d+)(.*)$/.exec(build)!;
  return [Number(m[1]), m[2]!];
}

/** PEP 440 equality as a string: `1.0.0.0` and `1.0` give the same key (release zeros, spellings normalised). */
export function versionKey(version: string): string {
  const v = explain(version);
  if (v === null) return version;
  const release = [...v.release];
  while (release.length > 1 && release.at(-1) === 0) release.pop();
  return (
    `${v.epoch}!${release.join('.')}` +
    (v.pre ? `${v.pre[0]}${v.pre[1]}` : '') +
    (v.post !== null ? `.post${v.post}` : '') +
    (v.dev !== null ? `.dev${v.dev}` : '') +
    (v.local ? `+${v.local}` : '')
  );
}

/**
 * What makes two wheel files the same release (Decision 5, issue 12): canonical name (PEP 503), version
 * equality (PEP 440), build tag and the expanded tag set — whatever the spelling of the file name.
 */
export function releaseKey(w: WheelFilename): string {
  return [w.normalizedName, versionKey(w.version), w.build ?? '', [...new Set(w.tags)].sort().join(' ')].join('|');
}

/** The PEP 427 file name a new wheel is stored under: the name escaped (`[-_.]+` -> `_`, lower case), the rest as given. */
export function escapedFilename(w: WheelFilename): string {
  const name = w.name.replace(/[-_.]+/g, '_').toLowerCase();
  const parts = w.filename.slice(0, -4).split('-');
  return [name, ...parts.slice(1)].join('-') + '.whl';
}

// The tag a wheel's manifest is stored under. Tags allow 128 characters of [A-Za-z0-9_.-] (not starting with . or
// -); wheel file names may be longer and hold + (local versions) and ! (epochs). So a tag is
//
//   <file name without .whl, other characters as _, at most 90>--<16 hex: release>-<16 hex: content>
//
// release = sha256 of the wheelhouse's release key (canonical name, PEP 440 version, build tag, tag set: every
// spelling of one release has the same), content = the wheel's sha256. The readable part is for people looking at
// the registry; the store reads the file name from the manifest's annotations. A tag never changes what it points
// at (other bytes give another tag), so a replica's listing is its tag list, and a manifest, once read, is kept.
import { createHash } from 'node:crypto';
import { escapedFilename, parseWheelFilename, releaseKey } from '@dstack/wheelhouse';

const READABLE = 90;
const TAG_RE = /^(.+)--([0-9a-f]{16})-([0-9a-f]{16})$/;

export interface WheelTag {
  tag: string;
  /** The readable part (the escaped file name without `.whl`, maybe cut). */
  stem: string;
  /** 16 hex of sha256(release key). */
  release: string;
  /** The first 16 hex of the wheel's sha256. */
  content: string;
}

const hex16 = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 16);

/** The readable part of the tags of a file name (escaped as stored, `+`/`!` as `_`, at most 90 characters). */
export function tagStem(filename: string): string {
  return escapedFilename(parseWheelFilename(filename))
    .slice(0, -'.whl'.length)
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(0, READABLE);
}

/** The release part of the tags of a wheel file name: the same for every spelling of one release. */
export function releaseHash(filename: string): string {
  return hex16(releaseKey(parseWheelFilename(filename)));
}

/** The tag of a wheel with these bytes (hex sha256). */
export function wheelTag(filename: string, sha256: string): string {
  return `${tagStem(filename)}--${releaseHash(filename)}-${sha256.slice(0, 16)}`;
}

/** A tag of this scheme, parsed; null for any other tag (the repository may hold other things). */
export function parseWheelTag(tag: string): WheelTag | null {
  const m = TAG_RE.exec(tag);
  return m ? { tag, stem: m[1]!, release: m[2]!, content: m[3]! } : null;
}

/**
 * Whether a tag's readable part may belong to the project whose escaped name is `escapedName` (`demo_pkg`):
 * `demo_pkg-…`, or a stem cut before the name ended.
 */
export function stemMayBeProject(stem: string, escapedName: string): boolean {
  const want = `${escapedName}-`;
  return stem.startsWith(want) || (stem.length === READABLE && want.startsWith(stem));
}

// A project's manifest (manifest.ts) is tagged `project.<canonical name>` (e.g. `project.django`,
// `project.zope-interface`). A canonical name is [a-z0-9-] without two dashes in a row, so a project tag never
// holds `--` and never reads as a wheel's tag (parseWheelTag needs `--<16 hex>-<16 hex>` at its end); a wheel's
// tag starts with its escaped name, which holds no dot, so never with `project.`.
// Only projects whose tags name them have one: names shorter than the readable part (90), so at most 97 characters.
const PROJECT_PREFIX = 'project.';

/** The project a wheel tag names (the escaped name before the first `-`, `_` back to `-`); null when the stem was cut inside the name. */
export function tagProject(tag: WheelTag): string | null {
  const dash = tag.stem.indexOf('-');
  return dash > 0 ? tag.stem.slice(0, dash).replace(/_/g, '-') : null;
}

/** The tag of a project's manifest, or null for a name too long for its wheel tags to name it (90 or more characters). */
export function projectTag(name: string): string | null {
  return name.length < READABLE && /^[a-z0-9]+(-[a-z0-9]+)*$/.test(name) ? `${PROJECT_PREFIX}${name}` : null;
}

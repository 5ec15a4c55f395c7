// Link classification, as pip's models/link.py and req/constructors.py see a requirement: URL or path, VCS
// scheme, archive or wheel file, the #egg= fragment, trailing [extras].
import * as path from 'node:path';
import { pyQuote, pyUnquote, pyUrlSplit } from './pyshim.js';

export const VCS_SCHEMES = [
  'bzr+http',
  'bzr+https',
  'bzr+ssh',
  'bzr+sftp',
  'bzr+ftp',
  'bzr+lp',
  'bzr+file',
  'git+http',
  'git+https',
  'git+ssh',
  'git+git',
  'git+file',
  'hg+file',
  'hg+http',
  'hg+https',
  'hg+ssh',
  'hg+static-http',
  'svn+ssh',
  'svn+http',
  'svn+https',
  'svn+svn',
  'svn+file',
];
const URL_SCHEMES = new Set(['http', 'https', 'file', 'ftp', ...VCS_SCHEMES]);
export const VCS_NAMES = ['bzr', 'git', 'hg', 'svn'];
const ARCHIVE_EXTENSIONS = new Set([
  '.zip',
  '.whl',
  '.tar.bz2',
  '.tbz',
  '.tar.gz',
  '.tgz',
  '.tar',
  '.tar.xz',
  '.txz',
  '.tlz',
  '.tar.lz',
  '.tar.lzma',
]);
export const WHEEL_FILE =
  /^(?<namever>(?<name>[^\s-]+?)-(?<ver>[^\s-]*?))((-(?<build>\d[^-]*?))?-(?<pyver>[^\s-]+?)-(?<abi>[^\s-]+?)-(?<plat>[^\s-]+?)\.whl|\.dist-info)$/;
const EGG_FRAGMENT = /[#&]egg=([^&]*)/;

export function urlScheme(text: string): string | null {
  const colon = text.indexOf(':');
  return colon < 0 ? null : text.slice(0, colon).toLowerCase();
}

export function isUrl(text: string): boolean {
  const s = urlScheme(text);
  return s !== null && URL_SCHEMES.has(s);
}

/** pip's splitext: ".tar.gz" and friends count as one extension. */
export function pipSplitExt(p: string): [string, string] {
  const base = path.posix.basename(p);
  const dot = base.lastIndexOf('.');
  let stem = p;
  let ext = '';
  if (dot > 0 && !/^\.+$/.test(base.slice(0, dot))) {
    stem = p.slice(0, p.length - (base.length - dot));
    ext = base.slice(dot);
  }
  if (stem.toLowerCase().endsWith('.tar')) {
    ext = stem.slice(-4) + ext;
    stem = stem.slice(0, -4);
  }
  return [stem, ext];
}

const ARCHIVE_TAIL = /\.(zip|whl|bz2|tbz|gz|tgz|tar|xz|txz|tlz|lz|lzma)$/i;

export function isArchiveFile(p: string): boolean {
  if (!ARCHIVE_TAIL.test(p)) return false;
  return ARCHIVE_EXTENSIONS.has(pipSplitExt(p)[1].toLowerCase());
}

export function looksLikePath(name: string): boolean {
  return name.includes('/') || name.startsWith('.');
}

/** pip's path_to_url */
export function pathToFileUrl(p: string): string {
  return `file://${pyQuote(p)}`;
}

export function linkPath(url: string): string {
  return pyUnquote(pyUrlSplit(url).path);
}

export function linkFilename(url: string): string {
  const p = linkPath(url).replace(/\/+$/, '');
  const name = path.posix.basename(p);
  if (name) return name;
  const netloc = pyUrlSplit(url).netloc;
  const at = netloc.lastIndexOf('@');
  return at >= 0 ? netloc.slice(at + 1) : netloc;
}

export function eggFragment(url: string): string | null {
  const m = EGG_FRAGMENT.exec(url);
  return m ? m[1]! : null;
}

export function stripExtras(p: string): [string, string | null] {
  // re.match(r"^(.+)(\[[^\]]+\])$", p) without the regex's quadratic backtracking
  const n = p.length;
  if (n < 4 || p.charCodeAt(n - 1) !== 93) return [p, null];
  const lastClose = p.lastIndexOf(']', n - 2);
  const open = p.lastIndexOf('[', n - 3);
  if (open < 1 || open <= lastClose) return [p, null];
  return [p.slice(0, open), p.slice(open)];
}

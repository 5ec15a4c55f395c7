// Requirement parsing: one logical line's requirement part (or an -e argument) into name, extras, specifier,
// marker and link, as pip 23.2's req/constructors.py does (PEP 508 through packaging 21.3's grammar).
import * as path from 'node:path';
import { LineError } from './line-error.js';
import {
  VCS_NAMES,
  VCS_SCHEMES,
  WHEEL_FILE,
  eggFragment,
  isArchiveFile,
  isUrl,
  linkFilename,
  linkPath,
  looksLikePath,
  pathToFileUrl,
  pipSplitExt,
  stripExtras,
  urlScheme,
} from './links.js';
import { MarkerSyntaxError, formatMarkerTree, parseMarkerTree } from './marker.js';
import { Pep508SyntaxError, parsePep508Raw, type Pep508Requirement } from './pep508.js';
import { PY_WS, pyStrip, pyUrlSplit } from './pyshim.js';
import type { PathKind } from './recipe-types.js';

const LEADING_WS = new RegExp(`^[${PY_WS}]+`);

export interface RequirementParts {
  req: Pep508Requirement | null;
  url: string | null;
  marker: string | null;
  extras: string[] | null;
}

function parseReqString(text: string, offset: number, what: string): Pep508Requirement {
  let req: Pep508Requirement;
  try {
    req = parsePep508Raw(text);
  } catch (e) {
    if (e instanceof Pep508SyntaxError) {
      let hint: string | undefined;
      if (text.includes('/'))
        hint =
          'It looks like a path; a local project must exist as a directory with setup.py or pyproject.toml.';
      else if (
        text.includes('=') &&
        !['~=', '==', '!=', '<=', '>=', '<', '>', '==='].some((op) => text.includes(op))
      )
        hint = '= is not a valid operator. Did you mean == ?';
      throw new LineError(
        `invalid ${what} ${JSON.stringify(text)}: ${e.reason}`,
        offset + e.pos,
        offset + e.spanStart,
        'RECIPE_SYNTAX',
        hint,
      );
    }
    throw e;
  }
  for (const clause of req.specifier ? req.specifier.split(',') : []) {
    if (clause.endsWith(']'))
      throw new LineError(`extras after version '${clause}'`, offset + text.indexOf(']'));
  }
  return req;
}

const markerCache = new Map<string, string>();

function parseMarkerAt(text: string, offset: number): string {
  const known = markerCache.get(text);
  if (known !== undefined) return known;
  try {
    const normal = formatMarkerTree(parseMarkerTree(text));
    if (markerCache.size >= 4096) markerCache.clear();
    markerCache.set(text, normal);
    return normal;
  } catch (e) {
    if (e instanceof MarkerSyntaxError)
      throw new LineError(
        `invalid marker ${JSON.stringify(text)}: ${e.reason}`,
        offset + e.pos,
        offset + e.spanStart,
      );
    throw e;
  }
}

function convertExtras(extras: string | null, offset: number): string[] | null {
  if (!extras) return null;
  const r = parseReqString(`placeholder${extras.toLowerCase()}`, offset - 'placeholder'.length, 'extras');
  return r.extras.length > 0 ? r.extras : null;
}

/** Answers "what is at this path" synchronously: from the cache, or by asking for it (see NeedPathKind). */
export type KindOf = ((absolutePath: string) => PathKind) | null;

/** Thrown by a line that needs an asynchronous pathKind answer: the caller awaits it and reads the line again. */
export class NeedPathKind {
  constructor(
    readonly path: string,
    readonly answer: Promise<PathKind>,
  ) {}
}

/** constructors.parse_req_from_line: the marker split off first, then a URL, a path or a PEP 508 string. */
export function parseRequirementLine(line: string, cwd: string, pathKind: KindOf): RequirementParts {
  let name = line;
  let marker: string | null = null;
  const sep = isUrl(name) ? '; ' : ';';
  const at = name.indexOf(sep);
  if (at >= 0) {
    const rawMarker = name.slice(at + sep.length);
    const markerText = pyStrip(rawMarker);
    if (markerText) marker = parseMarkerAt(markerText, at + sep.length + rawMarker.indexOf(markerText));
    name = name.slice(0, at);
  }
  const lead = name.length - name.replace(LEADING_WS, '').length;
  name = pyStrip(name);
  let url: string | null = null;
  let extrasText: string | null = null;
  if (isUrl(name)) url = name;
  else if (!looksLikePath(name) && !name.startsWith('[') && !isArchiveFile(stripExtras(name)[0])) {
    // not path-like: pip's absolute path ends with the name itself, so its extras are the name's, and
    // _get_url_from_path only looks for an archive
    extrasText = stripExtras(name)[1];
  } else {
    const [p, extras] = stripExtras(path.resolve(cwd, name));
    extrasText = extras;
    url = urlFromPath(p, name, pathKind);
  }
  let reqText: string | null;
  if (url !== null) {
    if (urlScheme(url) === 'file' && url.includes('../'))
      url = pathToFileUrl(path.resolve(cwd, linkPath(url)));
    const filename = linkFilename(url);
    if (pipSplitExt(path.posix.basename(linkPath(url).replace(/\/+$/, '')))[1] === '.whl') {
      const m = WHEEL_FILE.exec(filename);
      if (!m) throw new LineError(`${filename} is not a valid wheel filename.`, lead);
      reqText = `${m.groups!.name!.replace(/_/g, '-')}==${m.groups!.ver!.replace(/_/g, '-')}`;
    } else reqText = eggFragment(url);
  } else reqText = name;
  const extras = convertExtras(extrasText, lead + name.length - (extrasText?.length ?? 0));
  const req =
    reqText === null
      ? null
      : parseReqString(
          reqText,
          url === null ? lead : lead,
          url === null ? 'requirement' : 'requirement name',
        );
  return { req, url, marker, extras };
}

/** constructors._get_url_from_path */
function urlFromPath(p: string, name: string, pathKind: KindOf): string | null {
  if (looksLikePath(name)) {
    const kind = pathKind ? pathKind(p) : guessKind(name);
    if (kind === 'project') return pathToFileUrl(p);
    if (kind === 'directory') {
      throw new LineError(
        `Directory '${name}' is not installable. Neither 'setup.py' nor 'pyproject.toml' found.`,
        0,
        0,
        'RECIPE_PATH_NOT_INSTALLABLE',
      );
    }
  }
  if (!isArchiveFile(p)) return null;
  if (pathKind && pathKind(p) === 'file') return pathToFileUrl(p);
  const parts = name.split('@');
  if (parts.length >= 2 && !looksLikePath(parts[0]!)) return null;
  return pathToFileUrl(p);
}

/** Without a pathKind: a path-like name is a project directory unless it is a PEP 508 string or an archive. */
function guessKind(name: string): PathKind {
  if (isArchiveFile(stripExtras(name)[0])) return 'missing';
  if (/^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@/.test(name)) return 'missing'; // name @ url
  try {
    parsePep508Raw(name);
    return 'missing';
  } catch {
    return 'project';
  }
}

/** constructors.parse_editable */
export function parseEditable(text: string, cwd: string, pathKind: KindOf): RequirementParts {
  const [stripped, extras] = stripExtras(text);
  let urlNoExtras = stripped;
  const abs = path.resolve(cwd, urlNoExtras);
  const isDir = pathKind
    ? ['directory', 'project'].includes(pathKind(abs))
    : !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(urlNoExtras);
  if (isDir) urlNoExtras = pathToFileUrl(abs);
  if (urlNoExtras.toLowerCase().startsWith('file:')) {
    const egg = eggFragment(urlNoExtras);
    const req = egg ? editableName(egg) : null;
    const ex = extras
      ? parseReqString(
          `placeholder${extras.toLowerCase()}`,
          text.length - extras.length - 'placeholder'.length,
          'extras',
        ).extras
      : [];
    return { req, url: urlNoExtras, marker: null, extras: ex.length > 0 ? ex : null };
  }
  let url = text;
  for (const v of VCS_NAMES) {
    if (url.toLowerCase().startsWith(`${v}:`)) {
      url = `${v}+${url}`;
      break;
    }
  }
  if (!VCS_SCHEMES.includes(pyUrlSplit(url).scheme)) {
    throw new LineError(
      `${text} is not a valid editable requirement. It should either be a path to a local project or a VCS URL (beginning with ${VCS_SCHEMES.join(', ')}).`,
      0,
      0,
      'RECIPE_SYNTAX',
    );
  }
  const egg = eggFragment(url);
  if (!egg)
    throw new LineError(
      `Could not detect requirement name for '${text}', please specify one with #egg=your_package_name`,
      0,
    );
  return { req: editableName(egg), url, marker: null, extras: null };
}

function editableName(egg: string): Pep508Requirement {
  try {
    return parsePep508Raw(egg);
  } catch (e) {
    if (e instanceof Pep508SyntaxError)
      throw new LineError(`invalid requirement ${JSON.stringify(egg)}: ${e.reason}`, 0);
    throw e;
  }
}

// PEP 508 requirement strings exactly as pip 23.2 reads them (its vendored packaging 21.3 `Requirement`):
// the same grammar, legacy specifiers included, the same URL checks, and the same printed forms.
import { RecipeError } from './errors.js';
import { pyUrlSplit } from './pyshim.js';
import { MarkerReader, MarkerSyntaxError, formatMarkerTree } from './marker.js';
import { matchSpecifierClause, normalizeSpecifierSet, pyStringCompare } from './specifier.js';

export interface Pep508Requirement {
  /** The name as written. */
  name: string;
  /** Unique, sorted. */
  extras: string[];
  /** `str(SpecifierSet)`: clauses sorted, joined by ","; "" when none. */
  specifier: string;
  /** `str(Marker)`: packaging's normal form, or null. */
  marker: string | null;
  url: string | null;
}

/** Where a PEP 508 string failed: `pos` (0-based) into the text, and where the offending span starts. */
export class Pep508SyntaxError extends Error {
  constructor(
    readonly reason: string,
    readonly pos: number,
    readonly spanStart: number = pos,
  ) {
    super(reason);
  }
}

const IDENTIFIER = /[A-Za-z0-9]+(?:[-_.]*[A-Za-z0-9]+)*/y;
const isWs = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13;

function skipWs(text: string, pos: number): number {
  while (pos < text.length && isWs(text.charCodeAt(pos))) pos++;
  return pos;
}

function identifier(text: string, pos: number): string | null {
  IDENTIFIER.lastIndex = pos;
  const m = IDENTIFIER.exec(text);
  return m ? m[0] : null;
}

/**
 * packaging 21.3's URL check for `name @ url`: a `file:` URL must survive urllib's parse/unparse round trip,
 * any other needs a scheme and a host. Returns the reason it is refused, or null.
 */
export function requirementUrlProblem(url: string): string | null {
  const { scheme, netloc, path, query, fragment } = pyUrlSplit(url);
  // urlsplit raises on an unbalanced IPv6 bracket in the host part.
  if (netloc.includes('[') !== netloc.includes(']')) return `Invalid URL: ${url}`;
  if (scheme === 'file') {
    // urlunsplit(urlsplit(url)) must give the URL back.
    let out = path;
    if (netloc || !out.startsWith('//')) {
      if (out && !out.startsWith('/')) out = `/${out}`;
      out = `//${netloc}${out}`;
    }
    out = `file:${out}`;
    if (query) out += `?${query}`;
    if (fragment) out += `#${fragment}`;
    return out === url ? null : 'Invalid URL given';
  }
  return scheme && netloc ? null : `Invalid URL: ${url}`;
}

/** Parses with packaging 21.3's grammar; throws Pep508SyntaxError. */
export function parsePep508Raw(text: string): Pep508Requirement {
  let pos = skipWs(text, 0);
  const name = identifier(text, pos);
  if (name === null) throw new Pep508SyntaxError('expected a package name', pos);
  pos += name.length;

  const extras: string[] = [];
  let p = skipWs(text, pos);
  if (text[p] === '[') {
    const open = p;
    p = skipWs(text, p + 1);
    const first = identifier(text, p);
    if (first !== null) {
      extras.push(first);
      p += first.length;
      for (;;) {
        const q = skipWs(text, p);
        if (text[q] !== ',') break;
        const r = skipWs(text, q + 1);
        const extra = identifier(text, r);
        if (extra === null) break;
        extras.push(extra);
        p = r + extra.length;
      }
    }
    p = skipWs(text, p);
    if (text[p] !== ']') throw new Pep508SyntaxError("expected an extra name, ',' or ']'", p, open);
    pos = p + 1;
  }

  let url: string | null = null;
  let specifier = '';
  p = skipWs(text, pos);
  if (text[p] === '@') {
    p = skipWs(text, p + 1);
    let end = p;
    while (end < text.length && text[end] !== ' ') end++;
    if (end === p) throw new Pep508SyntaxError("expected a URL after '@'", p);
    url = text.slice(p, end);
    pos = end;
  } else {
    // VERSION_SPEC: ( VERSION_MANY ) | VERSION_MANY, optional.
    const parsed = versionMany(text, p + (text[p] === '(' ? 1 : 0));
    if (text[p] === '(') {
      if (parsed) {
        const close = skipWs(text, parsed.end);
        if (text[close] === ')') {
          specifier = parsed.raw;
          pos = close + 1;
        } else throw new Pep508SyntaxError("expected ',' or ')' after the version specifier", close, p);
      } else
        throw new Pep508SyntaxError(
          'expected a version specifier (like >=1.0) after (',
          skipWs(text, p + 1),
          p,
        );
    } else if (parsed) {
      specifier = parsed.raw;
      pos = parsed.end;
    }
  }

  let marker: string | null = null;
  p = skipWs(text, pos);
  if (text[p] === ';') {
    const reader = new MarkerReader(text, p + 1);
    try {
      marker = formatMarkerTree(reader.expr());
    } catch (e) {
      if (e instanceof MarkerSyntaxError)
        throw new Pep508SyntaxError(`invalid marker: ${e.reason}`, e.pos, e.spanStart);
      throw e;
    }
    pos = reader.pos;
    p = skipWs(text, pos);
  }
  if (p !== text.length) {
    const reason =
      url !== null
        ? "expected ';' and a marker, or the end, after the URL (a space must precede ';')"
        : marker !== null
          ? "expected 'and', 'or' or the end of the marker"
          : specifier
            ? "expected ',', ';' or the end after the version specifier"
            : "expected a version specifier, '@', ';', '[' or the end after the name";
    throw new Pep508SyntaxError(reason, p);
  }

  if (url !== null) {
    const problem = requirementUrlProblem(url);
    if (problem) throw new Pep508SyntaxError(problem, text.indexOf(url), text.indexOf(url));
  }
  const normalized = normalizeSpecifierSet(specifier);
  if (normalized === null)
    throw new Pep508SyntaxError(`invalid specifier: ${JSON.stringify(specifier)}`, text.indexOf(specifier));
  return { name, extras: [...new Set(extras)].sort(pyStringCompare), specifier: normalized, marker, url };
}

function versionMany(text: string, start: number): { raw: string; end: number } | null {
  let p = skipWs(text, start);
  let n = matchSpecifierClause(text, p);
  if (n === 0) return null;
  const parts = [text.slice(p, p + n)];
  let end = p + n;
  for (;;) {
    const q = skipWs(text, end);
    if (text[q] !== ',') break;
    p = skipWs(text, q + 1);
    n = matchSpecifierClause(text, p);
    if (n === 0) break;
    parts.push(text.slice(p, p + n));
    end = p + n;
  }
  return { raw: parts.join(','), end };
}

/**
 * Parses a PEP 508 requirement (`name[extras] specifier ; marker` or `name[extras] @ url ; marker`) as pip
 * 23.2 does. Throws RecipeError (code RECIPE_SYNTAX) with the column and a caret under the fault.
 */
export function parsePep508(text: string): Pep508Requirement {
  try {
    return parsePep508Raw(text);
  } catch (e) {
    if (e instanceof Pep508SyntaxError) {
      throw new RecipeError('RECIPE_SYNTAX', `invalid requirement: ${e.reason}`, {
        file: '<string>',
        line: 1,
        column: e.pos + 1,
        spanStart: e.spanStart + 1,
        source: text,
      });
    }
    throw e;
  }
}

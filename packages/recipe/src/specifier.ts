// PEP 440 specifiers as pip 23.2 reads them (its vendored packaging 21.3): a clause is a PEP 440 `Specifier`
// or, failing that, a `LegacySpecifier` (any version text after ==, !=, <=, >=, <, >). The set prints its
// clauses sorted and joined by "," (`str(SpecifierSet)`), which is what `specifier` holds everywhere here.
import { explain } from '@renovatebot/pep440';

const PRE = String.raw`(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?`;
const POST = String.raw`(?:(?:-[0-9]+)|(?:[-_.]?(?:post|rev|r)[-_.]?[0-9]*))?`;
const DEV = String.raw`(?:[-_.]?dev[-_.]?[0-9]*)?`;
const RELEASE = String.raw`v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*`;

/** packaging 21.3's `Specifier._regex_str` (without VERBOSE), operator and version. */
export const PEP440_SPECIFIER_SOURCE =
  String.raw`(?:(===)\s*([^\s]*))` +
  String.raw`|(?:(==|!=)(\s*${RELEASE}${PRE}${POST}(?:${DEV}(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?|\.\*)?))` +
  String.raw`|(?:(~=)(\s*v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)+${PRE}${POST}${DEV}))` +
  String.raw`|(?:(<=|>=|<|>)(\s*${RELEASE}${PRE}${POST}${DEV}))`;

/** packaging 21.3's `LegacySpecifier._regex_str`. */
export const LEGACY_SPECIFIER_SOURCE = String.raw`(==|!=|<=|>=|<|>)\s*([^,;\s)]*)`;

/** The first characters of the operators both forms allow (===, ==, !=, ~=, <=, >=, <, >). */
const OPERATOR_START = new Set(['=', '!', '~', '<', '>']);
const PEP440_STICKY = new RegExp(PEP440_SPECIFIER_SOURCE, 'iy');
const LEGACY_STICKY = new RegExp(LEGACY_SPECIFIER_SOURCE, 'iy');
const PEP440_FULL = new RegExp(String.raw`^\s*(?:${PEP440_SPECIFIER_SOURCE})\s*$`, 'i');
const LEGACY_FULL = new RegExp(String.raw`^\s*(?:${LEGACY_SPECIFIER_SOURCE})\s*$`, 'i');

/** Length of the longest specifier clause (PEP 440 or legacy) starting exactly at `pos`, or 0. */
export function matchSpecifierClause(text: string, pos: number): number {
  // Every clause starts with its operator: most requirements have none, and need not run (nor compile) the regexes.
  if (!OPERATOR_START.has(text[pos] ?? '')) return 0;
  PEP440_STICKY.lastIndex = pos;
  const a = PEP440_STICKY.exec(text);
  LEGACY_STICKY.lastIndex = pos;
  const b = LEGACY_STICKY.exec(text);
  return Math.max(a ? a[0].length : 0, b ? b[0].length : 0);
}

export interface SpecifierClause {
  operator: string;
  version: string;
  /** false for a packaging LegacySpecifier (a version that is not PEP 440). */
  pep440: boolean;
}

/** One clause as packaging reads it, or null when it is neither a PEP 440 nor a legacy specifier. */
const SIMPLE_CLAUSE = /^\s*(==|!=|<=|>=|<|>|~=)\s*([0-9]+(?:\.[0-9]+)*)\s*$/;

export function parseSpecifierClause(clause: string): SpecifierClause | null {
  const simple = SIMPLE_CLAUSE.exec(clause);
  if (simple && (simple[1] !== '~=' || simple[2]!.includes('.')))
    return { operator: simple[1]!, version: simple[2]!, pep440: true };
  let m = PEP440_FULL.exec(clause);
  if (m) {
    for (let i = 1; i < m.length; i += 2) {
      if (m[i] !== undefined) return { operator: m[i]!, version: m[i + 1]!.trim(), pep440: true };
    }
  }
  m = LEGACY_FULL.exec(clause);
  if (m) return { operator: m[1]!, version: m[2]!.trim(), pep440: false };
  return null;
}

function canonicalVersion(version: string): string {
  const e = explain(version);
  if (!e) return version;
  let release = [...e.release];
  while (release.length > 1 && release[release.length - 1] === 0) release = release.slice(0, -1);
  return [
    e.epoch ? `${e.epoch}!` : '',
    release.join('.'),
    e.pre ? e.pre.join('') : '',
    e.post != null ? `.post${e.post}` : '',
    e.dev != null ? `.dev${e.dev}` : '',
    e.local ? `+${e.local}` : '',
  ].join('');
}

/**
 * packaging 21.3's SpecifierSet: split on ",", each clause PEP 440 or legacy, duplicates (same operator and
 * canonical version) dropped, printed sorted. Returns null when a clause is invalid.
 */
export function normalizeSpecifierSet(text: string): string | null {
  if (text === '') return '';
  if (!text.includes(',')) {
    const only = parseSpecifierClause(text);
    return only ? only.operator + only.version : null;
  }
  const clauses: SpecifierClause[] = [];
  for (const raw of text.split(',')) {
    if (raw.trim() === '') continue;
    const clause = parseSpecifierClause(raw);
    if (!clause) return null;
    clauses.push(clause);
  }
  if (clauses.length === 1) return clauses[0]!.operator + clauses[0]!.version;
  const seen = new Map<string, string>();
  const operators = new Set(clauses.map((c) => c.operator));
  for (const c of clauses) {
    // canonical versions (1.0 == 1.0.0) only matter between clauses of the same operator
    const version = c.pep440 && operators.size < clauses.length ? canonicalVersion(c.version) : c.version;
    const key = `${c.pep440 ? 'p' : 'l'}${c.operator}${version}`;
    if (!seen.has(key)) seen.set(key, c.operator + c.version);
  }
  return [...seen.values()].sort(pyStringCompare).join(',');
}

/** Python's str ordering (by code point). */
export function pyStringCompare(a: string, b: string): number {
  if (a === b) return 0;
  const ai = a[Symbol.iterator]();
  const bi = b[Symbol.iterator]();
  for (;;) {
    const x = ai.next();
    const y = bi.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

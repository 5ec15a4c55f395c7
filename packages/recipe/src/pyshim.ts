// Small reimplementations of the Python standard library pieces pip's requirements-file reader relies on
// (str.splitlines, str.strip, shlex.split, urllib.parse.urlsplit/quote/unquote), with Python's exact rules.

/** Characters for which Python's str.isspace() is true (what `\s`, strip() and split() use). */
export const PY_WS =
  '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/** str.splitlines(): every Unicode line boundary Python knows, no trailing empty line. */
const RARE_BREAK = /[\v\f\x1c\x1d\x1e\x85\u2028\u2029]|\r(?!\n)/;

export function pySplitLines(text: string): string[] {
  if (text === '') return [];
  let lines: string[];
  if (RARE_BREAK.test(text)) lines = text.split(LINE_BREAK);
  else {
    lines = text.split('\n');
    if (text.includes('\r'))
      for (let i = 0; i < lines.length; i++) if (lines[i]!.endsWith('\r')) lines[i] = lines[i]!.slice(0, -1);
  }
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** str.strip() */
export function pyStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isPyWs(text.charCodeAt(start))) start++;
  while (end > start && isPyWs(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/** str.isspace() for one UTF-16 unit. */
export function isPyWs(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f);
  if (c < 0x85) return false;
  return (
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** Why shlex could not split. */
export class ShlexError extends Error {}

/** shlex.split(text) in POSIX mode without comments: quotes, backslash escapes, ' \t\r\n' as separators. */
export function shlexSplit(text: string): string[] {
  const tokens: string[] = [];
  let token = '';
  let inToken = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') {
      if (inToken) {
        tokens.push(token);
        token = '';
        inToken = false;
      }
      i++;
    } else if (ch === '\\') {
      if (i + 1 >= n) throw new ShlexError('No escaped character');
      token += text[i + 1];
      inToken = true;
      i += 2;
    } else if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ShlexError('No closing quotation');
      token += text.slice(i + 1, end);
      inToken = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      for (;;) {
        if (i >= n) throw new ShlexError('No closing quotation');
        const c = text[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          if (i + 1 >= n) throw new ShlexError('No closing quotation');
          const next = text[i + 1]!;
          token += next === '"' || next === '\\' ? next : `\\${next}`;
          i += 2;
          continue;
        }
        token += c;
        i++;
      }
      inToken = true;
    } else {
      token += ch;
      inToken = true;
      i++;
    }
  }
  if (inToken) tokens.push(token);
  return tokens;
}

export interface SplitUrl {
  scheme: string;
  netloc: string;
  path: string;
  query: string;
  fragment: string;
}

const SCHEME_CHARS = /^[A-Za-z][A-Za-z0-9+.-]*$/;

/** urllib.parse.urlsplit (Python 3.11). */
export function pyUrlSplit(url: string): SplitUrl {
  let rest = url.replace(/^[\x00-\x20]+/, '').replace(/[\t\r\n]/g, '');
  let scheme = '';
  const colon = rest.indexOf(':');
  if (colon > 0 && SCHEME_CHARS.test(rest.slice(0, colon))) {
    scheme = rest.slice(0, colon).toLowerCase();
    rest = rest.slice(colon + 1);
  }
  let netloc = '';
  if (rest.startsWith('//')) {
    let end = rest.length;
    for (const d of ['/', '?', '#']) {
      const i = rest.indexOf(d, 2);
      if (i >= 0 && i < end) end = i;
    }
    netloc = rest.slice(2, end);
    rest = rest.slice(end);
  }
  let fragment = '';
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  return { scheme, netloc, path: rest, query, fragment };
}

/** urllib.parse.unquote: %XX runs decoded as UTF-8 (invalid sequences left as they are). */
export function pyUnquote(text: string): string {
  if (!text.includes('%')) return text;
  return text.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8');
    }
  });
}

const UNRESERVED = /[A-Za-z0-9_.~\-/]/;

/** urllib.parse.quote(text, safe="/") */
export function pyQuote(text: string): string {
  let out = '';
  for (const ch of text) {
    if (UNRESERVED.test(ch)) out += ch;
    else
      for (const byte of Buffer.from(ch, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

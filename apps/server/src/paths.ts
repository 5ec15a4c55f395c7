/**
 * Path safety: every name taken from a URL goes through here before it reaches the store, so no request
 * can name a file outside the wheelhouse.
 */
import { ServerError } from './errors.js';

/** True when a raw request URL holds traversal or NUL, plain or percent-encoded (once or twice). */
export function isSuspiciousUrl(rawUrl: string): boolean {
  const path = rawUrl.split('?')[0] ?? '';
  let decoded = path;
  for (let i = 0; i < 3; i++) {
    if (/\0/.test(decoded) || /(^|[/\\])\.\.([/\\]|$)/.test(decoded) || /\\/.test(decoded)) return true;
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return true; // malformed percent-encoding
    }
    if (next === decoded) break;
    decoded = next;
  }
  return false;
}

/** A wheel (or its `.metadata`) file name from a URL: one plain path segment, or BAD_PATH. */
export function checkFileName(name: string): string {
  if (
    name === '' ||
    name.length > 255 ||
    name.includes('/') ||
    name.includes('\\') ||
    name.includes('\0') ||
    name === '.' ||
    name === '..' ||
    name.startsWith('.')
  ) {
    throw new ServerError('BAD_PATH', `not a file name: ${JSON.stringify(name)}`);
  }
  return name;
}

/** A project name from a URL: PEP 508 name characters only, or BAD_PATH. */
export function checkProjectName(name: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(name)) {
    throw new ServerError('BAD_PATH', `not a project name: ${JSON.stringify(name)}`);
  }
  return name;
}

/** PEP 503 normalisation (the recipe package owns canonicalizeName; this is the same rule for URLs). */
export function normalizeProjectName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

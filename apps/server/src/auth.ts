/**
 * Token auth. A token arrives as HTTP Basic (twine and pip: `__token__:<token>`, or any user name with
 * the token as password) or as `Authorization: Bearer <token>`. Tokens are compared in constant time
 * (sha256 of both sides, then timingSafeEqual, against every configured token without stopping early).
 * Every valid token may read; `upload` and `build` must be granted.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Scope, TokenConfig } from './config.js';
import { ServerError } from './errors.js';

export const REALM = 'dstack-factory';

export interface Principal {
  /** The token's name from the config (never the token itself). */
  name: string;
  scopes: ReadonlySet<Scope>;
}

/** The token carried by an Authorization header, or null when there is none or it is malformed. */
export function tokenFromHeader(header: string | undefined): string | null {
  if (header === undefined) return null;
  const space = header.indexOf(' ');
  if (space < 0) return null;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer') return value === '' ? null : value;
  if (scheme === 'basic') {
    let decoded: string;
    try {
      decoded = Buffer.from(value, 'base64').toString('utf8');
    } catch {
      return null;
    }
    const colon = decoded.indexOf(':');
    if (colon < 0) return null;
    const password = decoded.slice(colon + 1);
    return password === '' ? null : password;
  }
  return null;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class TokenAuthenticator {
  readonly #tokens: { name: string; digest: Buffer; scopes: ReadonlySet<Scope> }[];

  constructor(tokens: TokenConfig[]) {
    this.#tokens = tokens.map((t) => {
      const scopes = new Set<Scope>(t.scopes);
      scopes.add('read');
      return { name: t.name, digest: t.sha256 ? Buffer.from(t.sha256, 'hex') : digest(t.token), scopes };
    });
  }

  get hasTokens(): boolean {
    return this.#tokens.length > 0;
  }

  /** The principal for a token, or null when no configured token matches. */
  identify(token: string): Principal | null {
    const d = digest(token);
    let found: Principal | null = null;
    for (const t of this.#tokens) {
      // No early exit: the time taken does not depend on which token (if any) matched.
      if (timingSafeEqual(d, t.digest) && found === null) found = { name: t.name, scopes: t.scopes };
    }
    return found;
  }

  /**
   * Checks that a request may do `scope`: returns its principal (null for a public read), or throws
   * AUTH_REQUIRED (no token: 401), AUTH_INVALID (unknown token: 401) or AUTH_FORBIDDEN (403).
   */
  authorize(header: string | undefined, scope: Scope, options: { publicRead: boolean }): Principal | null {
    const token = tokenFromHeader(header);
    if (token === null) {
      if (scope === 'read' && options.publicRead) return null;
      throw new ServerError('AUTH_REQUIRED', `a token with the "${scope}" scope is required`, {
        hint: 'send it as HTTP Basic (user __token__, the token as password) or as Authorization: Bearer',
      });
    }
    const principal = this.identify(token);
    if (principal === null) {
      throw new ServerError('AUTH_INVALID', 'the token is not valid for this server');
    }
    if (!principal.scopes.has(scope)) {
      throw new ServerError(
        'AUTH_FORBIDDEN',
        `the token "${principal.name}" does not have the "${scope}" scope`,
      );
    }
    return principal;
  }
}

// The OCI distribution API client both the registry source and the registry sink use: auth, retries, errors.
import type { Logger } from 'pino';
import { MEDIA_TYPES } from '../core/layer.js';
import { RegistryError } from '../errors.js';
import type { RegistryErrorCode } from '@dstack/errors';
import { registryScheme, type ImageReference } from './reference.js';

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** Registries reached over plain HTTP besides loopback ones ("host:port"). */
  insecure?: string[];
  /** Credentials per registry host (basic auth, or exchanged for a bearer token). */
  credentials?: Record<string, RegistryCredentials>;
  /** Attempts for a temporary failure (default 5) and the first backoff delay in ms (default 200, doubling). */
  attempts?: number;
  backoffMs?: number;
  /** Uploads larger than this go in PATCH chunks of this size (default 64 MiB). */
  chunkSize?: number;
  /** Retries are logged at warn; silent without one. */
  logger?: Logger;
}

export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList].join(', ');

const DIGEST_CODES = new Set(['DIGEST_INVALID', 'BLOB_UPLOAD_INVALID', 'SIZE_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID']);

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string): Challenge {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!))) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

/** A client for the OCI distribution API: auth (anonymous, basic, bearer token), retries, errors with codes. */
export class RegistryClient {
  private readonly tokens = new Map<string, string>();
  constructor(readonly options: RegistryClientOptions = {}) {}

  baseUrl(ref: ImageReference): string {
    return `${registryScheme(ref.registry, this.options.insecure)}://${ref.registry}`;
  }

  private authKey(ref: ImageReference, push: boolean): string {
    return `${ref.registry}|${ref.repository}|${push ? 'push' : 'pull'}`;
  }

  /**
   * One HTTP request with auth: on 401 it answers the challenge (basic credentials, or a bearer token from the
   * realm, anonymous or with credentials) and tries once more. Network failures become temporary errors.
   */
  async request(
    ref: ImageReference,
    method: string,
    url: string,
    init: { headers?: Record<string, string>; body?: () => RequestInit['body']; push?: boolean; redirect?: RequestInit['redirect'] } = {},
  ): Promise<Response> {
    const full = url.startsWith('http') ? url : `${this.baseUrl(ref)}${url}`;
    const send = async (): Promise<Response> => {
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      const token = this.tokens.get(this.authKey(ref, Boolean(init.push)));
      if (token) headers.authorization = token;
      const body = init.body ? init.body() : null;
      try {
        return await fetch(full, {
          method,
          headers,
          body,
          redirect: init.redirect ?? 'follow',
          ...(body && typeof body === 'object' && !(body instanceof Uint8Array) ? { duplex: 'half' } : {}),
        } as RequestInit);
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new RegistryError('REGISTRY_UNREACHABLE', `${method} ${full}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, {
          temporary: true,
          cause: err,
        });
      }
    };
    let res = await send();
    if (res.status === 401) {
      const header = res.headers.get('www-authenticate') ?? '';
      await res.arrayBuffer().catch(() => undefined);
      await this.authenticate(ref, header, Boolean(init.push));
      res = await send();
    }
    return res;
  }

  private async authenticate(ref: ImageReference, header: string, push: boolean): Promise<void> {
    const ch = parseChallenge(header);
    const creds = this.options.credentials?.[ref.registry];
    const key = this.authKey(ref, push);
    if (ch.scheme === 'basic') {
      if (!creds) throw new RegistryError('REGISTRY_UNAUTHORIZED', `${ref.registry} wants credentials (basic auth)`, { status: 401, hint: 'give credentials for this registry' });
      this.tokens.set(key, 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64'));
      return;
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm) {
      throw new RegistryError('REGISTRY_UNAUTHORIZED', `${ref.registry} refused the request and offers no usable challenge: ${header || '(none)'}`, { status: 401 });
    }
    const realm = new URL(ch.params.realm);
    if (ch.params.service) realm.searchParams.set('service', ch.params.service);
    realm.searchParams.set('scope', `repository:${ref.repository}:${push ? 'pull,push' : 'pull'}`);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    let res: Response;
    try {
      res = await fetch(realm, { headers });
    } catch (err) {
      throw new RegistryError('REGISTRY_UNREACHABLE', `token service ${realm.origin}${realm.pathname}: ${(err as Error).message}`, { temporary: true, cause: err });
    }
    if (!res.ok) {
      throw new RegistryError('REGISTRY_UNAUTHORIZED', `token service ${realm.origin}${realm.pathname} answered ${res.status} for ${ref.repository}`, {
        status: res.status,
        temporary: res.status >= 500,
      });
    }
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError('REGISTRY_UNAUTHORIZED', `token service ${realm.origin}${realm.pathname} returned no token`);
    this.tokens.set(key, `Bearer ${token}`);
  }

  /** Turns a non-2xx answer into a RegistryError with the registry's own code and a temporary flag. */
  async fail(res: Response, what: string): Promise<never> {
    const text = await res.text().catch(() => '');
    let code: string | null = null;
    let message = text.slice(0, 300);
    try {
      const e = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
      if (e?.code) {
        code = e.code;
        message = `${e.code}: ${e.message ?? ''}`;
      }
    } catch {
      // not JSON
    }
    const temporary = res.status >= 500 || res.status === 429 || res.status === 408;
    const ourCode = code && DIGEST_CODES.has(code) ? (`REGISTRY_${code}` as RegistryErrorCode) : res.status === 401 || res.status === 403 ? 'REGISTRY_UNAUTHORIZED' : res.status === 404 ? 'REGISTRY_NOT_FOUND' : 'REGISTRY_ERROR';
    throw new RegistryError(ourCode, `${what}: HTTP ${res.status}${message ? ` (${message})` : ''}`, { status: res.status, temporary, registryCode: code });
  }

  /** Runs `fn` again on temporary failures, with exponential backoff; never retries anything else. */
  async retry<T>(what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    const attempts = this.options.attempts ?? 5;
    let delay = this.options.backoffMs ?? 200;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (err) {
        if (!(err instanceof RegistryError) || !err.temporary || attempt >= attempts) throw err;
        this.options.logger?.warn({ err: err.message, attempt, delay }, `${what}: temporary failure, retrying`);
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }
}


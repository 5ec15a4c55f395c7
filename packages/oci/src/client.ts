// The OCI distribution API client: auth, retries, errors; blobs (HEAD, GET, upload, mount), manifests, tags.
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Logger } from 'pino';
import type { RegistryErrorCode } from '@dstack/errors';
import { RegistryError } from './errors.js';
import { MEDIA_TYPES } from './media-types.js';
import { formatReference, registryScheme, type ImageReference } from './reference.js';

/** An OCI digest: "sha256:<64 hex>". */
export type Digest = `sha256:${string}`;

/** Passes on bytes [start, end) of what flows through. */
function sliceStream(start: number, end: number): Transform {
  let at = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const from = Math.max(0, start - at);
      const to = Math.min(chunk.length, end - at);
      at += chunk.length;
      done(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
}

const sha256 = (data: Buffer): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A manifest as the registry holds it: its bytes, media type (the Content-Type answered) and digest. */
export interface ManifestBytes {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

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

export interface Challenge {
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

  /** Whether the repository holds a blob (HEAD; `push` asks for a push token, as a push does before uploading). */
  async blobExists(ref: ImageReference, digest: Digest, options: { push?: boolean } = {}): Promise<boolean> {
    return this.retry(`HEAD ${digest}`, async () => {
      const res = await this.request(ref, 'HEAD', `/v2/${ref.repository}/blobs/${digest}`, { push: Boolean(options.push) });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      return this.fail(res, `HEAD ${formatReference(ref)} blob ${digest}`);
    });
  }

  /**
   * A blob's bytes as a stream (GET; the request is retried, the stream is not). The caller checks the digest
   * while reading (the registry is not trusted to have sent what was asked for). With `range` (`end` inclusive,
   * as in HTTP), only those bytes: a registry that ignores Range (200) is cut to them here.
   */
  async openBlob(ref: ImageReference, digest: Digest, what = 'blob', range?: { start: number; end?: number }): Promise<Readable> {
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end ?? ''}` } : {};
    const res = await this.retry(`GET ${what} ${digest}`, async () => {
      const r = await this.request(ref, 'GET', `/v2/${ref.repository}/blobs/${digest}`, { headers });
      if (!r.ok) await this.fail(r, `GET ${formatReference(ref)} ${what} ${digest}`);
      return r;
    });
    const stream = Readable.fromWeb(res.body as WebReadableStream);
    if (!range || res.status === 206) return stream;
    return stream.pipe(sliceStream(range.start, range.end === undefined ? Infinity : range.end + 1));
  }

  /** A small blob (a config) read whole and checked against its digest (`REGISTRY_DIGEST_INVALID`). */
  async readBlob(ref: ImageReference, digest: Digest, what = 'blob'): Promise<Buffer> {
    const bytes = await this.retry(`GET ${what}`, async () => {
      const res = await this.request(ref, 'GET', `/v2/${ref.repository}/blobs/${digest}`);
      if (!res.ok) await this.fail(res, `GET ${formatReference(ref)} ${what} ${digest}`);
      return Buffer.from(await res.arrayBuffer());
    });
    if (sha256(bytes) !== digest) throw new RegistryError('REGISTRY_DIGEST_INVALID', `${formatReference(ref)}: ${what} blob does not match ${digest}`);
    return bytes;
  }

  private absolute(ref: ImageReference, location: string | null, what: string): URL {
    if (!location) throw new RegistryError('REGISTRY_ERROR', `${what}: the registry sent no Location`);
    return new URL(location, this.baseUrl(ref));
  }

  /**
   * Uploads one blob: POST for a session (with `mountFrom`, a cross-repository mount from that repository of the
   * same registry, answered 201 when the registry has it), then one PUT (monolithic) or PATCH chunks of
   * `chunkSize` (one in memory at a time) and a closing PUT. `open` is called again on each retry.
   */
  async uploadBlob(
    ref: ImageReference,
    digest: Digest,
    size: number,
    open: () => Promise<Readable>,
    options: { mountFrom?: string | null } = {},
  ): Promise<'mounted' | 'uploaded'> {
    const what = `upload ${digest} to ${formatReference(ref)}`;
    const mountFrom = options.mountFrom ?? null;
    return this.retry(what, async () => {
      const q = mountFrom ? `?mount=${digest}&from=${encodeURIComponent(mountFrom)}` : '';
      const start = await this.request(ref, 'POST', `/v2/${ref.repository}/blobs/uploads/${q}`, { push: true, body: () => null, headers: { 'content-length': '0' } });
      await start.arrayBuffer().catch(() => undefined);
      if (start.status === 201) return 'mounted';
      if (start.status !== 202) await this.fail(start, what);
      let location = this.absolute(ref, start.headers.get('location'), what);
      const chunk = this.options.chunkSize ?? 64 * 1024 * 1024;
      if (size <= chunk) {
        location.searchParams.set('digest', digest);
        const stream = await open();
        const res = await this.request(ref, 'PUT', location.toString(), {
          push: true,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
          body: () => Readable.toWeb(stream) as unknown as RequestInit['body'],
        });
        if (res.status !== 201) await this.fail(res, what);
        await res.arrayBuffer().catch(() => undefined);
        return 'uploaded';
      }
      // Chunked: one chunk in memory at a time.
      const stream = await open();
      let offset = 0;
      let pending: Buffer[] = [];
      let pendingLen = 0;
      const flush = async (): Promise<void> => {
        if (pendingLen === 0) return;
        const body = Buffer.concat(pending, pendingLen);
        pending = [];
        pendingLen = 0;
        const res = await this.request(ref, 'PATCH', location.toString(), {
          push: true,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${offset + body.length - 1}`,
            'content-length': String(body.length),
          },
          body: () => body,
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status !== 202) await this.fail(res, `${what} (chunk at ${offset})`);
        offset += body.length;
        location = this.absolute(ref, res.headers.get('location'), what);
      };
      for await (const c of stream as AsyncIterable<Buffer>) {
        pending.push(c);
        pendingLen += c.length;
        if (pendingLen >= chunk) await flush();
      }
      await flush();
      location.searchParams.set('digest', digest);
      const res = await this.request(ref, 'PUT', location.toString(), { push: true, headers: { 'content-length': '0' }, body: () => null });
      if (res.status !== 201) await this.fail(res, what);
      await res.arrayBuffer().catch(() => undefined);
      return 'uploaded';
    });
  }

  /**
   * A manifest by tag or digest (GET with `accept`, by default every manifest and index type); one fetched by
   * digest is checked against it (`REGISTRY_DIGEST_INVALID`).
   */
  async getManifest(ref: ImageReference, reference: string, accept: string = MANIFEST_ACCEPT): Promise<ManifestBytes> {
    return this.retry(`GET manifest ${reference}`, async () => {
      const res = await this.request(ref, 'GET', `/v2/${ref.repository}/manifests/${reference}`, { headers: { accept } });
      if (!res.ok) await this.fail(res, `GET ${formatReference(ref)} manifest ${reference}`);
      const bytes = Buffer.from(await res.arrayBuffer());
      const digest = sha256(bytes);
      if (reference.startsWith('sha256:') && digest !== reference) {
        throw new RegistryError('REGISTRY_DIGEST_INVALID', `${formatReference(ref)}: manifest ${reference} has digest ${digest}`);
      }
      const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim() || ((JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? '');
      return { bytes, mediaType, digest };
    });
  }

  /** The digest a tag points at (HEAD), or null when the repository has no such tag. */
  async resolveManifest(ref: ImageReference, reference: string, accept: string = MANIFEST_ACCEPT): Promise<Digest | null> {
    return this.retry(`HEAD manifest ${reference}`, async () => {
      const res = await this.request(ref, 'HEAD', `/v2/${ref.repository}/manifests/${reference}`, { headers: { accept } });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status === 404) return null;
      if (!res.ok) return this.fail(res, `HEAD ${formatReference(ref)} manifest ${reference}`);
      const digest = res.headers.get('docker-content-digest');
      if (!digest || !/^sha256:[0-9a-f]{64}$/.test(digest)) {
        throw new RegistryError('REGISTRY_ERROR', `HEAD ${formatReference(ref)} manifest ${reference}: no Docker-Content-Digest in the answer`);
      }
      return digest as Digest;
    });
  }

  /**
   * PUTs a manifest under a tag or its digest (the blobs it names go first); the digest the registry says it
   * stored must be the one sent (`REGISTRY_DIGEST_INVALID`). Returns the digest. A DIGEST_INVALID answer to
   * bytes whose digest is the one sent is retried like a temporary failure: distribution gives it when another
   * writer links one of the manifest's blobs at that moment.
   */
  async putManifest(ref: ImageReference, reference: string, manifest: { mediaType: string; bytes: Buffer; digest?: Digest }): Promise<Digest> {
    const hashed = sha256(manifest.bytes);
    const digest = manifest.digest ?? hashed;
    await this.retry('PUT manifest', async () => {
      const res = await this.request(ref, 'PUT', `/v2/${ref.repository}/manifests/${reference}`, {
        push: true,
        headers: { 'content-type': manifest.mediaType },
        body: () => manifest.bytes,
      });
      if (res.status !== 201) {
        await this.fail(res, `PUT ${formatReference(ref)} manifest`).catch((err: RegistryError) => {
          // distribution links a blob into a repository by truncating and rewriting a small file: a manifest
          // checked while another writer links one of its blobs reads an empty link and is refused with
          // DIGEST_INVALID. The digest sent is the bytes' own, so that answer can only be the race: try again.
          const byOtherDigest = digest !== hashed || (reference.includes(':') && reference !== hashed);
          if (err.registryCode !== 'DIGEST_INVALID' || byOtherDigest) throw err;
          throw new RegistryError(err.code, err.message, { status: err.status, temporary: true, registryCode: err.registryCode });
        });
      }
      await res.arrayBuffer().catch(() => undefined);
      const got = res.headers.get('docker-content-digest');
      if (got && got !== digest) throw new RegistryError('REGISTRY_DIGEST_INVALID', `the registry stored manifest ${got}, we sent ${digest}`);
    });
    return digest;
  }

  /**
   * Deletes a manifest by digest (and with it every tag pointing at it); false when it was gone already. A
   * registry that does not allow deletes answers 405 UNSUPPORTED (distribution: `storage.delete.enabled`).
   */
  async deleteManifest(ref: ImageReference, digest: Digest): Promise<boolean> {
    return this.retry(`DELETE manifest ${digest}`, async () => {
      const res = await this.request(ref, 'DELETE', `/v2/${ref.repository}/manifests/${digest}`, { push: true });
      if (res.status === 404) {
        await res.arrayBuffer().catch(() => undefined);
        return false;
      }
      if (res.status !== 202 && res.status !== 200) await this.fail(res, `DELETE ${formatReference(ref)} manifest ${digest}`);
      await res.arrayBuffer().catch(() => undefined);
      return true;
    });
  }

  /**
   * Every tag of a repository, sorted, following the `Link` pages (`pageSize` per request, default 1000; distribution
   * 2.8 ignores it and sends all in one, unsorted); an empty list for a repository the registry does not know yet
   * (404 NAME_UNKNOWN).
   */
  async listTags(ref: ImageReference, options: { pageSize?: number } = {}): Promise<string[]> {
    const tags: string[] = [];
    let next: string | null = `/v2/${ref.repository}/tags/list?n=${options.pageSize ?? 1000}`;
    while (next) {
      const url: string = next;
      const page = await this.retry(`GET tags ${ref.repository}`, async () => {
        const res = await this.request(ref, 'GET', url);
        if (res.status === 404) {
          const text = await res.text().catch(() => '');
          if (text.includes('NAME_UNKNOWN')) return { tags: [] as string[], link: null };
          return this.fail(new Response(text, { status: 404, headers: res.headers }), `GET ${formatReference(ref)} tags`);
        }
        if (!res.ok) return this.fail(res, `GET ${formatReference(ref)} tags`);
        const body = (await res.json()) as { tags?: string[] | null };
        return { tags: body.tags ?? [], link: res.headers.get('link') };
      });
      tags.push(...page.tags);
      const m = page.link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(page.link) : null;
      next = m ? new URL(m[1]!, this.baseUrl(ref)).toString() : null;
    }
    return [...new Set(tags)].sort();
  }
}


import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { HashingStream, sha256Digest, type Digest } from '../core/digest.js';
import { RegistryError } from '../errors.js';
import { Image, type Descriptor, type ImageConfigFile, type Manifest, type ManifestFormat } from '../core/image.js';
import { isGzipMediaType, MEDIA_TYPES, ociLayerMediaType, type Layer } from '../layers/write-layer.js';
import { choosePlatform } from '../sources/oci-layout.js';
import { formatReference, parseReference, registryScheme, type ImageReference } from './reference.js';

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
  logger?: { debug(obj: object, msg?: string): void; warn?(obj: object, msg?: string): void };
}

const MANIFEST_ACCEPT = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList].join(', ');

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
    const ourCode = code && DIGEST_CODES.has(code) ? `REGISTRY_${code}` : res.status === 401 || res.status === 403 ? 'REGISTRY_UNAUTHORIZED' : res.status === 404 ? 'REGISTRY_NOT_FOUND' : 'REGISTRY_ERROR';
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
        this.options.logger?.warn?.({ err: err.message, attempt, delay }, `${what}: temporary failure, retrying`);
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }
}

/** A layer in a registry: its blob is fetched when opened. */
export class RegistryLayer implements Layer {
  constructor(
    readonly client: RegistryClient,
    readonly ref: ImageReference,
    readonly digest: Digest,
    readonly diffId: Digest,
    readonly size: number,
    readonly mediaType: string,
  ) {}
  async compressed(): Promise<Readable> {
    const res = await this.client.retry(`GET blob ${this.digest}`, async () => {
      const r = await this.client.request(this.ref, 'GET', `/v2/${this.ref.repository}/blobs/${this.digest}`);
      if (!r.ok) await this.client.fail(r, `GET ${formatReference(this.ref)} blob ${this.digest}`);
      return r;
    });
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  }
  async uncompressed(): Promise<Readable> {
    const src = await this.compressed();
    if (!isGzipMediaType(this.mediaType)) return src;
    const g = createGunzip();
    src.on('error', (e) => g.destroy(e));
    return src.pipe(g);
  }
}

async function getManifest(client: RegistryClient, ref: ImageReference, reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: Digest }> {
  return client.retry(`GET manifest ${reference}`, async () => {
    const res = await client.request(ref, 'GET', `/v2/${ref.repository}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } });
    if (!res.ok) await client.fail(res, `GET ${formatReference(ref)} manifest ${reference}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256Digest(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryError('REGISTRY_DIGEST_INVALID', `${formatReference(ref)}: manifest ${reference} has digest ${digest}`);
    }
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim() || ((JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? '');
    return { bytes, mediaType, digest };
  });
}

/** Reads an image from a registry; manifest lists and OCI indexes resolve to linux/amd64. */
export async function readRegistryImage(reference: string, client: RegistryClient = new RegistryClient()): Promise<Image> {
  const ref = parseReference(reference);
  let m = await getManifest(client, ref, ref.digest ?? ref.tag!);
  if (m.mediaType === MEDIA_TYPES.ociIndex || m.mediaType === MEDIA_TYPES.dockerManifestList) {
    const index = JSON.parse(m.bytes.toString('utf8')) as { manifests: Descriptor[] };
    const chosen = choosePlatform(index.manifests, formatReference(ref));
    m = await getManifest(client, ref, chosen.digest);
  }
  const manifest = JSON.parse(m.bytes.toString('utf8')) as Manifest;
  const configBytes = await client.retry('GET config', async () => {
    const res = await client.request(ref, 'GET', `/v2/${ref.repository}/blobs/${manifest.config.digest}`);
    if (!res.ok) await client.fail(res, `GET ${formatReference(ref)} config ${manifest.config.digest}`);
    return Buffer.from(await res.arrayBuffer());
  });
  if (sha256Digest(configBytes) !== manifest.config.digest) {
    throw new RegistryError('REGISTRY_DIGEST_INVALID', `${formatReference(ref)}: config blob does not match ${manifest.config.digest}`);
  }
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
  const layers = manifest.layers.map((l, i) => {
    const mediaType = ociLayerMediaType(l.mediaType, `${formatReference(ref)}: layer ${l.digest}`);
    return new RegistryLayer(client, ref, l.digest, config.rootfs.diff_ids[i] as Digest, l.size, mediaType);
  });
  return new Image(config, layers);
}

export interface PushEvent {
  type: 'blob-exists' | 'blob-mounted' | 'blob-uploaded' | 'manifest';
  digest: Digest;
  size: number;
}

export interface PushOptions {
  client?: RegistryClient;
  format?: ManifestFormat;
  onEvent?: (e: PushEvent) => void;
}

async function blobExists(client: RegistryClient, ref: ImageReference, digest: Digest): Promise<boolean> {
  return client.retry(`HEAD ${digest}`, async () => {
    const res = await client.request(ref, 'HEAD', `/v2/${ref.repository}/blobs/${digest}`, { push: true });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return client.fail(res, `HEAD ${formatReference(ref)} blob ${digest}`);
  });
}

function absolute(client: RegistryClient, ref: ImageReference, location: string | null, what: string): URL {
  if (!location) throw new RegistryError('REGISTRY_ERROR', `${what}: the registry sent no Location`);
  return new URL(location, client.baseUrl(ref));
}

/** Uploads one blob: POST for a session, then one PUT (monolithic) or PATCH chunks and a closing PUT. */
async function uploadBlob(
  client: RegistryClient,
  ref: ImageReference,
  digest: Digest,
  size: number,
  open: () => Promise<Readable>,
  mountFrom: string | null,
): Promise<'mounted' | 'uploaded'> {
  const what = `upload ${digest} to ${formatReference(ref)}`;
  return client.retry(what, async () => {
    const q = mountFrom ? `?mount=${digest}&from=${encodeURIComponent(mountFrom)}` : '';
    const start = await client.request(ref, 'POST', `/v2/${ref.repository}/blobs/uploads/${q}`, { push: true, body: () => null, headers: { 'content-length': '0' } });
    await start.arrayBuffer().catch(() => undefined);
    if (start.status === 201) return 'mounted';
    if (start.status !== 202) await client.fail(start, what);
    let location = absolute(client, ref, start.headers.get('location'), what);
    const chunk = client.options.chunkSize ?? 64 * 1024 * 1024;
    if (size <= chunk) {
      location.searchParams.set('digest', digest);
      const stream = await open();
      const res = await client.request(ref, 'PUT', location.toString(), {
        push: true,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: () => Readable.toWeb(stream) as unknown as RequestInit['body'],
      });
      if (res.status !== 201) await client.fail(res, what);
      await res.arrayBuffer().catch(() => undefined);
      return 'uploaded';
    }
    // Chunked: one chunk in memory at a time.
    const stream = await open();
    const hasher = new HashingStream();
    stream.pipe(hasher);
    let offset = 0;
    let pending: Buffer[] = [];
    let pendingLen = 0;
    const flush = async (): Promise<void> => {
      if (pendingLen === 0) return;
      const body = Buffer.concat(pending, pendingLen);
      pending = [];
      pendingLen = 0;
      const res = await client.request(ref, 'PATCH', location.toString(), {
        push: true,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + body.length - 1}`,
          'content-length': String(body.length),
        },
        body: () => body,
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status !== 202) await client.fail(res, `${what} (chunk at ${offset})`);
      offset += body.length;
      location = absolute(client, ref, res.headers.get('location'), what);
    };
    for await (const c of hasher as AsyncIterable<Buffer>) {
      pending.push(c);
      pendingLen += c.length;
      if (pendingLen >= chunk) await flush();
    }
    await flush();
    location.searchParams.set('digest', digest);
    const res = await client.request(ref, 'PUT', location.toString(), { push: true, headers: { 'content-length': '0' }, body: () => null });
    if (res.status !== 201) await client.fail(res, what);
    await res.arrayBuffer().catch(() => undefined);
    return 'uploaded';
  });
}

/**
 * Pushes an image: each blob is checked with HEAD first, mounted from another repository of the same registry
 * when the layer came from there, or uploaded (monolithic, or chunked above the chunk size); temporary failures
 * are retried with backoff, a digest error never is; the manifest goes last. Returns the manifest digest.
 */
export async function pushImage(image: Image, reference: string, options: PushOptions = {}): Promise<Digest> {
  const client = options.client ?? new RegistryClient();
  const ref = parseReference(reference);
  const format = options.format ?? 'docker';
  for (const layer of image.layers) {
    if (await blobExists(client, ref, layer.digest)) {
      options.onEvent?.({ type: 'blob-exists', digest: layer.digest, size: layer.size });
      continue;
    }
    const from = layer instanceof RegistryLayer && layer.ref.registry === ref.registry && layer.ref.repository !== ref.repository ? layer.ref.repository : null;
    const how = await uploadBlob(client, ref, layer.digest, layer.size, () => layer.compressed(), from);
    options.onEvent?.({ type: how === 'mounted' ? 'blob-mounted' : 'blob-uploaded', digest: layer.digest, size: layer.size });
  }
  const config = image.configBytes();
  if (!(await blobExists(client, ref, image.configDigest()))) {
    await uploadBlob(client, ref, image.configDigest(), config.length, async () => Readable.from([config]), null);
  }
  const m = image.manifest(format);
  const tagOrDigest = ref.tag ?? m.digest;
  await client.retry('PUT manifest', async () => {
    const res = await client.request(ref, 'PUT', `/v2/${ref.repository}/manifests/${tagOrDigest}`, {
      push: true,
      headers: { 'content-type': m.mediaType },
      body: () => m.bytes,
    });
    if (res.status !== 201) await client.fail(res, `PUT ${formatReference(ref)} manifest`);
    await res.arrayBuffer().catch(() => undefined);
    const got = res.headers.get('docker-content-digest');
    if (got && got !== m.digest) throw new RegistryError('REGISTRY_DIGEST_INVALID', `the registry stored manifest ${got}, we sent ${m.digest}`);
  });
  options.onEvent?.({ type: 'manifest', digest: m.digest, size: m.bytes.length });
  return m.digest;
}


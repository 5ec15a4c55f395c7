// Sink: the registry push (HEAD, cross-repository mount, upload, retries, manifest last).
import { Readable } from 'node:stream';
import { HashingStream, type Digest } from '../core/digest.js';
import type { Image, ManifestFormat } from '../core/image.js';
import { RegistryClient } from '../distribution/client.js';
import { formatReference, parseReference, type ImageReference } from '../distribution/reference.js';
import { RegistryError } from '../errors.js';
import { RegistryLayer } from '../sources/registry.js';

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


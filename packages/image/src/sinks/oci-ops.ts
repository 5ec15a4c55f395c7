// TEMPORARY: the blob and manifest calls of the distribution client the registry layer cache needs, with the
// signatures @dstack/oci's RegistryClient gives them (issue 21); replaced by those methods once it lands.
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { sha256Digest, type Digest } from '../core/digest.js';
import type { RegistryClient } from '../distribution/client.js';
import { formatReference, type ImageReference } from '../distribution/reference.js';
import { RegistryError } from '../errors.js';

export interface ManifestBytes {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

export interface OciOps {
  blobExists(ref: ImageReference, digest: Digest, options?: { push?: boolean }): Promise<boolean>;
  openBlob(ref: ImageReference, digest: Digest, what?: string): Promise<Readable>;
  readBlob(ref: ImageReference, digest: Digest, what?: string): Promise<Buffer>;
  uploadBlob(ref: ImageReference, digest: Digest, size: number, open: () => Promise<Readable>, options?: { mountFrom?: string | null }): Promise<'mounted' | 'uploaded'>;
  getManifest(ref: ImageReference, reference: string, accept?: string): Promise<ManifestBytes>;
  putManifest(ref: ImageReference, reference: string, manifest: { mediaType: string; bytes: Buffer; digest?: Digest }): Promise<Digest>;
}

export function ociOps(client: RegistryClient): OciOps {
  return {
    blobExists: (ref, digest, options = {}) =>
      client.retry(`HEAD ${digest}`, async () => {
        const res = await client.request(ref, 'HEAD', `/v2/${ref.repository}/blobs/${digest}`, { push: Boolean(options.push) });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status === 200) return true;
        if (res.status === 404) return false;
        return client.fail(res, `HEAD ${formatReference(ref)} blob ${digest}`);
      }),
    async openBlob(ref, digest, what = 'blob') {
      const res = await client.retry(`GET ${what} ${digest}`, async () => {
        const r = await client.request(ref, 'GET', `/v2/${ref.repository}/blobs/${digest}`);
        if (!r.ok) await client.fail(r, `GET ${formatReference(ref)} ${what} ${digest}`);
        return r;
      });
      return Readable.fromWeb(res.body as WebReadableStream);
    },
    async readBlob(ref, digest, what = 'blob') {
      const bytes = await client.retry(`GET ${what}`, async () => {
        const res = await client.request(ref, 'GET', `/v2/${ref.repository}/blobs/${digest}`);
        if (!res.ok) await client.fail(res, `GET ${formatReference(ref)} ${what} ${digest}`);
        return Buffer.from(await res.arrayBuffer());
      });
      if (sha256Digest(bytes) !== digest) throw new RegistryError('REGISTRY_DIGEST_INVALID', `${formatReference(ref)}: ${what} blob does not match ${digest}`);
      return bytes;
    },
    uploadBlob: (ref, digest, size, open, options = {}) => {
      const what = `upload ${digest} to ${formatReference(ref)}`;
      const mountFrom = options.mountFrom ?? null;
      return client.retry(what, async () => {
        const q = mountFrom ? `?mount=${digest}&from=${encodeURIComponent(mountFrom)}` : '';
        const start = await client.request(ref, 'POST', `/v2/${ref.repository}/blobs/uploads/${q}`, { push: true, body: () => null, headers: { 'content-length': '0' } });
        await start.arrayBuffer().catch(() => undefined);
        if (start.status === 201) return 'mounted';
        if (start.status !== 202) await client.fail(start, what);
        const location = new URL(start.headers.get('location') ?? '', client.baseUrl(ref));
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
      });
    },
    getManifest: (ref, reference, accept = 'application/vnd.oci.image.manifest.v1+json') =>
      client.retry(`GET manifest ${reference}`, async () => {
        const res = await client.request(ref, 'GET', `/v2/${ref.repository}/manifests/${reference}`, { headers: { accept } });
        if (!res.ok) await client.fail(res, `GET ${formatReference(ref)} manifest ${reference}`);
        const bytes = Buffer.from(await res.arrayBuffer());
        const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
        return { bytes, mediaType, digest: sha256Digest(bytes) };
      }),
    async putManifest(ref, reference, manifest) {
      const digest = manifest.digest ?? sha256Digest(manifest.bytes);
      await client.retry('PUT manifest', async () => {
        const res = await client.request(ref, 'PUT', `/v2/${ref.repository}/manifests/${reference}`, { push: true, headers: { 'content-type': manifest.mediaType }, body: () => manifest.bytes });
        if (res.status !== 201) await client.fail(res, `PUT ${formatReference(ref)} manifest`);
        await res.arrayBuffer().catch(() => undefined);
      });
      return digest;
    },
  };
}

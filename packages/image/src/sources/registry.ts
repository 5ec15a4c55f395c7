// Source: an image in a registry (manifest lists resolved to linux/amd64); its layers are fetched when opened.
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { sha256Digest, type Digest } from '../core/digest.js';
import { Image, type Descriptor, type ImageConfigFile, type Manifest } from '../core/image.js';
import { isGzipMediaType, MEDIA_TYPES, ociLayerMediaType, type Layer } from '../core/layer.js';
import { MANIFEST_ACCEPT, RegistryClient } from '../distribution/client.js';
import { formatReference, parseReference, type ImageReference } from '../distribution/reference.js';
import { RegistryError } from '../errors.js';
import { choosePlatform } from './oci-layout.js';

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


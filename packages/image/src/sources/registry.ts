// Source: an image in a registry (manifest lists resolved to linux/amd64); its layers are fetched when opened.
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Digest } from '../core/digest.js';
import { Image, type Descriptor, type ImageConfigFile, type Manifest } from '../core/image.js';
import { isGzipMediaType, MEDIA_TYPES, ociLayerMediaType, type Layer } from '../core/layer.js';
import { formatReference, parseReference, RegistryClient, type ImageReference } from '@dstack/oci';
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
    return this.client.openBlob(this.ref, this.digest);
  }
  async uncompressed(): Promise<Readable> {
    const src = await this.compressed();
    if (!isGzipMediaType(this.mediaType)) return src;
    const g = createGunzip();
    src.on('error', (e) => g.destroy(e));
    return src.pipe(g);
  }
}

/** Reads an image from a registry; manifest lists and OCI indexes resolve to linux/amd64. */
export async function readRegistryImage(reference: string, client: RegistryClient = new RegistryClient()): Promise<Image> {
  const ref = parseReference(reference);
  let m = await client.getManifest(ref, ref.digest ?? ref.tag!);
  if (m.mediaType === MEDIA_TYPES.ociIndex || m.mediaType === MEDIA_TYPES.dockerManifestList) {
    const index = JSON.parse(m.bytes.toString('utf8')) as { manifests: Descriptor[] };
    const chosen = choosePlatform(index.manifests, formatReference(ref));
    m = await client.getManifest(ref, chosen.digest);
  }
  const manifest = JSON.parse(m.bytes.toString('utf8')) as Manifest;
  const configBytes = await client.readBlob(ref, manifest.config.digest, 'config');
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
  const layers = manifest.layers.map((l, i) => {
    const mediaType = ociLayerMediaType(l.mediaType, `${formatReference(ref)}: layer ${l.digest}`);
    return new RegistryLayer(client, ref, l.digest, config.rootfs.diff_ids[i] as Digest, l.size, mediaType);
  });
  return new Image(config, layers);
}


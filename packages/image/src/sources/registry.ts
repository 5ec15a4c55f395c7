// Source: an image in a registry (manifest lists resolved to linux/amd64); its layers are fetched when opened.
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Digest } from '../core/digest.js';
import { Image, type Descriptor, type ImageConfigFile, type Manifest } from '../core/image.js';
import { isGzipMediaType, MEDIA_TYPES, ociLayerMediaType, type Layer } from '../core/layer.js';
import { formatReference, parseReference, RegistryClient, type ImageReference } from '@dstack/oci';
import { choosePlatform, indexPlatforms } from './oci-layout.js';
import type { Platform } from '../core/platform.js';

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

const isIndex = (mediaType: string): boolean => mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;

/** The platforms a registry image is for when it is an index (OCI index or Docker manifest list); null for one image. */
export async function readRegistryPlatforms(reference: string, client: RegistryClient = new RegistryClient()): Promise<Platform[] | null> {
  const ref = parseReference(reference);
  const m = await client.getManifest(ref, ref.digest ?? ref.tag!);
  if (!isIndex(m.mediaType)) return null;
  return indexPlatforms((JSON.parse(m.bytes.toString('utf8')) as { manifests: Descriptor[] }).manifests);
}

/**
 * Reads an image from a registry; manifest lists and OCI indexes resolve to `platform` (default linux/amd64),
 * whether their children are OCI or Docker v2 manifests.
 */
export async function readRegistryImage(reference: string, client: RegistryClient = new RegistryClient(), options: { platform?: Platform } = {}): Promise<Image> {
  const ref = parseReference(reference);
  let m = await client.getManifest(ref, ref.digest ?? ref.tag!);
  if (isIndex(m.mediaType)) {
    const index = JSON.parse(m.bytes.toString('utf8')) as { manifests: Descriptor[] };
    const chosen = choosePlatform(index.manifests, formatReference(ref), options.platform);
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


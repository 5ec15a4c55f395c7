// Sink: the registry push (HEAD, cross-repository mount, upload, retries, manifest last).
import { Readable } from 'node:stream';
import { parseReference, RegistryClient } from '@dstack/oci';
import type { Digest } from '../core/digest.js';
import type { Image, ManifestFormat } from '../core/image.js';
import type { ImageIndex } from '../core/image-index.js';
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

/** The manifest format a push uses unless told otherwise (Docker's v2 schema 2: every registry takes it). */
export const DEFAULT_PUSH_FORMAT: ManifestFormat = 'docker';

/**
 * Pushes an image: each blob is checked with HEAD first, mounted from another repository of the same registry
 * when the layer came from there, or uploaded (monolithic, or chunked above the chunk size); temporary failures
 * are retried with backoff, a digest error never is; the manifest goes last. Returns the manifest digest.
 */
export async function pushImage(image: Image, reference: string, options: PushOptions = {}): Promise<Digest> {
  const client = options.client ?? new RegistryClient();
  const ref = parseReference(reference);
  const format = options.format ?? DEFAULT_PUSH_FORMAT;
  for (const layer of image.layers) {
    if (await client.blobExists(ref, layer.digest, { push: true })) {
      options.onEvent?.({ type: 'blob-exists', digest: layer.digest, size: layer.size });
      continue;
    }
    const from = layer instanceof RegistryLayer && layer.ref.registry === ref.registry && layer.ref.repository !== ref.repository ? layer.ref.repository : null;
    const how = await client.uploadBlob(ref, layer.digest, layer.size, () => layer.compressed(), { mountFrom: from });
    options.onEvent?.({ type: how === 'mounted' ? 'blob-mounted' : 'blob-uploaded', digest: layer.digest, size: layer.size });
  }
  const config = image.configBytes();
  if (!(await client.blobExists(ref, image.configDigest(), { push: true }))) {
    await client.uploadBlob(ref, image.configDigest(), config.length, async () => Readable.from([config]));
  }
  const m = image.manifest(format);
  await client.putManifest(ref, ref.tag ?? m.digest, { mediaType: m.mediaType, bytes: m.bytes, digest: m.digest });
  options.onEvent?.({ type: 'manifest', digest: m.digest, size: m.bytes.length });
  return m.digest;
}

/**
 * Pushes a multi-platform image: each platform's image by its digest (blobs shared between them go once), then
 * the index (OCI index, or a Docker manifest list with `format: 'docker'`) under the reference's tag. Returns
 * the index digest.
 */
export async function pushImageIndex(index: ImageIndex, reference: string, options: PushOptions = {}): Promise<Digest> {
  const client = options.client ?? new RegistryClient();
  const ref = parseReference(reference);
  const format = options.format ?? 'oci';
  const repo = `${ref.registry}/${ref.repository}`;
  for (const { image } of index.entries) await pushImage(image, `${repo}@${image.manifest(format).digest}`, { ...options, client, format });
  const ix = index.index(format);
  await client.putManifest(ref, ref.tag ?? ix.digest, { mediaType: ix.mediaType, bytes: ix.bytes, digest: ix.digest });
  options.onEvent?.({ type: 'manifest', digest: ix.digest, size: ix.bytes.length });
  return ix.digest;
}

// Sink: an OCI image layout directory (blobs hard-linked from the cache when possible).
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingStream, type Digest } from '../core/digest.js';
import { blobFileOf } from '../core/file-layer.js';
import type { Descriptor, Image, ManifestFormat } from '../core/image.js';
import type { ImageIndex } from '../core/image-index.js';
import { MEDIA_TYPES, REF_NAME_ANNOTATION, type Layer } from '../core/layer.js';
import { ImageError } from '../errors.js';
import { blobPath, type OciIndex } from '../sources/oci-layout.js';

/** Copies a layer's blob to `dest` (hard link when possible), verifying its digest when copying. */
export async function copyBlob(layer: Layer, dest: string): Promise<void> {
  try {
    await fs.access(dest);
    return;
  } catch {
    // not there yet
  }
  await fs.mkdir(path.dirname(dest), { recursive: true });
  const src = blobFileOf(layer);
  const tmp = `${dest}.${process.pid}.part`;
  if (src) {
    try {
      await fs.link(src, tmp);
      await fs.rename(tmp, dest);
      return;
    } catch {
      await fs.rm(tmp, { force: true });
    }
  }
  const h = new HashingStream();
  await pipeline(await layer.compressed(), h, createWriteStream(tmp));
  if (h.digest() !== layer.digest) {
    await fs.rm(tmp, { force: true });
    throw new ImageError('IMAGE_DIGEST_MISMATCH', `layer ${layer.digest} read back as ${h.digest()}`);
  }
  await fs.rename(tmp, dest);
}

async function writeBlob(dir: string, digest: Digest, bytes: Buffer): Promise<void> {
  const dest = blobPath(dir, digest);
  await fs.mkdir(path.dirname(dest), { recursive: true });
  await fs.writeFile(dest, bytes);
}

/** Writes an image's layers, config and manifest into the layout's blobs (index.json untouched); returns the manifest. */
async function writeImageBlobs(image: Image, dir: string, format: ManifestFormat): Promise<ReturnType<Image['manifest']>> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const layer of image.layers) await copyBlob(layer, blobPath(dir, layer.digest));
  await writeBlob(dir, image.configDigest(), image.configBytes());
  const m = image.manifest(format);
  await writeBlob(dir, m.digest, m.bytes);
  return m;
}

/** Lists `desc` in the layout's index.json: replacing the entry of the same ref name (or the same digest without one). */
async function addToIndexJson(dir: string, desc: Descriptor, ref: string | undefined): Promise<Descriptor> {
  let index: OciIndex = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] };
  try {
    index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as OciIndex;
  } catch {
    // a new layout
  }
  const entry: Descriptor = { ...desc };
  if (ref !== undefined) entry.annotations = { [REF_NAME_ANNOTATION]: ref };
  const others = index.manifests.filter((d) => (ref === undefined ? d.digest !== desc.digest : d.annotations?.[REF_NAME_ANNOTATION] !== ref));
  index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [...others, entry] };
  const tmp = path.join(dir, `index.json.${process.pid}.part`);
  await fs.writeFile(tmp, JSON.stringify(index));
  await fs.rename(tmp, path.join(dir, 'index.json'));
  return entry;
}

/**
 * Writes an image into an OCI image layout directory (created if missing; other images in it are kept; an image
 * with the same ref name is replaced). Returns the manifest descriptor.
 */
export async function writeOciLayout(
  image: Image,
  dir: string,
  options: { ref?: string; format?: ManifestFormat } = {},
): Promise<Descriptor> {
  const m = await writeImageBlobs(image, dir, options.format ?? 'oci');
  return addToIndexJson(dir, { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length }, options.ref);
}

/**
 * Writes a multi-platform image into an OCI image layout: every platform's image, then the index over them,
 * listed in index.json (under `ref` when given). Returns the index's descriptor.
 */
export async function writeOciLayoutIndex(index: ImageIndex, dir: string, options: { ref?: string; format?: ManifestFormat } = {}): Promise<Descriptor> {
  const format = options.format ?? 'oci';
  for (const { image } of index.entries) await writeImageBlobs(image, dir, format);
  const ix = index.index(format);
  await writeBlob(dir, ix.digest, ix.bytes);
  return addToIndexJson(dir, { mediaType: ix.mediaType, digest: ix.digest, size: ix.bytes.length }, options.ref);
}

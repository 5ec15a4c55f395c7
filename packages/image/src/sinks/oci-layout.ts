// Sink: an OCI image layout directory (blobs hard-linked from the cache when possible).
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingStream, type Digest } from '../core/digest.js';
import { blobFileOf } from '../core/file-layer.js';
import type { Descriptor, Image, ManifestFormat } from '../core/image.js';
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

/**
 * Writes an image into an OCI image layout directory (created if missing; other images in it are kept; an image
 * with the same ref name is replaced). Returns the manifest descriptor.
 */
export async function writeOciLayout(
  image: Image,
  dir: string,
  options: { ref?: string; format?: ManifestFormat } = {},
): Promise<Descriptor> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const layer of image.layers) await copyBlob(layer, blobPath(dir, layer.digest));
  await writeBlob(dir, image.configDigest(), image.configBytes());
  const m = image.manifest(options.format ?? 'oci');
  await writeBlob(dir, m.digest, m.bytes);
  let index: OciIndex = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] };
  try {
    index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8')) as OciIndex;
  } catch {
    // a new layout
  }
  const desc: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
  if (options.ref !== undefined) desc.annotations = { [REF_NAME_ANNOTATION]: options.ref };
  const others = index.manifests.filter((d) =>
    options.ref === undefined ? d.digest !== m.digest : d.annotations?.[REF_NAME_ANNOTATION] !== options.ref,
  );
  index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [...others, desc] };
  await fs.writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
  return desc;
}

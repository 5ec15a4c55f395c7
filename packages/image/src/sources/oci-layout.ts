import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingStream, hexOf, isDigest, type Digest } from '../core/digest.js';
import { ImageError } from '../errors.js';
import { blobFileOf, FileLayer } from '../core/file-layer.js';
import { Image, type Descriptor, type ImageConfigFile, type Manifest, type ManifestFormat } from '../core/image.js';
import { MEDIA_TYPES, ociLayerMediaType, type Layer } from '../layers/write-layer.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

function blobPath(dir: string, digest: string): string {
  if (!isDigest(digest)) throw new ImageError('IMAGE_DIGEST_INVALID', `not a sha256 digest in ${dir}: ${digest}`);
  return path.join(dir, 'blobs', 'sha256', hexOf(digest));
}

async function readJson<T>(file: string): Promise<T> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new ImageError('IMAGE_NOT_FOUND', `cannot read ${file}`, { cause: err });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new ImageError('IMAGE_INVALID', `${file} is not JSON`, { cause: err });
  }
}

/** Picks linux/amd64 (or the given platform) from an index's manifests. */
export function choosePlatform(
  manifests: Descriptor[],
  where: string,
  platform: { os: string; architecture: string } = { os: 'linux', architecture: 'amd64' },
): Descriptor {
  const found = manifests.find(
    (m) => m.platform?.os === platform.os && m.platform?.architecture === platform.architecture,
  );
  if (!found) {
    const have = manifests.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : '?')).join(', ');
    throw new ImageError('IMAGE_PLATFORM', `${where} has no ${platform.os}/${platform.architecture} image (has: ${have})`);
  }
  return found;
}

/** Reads an image from an OCI image layout directory; `ref` selects by org.opencontainers.image.ref.name. */
export async function readOciLayout(dir: string, options: { ref?: string } = {}): Promise<Image> {
  const index = await readJson<OciIndex>(path.join(dir, 'index.json'));
  let candidates = index.manifests ?? [];
  if (options.ref !== undefined) candidates = candidates.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === options.ref);
  if (candidates.length === 0) {
    throw new ImageError('IMAGE_NOT_FOUND', `no image${options.ref ? ` named ${options.ref}` : ''} in ${dir}/index.json`);
  }
  let desc: Descriptor;
  if (candidates.length === 1) desc = candidates[0]!;
  else desc = choosePlatform(candidates, `${dir}/index.json`);
  while (desc.mediaType === MEDIA_TYPES.ociIndex || desc.mediaType === MEDIA_TYPES.dockerManifestList) {
    const inner = await readJson<OciIndex>(blobPath(dir, desc.digest));
    desc = choosePlatform(inner.manifests, `${dir} index ${desc.digest}`);
  }
  const manifest = await readJson<Manifest>(blobPath(dir, desc.digest));
  const config = await readJson<ImageConfigFile>(blobPath(dir, manifest.config.digest));
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new ImageError('IMAGE_INVALID', `${dir}: manifest has ${manifest.layers.length} layers, config ${diffIds.length} diff_ids`);
  }
  const layers = manifest.layers.map(
    (l, i) =>
      new FileLayer(blobPath(dir, l.digest), {
        digest: l.digest,
        diffId: diffIds[i] as Digest,
        size: l.size,
        mediaType: ociLayerMediaType(l.mediaType, `${dir}: layer ${l.digest}`),
      }),
  );
  return new Image(config, layers);
}

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

// Source: an image in an OCI image layout directory.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { hexOf, isDigest, type Digest } from '../core/digest.js';
import { FileLayer } from '../core/file-layer.js';
import { Image, type Descriptor, type ImageConfigFile, type Manifest } from '../core/image.js';
import { MEDIA_TYPES, ociLayerMediaType, REF_NAME_ANNOTATION } from '../core/layer.js';
import { ImageError } from '../errors.js';

export interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export function blobPath(dir: string, digest: string): string {
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


// Source: an image in an OCI image layout directory.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { hexOf, isDigest, type Digest } from '../core/digest.js';
import { FileLayer } from '../core/file-layer.js';
import { Image, type Descriptor, type ImageConfigFile, type Manifest } from '../core/image.js';
import { MEDIA_TYPES, ociLayerMediaType, REF_NAME_ANNOTATION } from '../core/layer.js';
import { ImageError } from '../errors.js';
import { formatPlatform, platformMatches, type Platform } from '../core/platform.js';

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
export function choosePlatform(manifests: Descriptor[], where: string, platform: Platform = { os: 'linux', architecture: 'amd64' }): Descriptor {
  const found = manifests.find((m) => m.platform && platformMatches(m.platform, platform));
  if (!found) {
    const have = manifests.map((m) => (m.platform ? formatPlatform(m.platform) : '?')).join(', ');
    throw new ImageError('IMAGE_PLATFORM', `${where} has no ${formatPlatform(platform)} image (has: ${have})`);
  }
  return found;
}

/** The platforms an index's manifests are for (attestations and other unknown/unknown entries left out). */
export function indexPlatforms(manifests: Descriptor[]): Platform[] {
  return manifests.flatMap((m) => (m.platform && m.platform.os !== 'unknown' ? [m.platform] : []));
}

/** The descriptor `readOciLayout` starts from: the one named `ref`, the only one, or the platform's. */
async function topDescriptor(dir: string, options: { ref?: string; platform?: Platform }): Promise<Descriptor> {
  const index = await readJson<OciIndex>(path.join(dir, 'index.json'));
  let candidates = index.manifests ?? [];
  if (options.ref !== undefined) candidates = candidates.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === options.ref);
  if (candidates.length === 0) {
    throw new ImageError('IMAGE_NOT_FOUND', `no image${options.ref ? ` named ${options.ref}` : ''} in ${dir}/index.json`);
  }
  return candidates.length === 1 ? candidates[0]! : choosePlatform(candidates, `${dir}/index.json`, options.platform);
}

const isIndex = (d: Descriptor): boolean => d.mediaType === MEDIA_TYPES.ociIndex || d.mediaType === MEDIA_TYPES.dockerManifestList;

/** The platforms an OCI layout's image (`ref`, or the only one) is for, when it is an index; null for one image. */
export async function ociLayoutPlatforms(dir: string, options: { ref?: string } = {}): Promise<Platform[] | null> {
  const desc = await topDescriptor(dir, options);
  if (!isIndex(desc)) return null;
  return indexPlatforms((await readJson<OciIndex>(blobPath(dir, desc.digest))).manifests);
}

/**
 * Reads an image from an OCI image layout directory; `ref` selects by org.opencontainers.image.ref.name, and
 * `platform` (default linux/amd64) picks from an index.
 */
export async function readOciLayout(dir: string, options: { ref?: string; platform?: Platform } = {}): Promise<Image> {
  let desc = await topDescriptor(dir, options);
  while (isIndex(desc)) {
    const inner = await readJson<OciIndex>(blobPath(dir, desc.digest));
    desc = choosePlatform(inner.manifests, `${dir} index ${desc.digest}`, options.platform);
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


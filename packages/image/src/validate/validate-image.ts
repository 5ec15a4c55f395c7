// validateImage: what go-containerregistry's `validate.Image` checks, for every image a test makes (and for
// anyone who wants to trust an image read from elsewhere). It reads every layer once.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { HashingStream, sha256Digest } from '../core/digest.js';
import type { Image, ImageConfigFile, Manifest, ManifestFormat } from '../core/image.js';
import { MEDIA_TYPES, isGzipMediaType, type Layer } from '../core/layer.js';
import { ImageError } from '../errors.js';

/** The media types each manifest family may hold. */
const FAMILY: Record<ManifestFormat, { manifest: string; config: string; layers: readonly string[] }> = {
  oci: { manifest: MEDIA_TYPES.ociManifest, config: MEDIA_TYPES.ociConfig, layers: [MEDIA_TYPES.ociLayerGzip, MEDIA_TYPES.ociLayer] },
  docker: {
    manifest: MEDIA_TYPES.dockerManifest,
    config: MEDIA_TYPES.dockerConfig,
    layers: [MEDIA_TYPES.dockerLayerGzip, MEDIA_TYPES.dockerLayer],
  },
};

const invalid = (message: string): ImageError => new ImageError('IMAGE_INVALID', message);

/**
 * Checks an image as go-containerregistry's `validate.Image` does, and the layer rules Docker applies:
 * - the config: its bytes parse and hash to the manifest's config digest and size, its rootfs is `layers`
 *   with one diff_id per layer;
 * - the manifest, in both families (OCI and Docker): its bytes hash to its digest, its media types are its
 *   family's, and its layer descriptors carry each layer's digest, size and compression;
 * - each layer, read once: the compressed bytes hash to its digest and size, the uncompressed bytes to its
 *   diffID (the config's diff_id), and the tar inside is well formed, with no path twice and no whiteout of a
 *   path the same layer writes.
 * Throws IMAGE_INVALID (IMAGE_MEDIA_TYPE for an unknown layer type, IMAGE_PATH_DUPLICATE for a path written
 * twice) naming the layer and what differs.
 */
export async function validateImage(image: Image): Promise<void> {
  const configBytes = image.configBytes();
  let config: ImageConfigFile;
  try {
    config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
  } catch (err) {
    throw new ImageError('IMAGE_INVALID', `config ${image.configDigest()} is not JSON`, { cause: err });
  }
  if (config.rootfs?.type !== 'layers') throw invalid(`config: rootfs.type is ${JSON.stringify(config.rootfs?.type)}, expected "layers"`);
  const diffIds = config.rootfs.diff_ids ?? [];
  if (diffIds.length !== image.layers.length) {
    throw invalid(`config lists ${diffIds.length} diff_ids for ${image.layers.length} layers`);
  }
  for (const format of ['oci', 'docker'] as const) checkManifest(image, format, configBytes);
  for (const [i, layer] of image.layers.entries()) await checkLayer(layer, i, diffIds[i]!);
}

function checkManifest(image: Image, format: ManifestFormat, configBytes: Buffer): void {
  const family = FAMILY[format];
  const serialized = image.manifest(format);
  if (sha256Digest(serialized.bytes) !== serialized.digest) throw invalid(`${format} manifest: bytes do not hash to ${serialized.digest}`);
  const m = JSON.parse(serialized.bytes.toString('utf8')) as Manifest;
  if (m.schemaVersion !== 2) throw invalid(`${format} manifest: schemaVersion ${String(m.schemaVersion)}, expected 2`);
  if (m.mediaType !== family.manifest) throw invalid(`${format} manifest: media type ${m.mediaType}, expected ${family.manifest}`);
  if (m.config.mediaType !== family.config) throw invalid(`${format} manifest: config media type ${m.config.mediaType}, expected ${family.config}`);
  const configDigest = sha256Digest(configBytes);
  if (m.config.digest !== configDigest || m.config.size !== configBytes.length) {
    throw invalid(`${format} manifest: config is ${m.config.digest} (${m.config.size} B), its bytes are ${configDigest} (${configBytes.length} B)`);
  }
  if (m.layers.length !== image.layers.length) throw invalid(`${format} manifest lists ${m.layers.length} layers, the image has ${image.layers.length}`);
  m.layers.forEach((d, i) => {
    const layer = image.layers[i]!;
    if (!family.layers.includes(d.mediaType)) throw invalid(`${format} manifest: layer ${i} has media type ${d.mediaType}, not one of ${family.layers.join(', ')}`);
    if (isGzipMediaType(d.mediaType) !== isGzipMediaType(layer.mediaType, `layer ${i}`)) {
      throw invalid(`${format} manifest: layer ${i} is ${d.mediaType}, the layer is ${layer.mediaType}`);
    }
    if (d.digest !== layer.digest || d.size !== layer.size) {
      throw invalid(`${format} manifest: layer ${i} is ${d.digest} (${d.size} B), the layer is ${layer.digest} (${layer.size} B)`);
    }
  });
}

/** Hashes a layer's blob and its tar in one read, and reads the tar's headers. */
async function checkLayer(layer: Layer, i: number, configDiffId: string): Promise<void> {
  if (layer.diffId !== configDiffId) throw invalid(`layer ${i} has diffID ${layer.diffId}, the config says ${configDiffId}`);
  const compressed = new HashingStream();
  const uncompressed = new HashingStream();
  const gzip = isGzipMediaType(layer.mediaType, `layer ${i}`);
  const entries = tarPaths(layer, i);
  const [read, listed] = await Promise.allSettled([
    pipeline([await layer.compressed(), compressed, ...(gzip ? [createGunzip(), uncompressed] : []), entries.sink]),
    entries.done,
  ]);
  // The tar's own finding first: a refused entry stops the read, whose error would only say so.
  if (listed.status === 'rejected') throw listed.reason;
  if (read.status === 'rejected') throw new ImageError('IMAGE_INVALID', `layer ${i} (${layer.digest}) cannot be read: ${(read.reason as Error).message}`, { cause: read.reason });
  const diffId = gzip ? uncompressed.digest() : compressed.digest();
  if (compressed.digest() !== layer.digest || compressed.bytes !== layer.size) {
    throw invalid(`layer ${i}: compressed bytes are ${compressed.digest()} (${compressed.bytes} B), expected ${layer.digest} (${layer.size} B)`);
  }
  if (diffId !== layer.diffId) throw invalid(`layer ${i}: uncompressed bytes are ${diffId}, expected diffID ${layer.diffId}`);
}

/**
 * A sink that reads a tar's headers and refuses a path written twice or whited out by its own layer. Paths are
 * compared as a tar extractor would see them ("./a/", "/a" and "a" are one path).
 */
function tarPaths(layer: Layer, i: number): { sink: Writable; done: Promise<void> } {
  const extract = tar.extract();
  const seen = new Set<string>();
  const whiteouts: { path: string; target: string }[] = [];
  const done = (async () => {
    try {
      await listEntries();
    } catch (err) {
      if (err instanceof ImageError) throw err;
      throw new ImageError('IMAGE_INVALID', `layer ${i} (${layer.digest}) is not a tar: ${(err as Error).message}`, { cause: err });
    }
  })();
  async function listEntries(): Promise<void> {
    for await (const entry of extract) {
      const p = entry.header.name.split('/').filter((s) => s !== '' && s !== '.').join('/');
      if (seen.has(p)) throw new ImageError('IMAGE_PATH_DUPLICATE', `layer ${i} (${layer.digest}) holds /${p} twice`);
      seen.add(p);
      const slash = p.lastIndexOf('/');
      const base = p.slice(slash + 1);
      if (base.startsWith('.wh.') && base !== '.wh..wh..opq') {
        whiteouts.push({ path: p, target: p.slice(0, slash + 1) + base.slice('.wh.'.length) });
      }
      entry.resume();
    }
    for (const w of whiteouts) {
      if (seen.has(w.target)) throw new ImageError('IMAGE_PATH_DUPLICATE', `layer ${i} (${layer.digest}) writes /${w.target} and whites it out (/${w.path})`);
    }
  }
  return { sink: extract as unknown as Writable, done };
}

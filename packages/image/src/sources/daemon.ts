// Source: an image of a Docker daemon, exported with `docker save` (cached by diffID).
import { stat } from 'node:fs/promises';
import type Docker from 'dockerode';
import { CachedLayer, type BlobCache } from '../cache/blob-cache.js';
import { hexOf, type Digest } from '../core/digest.js';
import { Image, type ImageConfigFile } from '../core/image.js';
import { MEDIA_TYPES, type Compression } from '../core/layer.js';
import { ImageError } from '../errors.js';
import { readDockerArchiveStream } from './docker-archive.js';

/**
 * Reads an image from a Docker daemon (`docker save` through dockerode's getImage().get()). Layers already in
 * the blob cache under their diffIDs (from an earlier export of the same image) are not exported again. The
 * daemon exports plain tars: they are stored gzip-compressed, or with `compression: 'none'` as they come (their
 * digests are their diffIDs; nothing is compressed: what a check of the image needs).
 */
export async function readDaemonImage(docker: Docker, name: string, options: { cache: BlobCache; compression?: Compression }): Promise<Image> {
  const plain = options.compression === 'none';
  let info: Docker.ImageInspectInfo;
  try {
    info = await docker.getImage(name).inspect();
  } catch (err) {
    throw new ImageError('IMAGE_NOT_FOUND', `the Docker engine has no image ${name}`, { cause: err });
  }
  const configKey = info.Id.replace(/^sha256:/, '');
  const config = await options.cache.readKey<ImageConfigFile>('engine-config', configKey);
  if (config && plain) {
    const layers: CachedLayer[] = [];
    for (const diffId of config.rootfs.diff_ids) {
      const size = await stat(options.cache.pathOf(diffId as Digest)).then((st) => st.size, () => null);
      if (size === null) break;
      layers.push(new CachedLayer(options.cache, { digest: diffId as Digest, diffId: diffId as Digest, size, mediaType: MEDIA_TYPES.ociLayer }));
    }
    if (layers.length === config.rootfs.diff_ids.length) return new Image(config, layers);
  } else if (config) {
    const layers: CachedLayer[] = [];
    for (const diffId of config.rootfs.diff_ids) {
      const hit = await options.cache.readKey<{ digest: Digest; size: number }>('diffid', hexOf(diffId as Digest));
      if (!hit || !(await options.cache.has(hit.digest, hit.size))) break;
      layers.push(new CachedLayer(options.cache, { digest: hit.digest, diffId: diffId as Digest, size: hit.size, mediaType: MEDIA_TYPES.ociLayerGzip }));
    }
    if (layers.length === config.rootfs.diff_ids.length) return new Image(config, layers);
  }
  const stream = await docker.getImage(name).get();
  const image = await readDockerArchiveStream(stream, { cache: options.cache, where: `engine image ${name}`, ...(plain ? { compression: 'none' as const } : {}) });
  for (const l of image.layers) {
    if (l.digest !== l.diffId) await options.cache.writeKey('diffid', hexOf(l.diffId), { digest: l.digest, size: l.size });
  }
  await options.cache.writeKey('engine-config', configKey, image.config);
  return image;
}


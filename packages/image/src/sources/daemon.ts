import type Docker from 'dockerode';
import type { BlobCache } from '../cache/blob-cache.js';
import { dockerArchiveStream, readDockerArchiveStream } from './docker-archive.js';
import { CachedLayer, MEDIA_TYPES } from '../layers/write-layer.js';
import { ImageError } from '../errors.js';
import { Image, type ImageConfigFile } from '../core/image.js';
import { hexOf, isDigest, type Digest } from '../core/digest.js';
import { readAll } from '../layers/write-layer.js';

/**
 * Reads an image from a Docker engine (`docker save` through dockerode's getImage().get()). Layers already in
 * the blob cache under their diffIDs (from an earlier export of the same image) are not exported again.
 */
export async function readEngineImage(docker: Docker, name: string, options: { cache: BlobCache }): Promise<Image> {
  let info: Docker.ImageInspectInfo;
  try {
    info = await docker.getImage(name).inspect();
  } catch (err) {
    throw new ImageError('IMAGE_NOT_FOUND', `the Docker engine has no image ${name}`, { cause: err });
  }
  const configKey = info.Id.replace(/^sha256:/, '');
  const config = await options.cache.readKey<ImageConfigFile>('engine-config', configKey);
  if (config) {
    const layers: CachedLayer[] = [];
    for (const diffId of config.rootfs.diff_ids) {
      const hit = await options.cache.readKey<{ digest: Digest; size: number }>('diffid', hexOf(diffId as Digest));
      if (!hit || !(await options.cache.has(hit.digest, hit.size))) break;
      layers.push(new CachedLayer(options.cache, { digest: hit.digest, diffId: diffId as Digest, size: hit.size, mediaType: MEDIA_TYPES.ociLayerGzip }));
    }
    if (layers.length === config.rootfs.diff_ids.length) return new Image(config, layers);
  }
  const stream = await docker.getImage(name).get();
  const image = await readDockerArchiveStream(stream, { cache: options.cache, where: `engine image ${name}` });
  for (const l of image.layers) {
    await options.cache.writeKey('diffid', hexOf(l.diffId), { digest: l.digest, size: l.size });
  }
  await options.cache.writeKey('engine-config', configKey, image.config);
  return image;
}

/** How many leading layers of `image` the engine holds already (the longest diffID chain of any of its images). */
export async function layersInEngine(docker: Docker, image: Image, candidates: string[]): Promise<number> {
  let best = 0;
  for (const name of candidates) {
    let layers: string[];
    try {
      layers = (await docker.getImage(name).inspect()).RootFS?.Layers ?? [];
    } catch {
      continue;
    }
    let n = 0;
    while (n < layers.length && n < image.layers.length && layers[n] === image.layers[n]!.diffId) n++;
    best = Math.max(best, n);
  }
  return best;
}

/**
 * Loads an image into a Docker engine (dockerode loadImage of a docker-archive stream) and tags it. `reuseFrom`
 * names engine images (the base) whose layers need not be streamed again.
 */
export async function loadIntoEngine(docker: Docker, image: Image, tag: string, options: { reuseFrom?: string[] } = {}): Promise<string> {
  const omitLayers = options.reuseFrom?.length ? await layersInEngine(docker, image, options.reuseFrom) : 0;
  const res = (await docker.loadImage(dockerArchiveStream(image, { tags: [tag], omitLayers }) as unknown as NodeJS.ReadableStream, {
    quiet: true,
  })) as NodeJS.ReadableStream;
  const text = (await readAll(res)).toString('utf8');
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let msg: { error?: string; errorDetail?: { message?: string } };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      continue;
    }
    if (msg.error || msg.errorDetail) {
      throw new ImageError('IMAGE_LOAD_FAILED', `docker load of ${tag} failed: ${msg.errorDetail?.message ?? msg.error}`);
    }
  }
  const id = `sha256:${image.configDigest().slice(7)}`;
  if (!isDigest(id)) throw new Error('unreachable');
  return id;
}

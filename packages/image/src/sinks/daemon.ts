// Sink: `docker load` into a Docker daemon, leaving out the layers the daemon holds already.
import type Docker from 'dockerode';
import { isDigest } from '../core/digest.js';
import type { Image } from '../core/image.js';
import { readAll } from '../core/streams.js';
import { ImageError } from '../errors.js';
import { dockerArchiveStream } from './docker-archive.js';
import type { BlobCache } from '../cache/blob-cache.js';
import { withBaseIndex } from '../app/base-index.js';
import { readDaemonImage } from '../sources/daemon.js';

/** How many leading layers of `image` the daemon holds already (the longest diffID chain of any of its images). */
export async function layersInDaemon(docker: Docker, image: Image, candidates: string[]): Promise<number> {
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
 * Loads an image into a Docker daemon (dockerode loadImage of a docker-archive stream) and tags it. `reuseFrom`
 * names daemon images (the base) whose layers need not be streamed again.
 */
export async function loadIntoDaemon(docker: Docker, image: Image, tag: string, options: { reuseFrom?: string[] } = {}): Promise<string> {
  const omitLayers = options.reuseFrom?.length ? await layersInDaemon(docker, image, options.reuseFrom) : 0;
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

/**
 * Adds a base index to an image of a Docker daemon and tags the result `tag`: the image is read (`docker save`, its
 * layers kept plain in `cache`, so a second run exports nothing), the index layer written, and only that layer
 * loaded back (`docker load` skips the layers the daemon holds). Returns the new image's ID.
 */
export async function indexDaemonImage(docker: Docker, name: string, tag: string, options: { cache: BlobCache; mtime?: number }): Promise<string> {
  const image = await readDaemonImage(docker, name, { cache: options.cache, compression: 'none' });
  const { image: indexed } = await withBaseIndex(image, { cache: options.cache, compression: 'none', ...(options.mtime !== undefined ? { mtime: options.mtime } : {}) });
  return loadIntoDaemon(docker, indexed, tag, { reuseFrom: [name] });
}

// Source: a docker-archive tar (`docker save` of Docker 20.10 or 25), read in one pass into the cache.
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { CachedLayer, type BlobCache } from '../cache/blob-cache.js';
import { hexOf, HashingStream, type Digest } from '../core/digest.js';
import { Image, type ImageConfigFile } from '../core/image.js';
import { MEDIA_TYPES, type Compression } from '../core/layer.js';
import { devNull, readAll } from '../core/streams.js';
import { ImageError } from '../errors.js';

/** One entry of docker-save's manifest.json. */
export interface DockerSaveManifestEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

interface SpooledLayer {
  digest: Digest;
  diffId: Digest;
  size: number;
}

const isGzip = (b: Buffer): boolean => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
const isTar = (b: Buffer): boolean => b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';

/**
 * Stores one layer of an archive in the cache: a gzip one as it is; a plain tar compressed (gzip), or with
 * `none` as it is (its digest is then its diffID: one hash, nothing compressed).
 */
async function spoolLayer(first: Buffer, rest: AsyncIterable<Buffer>, cache: BlobCache, compression: Compression): Promise<SpooledLayer & { gzip: boolean }> {
  const source = Readable.from(
    (async function* () {
      yield first;
      for await (const c of rest) yield c;
    })(),
  );
  const tmp = await cache.tempPath();
  if (isGzip(first)) {
    const c = new HashingStream();
    await pipeline(source, c, createWriteStream(tmp));
    const digest = c.digest();
    const u = new HashingStream();
    await pipeline(createReadStream(tmp), createGunzip(), u, devNull());
    await cache.commit(tmp, digest);
    return { digest, diffId: u.digest(), size: c.bytes, gzip: true };
  }
  if (compression === 'none') {
    const u = new HashingStream();
    await pipeline(source, u, createWriteStream(tmp));
    await cache.commit(tmp, u.digest());
    return { digest: u.digest(), diffId: u.digest(), size: u.bytes, gzip: false };
  }
  const u = new HashingStream();
  const c = new HashingStream();
  await pipeline(source, u, createGzip({ level: 6 }), c, createWriteStream(tmp));
  const digest = c.digest();
  await cache.commit(tmp, digest);
  await cache.writeKey('diffid', hexOf(u.digest()), { digest, size: c.bytes });
  return { digest, diffId: u.digest(), size: c.bytes, gzip: true };
}

/**
 * Reads an image from a docker-archive tar stream (`docker save` of Docker 20.10 or 25, or what
 * dockerArchiveStream writes), in one pass: layers are stored gzip-compressed in the blob cache (with
 * `compression: 'none'`, plain tar layers as they come: what a check of the image needs, without a compression
 * that costs ~1 s of CPU per 100 MB). `tag` picks one image when the archive holds several.
 */
export async function readDockerArchiveStream(
  stream: NodeJS.ReadableStream,
  options: { cache: BlobCache; tag?: string; where?: string; compression?: Compression },
): Promise<Image> {
  const where = options.where ?? 'docker archive';
  const extract = tar.extract();
  const small = new Map<string, Buffer>();
  const layers = new Map<string, SpooledLayer & { gzip: boolean }>();
  const feeding = pipeline(stream as Readable, extract).catch((err: unknown) => {
    extract.destroy(err as Error);
  });
  for await (const entry of extract) {
    const name = entry.header.name.replace(/^\.\//, '');
    if (entry.header.type !== 'file') {
      entry.resume();
      continue;
    }
    const it = entry[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head = await readHead(it, 512);
    const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
    if (isGzip(head) || isTar(head)) {
      layers.set(name, await spoolLayer(head, rest, options.cache, options.compression ?? 'gzip'));
    } else {
      small.set(name, Buffer.concat([head, await readAll(Readable.from(rest))]));
    }
  }
  await feeding;
  const manifestJson = small.get('manifest.json');
  if (!manifestJson) throw new ImageError('IMAGE_INVALID', `${where}: no manifest.json (not a docker-save archive)`);
  const entries = JSON.parse(manifestJson.toString('utf8')) as DockerSaveManifestEntry[];
  let entry = entries[0];
  if (options.tag !== undefined) entry = entries.find((e) => e.RepoTags?.includes(options.tag!));
  else if (entries.length > 1) throw new ImageError('IMAGE_AMBIGUOUS', `${where} holds ${entries.length} images; name one`);
  if (!entry) throw new ImageError('IMAGE_NOT_FOUND', `${where}: no image ${options.tag ?? ''}`);
  const configBytes = small.get(entry.Config);
  if (!configBytes) throw new ImageError('IMAGE_INVALID', `${where}: config ${entry.Config} is missing`);
  const config = JSON.parse(configBytes.toString('utf8')) as ImageConfigFile;
  const result = entry.Layers.map((p, i) => {
    const l = layers.get(p);
    if (!l) throw new ImageError('IMAGE_INVALID', `${where}: layer ${p} is missing`);
    if (config.rootfs.diff_ids[i] !== l.diffId) {
      throw new ImageError('IMAGE_INVALID', `${where}: layer ${p} has diffID ${l.diffId}, config says ${config.rootfs.diff_ids[i]}`);
    }
    return new CachedLayer(options.cache, { digest: l.digest, diffId: l.diffId, size: l.size, mediaType: l.gzip ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.ociLayer });
  });
  return new Image(config, result);
}

async function readHead(it: AsyncIterator<Buffer>, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const r = await it.next();
    if (r.done) break;
    parts.push(r.value);
    len += r.value.length;
  }
  return Buffer.concat(parts);
}

export async function readDockerArchive(file: string, options: { cache: BlobCache; tag?: string; compression?: Compression }): Promise<Image> {
  return readDockerArchiveStream(createReadStream(file), { ...options, where: file });
}


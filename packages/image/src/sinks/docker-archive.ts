// Sink: a docker-archive tar as Docker 25 writes it (an OCI layout plus docker-save's manifest.json).
import { createWriteStream, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { hexOf } from '../core/digest.js';
import type { Descriptor, Image, ManifestFormat } from '../core/image.js';
import { MEDIA_TYPES, REF_NAME_ANNOTATION } from '../core/layer.js';
import type { DockerSaveManifestEntry } from '../sources/docker-archive.js';

/**
 * A docker-archive tar as Docker 25's `docker save` writes it: an OCI image layout (oci-layout, index.json,
 * blobs/sha256/…) and docker-save's manifest.json pointing at the same blobs, so that both dockerd 20.10's
 * `docker load` (which reads only manifest.json) and OCI tools read it. Layers stay gzip-compressed
 * (docker load decompresses them).
 */
export function dockerArchiveStream(
  image: Image,
  options: { tags?: string[]; format?: ManifestFormat; omitLayers?: number } = {},
): Readable {
  const pack = tar.pack();
  const mtime = new Date(0);
  const add = (name: string, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) =>
      pack.entry({ name, mtime, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '' }, data, (e) => (e ? reject(e) : resolve())),
    );
  const dir = (name: string): Promise<void> =>
    new Promise((resolve, reject) =>
      pack.entry({ name, type: 'directory', mtime, mode: 0o755, uid: 0, gid: 0 }, (e) => (e ? reject(e) : resolve())),
    );
  const format = options.format ?? 'docker';
  const m = image.manifest(format);
  const tags = options.tags ?? [];
  (async () => {
    await dir('blobs/');
    await dir('blobs/sha256/');
    const seen = new Set<string>();
    // `omitLayers`: leading layers the receiving daemon already has (docker load never opens the file of a layer
    // whose chain it holds), so a load on top of a local base does not stream the base again.
    for (const layer of image.layers.slice(options.omitLayers ?? 0)) {
      if (seen.has(layer.digest)) continue;
      seen.add(layer.digest);
      const sink = pack.entry({ name: `blobs/sha256/${hexOf(layer.digest)}`, size: layer.size, mtime, mode: 0o644, uid: 0, gid: 0 });
      await pipeline(await layer.compressed(), sink);
    }
    await add(`blobs/sha256/${hexOf(image.configDigest())}`, image.configBytes());
    await add(`blobs/sha256/${hexOf(m.digest)}`, m.bytes);
    const desc: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: tags.length
        ? tags.map((t) => ({ ...desc, annotations: { 'io.containerd.image.name': t, [REF_NAME_ANNOTATION]: t.split(':').pop()! } }))
        : [desc],
    };
    await add('index.json', Buffer.from(JSON.stringify(index)));
    const save: DockerSaveManifestEntry[] = [
      {
        Config: `blobs/sha256/${hexOf(image.configDigest())}`,
        RepoTags: tags.length ? tags : null,
        Layers: image.layers.map((l) => `blobs/sha256/${hexOf(l.digest)}`),
      },
    ];
    await add('manifest.json', Buffer.from(JSON.stringify(save)));
    await add('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return pack as unknown as Readable;
}

export async function writeDockerArchive(image: Image, file: string, options: { tags?: string[] } = {}): Promise<void> {
  const tmp = `${file}.${process.pid}.part`;
  try {
    await pipeline(dockerArchiveStream(image, options), createWriteStream(tmp));
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}


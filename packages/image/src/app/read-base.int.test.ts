// readBase: a base read once — its facts and its file index from one pass over each layer, a registry's layers
// downloaded once into the blob cache (their digests checked) for the sinks to link.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedRegistry, type SharedRegistry } from '@dstack/testing';
import { BlobCache } from '../cache/blob-cache.js';
import { blobFileOf } from '../core/file-layer.js';
import { Image } from '../core/image.js';
import { appendLayers } from '../core/mutate.js';
import { RegistryClient } from '@dstack/oci';
import { fakeBase, ProbeLayer } from '../fixtures/wheel.test-support.js';
import { inspectBase } from '../layers/base-info.js';
import { BASE_INDEX_PATH, withBaseIndex } from './base-index.js';
import { writeLayer } from '../layers/write-layer.js';
import { readImageFiles } from '../check/image-files.js';
import { pushImage } from '../sinks/registry.js';
import { readRegistryImage } from '../sources/registry.js';
import { validateImage } from '../validate/validate-image.js';
import { readBase } from './read-base.js';

let tmp: string;
let registry: SharedRegistry;
let base: Image;

beforeAll(async () => {
  registry = await sharedRegistry();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-read-base-'));
  const cache = new BlobCache(path.join(tmp, 'made'));
  // Two layers: the second adds a C library, a shared object, ld.so.conf and hides /etc/group.
  const libs = await writeLayer(
    [
      { path: 'usr/lib/x86_64-linux-gnu/libc.so.6', type: 'file', data: readFileSync('/lib/x86_64-linux-gnu/libc.so.6'), mode: 0o755 },
      { path: 'usr/lib/x86_64-linux-gnu/libz.so.1', type: 'file', data: readFileSync('/lib/x86_64-linux-gnu/libz.so.1') },
      { path: 'etc/ld.so.conf', type: 'file', data: Buffer.from('/usr/local/lib\n') },
      { path: 'etc/.wh.group', type: 'file', data: Buffer.alloc(0) },
      { path: 'var/lib/dpkg/info/zlib1g:amd64.list', type: 'file', data: Buffer.from('/usr/lib/x86_64-linux-gnu/libz.so.1\n') },
    ],
    { cache },
  );
  base = appendLayers(await fakeBase(cache), [{ layer: libs }]);
  await validateImage(base);
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const sha256 = async (file: string): Promise<string> => `sha256:${createHash('sha256').update(await fs.readFile(file)).digest('hex')}`;

describe('readBase', () => {
  it("says what inspectBase and readImageFiles say, reading each layer once, and keeps a registry's blobs", async () => {
    const ref = `${registry.host}/dstack-test/read-base-${randomBytes(4).toString('hex')}:v1`;
    await pushImage(base, ref, { client: new RegistryClient() });
    const pulled = await readRegistryImage(ref, new RegistryClient());
    expect(pulled.layers.map(blobFileOf)).toEqual([null, null]);
    const opened = new Image(pulled.config, pulled.layers.map((l) => new ProbeLayer(l)));
    const cache = new BlobCache(path.join(tmp, 'cache-1'));

    const read = await readBase(opened, { cache, files: true });
    expect(read.info).toEqual(await inspectBase(base));
    expect(read.files!.toJSON()).toEqual((await readImageFiles(base)).toJSON());
    expect(read.files!.dpkg.get('libz.so.1')).toEqual(['zlib1g']);
    expect(read.files!.nodes.has('etc/group')).toBe(false);
    expect(opened.layers.map((l) => (l as ProbeLayer).opened)).toEqual([1, 1]);
    // The layers now come from the cache, under their digests; the image is the same image.
    for (const l of read.image.layers) expect(await sha256(blobFileOf(l)!)).toBe(l.digest);
    expect(read.image.digest()).toBe(base.digest());
    await validateImage(read.image);

    // Asked again: nothing is read (facts and files cached, blobs on disk).
    const again = new Image(pulled.config, pulled.layers.map((l) => new ProbeLayer(l)));
    const second = await readBase(again, { cache, files: true });
    expect(again.layers.map((l) => (l as ProbeLayer).opened)).toEqual([0, 0]);
    expect(second.info).toEqual(read.info);
    expect(second.image.layers.map((l) => blobFileOf(l))).toEqual(read.image.layers.map((l) => blobFileOf(l)));
    // The file index stays in the cache until the library check asks for it (it reads no layer either).
    expect(second.files).toBeNull();
    expect((await readImageFiles(again, { cache })).toJSON()).toEqual(read.files!.toJSON());
    expect(again.layers.map((l) => (l as ProbeLayer).opened)).toEqual([0, 0]);
  });

  it('refuses a layer whose bytes are not its digest, and keeps nothing of it', async () => {
    const wrong = `sha256:${'0'.repeat(64)}` as const;
    // (The last layer is read first, for a base index; then the layers from the bottom.)
    const layers = [new ProbeLayer(base.layers[0]!, { digest: wrong }), new ProbeLayer(base.layers[1]!)];
    const cache = new BlobCache(path.join(tmp, 'cache-2'));
    await expect(readBase(new Image(base.config, layers), { cache })).rejects.toThrow(
      `blob expected to be ${wrong} has digest ${base.layers[0]!.digest}`,
    );
    expect(await cache.has(base.layers[1]!.digest)).toBe(true);
    expect(await cache.has(base.layers[0]!.digest)).toBe(false);
    expect(await fs.readdir(path.join(cache.dir, 'tmp'))).toEqual([]);
  });

  it("an indexed base (image runtime's): only its last layer is read; the others are stored when the sink needs them", async () => {
    const made = new BlobCache(path.join(tmp, 'made-indexed'));
    const { image: indexed } = await withBaseIndex(base, { cache: made });
    const ref = `${registry.host}/dstack-test/read-base-indexed-${randomBytes(4).toString('hex')}:v1`;
    await pushImage(indexed, ref, { client: new RegistryClient() });
    const pulled = await readRegistryImage(ref, new RegistryClient());
    const expectedFiles = (await readImageFiles(base)).overlay([[BASE_INDEX_PATH, { t: 'f' }]]).toJSON();

    // A registry sink mounts the base's blobs: none but the index's is downloaded.
    const told: [boolean, string | undefined][] = [];
    const noBlobs = new Image(pulled.config, pulled.layers.map((l) => new ProbeLayer(l)));
    const cache = new BlobCache(path.join(tmp, 'cache-indexed'));
    const read = await readBase(noBlobs, { cache, files: true, blobs: false, onIndex: (used, why) => void told.push([used, why]) });
    expect(told).toEqual([[true, undefined]]);
    expect(noBlobs.layers.map((l) => (l as ProbeLayer).opened)).toEqual([0, 0, 1]);
    expect(read.info).toEqual(await inspectBase(base));
    expect(read.files!.toJSON()).toEqual(expectedFiles);
    expect(read.image.layers.map((l) => blobFileOf(l) !== null)).toEqual([false, false, true]);
    expect(read.image.digest()).toBe(indexed.digest());

    // oci: and archive: write the base from disk: every blob is stored, each downloaded once, none inflated.
    const withBlobs = new Image(pulled.config, pulled.layers.map((l) => new ProbeLayer(l)));
    const cache2 = new BlobCache(path.join(tmp, 'cache-indexed-2'));
    const read2 = await readBase(withBlobs, { cache: cache2, files: true });
    expect(withBlobs.layers.map((l) => (l as ProbeLayer).opened)).toEqual([1, 1, 1]);
    for (const l of read2.image.layers) expect(await sha256(blobFileOf(l)!)).toBe(l.digest);
    expect(read2.info).toEqual(read.info);
    expect(read2.files!.toJSON()).toEqual(expectedFiles);
    await validateImage(read2.image);

    // The same base without its index, as a child that added a layer has it: read layer by layer, as before.
    const child = appendLayers(indexed, [{ layer: await writeLayer([{ path: 'opt/child.txt', type: 'file', data: Buffer.from('x') }], { cache: made }) }]);
    const told3: [boolean, string | undefined][] = [];
    const read3 = await readBase(child, { cache: new BlobCache(path.join(tmp, 'cache-indexed-3')), files: true, onIndex: (used, why) => void told3.push([used, why]) });
    expect(told3).toEqual([[false, 'the last layer has /opt']]);
    expect(read3.info).toEqual(read.info);
    expect(read3.files!.nodes.get('opt/child.txt')).toEqual({ t: 'f' });
  });
});

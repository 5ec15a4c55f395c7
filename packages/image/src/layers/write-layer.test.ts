import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tar from 'tar-stream';
import { BlobCache } from '../cache/blob-cache.js';
import { readDockerArchive } from '../sources/docker-archive.js';
import { writeDockerArchive } from '../sinks/docker-archive.js';
import { appendLayers, emptyImage, mutateConfig } from '../core/mutate.js';
import { validateImage } from '../validate/validate-image.js';
import { planEntries, writeLayer, type LayerEntry } from './write-layer.js';
import { readAll } from '../core/streams.js';
import { MEDIA_TYPES } from '../core/layer.js';
import { readOciLayout } from '../sources/oci-layout.js';
import { writeOciLayout } from '../sinks/oci-layout.js';

const run = promisify(execFile);
let tmp: string;
let cache: BlobCache;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-layer-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const entries = (): LayerEntry[] => [
  { path: 'app/b.txt', type: 'file', data: Buffer.from('bee\n'), uid: 4801, gid: 4801 },
  { path: 'app/a.sh', type: 'file', data: Buffer.from('#!/bin/sh\necho a\n'), mode: 0o755 },
  { path: 'env/bin/python', type: 'symlink', linkname: '/usr/bin/python3.11' },
  { path: 'app/big.bin', type: 'file', size: 3, open: () => Readable.from([Buffer.from('xyz')]) },
];

async function listTar(stream: NodeJS.ReadableStream): Promise<string[]> {
  const out: string[] = [];
  const ex = tar.extract();
  (stream as Readable).pipe(ex as unknown as NodeJS.WritableStream);
  for await (const e of ex) {
    const h = e.header;
    const body = (await readAll(e as unknown as Readable)).toString('utf8');
    out.push(`${h.type} ${h.name} ${h.mode.toString(8)} ${h.uid}:${h.gid} ${h.mtime.getTime() / 1000}${h.linkname ? ' -> ' + h.linkname : ''}${body ? ' ' + JSON.stringify(body) : ''}`);
  }
  return out;
}

describe('planEntries', () => {
  it('sorts, adds parents, refuses escapes and duplicates', () => {
    expect(planEntries(entries()).map((e) => e.path)).toEqual([
      'app', 'app/a.sh', 'app/b.txt', 'app/big.bin', 'env', 'env/bin', 'env/bin/python',
    ]);
    expect(() => planEntries([{ path: 'a/../../etc/passwd', type: 'file' }])).toThrow('layer path escapes the root: a/../../etc/passwd');
    expect(() => planEntries([{ path: 'a', type: 'file' }, { path: '/a', type: 'file' }])).toThrow('two entries for /a in one layer');
  });
});

describe('writeLayer', () => {
  it('writes a reproducible tar: sorted, fixed mtimes and owners, normalised modes', async () => {
    const layer = await writeLayer(entries(), { cache, mtime: 1700000000 });
    expect(await listTar(await layer.uncompressed())).toEqual([
      'directory app/ 755 0:0 1700000000',
      'file app/a.sh 755 0:0 1700000000 "#!/bin/sh\\necho a\\n"',
      'file app/b.txt 644 4801:4801 1700000000 "bee\\n"',
      'file app/big.bin 644 0:0 1700000000 "xyz"',
      'directory env/ 755 0:0 1700000000',
      'directory env/bin/ 755 0:0 1700000000',
      'symlink env/bin/python 777 0:0 1700000000 -> /usr/bin/python3.11',
    ]);
    const again = await writeLayer(entries().reverse(), { cache, mtime: 1700000000 });
    expect(again.digest).toBe(layer.digest);
    expect(again.diffId).toBe(layer.diffId);
    const other = await writeLayer(entries(), { cache, mtime: 0 });
    expect(other.digest).not.toBe(layer.digest);
    const { stdout } = await run('sh', ['-c', `gzip -dc < ${cache.pathOf(layer.digest)} | sha256sum`]);
    expect(`sha256:${stdout.split(' ')[0]}`).toBe(layer.diffId);
  });

  it('gives the same bytes whatever number of blocks are compressed at once, and whatever the size of the pool', async () => {
    // ~7 MiB of compressible text in files of many sizes: several 1 MiB blocks, cut inside files.
    const files: LayerEntry[] = Array.from({ length: 60 }, (_, i) => ({
      path: `lib/m${i}.py`,
      type: 'file',
      data: Buffer.from(Array.from({ length: 3000 + i * 60 }, (_, j) => `value_${i}_${j} = ${(i * 7919 + j * 104729) % 1000003}\n`).join('')),
    }));
    const layers = await Promise.all([1, 2, 4, 8].map((threads) => writeLayer(files, { cache: new BlobCache(path.join(tmp, `threads-${threads}`)), threads })));
    expect(files.reduce((n, f) => n + f.data!.length, 0)).toBeGreaterThan(4 << 20);
    expect(new Set(layers.map((l) => `${l.digest} ${l.diffId}`)).size).toBe(1);
    // Another process with a pool of one thread (UV_THREADPOOL_SIZE=1), writing the same entries.
    const script = path.join(tmp, 'one-thread.mts');
    await fs.writeFile(
      script,
      `import { BlobCache } from ${JSON.stringify(path.resolve('packages/image/src/cache/blob-cache.ts'))};\n` +
        `import { writeLayer } from ${JSON.stringify(path.resolve('packages/image/src/layers/write-layer.ts'))};\n` +
        `const files = JSON.parse(await (await import('node:fs/promises')).readFile(process.argv[2], 'utf8')).map((f) => ({ ...f, data: Buffer.from(f.data, 'base64') }));\n` +
        `const l = await writeLayer(files, { cache: new BlobCache(process.argv[3]) });\nconsole.log(l.digest, l.diffId);\n`,
    );
    const arg = path.join(tmp, 'entries.json');
    await fs.writeFile(arg, JSON.stringify(files.map((f) => ({ path: f.path, type: f.type, data: f.data!.toString('base64') }))));
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script, arg, path.join(tmp, 'pool-1')], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
      maxBuffer: 1 << 24,
    });
    expect(stdout.trim()).toBe(`${layers[0]!.digest} ${layers[0]!.diffId}`);
  });

  it('fails on a stream shorter than announced, leaving no blob', async () => {
    const before = await fs.readdir(path.join(cache.dir, 'blobs', 'sha256'));
    await expect(
      writeLayer([{ path: 'x', type: 'file', size: 10, open: () => Readable.from([Buffer.from('abc')]) }], { cache }),
    ).rejects.toThrow();
    expect(await fs.readdir(path.join(cache.dir, 'blobs', 'sha256'))).toEqual(before);
    expect(await fs.readdir(path.join(cache.dir, 'tmp'))).toEqual([]);
  });
});

describe('OCI layout and docker archive', () => {
  it('writes an OCI layout that umoci unpacks and skopeo inspects, and reads it back', async () => {
    const layer = await writeLayer(entries(), { cache });
    let image = appendLayers(emptyImage({ created: '1970-01-01T00:00:00Z' }), [{ layer, history: { created_by: 'test' } }]);
    image = mutateConfig(image, (c) => ({ ...c, Env: ['PATH=/env/bin:/usr/bin:/bin'], WorkingDir: '/app', Cmd: ['/env/bin/python'] }));
    await validateImage(image);
    const dir = path.join(tmp, 'layout');
    await writeOciLayout(image, dir, { ref: 'latest' });
    const { stdout } = await run('skopeo', ['inspect', '--raw', `oci:${dir}:latest`]);
    expect(stdout).toBe(image.manifest('oci').bytes.toString('utf8'));
    const cfg = await run('skopeo', ['inspect', '--config', `oci:${dir}:latest`]);
    expect(JSON.parse(cfg.stdout).config.WorkingDir).toBe('/app');
    const bundle = path.join(tmp, 'bundle');
    await run('umoci', ['unpack', '--rootless', '--image', `${dir}:latest`, bundle]);
    expect(await fs.readFile(path.join(bundle, 'rootfs', 'app', 'b.txt'), 'utf8')).toBe('bee\n');
    expect(await fs.readlink(path.join(bundle, 'rootfs', 'env', 'bin', 'python'))).toBe('/usr/bin/python3.11');
    const back = await readOciLayout(dir, { ref: 'latest' });
    expect(back.digest()).toBe(image.digest());
    await validateImage(back);

    const archive = path.join(tmp, 'image.tar');
    await writeDockerArchive(image, archive, { tags: ['dstack/test:1'] });
    const fromArchive = await readDockerArchive(archive, { cache: new BlobCache(path.join(tmp, 'cache2')) });
    expect(fromArchive.layers.map((l) => l.digest)).toEqual([layer.digest]);
    expect(fromArchive.configDigest()).toBe(image.configDigest());
    await validateImage(fromArchive);
    const viaSkopeo = await run('skopeo', ['inspect', '--config', `docker-archive:${archive}`]);
    expect(JSON.parse(viaSkopeo.stdout).rootfs.diff_ids).toEqual([layer.diffId]);

    // Plain tar layers (what `docker save` gives): gzip-compressed when read by default; with compression 'none'
    // kept as they come (digest = diffID), the same image, valid, nothing compressed.
    const plainLayer = await writeLayer(entries(), { cache, compression: 'none' });
    const plainImage = appendLayers(emptyImage(), [{ layer: plainLayer }]);
    const plainArchive = path.join(tmp, 'plain.tar');
    await writeDockerArchive(plainImage, plainArchive, { tags: ['dstack/test:plain'] });
    const kept = await readDockerArchive(plainArchive, { cache: new BlobCache(path.join(tmp, 'cache-plain')), compression: 'none' });
    expect(kept.layers.map((l) => [l.digest, l.diffId, l.size, l.mediaType])).toEqual([[plainLayer.diffId, plainLayer.diffId, plainLayer.size, MEDIA_TYPES.ociLayer]]);
    expect(kept.digest()).toBe(plainImage.digest());
    await validateImage(kept);
    const gzipped = await readDockerArchive(plainArchive, { cache: new BlobCache(path.join(tmp, 'cache-gzip')) });
    expect(gzipped.layers.map((l) => [l.diffId, l.mediaType])).toEqual([[plainLayer.diffId, MEDIA_TYPES.ociLayerGzip]]);
    await validateImage(gzipped);
  });
});

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedRegistry, startFaultProxy, type SharedRegistry } from '@dstack/testing';
import { BlobCache, CachedLayer } from '../cache/blob-cache.js';
import { Image as ImageClass, type Image } from '../core/image.js';
import { validateImage } from '../validate/validate-image.js';
import { parseChallenge, parseReference, RegistryClient, RegistryError } from '@dstack/oci';
import { pushImage, type PushEvent } from './registry.js';
import { readRegistryImage } from '../sources/registry.js';
import { buildValidated, fakeBase, installerFixtures, makeWheel } from '../fixtures/wheel.test-support.js';

const run = promisify(execFile);
let tmp: string;
let registry: SharedRegistry;
let image: Image;
let cache: BlobCache;
const run_id = randomBytes(4).toString('hex');
const repo = (name: string): string => `${registry.host}/dstack-test/${name}-${run_id}:v1`;

beforeAll(async () => {
  registry = await sharedRegistry();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-image-registry-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
  const wheelDir = path.join(tmp, 'wheels');
  await fs.mkdir(wheelDir);
  const wheels: string[] = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(wheelDir, w));
  const src = path.join(tmp, 'src');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'app.py'), 'print("hi")\n');
  // Incompressible bytes, so that chunked uploads have several chunks.
  await fs.writeFile(path.join(src, 'blob.bin'), randomBytes(300_000));
  ({ image } = await buildValidated({ base: await fakeBase(cache), cache, wheels: wheels.map((p) => ({ path: p })), app: { kind: 'source', dir: src } }));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('registry', () => {
  it('parses references and challenges', () => {
    expect(parseReference('python:3.11')).toEqual({ registry: 'registry-1.docker.io', repository: 'library/python', tag: '3.11', digest: null });
    expect(parseReference('127.0.0.1:5077/a/b')).toEqual({ registry: '127.0.0.1:5077', repository: 'a/b', tag: 'latest', digest: null });
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/python:pull' },
    });
  });

  it('pushes (HEAD first, manifest last), skopeo inspects, reads back, and a second push uploads nothing', async () => {
    const ref = repo('app');
    const events: PushEvent[] = [];
    const digest = await pushImage(image, ref, { onEvent: (e) => events.push(e) });
    expect(events.map((e) => e.type)).toEqual([...image.layers.map(() => 'blob-uploaded'), 'manifest']);
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
    expect(JSON.parse(stdout).Digest).toBe(digest);
    const back = await readRegistryImage(ref);
    expect(back.digest()).toBe(image.digest());
    await validateImage(back);
    const again: PushEvent[] = [];
    expect(await pushImage(image, ref, { onEvent: (e) => again.push(e) })).toBe(digest);
    expect(again.map((e) => e.type)).toEqual([...image.layers.map(() => 'blob-exists'), 'manifest']);
    // Cross-repository mount: the layers of an image read from one repository are mounted into another.
    const mounted: PushEvent[] = [];
    await pushImage(back, repo('mounted'), { onEvent: (e) => mounted.push(e) });
    expect(mounted.map((e) => e.type)).toEqual([...image.layers.map(() => 'blob-mounted'), 'manifest']);
  });

  it('pushes plain (uncompressed) layers with Docker\'s tar media type and reads them back', async () => {
    const plainCache = new BlobCache(path.join(tmp, 'cache-plain'));
    const src = path.join(tmp, 'src-plain');
    await fs.mkdir(src, { recursive: true });
    await fs.writeFile(path.join(src, 'app.py'), 'print("plain")\n');
    const { image: plain } = await buildValidated({ base: await fakeBase(plainCache), cache: plainCache, wheels: [], app: { kind: 'source', dir: src }, compression: 'none' });
    const ref = repo('plain');
    await pushImage(plain, ref);
    const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout) as { layers: { mediaType: string }[] };
    expect(raw.layers.slice(1).map((l) => l.mediaType)).toEqual(Array(3).fill('application/vnd.docker.image.rootfs.diff.tar'));
    const back = await readRegistryImage(ref);
    expect(back.digest()).toBe(plain.digest());
    await validateImage(back);
  });

  it('reads an OCI index (manifest list) as its linux/amd64 image', async () => {
    const ref = repo('multi');
    const amd64 = await pushImage(image, ref, { format: 'oci' });
    const other = await pushImage(image, ref.replace(':v1', ':other'), { format: 'docker' });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: other, size: image.manifest('docker').bytes.length, platform: { architecture: 'arm64', os: 'linux' } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd64, size: image.manifest('oci').bytes.length, platform: { architecture: 'amd64', os: 'linux' } },
        ],
      }),
    );
    const parsed = parseReference(ref);
    const res = await fetch(`${registry.url}/v2/${parsed.repository}/manifests/index`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
      body: index,
    });
    expect(res.status).toBe(201);
    const back = await readRegistryImage(ref.replace(':v1', ':index'));
    expect(back.manifest('oci').digest).toBe(amd64);
    await validateImage(back);
  });

  it('completes a push through 500s and a dropped connection, monolithic and chunked', async () => {
    const proxy = await startFaultProxy(
      { host: '127.0.0.1', port: registry.port },
      {
        faults: [
          { method: 'HEAD', path: /\/blobs\/sha256:/, kind: 'status', status: 503 },
          { method: 'POST', path: /\/blobs\/uploads\/$/, kind: 'status', status: 500 },
          { method: 'PUT', path: /\/blobs\/uploads\//, kind: 'status', status: 500 },
          { method: 'PATCH', path: /\/blobs\/uploads\//, kind: 'drop' },
          { method: 'PUT', path: /\/manifests\//, kind: 'status', status: 502 },
        ],
      },
    );
    try {
      const ref = `${proxy.host}/dstack-test/faulty-${run_id}:v1`;
      const client = new RegistryClient({ backoffMs: 10, chunkSize: 64 * 1024 });
      const digest = await pushImage(image, ref, { client });
      expect(proxy.injected.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([
        'status HEAD', 'status POST', 'status PUT', 'drop PATCH', 'status PUT',
      ]);
      expect(proxy.log.filter((l) => l.startsWith('PATCH')).length).toBeGreaterThan(4);
      const back = await readRegistryImage(`${registry.host}/dstack-test/faulty-${run_id}:v1`);
      expect(back.digest()).toBe(image.digest());
      expect(image.manifest('docker').digest).toBe(digest);
      await validateImage(back);
    } finally {
      await proxy.close();
    }
  });

  it('fails a corrupted blob with the registry digest error, without retrying it', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    try {
      // A copy of the app layer whose bytes no longer match its digest.
      const bad = new BlobCache(path.join(tmp, 'bad'));
      const last = image.layers.at(-1)!;
      await bad.put(await last.compressed());
      const file = bad.pathOf(last.digest);
      const bytes = await fs.readFile(file);
      bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff;
      await fs.writeFile(file, bytes);
      const corrupt = new CachedLayer(bad, { digest: last.digest, diffId: last.diffId, size: last.size, mediaType: last.mediaType });
      const img = new ImageClass(image.config, [...image.layers.slice(0, -1), corrupt]);
      const ref = `${proxy.host}/dstack-test/corrupt-${run_id}:v1`;
      const err = await pushImage(img, ref, { client: new RegistryClient({ backoffMs: 10 }) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).code).toBe('REGISTRY_DIGEST_INVALID');
      expect((err as RegistryError).temporary).toBe(false);
      expect((err as RegistryError).message).toMatch(/^upload sha256:[0-9a-f]{64} to .*: HTTP 400 \(DIGEST_INVALID: /);
      expect(proxy.log.filter((l) => l.startsWith('PUT') && l.includes(last.digest.slice(7)))).toHaveLength(1);
      expect(proxy.log.some((l) => l.startsWith('PUT') && l.includes('/manifests/'))).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('answers a bearer challenge with a token from the realm (with credentials)', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port }, { bearer: { user: 'ci', password: 's3cret' } });
    try {
      const ref = `${proxy.host}/dstack-test/token-${run_id}:v1`;
      const denied = await pushImage(image, ref, { client: new RegistryClient() }).catch((e: unknown) => e);
      expect((denied as RegistryError).code).toBe('REGISTRY_UNAUTHORIZED');
      const client = new RegistryClient({ credentials: { [proxy.host]: { username: 'ci', password: 's3cret' } } });
      await pushImage(image, ref, { client });
      const back = await readRegistryImage(ref, client);
      expect(back.digest()).toBe(image.digest());
      await validateImage(back);
      expect(proxy.tokenRequests).toBeGreaterThanOrEqual(2);
    } finally {
      await proxy.close();
    }
  });
});

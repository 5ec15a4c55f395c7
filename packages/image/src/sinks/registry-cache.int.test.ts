// The registry layer cache against the real registry, and through the fault proxy for what a registry will not do
// on demand: a failing manifest GET, a dropped connection, a body cut short, a blob sent with a flipped byte.
// Whatever fails, the image is the one the first machine built; a blob that cannot be had is rebuilt, never used.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '@dstack/oci';
import { sharedRegistry, startFaultProxy } from '@dstack/testing';
import { BlobCache } from '../cache/blob-cache.js';
import type { Image } from '../core/image.js';
import type { WheelInput } from '../app/build-app-image.js';
import { buildValidated, fakeBase, makeWheel } from '../fixtures/wheel.test-support.js';
import { exportLayerCache, recordUse, RegistryLayerCache } from './registry-cache.js';
import { pushImage } from './registry.js';

let tmp: string;
let host: string;
let base: Image;
const id = randomBytes(4).toString('hex');
const fast = { attempts: 3, backoffMs: 10 };

/** A wheel; `modules` more files make its segment's path list long (its record then goes to the values blob). */
async function wheel(name: string, version: string, modules = 0): Promise<WheelInput> {
  const dir = path.join(tmp, 'wheels');
  await fs.mkdir(dir, { recursive: true });
  const files: Record<string, string> = { [`${name}/__init__.py`]: `V = "${version}"\n`, [`${name}/data.txt`]: randomBytes(3000).toString('hex') };
  for (let i = 0; i < modules; i++) files[`${name}/module_with_a_long_name_${i}.py`] = `I = ${i}\n`;
  const file = await makeWheel(dir, { name, version, files });
  const { createHash } = await import('node:crypto');
  return { path: file, sha256: createHash('sha256').update(await fs.readFile(file)).digest('hex') };
}

/** One machine's build: its own cache folder, the registry cache imported first when given. */
async function build(name: string, wheels: WheelInput[], remote: RegistryLayerCache | null = null) {
  const cache = new BlobCache(path.join(tmp, name));
  if (remote) remote.attachTo(cache);
  const used = recordUse(cache);
  const result = await buildValidated({ base, cache, wheels, pip: false });
  return { cache, used, result, deps: result.layers.find((l) => l.role === 'dependencies')! };
}

let wheels: WheelInput[];
let cacheRef: string;
let first: Awaited<ReturnType<typeof build>>;

beforeAll(async () => {
  host = (await sharedRegistry()).host;
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-regcache-lib-'));
  base = await fakeBase(new BlobCache(path.join(tmp, 'base')));
  wheels = [await wheel('alpha', '1.0'), await wheel('beta', '1.0'), await wheel('gamma', '1.0', 60)];
  cacheRef = `${host}/dstack-test/regcache-lib-${id}:cache`;
  first = await build('a', wheels);
  await exportLayerCache(cacheRef, { client: new RegistryClient(), cache: first.cache, used: first.used, previous: null });
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('the registry layer cache', () => {
  it('is one OCI image manifest: the records in its config, the blobs they name as its layers', async () => {
    const [name, tag] = cacheRef.slice(host.length + 1).split(':');
    const res = await fetch(`http://${host}/v2/${name}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(res.headers.get('content-type')).toBe('application/vnd.oci.image.manifest.v1+json');
    const m = (await res.json()) as { mediaType: string; config: { mediaType: string }; layers: { digest: string; mediaType: string }[] };
    expect(m.config.mediaType).toBe('application/vnd.dstack-factory.layer-cache.v1+json');
    // The dependency layer, and the values blob: gamma's segment lists 62 paths, too long for the config.
    expect(m.layers).toEqual([
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: first.deps.digest, size: first.deps.size },
      { mediaType: 'application/vnd.dstack-factory.layer-cache.values.v1+json+gzip', digest: expect.stringMatching(/^sha256:/), size: expect.any(Number) },
    ]);
    const cache = await RegistryLayerCache.open(cacheRef, { client: new RegistryClient() });
    expect(cache.records.map((r) => `${r.namespace} ${r.family} ${r.value === undefined ? 'in the values blob' : 'inline'}`).sort()).toEqual([
      'base base inline',
      'layers layers inline',
      'segments segments:alpha inline',
      'segments segments:beta inline',
      'segments segments:gamma in the values blob',
    ]);
    const gamma = cache.records.find((r) => r.family === 'segments:gamma')!;
    expect(await cache.record('segments', gamma.key)).toMatchObject({ blob: first.deps.digest, paths: expect.arrayContaining(['env/lib/python3.11/site-packages/gamma/module_with_a_long_name_59.py']) });
  });

  it('through faults (a manifest GET failing, a dropped connection, a body cut short) B still gets A\'s layer and digest', async () => {
    const up = await sharedRegistry();
    const proxy = await startFaultProxy(
      { host: '127.0.0.1', port: up.port },
      {
        faults: [
          { method: 'GET', path: /\/manifests\/cache$/, kind: 'status', status: 503 },
          { method: 'GET', path: new RegExp(`/blobs/${first.deps.digest}$`), kind: 'drop' },
          { method: 'GET', path: new RegExp(`/blobs/${first.deps.digest}$`), kind: 'truncate' },
        ],
      },
    );
    try {
      const ref = cacheRef.replace(host, proxy.host);
      const remote = await RegistryLayerCache.open(ref, { client: new RegistryClient(fast) });
      const b = await build('b-faults', wheels, remote);
      expect(b.result.image.digest()).toBe(first.result.image.digest());
      expect(b.deps).toMatchObject({ digest: first.deps.digest, cached: true });
      expect(proxy.injected).toEqual([
        `status GET /v2/${ref.slice(proxy.host.length + 1).replace(':cache', '')}/manifests/cache`,
        `drop GET /v2/dstack-test/regcache-lib-${id}/blobs/${first.deps.digest}`,
        `truncate GET /v2/dstack-test/regcache-lib-${id}/blobs/${first.deps.digest}`,
      ]);
    } finally {
      await proxy.close();
    }
  });

  it('a blob sent with a flipped byte is not used: the layer is rebuilt from the wheels, same digest', async () => {
    const up = await sharedRegistry();
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: up.port }, { faults: [{ method: 'GET', path: new RegExp(`/blobs/${first.deps.digest}$`), kind: 'corrupt' }] });
    try {
      const remote = await RegistryLayerCache.open(cacheRef.replace(host, proxy.host), { client: new RegistryClient(fast) });
      const b = await build('b-corrupt', wheels, remote);
      expect(proxy.injected).toEqual([`corrupt GET /v2/dstack-test/regcache-lib-${id}/blobs/${first.deps.digest}`]);
      expect(b.deps).toMatchObject({ digest: first.deps.digest, cached: false, segments: { built: 3, reused: 0 } });
      expect(b.result.image.digest()).toBe(first.result.image.digest());
      expect(await b.cache.has(first.deps.digest)).toBe(true); // the rebuilt one, not the corrupt download
    } finally {
      await proxy.close();
    }
  });

  it('--cache-keep: a family keeps its newest records; a blob no kept record names leaves the manifest', async () => {
    const ref = `${host}/dstack-test/regcache-keep-${id}:cache`;
    const client = new RegistryClient();
    const one = await build('keep', wheels);
    await exportLayerCache(ref, { client, cache: one.cache, used: one.used, previous: null, keep: 1, now: new Date('2026-01-01T00:00:00Z') });
    // alpha 2.0: the same machine, so beta's and gamma's segments are copied into the new blob and recorded there.
    const changed = [await wheel('alpha', '2.0'), wheels[1]!, wheels[2]!];
    const two = await build('keep', changed);
    expect(two.deps.segments).toEqual({ built: 1, reused: 2 });
    const result = await exportLayerCache(ref, { client, cache: two.cache, used: two.used, previous: await RegistryLayerCache.open(ref, { client }), keep: 1, now: new Date('2026-01-02T00:00:00Z') });
    // Dropped: the first dependency layer and alpha 1.0's segment.
    expect(result).toEqual({ digest: expect.stringMatching(/^sha256:/), records: 5, dropped: 2, blobs: { present: 0, mounted: 0, uploaded: 1 } });
    const after = await RegistryLayerCache.open(ref, { client });
    expect([...after.blobs.keys()]).toEqual([two.deps.digest]);
    expect(after.records.filter((r) => r.namespace === 'layers').map((r) => (r.value as { digest: string }).digest)).toEqual([two.deps.digest]);
    // A build that used none of them: every record stays, gamma's long one read back from the old values blob.
    const idle = await exportLayerCache(ref, { client, cache: two.cache, used: new Map(), previous: after, keep: 1 });
    expect(idle).toMatchObject({ records: 5, dropped: 0, blobs: { present: 1, mounted: 0, uploaded: 0 } });
    const again = await RegistryLayerCache.open(ref, { client });
    const gamma = again.records.find((r) => r.family === 'segments:gamma')!;
    expect(gamma.value).toBeUndefined();
    expect(await again.record('segments', gamma.key)).toMatchObject({ blob: two.deps.digest });
  });

  it('refuses to read or overwrite a tag that holds an image', async () => {
    const ref = `${host}/dstack-test/regcache-image-${id}:v1`;
    await pushImage(first.result.image, ref);
    const error = await RegistryLayerCache.open(ref, { client: new RegistryClient() }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'IMAGE_LAYER_CACHE_INVALID',
      message: `${ref} is not a dstack-factory layer cache: its config is application/vnd.docker.container.image.v1+json, not application/vnd.dstack-factory.layer-cache.v1+json`,
    });
  });
});

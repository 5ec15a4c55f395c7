import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../cache/blob-cache.js';
import { Image } from '../core/image.js';
import { appendLayers, emptyImage } from '../core/mutate.js';
import { installerFixtures, makeWheel, ProbeLayer } from '../fixtures/wheel.test-support.js';
import { writeLayer } from '../layers/write-layer.js';
import { buildAppImage } from './build-app-image.js';
import { rebaseAppImage } from './rebase-app-image.js';
import { withBaseIndex } from './base-index.js';

let tmp: string;
let cache: BlobCache;
let wheels: string[];

/** A Debian-like base: python3.11 at `python`, libc6 at `libc` (dpkg status), `extra` files. */
async function base(python: string, libc: string, extra: { path: string; data: string }[] = []): Promise<Image> {
  const layer = await writeLayer(
    [
      { path: 'usr/bin/python3.11', type: 'file', data: Buffer.from('ELF'), mode: 0o755 },
      { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/bash\n') },
      { path: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\n') },
      {
        path: 'var/lib/dpkg/status',
        type: 'file',
        data: Buffer.from(`Package: libc6\nStatus: install ok installed\nVersion: ${libc}\n\nPackage: python3.11-minimal\nStatus: install ok installed\nVersion: ${python}-6+deb12u6\n\n`),
      },
      { path: 'usr/lib/x86_64-linux-gnu/libc.so.6', type: 'file', data: Buffer.from(`GNU C Library (Debian GLIBC ${libc}) stable release version ${libc.replace(/-.*$/, '')}.\n`) },
      ...extra.map((e) => ({ path: e.path, type: 'file' as const, data: Buffer.from(e.data) })),
    ],
    { cache },
  );
  return appendLayers(emptyImage(), [{ layer, history: { created_by: 'test base' } }]);
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-rebase-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
  wheels = [];
  for (const w of installerFixtures()) wheels.push(await makeWheel(tmp, w));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('rebaseAppImage', () => {
  it('keeps the dependency and app layers on a patched base of the same target; writes only the runtime layer', async () => {
    const old = await base('3.11.2', '2.36-9+deb12u4');
    const src = path.join(tmp, 'src');
    await fs.mkdir(src, { recursive: true });
    await fs.writeFile(path.join(src, 'app.py'), 'print(1)\n');
    const app = await buildAppImage({ base: old, cache, wheels: wheels.map((p) => ({ path: p })), app: { kind: 'source', dir: src }, uid: 1234, cmd: ['python', 'app.py'], labels: { a: 'b' } });
    const patched = await base('3.11.2', '2.36-9+deb12u9', [{ path: 'etc/patched', data: 'yes\n' }]);
    const result = await rebaseAppImage({ image: app.image, newBase: patched, cache });
    expect(result.from).toEqual({ os: 'linux', architecture: 'x86_64', python: '3.11.2', libc: 'glibc 2.36', name: 'cp3_11_2-manylinux_2_36_x86_64' });
    expect(result.to).toEqual(result.from);
    const kept = app.layers.filter((l) => l.role !== 'runtime').map((l) => [l.role, l.digest]);
    expect(result.layers.filter((l) => l.role !== 'runtime').map((l) => [l.role, l.digest])).toEqual(kept);
    expect(result.image.layers.map((l) => l.digest)).toEqual([...patched.layers.map((l) => l.digest), result.layers[0]!.digest, ...kept.map(([, d]) => d)]);
    const cfg = result.image.config.config!;
    expect([cfg.User, cfg.WorkingDir, cfg.Cmd, cfg.Labels, cfg.Env?.slice(0, 3)]).toEqual([
      '1234:1234',
      '/app',
      ['python', 'app.py'],
      { a: 'b' },
      ['PATH=/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/app', 'VIRTUAL_ENV=/env'],
    ]);
    expect(result.libraries).toEqual({ problems: [], checked: 0, packagesFrom: null });
  });

  it('refuses a base of another Python, C library or platform, saying which; and an image it did not build', async () => {
    const old = await base('3.11.2', '2.36-9+deb12u4');
    const app = await buildAppImage({ base: old, cache, wheels: wheels.map((p) => ({ path: p })) });
    const newer = await base('3.11.9', '2.38-1');
    await expect(rebaseAppImage({ image: app.image, newBase: newer, cache })).rejects.toMatchObject({
      code: 'IMAGE_REBASE_TARGET',
      message: "the new base is not the same target as the image's: Python 3.11.2 -> 3.11.9, C library glibc 2.36 -> glibc 2.38",
    });
    const arm = new Image({ ...old.config, architecture: 'arm64', variant: 'v8' } as typeof old.config, old.layers);
    await expect(rebaseAppImage({ image: app.image, newBase: arm, cache })).rejects.toThrow(
      "the new base is not the same target as the image's: platform linux/x86_64 -> linux/aarch64",
    );
    await expect(rebaseAppImage({ image: old, newBase: old, cache })).rejects.toMatchObject({
      code: 'IMAGE_REBASE_UNKNOWN',
      message: 'the image has no runtime and dependency layers made by dstack-factory image app',
    });
  });

  it('reads a new base that carries its base index from that index alone (image runtime rebuilt)', async () => {
    const old = await base('3.11.2', '2.36-9+deb12u4');
    const app = await buildAppImage({ base: old, cache, wheels: wheels.map((p) => ({ path: p })) });
    const { image: indexed } = await withBaseIndex(await base('3.11.2', '2.36-9+deb12u9', [{ path: 'etc/indexed', data: 'yes\n' }]), { cache });
    // Its layers below the index cannot be read: the facts come from the index (a fresh cache: nothing cached).
    const probe = new Image(indexed.config, indexed.layers.map((l, i) => (i < indexed.layers.length - 1 ? new ProbeLayer(l, { refuse: true }) : l)));
    const result = await rebaseAppImage({ image: app.image, newBase: probe, cache: new BlobCache(path.join(tmp, 'cache-indexed')), checkLibraries: false });
    expect(result.to).toEqual(result.from);
    expect(result.image.layers.slice(0, indexed.layers.length).map((l) => l.digest)).toEqual(indexed.layers.map((l) => l.digest));
  });
});

// A base's index of its own layers (base-index.ts): what reading the base finds, carried as its last layer, used
// only when it names exactly the layers below it and is well formed; else the layers are read as for any base.
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../cache/blob-cache.js';
import { readImageFiles } from '../check/image-files.js';
import { Image } from '../core/image.js';
import { appendLayers, mutateConfig } from '../core/mutate.js';
import { fakeBase, ProbeLayer } from '../fixtures/wheel.test-support.js';
import { validateImage } from '../validate/validate-image.js';
import { inspectBase } from '../layers/base-info.js';
import { writeLayer, type LayerEntry } from '../layers/write-layer.js';
import { BASE_INDEX_PATH, baseIndexOf, readBaseIndex, withBaseIndex } from './base-index.js';
import { readBase } from './read-base.js';

let tmp: string;
let cache: BlobCache;
let base: Image;

/** The image with every layer but the last unreadable. */
const onlyTopReadable = (image: Image): Image =>
  new Image(
    image.config,
    image.layers.map((l, i) => (i < image.layers.length - 1 ? new ProbeLayer(l, { refuse: true }) : l)),
  );

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-base-index-'));
  cache = new BlobCache(path.join(tmp, 'cache'));
  const libs = await writeLayer(
    [
      {
        path: 'usr/lib/x86_64-linux-gnu/libc.so.6',
        type: 'file',
        data: readFileSync('/lib/x86_64-linux-gnu/libc.so.6'),
        mode: 0o755,
      },
      {
        path: 'lib64/ld-linux-x86-64.so.2',
        type: 'symlink',
        linkname: '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
      },
      {
        path: 'usr/lib/x86_64-linux-gnu/libz.so.1',
        type: 'file',
        data: readFileSync('/lib/x86_64-linux-gnu/libz.so.1'),
      },
      { path: 'etc/ld.so.conf', type: 'file', data: Buffer.from('/usr/local/lib\n') },
      { path: 'usr/share/python-wheels/pip-23.0.1-py3-none-any.whl', type: 'file', data: Buffer.from('PK') },
      { path: 'env/pyvenv.cfg', type: 'file', data: Buffer.from('home = /usr/bin\nversion = 3.11.2\n') },
      { path: 'etc/.wh.group', type: 'file', data: Buffer.alloc(0) },
    ],
    { cache },
  );
  base = appendLayers(await fakeBase(cache), [{ layer: libs }]);
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** The base with `entries` as its last layer. */
async function withTop(
  image: Image,
  entries: LayerEntry[],
  compression: 'gzip' | 'none' = 'gzip',
): Promise<Image> {
  return appendLayers(image, [{ layer: await writeLayer(entries, { cache, compression }) }]);
}

describe('a base index', () => {
  it('answers for the layers below it: the same facts and file index, none of those layers read', async () => {
    const { image, index } = await withBaseIndex(base, { cache });
    await validateImage(image);
    expect(image.layers).toHaveLength(3);
    expect(index.diffIds).toEqual(base.config.rootfs.diff_ids);
    expect(image.config.history!.at(-1)!.created_by).toBe(
      `dstack-factory: base index (/${BASE_INDEX_PATH}: facts and file index of the 2 layers below)`,
    );
    const walked = await inspectBase(base);
    expect(walked.pythonFullVersion).toBe('3.11.2');
    expect(walked.pipWheel).toBe('/usr/share/python-wheels/pip-23.0.1-py3-none-any.whl');
    expect(walked.group).toBeNull();
    let n = 0;
    const fresh = (): BlobCache => new BlobCache(path.join(tmp, `read-${++n}`));
    const read = await readBase(onlyTopReadable(image), { cache: fresh(), files: true, blobs: false });
    expect(read.info).toEqual(walked);
    // The file index: the base's, with the index's own file and directories laid over it.
    const files = read.files!;
    const expected = (await readImageFiles(base)).overlay([[BASE_INDEX_PATH, { t: 'f' }]]);
    expect(files.toJSON()).toEqual(expected.toJSON());
    expect(files.nodes.get('var/lib/dstack-factory')).toEqual({ t: 'd' });
    // Without the index the same unreadable layers fail: the test above did not pass by accident.
    const unindexed = appendLayers(base, [
      { layer: await writeLayer([{ path: 'x', type: 'file', data: Buffer.from('x') }], { cache }) },
    ]);
    await expect(
      readBase(onlyTopReadable(unindexed), { cache: fresh(), files: true, blobs: false }),
    ).rejects.toThrow(/was read/);
  });

  it('is the same bytes for the same layers: the layer is reproducible', async () => {
    const a = await withBaseIndex(base, { cache, mtime: 1700000000 });
    const b = await withBaseIndex(base, { cache, mtime: 1700000000 });
    expect(a.image.layers.at(-1)!.digest).toBe(b.image.layers.at(-1)!.digest);
    expect(a.image.config.history!.at(-1)!.created).toBe('2023-11-14T22:13:20Z');
  });

  it("takes the config as it is when read: a child's ENV PYTHON_VERSION and platform apply, its facts stay", async () => {
    const { image } = await withBaseIndex(base, { cache });
    // ENV adds no layer: the index is still the last layer and still names the layers below it.
    const child = mutateConfig(image, (c) => ({ ...c, Env: ['PYTHON_VERSION=3.11.9'] }));
    const info = (
      await readBase(onlyTopReadable(child), {
        cache: new BlobCache(path.join(tmp, 'read-child')),
        blobs: false,
      })
    ).info;
    expect(info.pythonFullVersion).toBe('3.11.9');
    expect(info.target.name).toMatch(/^cp3_11_9-manylinux_/);
  });

  it('is not used when it names other layers, has company, is malformed or of another version: the layers are read', async () => {
    const reasons: string[] = [];
    const why = (r: string): void => void reasons.push(r);
    const index = await baseIndexOf(base);
    const walked = await inspectBase(base);
    const json = (x: unknown): LayerEntry[] => [
      {
        path: BASE_INDEX_PATH,
        type: 'file',
        data: Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)),
      },
    ];
    const cases: [string, Image][] = [
      // An index of the base laid on a child that added a layer: it does not describe that layer.
      [
        'it describes other layers than the ones below it',
        await withTop(
          await withTop(base, [{ path: 'opt/extra', type: 'file', data: Buffer.from('x') }]),
          json(index),
        ),
      ],
      [
        'the last layer has /etc',
        await withTop(base, [
          ...json(index),
          { path: 'etc/passwd', type: 'file', data: Buffer.from('evil:x:0:0::/:/bin/sh\n') },
        ]),
      ],
      [
        `the last layer has /${BASE_INDEX_PATH} as a symlink of 0 bytes (a file of at most 64 MiB is an index)`,
        await withTop(base, [{ path: BASE_INDEX_PATH, type: 'symlink', linkname: '/etc/passwd' }]),
      ],
      [
        `/${BASE_INDEX_PATH} is not JSON`,
        await withTop(base, json('{"kind": "dstack-factory base index", ')),
      ],
      ['version 2 is not known (1 is)', await withTop(base, json({ ...index, v: 2 }))],
      [
        'its facts are not well formed (interpreters: not python3.X paths)',
        await withTop(
          base,
          json({ ...index, facts: { ...index.facts, interpreters: 'usr/bin/python3.11' } }),
        ),
      ],
      // Paths the walk would never have kept: refused before anything reads them.
      [
        'its facts are not well formed (interpreters: not python3.X paths)',
        await withTop(base, json({ ...index, facts: { ...index.facts, interpreters: ['usr/bin/python'] } })),
      ],
      [
        'its facts are not well formed (pipWheels: not pip wheel paths)',
        await withTop(base, json({ ...index, facts: { ...index.facts, pipWheels: ['tmp/pip.whl'] } })),
      ],
      [
        "its facts are not well formed (files: not the tracked files' text)",
        await withTop(base, json({ ...index, facts: { ...index.facts, files: { 'etc/shadow': 'x' } } })),
      ],
      [
        'its file index is not well formed',
        await withTop(
          base,
          json({ ...index, files: { ...index.files, nodes: { 'usr/lib/x': { t: 'l' } } } }),
        ),
      ],
      ['not a base index', await withTop(base, json({ ...index, kind: 'something else' }))],
      [
        `the last layer has no /${BASE_INDEX_PATH}`,
        await withTop(base, [{ path: 'var/lib/dstack-factory', type: 'directory' }]),
      ],
    ];
    for (const [reason, image] of cases) {
      reasons.length = 0;
      expect(await readBaseIndex(image, undefined, why)).toBeNull();
      expect(reasons).toEqual([expect.stringContaining(reason)]);
      // Read as any base: the facts come from its layers (the layer on top changes none of them here but passwd).
      const info = await inspectBase(image);
      expect(info.pythonFullVersion).toBe(walked.pythonFullVersion);
    }
    // A last layer larger than an index layer is not opened at all.
    reasons.length = 0;
    const big = await withTop(base, [{ path: 'big', type: 'file', data: Buffer.alloc(17 << 20, 1) }], 'none');
    expect(
      await readBaseIndex(
        onlyTopReadable(
          new Image(
            big.config,
            big.layers.map((l, i) => (i === 2 ? new ProbeLayer(l, { refuse: true }) : l)),
          ),
        ),
        undefined,
        why,
      ),
    ).toBeNull();
    expect(reasons).toEqual(['the last layer is larger than an index layer']);
  });
});

// What the docker executor copies into the container: every host path a recipe reads, at its own path.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extract } from 'tar-stream';
import type { BuildJob } from '../executor.js';
import { buildInputs, packInputs } from './inputs.js';

let root: string;

function job(recipePath: string | null, extra: Partial<BuildJob> = {}): BuildJob {
  return {
    id: 't',
    recipePath,
    fromWheel: null,
    wheelhouse: path.join(root, 'wheelhouse'),
    outputDir: path.join(root, 'out'),
    python: '3.11',
    jobs: 1,
    prebuild: [],
    rebuild: [],
    buildLockDir: null,
    env: {},
    ...extra,
  };
}

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-inputs-'));
  for (const dir of ['wheelhouse/.dstack', 'recipes/links', 'pkg/sub', 'repo', 'abs-links']) {
    await fs.mkdir(path.join(root, dir), { recursive: true });
  }
  await fs.writeFile(path.join(root, 'wheelhouse', 'a-1.0-py3-none-any.whl'), 'wheel a');
  await fs.writeFile(path.join(root, 'wheelhouse', 'notes.txt'), 'not a wheel');
  await fs.writeFile(path.join(root, 'wheelhouse', '.dstack', 'index.json'), '{}');
  await fs.writeFile(path.join(root, 'pkg', 'setup.py'), 'setup()');
  await fs.writeFile(path.join(root, 'pkg', 'sub', 'mod.py'), 'x = 1');
  await fs.writeFile(path.join(root, 'repo', 'HEAD'), 'ref');
  await fs.writeFile(path.join(root, 'recipes', 'links', 'b-1.0.tar.gz'), 'sdist');
  await fs.writeFile(path.join(root, 'recipes', 'base.txt'), `${path.join(root, 'pkg')}\n`);
  await fs.writeFile(
    path.join(root, 'recipes', 'app.txt'),
    [
      '--no-index',
      '--find-links links',
      `--find-links file://${path.join(root, 'abs-links')}`,
      '--find-links https://example.invalid/simple',
      '-r base.txt',
      `git+file://${path.join(root, 'repo')}@v1.0#egg=gitpkg`,
      'requests==2.0',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('buildInputs', () => {
  it('lists the wheelhouse, the recipe and its include, local requirements and local find-links', async () => {
    const inputs = await buildInputs(job(path.join(root, 'recipes', 'app.txt')), root);
    expect(inputs).toEqual([
      { path: path.join(root, 'wheelhouse'), wheelsOnly: true },
      { path: path.join(root, 'recipes', 'app.txt') },
      { path: path.join(root, 'recipes', 'base.txt') },
      { path: path.join(root, 'pkg') },
      { path: path.join(root, 'repo') },
      { path: path.join(root, 'recipes', 'links') },
      { path: path.join(root, 'abs-links') },
    ]);
  });

  it('adds the wheel of a BUILD_REQ=False job', async () => {
    const wheel = path.join(root, 'wheelhouse', 'a-1.0-py3-none-any.whl');
    expect(await buildInputs(job(null, { fromWheel: wheel }), root)).toEqual([
      { path: path.join(root, 'wheelhouse'), wheelsOnly: true },
      { path: wheel },
    ]);
  });

  it("adds the local folders of pip's PIP_FIND_LINKS, not its URLs nor missing folders", async () => {
    const wheel = path.join(root, 'wheelhouse', 'a-1.0-py3-none-any.whl');
    const env = {
      PIP_FIND_LINKS: `${path.join(root, 'abs-links')} https://example.invalid/x file://${path.join(root, 'repo')} ${path.join(root, 'missing')}`,
    };
    expect(await buildInputs(job(null, { fromWheel: wheel, env }), root)).toEqual([
      { path: path.join(root, 'wheelhouse'), wheelsOnly: true },
      { path: wheel },
      { path: path.join(root, 'abs-links') },
      { path: path.join(root, 'repo') },
    ]);
  });
});

describe('packInputs', () => {
  it('packs each input at its absolute path, with its parents, and only the wheels of the wheelhouse', async () => {
    const packed = packInputs([
      { path: path.join(root, 'wheelhouse'), wheelsOnly: true },
      { path: path.join(root, 'pkg') },
    ]);
    const files = await untarAll(packed);
    const rel = root.replace(/^\//, '');
    expect([...files.keys()].sort()).toEqual(
      [`${rel}/pkg/setup.py`, `${rel}/pkg/sub/mod.py`, `${rel}/wheelhouse/a-1.0-py3-none-any.whl`].sort(),
    );
    expect(files.get(`${rel}/wheelhouse/a-1.0-py3-none-any.whl`)?.toString()).toBe('wheel a');
    expect(await packed.total).toBe('wheel a'.length + 'setup()'.length + 'x = 1'.length);
  });
});

/** The regular files of a tar stream, by their full names. */
function untarAll(stream: NodeJS.ReadableStream): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const files = new Map<string, Buffer>();
    const ex = extract();
    ex.on('entry', (header, entry, next) => {
      const chunks: Buffer[] = [];
      entry.on('data', (c: unknown) => {
        chunks.push(c as Buffer);
      });
      entry.on('end', () => {
        if (header.type === 'file') files.set(header.name, Buffer.concat(chunks));
        next();
      });
    });
    ex.on('finish', () => resolve(files));
    ex.on('error', reject);
    stream.pipe(ex);
  });
}

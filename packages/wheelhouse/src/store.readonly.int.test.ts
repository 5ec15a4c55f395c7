// A wheelhouse mounted read-only (as a volume often is) still lists and serves, wheels dropped in it included:
// a child process sees it through a read-only bind mount in its own mount namespace (unshare -rm).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildWheel, writeWheel } from '@dstack/testing';
import { FsWheelStore } from './index.js';

const run = promisify(execFile);
const INDEX = fileURLToPath(new URL('./index.ts', import.meta.url));
let tmp: string;

beforeAll(async () => {
  try {
    await run('unshare', ['-rm', 'true']);
  } catch {
    throw new Error('this test needs unshare (util-linux) and unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)');
  }
  tmp = await mkdtemp(join(tmpdir(), 'wh-ro-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

it('lists, renders the index and serves METADATA from a read-only wheelhouse', async () => {
  const wh = join(tmp, 'wh');
  const store = new FsWheelStore(wh);
  await mkdir(join(tmp, 'src'));
  await store.add(await writeWheel(join(tmp, 'src'), { name: 'recorded', version: '1.0' }));
  await writeFile(join(wh, 'dropped-1.0-py3-none-any.whl'), await buildWheel({ name: 'dropped', version: '1.0' })); // no record yet
  const script = `
    const { FsWheelStore, writeStaticIndex } = await import(${JSON.stringify(INDEX)});
    const store = new FsWheelStore(${JSON.stringify(wh)});
    const names = (await store.list()).map((e) => e.filename);
    const index = await writeStaticIndex(store, ${JSON.stringify(join(tmp, 'out'))});
    const meta = await store.metadata('dropped-1.0-py3-none-any.whl');
    console.log(JSON.stringify({ names, index, meta }));`;
  const shell = `mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && touch "$1/probe" 2>/dev/null && echo WRITABLE; exec "$2" --conditions=@dstack/source --import tsx --input-type=module -e "$3"`;
  const { stdout } = await run('unshare', ['-rm', 'sh', '-c', shell, 'sh', wh, process.execPath, script]);
  expect(stdout).not.toContain('WRITABLE');
  const result = JSON.parse(stdout) as { names: string[]; index: unknown; meta: string };
  expect(result.names).toEqual(['dropped-1.0-py3-none-any.whl', 'recorded-1.0-py3-none-any.whl']);
  expect(result.index).toEqual({ projects: 2, files: 2 });
  expect(result.meta).toMatch(/^Metadata-Version: 2\.1\nName: dropped\n/);
  expect(await readFile(join(tmp, 'out', 'simple', 'dropped', 'dropped-1.0-py3-none-any.whl.metadata'), 'utf8')).toBe(result.meta);
});

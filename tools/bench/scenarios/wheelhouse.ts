// Adding 500 wheels to a wheelhouse (stream + sha256 + full validation against RECORD + atomic publish) and
// rendering the full static index, against the floor: `cp` of the same files plus `sha256sum` of them.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FsWheelStore, writeStaticIndex } from '@dstack/wheelhouse';
import { buildWheel, wheelFilenameOf } from '@dstack/testing';
import { ms, speedup, time, type Scenario } from '../lib.js';

const run = promisify(execFile);
const COUNT = 500;

async function makeWheels(dir: string): Promise<number> {
  let bytes = 0;
  for (let i = 0; i < COUNT; i++) {
    const name = `bench-pkg-${i % 125}`;
    const version = `1.${Math.floor(i / 125)}`;
    const mod = name.replace(/-/g, '_');
    // A few modules of text (compressible) and one blob (not), 20-120 KiB a wheel, like small real wheels.
    const files: Record<string, string | Buffer> = {};
    for (let m = 0; m < 8; m++)
      files[`${mod}/m${m}.py`] = `# module ${m}\n${'def f(x):\n    return x * 2\n'.repeat(40 + (i % 50))}`;
    files[`${mod}/_data.bin`] = randomBytes(16 * 1024 + ((i * 997) % (96 * 1024)));
    const wheel = await buildWheel({
      name,
      version,
      files,
      requires: i % 3 ? [`bench-pkg-${(i + 1) % 125}>=1.0`] : [],
    });
    bytes += wheel.length;
    await writeFile(join(dir, wheelFilenameOf({ name, version })), wheel);
  }
  return bytes;
}

const scenario: Scenario = {
  name: 'wheelhouse',
  description: `add ${COUNT} wheels (validated, hashed, atomic) + render the full static index, vs cp + sha256sum of the same files`,
  async run() {
    const tmp = await mkdtemp(join(tmpdir(), 'bench-wheelhouse-'));
    try {
      const src = join(tmp, 'src');
      await mkdir(src);
      const bytes = await makeWheels(src);
      const files = (await readdir(src)).map((f) => join(src, f));
      let n = 0;
      // Every timed run writes into a new folder; all are removed at the end, outside the timings.
      const fresh = async () => join(tmp, `run-${n++}`);
      const ours = await time(async () => {
        const dir = await fresh();
        const store = new FsWheelStore(join(dir, 'wheelhouse'));
        for (const f of files) await store.add(f);
        await writeStaticIndex(store, join(dir, 'index'));
      }, 3);
      const parallel = await time(async () => {
        const dir = await fresh();
        const store = new FsWheelStore(join(dir, 'wheelhouse'));
        let next = 0;
        const worker = async () => {
          while (next < files.length) await store.add(files[next++]!);
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
        await writeStaticIndex(store, join(dir, 'index'));
      }, 3);
      const listing = await time(async () => {
        // A new store object on a full wheelhouse: reads the records, renders everything.
        await writeStaticIndex(
          new FsWheelStore(join(tmp, `run-${n - 1}`, 'wheelhouse')),
          join(tmp, 'index-only'),
        );
      }, 3);
      const baseline = await time(async () => {
        const dir = await fresh();
        await mkdir(dir);
        await run('bash', [
          '-c',
          `cp "$1"/*.whl "$2"/ && sha256sum "$2"/*.whl > /dev/null`,
          'bench',
          src,
          dir,
        ]);
      }, 3);
      return [
        `${COUNT} wheels, ${(bytes / 1024 / 1024).toFixed(1)} MiB`,
        speedup('add + index (sequential)', ours, baseline, 'cp + sha256sum'),
        speedup('add + index (4 at a time)', parallel, baseline, 'cp + sha256sum'),
        `per wheel (sequential): ${ms(ours.median / COUNT)}; re-render the index of a full wheelhouse: ${ms(listing.median)}`,
      ];
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  },
};

export default scenario;

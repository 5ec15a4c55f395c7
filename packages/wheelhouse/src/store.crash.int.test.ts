// Crash safety with real processes: a child adding a large wheel is SIGKILLed at several points; two children add
// the same file, and conflicting files, at the same time.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLargeWheel, writeWheel } from '@dstack/testing';
import { FsWheelStore, writeStaticIndex } from './index.js';

const CHILD = fileURLToPath(new URL('./add-child.test-support.ts', import.meta.url));
const SIZE = 24 * 1024 * 1024;
const CHUNK = 256 * 1024;

let tmp: string;
let large: string;
let largeSha: string;
const filename = 'big-1.0-py3-none-any.whl';

interface Child {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  /** Resolves with the first line matching. */
  waitFor(pred: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
}

function startChild(dir: string, source: string, delayMs: number): Child {
  const proc = spawn(process.execPath, ['--conditions=@dstack/source', '--import', 'tsx', CHILD, dir, source, filename, String(CHUNK), String(delayMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pred(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    lines,
    exit,
    waitFor: (pred) =>
      new Promise((resolve, reject) => {
        const hit = lines.find(pred);
        if (hit) return resolve(hit);
        waiters.push({ pred, resolve });
        void exit.then(() => reject(new Error(`child exited before the awaited line; it printed ${JSON.stringify(lines.slice(-3))}`)));
      }),
  };
}

async function sha(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wh-crash-'));
  await mkdir(join(tmp, 'src'));
  large = await writeLargeWheel(join(tmp, 'src'), { name: 'big', version: '1.0' }, SIZE);
  largeSha = await sha(large);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('a writer killed with SIGKILL leaves no partial wheel', () => {
  const points: [string, (l: Record<string, unknown>) => boolean][] = [
    ['before any byte', (l) => l.event === 'copying'],
    ['a quarter copied', (l) => l.event === 'sent' && (l.bytes as number) >= SIZE / 4],
    ['almost all copied', (l) => l.event === 'sent' && (l.bytes as number) >= SIZE * 0.9],
    ['while validating', (l) => l.event === 'validating'],
  ];
  const dir = () => join(tmp, 'killed');

  it.each(points)('killed %s', async (_label, pred) => {
    const child = startChild(dir(), large, 2);
    await child.waitFor(pred);
    child.proc.kill('SIGKILL');
    await child.exit;
    const store = new FsWheelStore(dir());
    expect(await store.list()).toEqual([]);
    expect(await store.get(filename)).toBeNull();
    const names = await readdir(dir());
    expect(names.filter((n) => n.endsWith('.whl'))).toEqual([]);
    expect(await writeStaticIndex(store, join(tmp, 'index-killed'))).toEqual({ projects: 0, files: 0 });
    expect(await readdir(join(tmp, 'index-killed', 'simple'))).toEqual(['index.html', 'index.json']);
    expect((await store.verify()).corrupt).toEqual([]);
  });

  it('the leftovers are temp files, swept after the grace period, and a later add succeeds', async () => {
    const store = new FsWheelStore(dir());
    const leftovers = (await readdir(dir())).filter((n) => n !== '.dstack');
    expect(leftovers.length).toBeGreaterThanOrEqual(1);
    for (const n of leftovers) expect(n).toMatch(/^\.big-1\.0-py3-none-any\.whl\.\d+\.[0-9a-f]{12}\.tmp$/);
    expect(await store.sweep(60_000)).toBe(0); // young: a writer may still be working
    expect(await store.sweep(0)).toBe(leftovers.length);
    const child = startChild(dir(), large, 0);
    expect(await child.exit).toBe(0);
    expect(child.lines.at(-1)).toEqual({ result: 'added', sha256: largeSha });
    expect((await readdir(dir())).sort()).toEqual(['.dstack', filename]);
    expect((await store.verify()).ok.map((e) => e.sha256)).toEqual([largeSha]);
  });
});

describe('a writer killed while publishing', () => {
  it('leaves either nothing or the whole verified wheel', async () => {
    const dir = join(tmp, 'publishing');
    const child = startChild(dir, large, 0);
    await child.waitFor((l) => l.event === 'publishing');
    child.proc.kill('SIGKILL');
    await child.exit;
    const store = new FsWheelStore(dir);
    const whl = (await readdir(dir)).filter((n) => n.endsWith('.whl'));
    const listed = await store.list();
    if (whl.length === 0) expect(listed).toEqual([]);
    else {
      expect(whl).toEqual([filename]);
      expect(await sha(store.pathOf(filename))).toBe(largeSha);
      expect(listed.map((e) => e.sha256)).toEqual([largeSha]);
    }
    expect((await store.verify()).corrupt).toEqual([]);
  });
});

describe('concurrent writers', () => {
  it('two processes adding the same file end with one good copy', async () => {
    const dir = join(tmp, 'same');
    const a = startChild(dir, large, 1);
    const b = startChild(dir, large, 1);
    await Promise.all([a.waitFor((l) => l.event === 'sent'), b.waitFor((l) => l.event === 'sent')]);
    expect([await a.exit, await b.exit]).toEqual([0, 0]);
    const results = [a.lines.at(-1), b.lines.at(-1)].map((l) => l!.result).sort();
    expect(results).toEqual(['added', 'present']);
    const store = new FsWheelStore(dir);
    expect((await readdir(dir)).sort()).toEqual(['.dstack', filename]);
    expect(await sha(store.pathOf(filename))).toBe(largeSha);
    expect((await store.verify()).ok.map((e) => e.sha256)).toEqual([largeSha]);
  });

  it('conflicting files under one name: one wins, the other gets WHEEL_CONFLICT', async () => {
    const dir = join(tmp, 'conflict');
    const other = join(tmp, 'other');
    await mkdir(other);
    const small = await writeWheel(other, { name: 'big', version: '1.0' });
    const a = startChild(dir, large, 1);
    const b = startChild(dir, small, 200); // slow enough that both are in flight together
    await Promise.all([a.waitFor((l) => l.event === 'sent'), b.waitFor((l) => l.event === 'sent')]);
    const codes = [await a.exit, await b.exit];
    const outcomes = [a.lines.at(-1)!, b.lines.at(-1)!];
    const winner = outcomes.findIndex((o) => o.result === 'added');
    expect(winner).toBeGreaterThanOrEqual(0);
    expect(outcomes[1 - winner]).toEqual({ error: 'WHEEL_CONFLICT' });
    expect(codes[winner]).toBe(0);
    expect(codes[1 - winner]).toBe(1);
    const store = new FsWheelStore(dir);
    expect(await sha(store.pathOf(filename))).toBe(outcomes[winner]!.sha256);
    expect((await store.verify()).corrupt).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual(['.dstack', filename]);
  });
});

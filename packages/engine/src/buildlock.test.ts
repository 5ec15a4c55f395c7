// The host build lock: exclusive between holders in this process, and with factory.py's fcntl.flock on the
// same file (a local build and a docker build of one requirement exclude each other).
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testPython } from '@dstack/testing';
import { acquireBuildLock, buildLockFile } from './buildlock.js';

let root: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'dstack-buildlock-'));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const settled = async (p: Promise<unknown>, ms = 300): Promise<boolean> =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('buildLockFile', () => {
  it("names the file as factory.py's BuildLock does", () => {
    expect(buildLockFile('/w/.dstack/locks', 'my-pkg', '1.0+local/x y')).toBe(
      '/w/.dstack/locks/my-pkg-1.0+local_x_y.lock',
    );
  });
});

describe('acquireBuildLock', () => {
  it('makes a second holder wait until the first releases', async () => {
    const dir = path.join(root, 'locks');
    const first = await acquireBuildLock(dir, 'pkg', '1.0');
    expect(existsSync(path.join(dir, 'pkg-1.0.lock'))).toBe(true);
    const second = acquireBuildLock(dir, 'pkg', '1.0');
    expect(await settled(second)).toBe(false);
    expect(await settled(acquireBuildLock(dir, 'pkg', '2.0').then((l) => l.release()))).toBe(true);
    await first.release();
    expect(await settled(second, 5000)).toBe(true);
    await (await second).release();
  });

  it('stops waiting when aborted', async () => {
    const held = await acquireBuildLock(root, 'abortpkg', '1.0');
    const ac = new AbortController();
    const waiting = acquireBuildLock(root, 'abortpkg', '1.0', ac.signal);
    ac.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    await held.release();
  });

  it("excludes and is excluded by the build script's fcntl.flock on the same file", async () => {
    const file = buildLockFile(root, 'shared', '1.0');
    const held = await acquireBuildLock(root, 'shared', '1.0');
    // Python takes the lock as factory.py does, says so, and holds it until its stdin closes.
    const code = [
      'import fcntl, os, sys',
      `fd = os.open(${JSON.stringify(file)}, os.O_RDWR | os.O_CREAT, 0o644)`,
      'fcntl.flock(fd, fcntl.LOCK_EX)',
      'print("locked", flush=True)',
      'sys.stdin.read()',
    ].join('\n');
    const py = spawn(testPython('3.11'), ['-c', code], { stdio: ['pipe', 'pipe', 'inherit'] });
    const pyLocked = new Promise<void>((resolve) => py.stdout.once('data', () => resolve()));
    expect(await settled(pyLocked, 500)).toBe(false);
    await held.release();
    expect(await settled(pyLocked, 5000)).toBe(true);
    const again = acquireBuildLock(root, 'shared', '1.0');
    expect(await settled(again, 500)).toBe(false);
    py.stdin.end();
    expect(await settled(again, 5000)).toBe(true);
    await (await again).release();
  });
});

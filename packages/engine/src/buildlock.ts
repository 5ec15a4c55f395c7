// The per-requirement build lock on the host, shared with images/factory/factory.py: the same file in the
// wheelhouse's .dstack/locks, locked with flock(2) (through util-linux's `flock`, which holds the lock in a
// child process for as long as its stdin stays open). A local build (the script's own flock) and a docker
// build (the engine's lock, asked for by the script with --host-locks) of one requirement exclude each other;
// the kernel drops the lock when its holder dies, so no stale lock survives a crash.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from './errors.js';

/** The lock file of a requirement: the same name factory.py's BuildLock uses. */
export function buildLockFile(buildLockDir: string, name: string, version: string): string {
  return join(buildLockDir, `${name}-${version.replace(/[^A-Za-z0-9.+!]/g, '_')}.lock`);
}

export interface HeldBuildLock {
  readonly file: string;
  /** Releases the lock (idempotent); resolves once the holder process has exited. */
  release(): Promise<void>;
}

/** Waits for the exclusive build lock of name-version in `buildLockDir`; an abort stops waiting. */
export async function acquireBuildLock(
  buildLockDir: string,
  name: string,
  version: string,
  signal?: AbortSignal,
): Promise<HeldBuildLock> {
  signal?.throwIfAborted();
  await fs.mkdir(buildLockDir, { recursive: true });
  const file = buildLockFile(buildLockDir, name, version);
  const child = spawn('flock', ['-x', file, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const errors: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => errors.push(c));
  child.stdin.on('error', () => undefined);
  const release = async (): Promise<void> => {
    child.stdin.end();
    await exited;
  };
  const onAbort = () => child.kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        if (c.toString().includes('locked')) resolve();
      });
      child.once('error', (err) =>
        reject(
          new EngineError('EXECUTOR_FAILED', `cannot run flock for the build lock ${file}: ${err.message}`, {
            hint: 'install util-linux (it provides flock)',
            cause: err,
          }),
        ),
      );
      child.once('close', (code) =>
        reject(
          signal?.aborted
            ? signal.reason
            : new EngineError(
                'EXECUTOR_FAILED',
                `could not take the build lock ${file} (flock exited ${code}): ${Buffer.concat(errors).toString().trim()}`,
              ),
        ),
      );
    });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  let released: Promise<void> | null = null;
  return { file, release: () => (released ??= release()) };
}

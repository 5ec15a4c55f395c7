// What a wheel was made from, in the lock: PEP 751's own shapes (packages.sdist / .vcs / .directory) under the
// package's `[packages.tool.dstack-factory]`, since PEP 751 allows a vcs or directory source only instead of wheels.
import path from 'node:path';
import type { WheelSource } from './store.js';

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (t: Table, k: string): string | undefined => (typeof t[k] === 'string' && t[k] !== '' ? (t[k] as string) : undefined);

/**
 * The lock's `[packages.tool.dstack-factory]` keys for a wheel's source: `sdist = { url, hashes = { sha256 } }`,
 * `vcs = { type, url, commit-id, requested-revision?, subdirectory? }` or `directory = { path, subdirectory? }`
 * (a path relative to `lockDir`, as PEP 751 writes paths). A fetched wheel (`kind: 'wheel'`) has none: null.
 */
export function sourceLockTable(source: WheelSource, lockDir: string): Table | null {
  switch (source.kind) {
    case 'sdist':
      return { sdist: { url: source.url, ...(source.sha256 ? { hashes: { sha256: source.sha256 } } : {}) } };
    case 'vcs':
      return {
        vcs: {
          type: source.vcs,
          url: source.url,
          'commit-id': source.commit,
          ...(source.requestedRevision ? { 'requested-revision': source.requestedRevision } : {}),
          ...(source.subdirectory ? { subdirectory: source.subdirectory } : {}),
        },
      };
    case 'directory':
      return {
        directory: {
          path: path.isAbsolute(source.path) ? path.relative(lockDir, source.path) || '.' : source.path,
          ...(source.subdirectory ? { subdirectory: source.subdirectory } : {}),
        },
      };
    case 'wheel':
      return null;
  }
}

/** The source a lock package's `[packages.tool.dstack-factory]` table records (see sourceLockTable), or null. */
export function sourceFromLockTable(tool: unknown, lockDir: string): WheelSource | null {
  if (!isTable(tool)) return null;
  if (isTable(tool.sdist)) {
    const url = str(tool.sdist, 'url');
    const hashes = isTable(tool.sdist.hashes) ? tool.sdist.hashes : {};
    return url ? { kind: 'sdist', url, sha256: str(hashes, 'sha256') ?? null } : null;
  }
  if (isTable(tool.vcs)) {
    const v = tool.vcs;
    const [vcs, url, commit] = [str(v, 'type'), str(v, 'url'), str(v, 'commit-id')];
    if (!vcs || !url || !commit) return null;
    const requestedRevision = str(v, 'requested-revision');
    const subdirectory = str(v, 'subdirectory');
    return { kind: 'vcs', vcs, url, commit, ...(requestedRevision ? { requestedRevision } : {}), ...(subdirectory ? { subdirectory } : {}) };
  }
  if (isTable(tool.directory)) {
    const p = str(tool.directory, 'path');
    const subdirectory = str(tool.directory, 'subdirectory');
    return p ? { kind: 'directory', path: path.resolve(lockDir, p), ...(subdirectory ? { subdirectory } : {}) } : null;
  }
  return null;
}

// PEP 751 lock files (pylock.<name>.toml): the subset dstack-factory writes and reads — packages with
// versions, markers and wheels (name, url or path, size, hashes) — validated on read, written deterministically.
import * as path from 'node:path';
import { TomlError, parse, stringify } from 'smol-toml';
import { RecipeError } from './errors.js';
import { canonicalizeName } from './names.js';
import { pyStringCompare } from './specifier.js';

export interface LockWheel {
  /** The wheel's file name. */
  name: string;
  url?: string;
  path?: string;
  size?: number;
  /** algorithm -> hex digest, e.g. { sha256 } */
  hashes: Record<string, string>;
}
export interface LockPackage {
  name: string;
  version: string;
  marker?: string;
  requiresPython?: string;
  wheels: LockWheel[];
  dependencies?: { name: string }[];
  /**
   * `[packages.tool.<name>]` tables. dstack-factory's records what the wheel was built from, in PEP 751's own
   * shapes: `sdist = { url, hashes }`, `vcs = { type, url, commit-id, … }` or `directory = { path }`.
   */
  tool?: Record<string, unknown>;
}
export interface Lock {
  lockVersion: '1.0';
  createdBy: string;
  environments?: string[];
  requiresPython?: string;
  packages: LockPackage[];
  /** [tool.<name>] tables, e.g. tool["dstack-factory"] = { key, target, recipe } */
  tool?: Record<string, unknown>;
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

class LockProblem extends Error {}

function str(t: Table, key: string, where: string, required: true): string;
function str(t: Table, key: string, where: string, required: false): string | undefined;
function str(t: Table, key: string, where: string, required: boolean): string | undefined {
  const v = t[key];
  if (v === undefined) {
    if (required) throw new LockProblem(`${where} has no ${key}`);
    return undefined;
  }
  if (typeof v !== 'string')
    throw new LockProblem(`${where}.${key} must be a string, not ${JSON.stringify(v)}`);
  return v;
}

function readWheel(w: unknown, where: string): LockWheel {
  if (!isTable(w)) throw new LockProblem(`${where} must be a table`);
  const url = str(w, 'url', where, false);
  const file = str(w, 'path', where, false);
  if (url === undefined && file === undefined) throw new LockProblem(`${where} needs a url or a path`);
  const name =
    str(w, 'name', where, false) ?? path.posix.basename(new URL(url ?? `file:///${file}`).pathname);
  if (!name.endsWith('.whl'))
    throw new LockProblem(`${where}.name ${JSON.stringify(name)} is not a wheel file name`);
  const wheel: LockWheel = { name, hashes: {} };
  if (url !== undefined) wheel.url = url;
  if (file !== undefined) wheel.path = file;
  if (w.size !== undefined) {
    if (typeof w.size !== 'number' || !Number.isInteger(w.size) || w.size < 0)
      throw new LockProblem(`${where}.size must be a non-negative integer`);
    wheel.size = w.size;
  }
  if (!isTable(w.hashes) || Object.keys(w.hashes).length === 0)
    throw new LockProblem(`${where} needs hashes (a table like { sha256 = "…" })`);
  for (const [algo, digest] of Object.entries(w.hashes)) {
    if (typeof digest !== 'string' || !/^[0-9a-f]+$/i.test(digest))
      throw new LockProblem(`${where}.hashes.${algo} must be a hex digest`);
    wheel.hashes[algo] = digest.toLowerCase();
  }
  return wheel;
}

function readPackage(p: unknown, i: number): LockPackage {
  const where = `packages[${i}]`;
  if (!isTable(p)) throw new LockProblem(`${where} must be a table`);
  const name = str(p, 'name', where, true);
  if (canonicalizeName(name) !== name)
    throw new LockProblem(
      `${where}.name ${JSON.stringify(name)} is not normalized (PEP 503: ${JSON.stringify(canonicalizeName(name))})`,
    );
  const pkg: LockPackage = { name, version: str(p, 'version', where, true), wheels: [] };
  const marker = str(p, 'marker', where, false);
  if (marker !== undefined) pkg.marker = marker;
  const requiresPython = str(p, 'requires-python', where, false);
  if (requiresPython !== undefined) pkg.requiresPython = requiresPython;
  if (p.wheels !== undefined) {
    if (!Array.isArray(p.wheels)) throw new LockProblem(`${where}.wheels must be an array`);
    pkg.wheels = p.wheels.map((w, j) => readWheel(w, `${where}.wheels[${j}]`));
  }
  if (p.dependencies !== undefined) {
    if (!Array.isArray(p.dependencies)) throw new LockProblem(`${where}.dependencies must be an array`);
    pkg.dependencies = p.dependencies.map((d, j) => {
      if (!isTable(d)) throw new LockProblem(`${where}.dependencies[${j}] must be a table`);
      return { name: str(d, 'name', `${where}.dependencies[${j}]`, true) };
    });
  }
  if (p.tool !== undefined) {
    if (!isTable(p.tool)) throw new LockProblem(`${where}.tool must be a table`);
    pkg.tool = p.tool;
  }
  return pkg;
}

/** Reads and validates a PEP 751 lock; throws RecipeError (code LOCK_INVALID) naming the file and the fault. */
export function parseLock(text: string, file = 'pylock.toml'): Lock {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    if (e instanceof TomlError) {
      const src = text.split(/\r?\n/)[e.line - 1] ?? '';
      throw new RecipeError(
        'LOCK_INVALID',
        `invalid TOML: ${e.message.split('\n')[0]}`,
        { file, line: e.line, column: e.column, source: src },
        { cause: e },
      );
    }
    throw e;
  }
  const lineOf = (needle: string): number => {
    const i = text.indexOf(needle);
    return i < 0 ? 1 : text.slice(0, i).split('\n').length;
  };
  try {
    const version = str(doc, 'lock-version', 'the lock', true);
    if (version !== '1.0')
      throw new LockProblem(`lock-version ${JSON.stringify(version)} is not supported (only "1.0")`);
    const lock: Lock = {
      lockVersion: '1.0',
      createdBy: str(doc, 'created-by', 'the lock', true),
      packages: [],
    };
    if (doc.environments !== undefined) {
      if (!Array.isArray(doc.environments) || doc.environments.some((e) => typeof e !== 'string'))
        throw new LockProblem('environments must be an array of marker strings');
      lock.environments = doc.environments as string[];
    }
    const requiresPython = str(doc, 'requires-python', 'the lock', false);
    if (requiresPython !== undefined) lock.requiresPython = requiresPython;
    if (!Array.isArray(doc.packages)) throw new LockProblem('the lock has no packages array');
    lock.packages = doc.packages.map(readPackage);
    if (doc.tool !== undefined) {
      if (!isTable(doc.tool)) throw new LockProblem('tool must be a table');
      lock.tool = doc.tool;
    }
    return lock;
  } catch (e) {
    if (e instanceof LockProblem) {
      const key = /\.?([a-z-]+)(?: |$)/.exec(e.message)?.[1];
      throw new RecipeError('LOCK_INVALID', `invalid lock: ${e.message}`, {
        file,
        line: key ? lineOf(key) : 1,
        column: 1,
      });
    }
    throw e;
  }
}

function wheelTable(w: LockWheel): Table {
  const t: Table = { name: w.name };
  if (w.url !== undefined) t.url = w.url;
  if (w.path !== undefined) t.path = w.path;
  if (w.size !== undefined) t.size = w.size;
  t.hashes = Object.fromEntries(
    Object.entries(w.hashes)
      .sort(([a], [b]) => pyStringCompare(a, b))
      .map(([a, d]) => [a, d.toLowerCase()]),
  );
  return t;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isTable(v))
    return Object.fromEntries(
      Object.keys(v)
        .sort(pyStringCompare)
        .map((k) => [k, sortKeys(v[k])]),
    );
  return v;
}

/** Deterministic PEP 751 TOML: keys in the PEP's order, packages sorted by name then version, wheels by name. */
export function stringifyLock(lock: Lock): string {
  const doc: Table = { 'lock-version': lock.lockVersion };
  if (lock.environments) doc.environments = [...lock.environments];
  if (lock.requiresPython !== undefined) doc['requires-python'] = lock.requiresPython;
  doc['created-by'] = lock.createdBy;
  doc.packages = [...lock.packages]
    .sort(
      (a, b) =>
        pyStringCompare(a.name, b.name) ||
        pyStringCompare(a.version, b.version) ||
        pyStringCompare(a.marker ?? '', b.marker ?? ''),
    )
    .map((p) => {
      const t: Table = { name: p.name, version: p.version };
      if (p.marker !== undefined) t.marker = p.marker;
      if (p.requiresPython !== undefined) t['requires-python'] = p.requiresPython;
      if (p.dependencies)
        t.dependencies = [...p.dependencies]
          .sort((a, b) => pyStringCompare(a.name, b.name))
          .map((d) => ({ name: d.name }));
      t.wheels = [...p.wheels].sort((a, b) => pyStringCompare(a.name, b.name)).map(wheelTable);
      if (p.tool) t.tool = sortKeys(p.tool);
      return t;
    });
  if (lock.tool) doc.tool = sortKeys(lock.tool);
  const text = stringify(doc);
  return text.endsWith('\n') ? text : `${text}\n`;
}

/**
 * Where the lock of a recipe for a target lives: `<recipe dir>/locks/<recipe name>/pylock.<target>.toml`.
 * PEP 751 allows no dot inside the name, so a target with a dot (or a path separator) is refused.
 */
export function lockPath(recipePath: string, target: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(target)) {
    throw new RecipeError(
      'LOCK_NAME_INVALID',
      `invalid lock name ${JSON.stringify(target)}: PEP 751 names are pylock.<name>.toml with no dot in <name>`,
      {
        file: recipePath,
        line: 1,
        column: 1,
      },
    );
  }
  const stem = path.basename(recipePath).replace(/\.txt$/, '');
  return path.join(path.dirname(recipePath), 'locks', stem, `pylock.${target}.toml`);
}

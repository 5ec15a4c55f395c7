// What a build reads, gathered on the host and packed into one archive that putArchive unpacks at "/"
// inside the factory container: every file at its host absolute path, so the recipe, its includes, local
// path and git+file:// requirements, find-links folders and the wheelhouse are where pip looks for them,
// whether the engine is local or remote (DOCKER_HOST=tcp://…).
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { readRecipeFile } from '@dstack/recipe';
import { pack as tarPack, type Pack } from 'tar-stream';
import type { BuildJob } from '../executor.js';

/** One host path to copy: a file, or a directory copied whole (`wheelsOnly`: only its top-level *.whl). */
export interface InputPath {
  path: string;
  wheelsOnly?: boolean;
}

function localPathOfUrl(url: string): string | null {
  const m = /^(?:git\+)?file:(?:\/\/)?(\/[^#?]*)/i.exec(url);
  if (!m) return null;
  let p = decodeURIComponent(m[1]!);
  // git+file:///repo@v1.0 names a revision after the last "@" of the path.
  if (/^git\+/i.test(url)) p = p.replace(/@[^/@]*$/, '');
  return p;
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * The host paths a build job reads: the recipe files (with `-r`/`-c` includes), local requirements
 * (`file:`, `git+file:`, paths), local `--find-links`, the wheel of `fromWheel`, and the wheelhouse's wheels.
 */
export async function buildInputs(job: BuildJob, cwd = process.cwd()): Promise<InputPath[]> {
  const inputs: InputPath[] = [{ path: path.resolve(job.wheelhouse), wheelsOnly: true }];
  if (job.fromWheel) inputs.push({ path: path.resolve(cwd, job.fromWheel) });
  // pip's own PIP_FIND_LINKS (passed into the container) names host folders too, e.g. beside --from-wheel.
  for (const link of (job.env?.PIP_FIND_LINKS ?? '').split(/\s+/).filter(Boolean)) {
    const p =
      localPathOfUrl(link) ?? (/^[a-z][a-z0-9+.-]*:\/\//i.test(link) ? null : path.resolve(cwd, link));
    if (p && (await exists(p))) inputs.push({ path: p });
  }
  if (job.recipePath) {
    const recipePath = path.resolve(cwd, job.recipePath);
    const recipe = await readRecipeFile(recipePath, { cwd, ...(job.env ? { env: job.env } : {}) });
    for (const file of recipe.files) {
      if (!/^[a-z][a-z0-9+.-]*:/i.test(file)) inputs.push({ path: path.resolve(cwd, file) });
    }
    for (const req of recipe.requirements) {
      const p = req.url ? localPathOfUrl(req.url) : null;
      if (p && (await exists(p))) inputs.push({ path: p });
    }
    for (const link of recipe.options.findLinks) {
      const p = localPathOfUrl(link) ?? (/^[a-z][a-z0-9+.-]*:\/\//i.test(link) ? null : link);
      if (!p) continue;
      // pip tries a relative --find-links beside the requirements file first, then in the working directory.
      for (const candidate of [path.resolve(path.dirname(recipePath), p), path.resolve(cwd, p)]) {
        if (await exists(candidate)) {
          inputs.push({ path: candidate });
          break;
        }
      }
    }
  }
  return inputs;
}

interface Entry {
  name: string;
  full: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  size: number;
}

async function walk(full: string, out: Map<string, Entry>, wheelsOnly: boolean, depth = 0): Promise<void> {
  const stat = await fs.lstat(full);
  const name = full.replace(/^\/+/, '');
  if (stat.isSymbolicLink()) {
    out.set(name, { name, full, type: 'symlink', mode: 0o777, size: 0 });
  } else if (stat.isDirectory()) {
    out.set(name, { name, full, type: 'directory', mode: stat.mode & 0o7777, size: 0 });
    for (const child of await fs.readdir(full)) {
      if (wheelsOnly && depth === 0 && !child.endsWith('.whl')) continue;
      await walk(path.join(full, child), out, false, depth + 1);
    }
  } else if (stat.isFile()) {
    if (wheelsOnly && depth > 0 && !full.endsWith('.whl')) return;
    out.set(name, { name, full, type: 'file', mode: stat.mode & 0o7777, size: stat.size });
  }
}

/** Streams `inputs` as one tar (absolute paths without the leading "/", parents first, owned by root). */
export function packInputs(inputs: InputPath[]): NodeJS.ReadableStream & { total: Promise<number> } {
  const pack: Pack = tarPack();
  let resolveTotal!: (n: number) => void;
  let rejectTotal!: (e: unknown) => void;
  const total = new Promise<number>((resolve, reject) => {
    resolveTotal = resolve;
    rejectTotal = reject;
  });
  total.catch(() => undefined);
  void (async () => {
    try {
      const entries = new Map<string, Entry>();
      for (const input of inputs) {
        // Parents of every input exist in the container, owned by root.
        const parts = path.resolve(input.path).split('/').filter(Boolean);
        for (let i = 1; i < parts.length; i++) {
          const name = parts.slice(0, i).join('/');
          if (!entries.has(name))
            entries.set(name, { name, full: `/${name}`, type: 'directory', mode: 0o755, size: 0 });
        }
        await walk(path.resolve(input.path), entries, input.wheelsOnly ?? false);
      }
      let bytes = 0;
      for (const entry of [...entries.values()].sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      )) {
        const header = { name: entry.name, mode: entry.mode, uid: 0, gid: 0, mtime: new Date(0) };
        if (entry.type === 'directory') {
          pack.entry({ ...header, name: `${entry.name}/`, type: 'directory' });
        } else if (entry.type === 'symlink') {
          pack.entry({ ...header, type: 'symlink', linkname: await fs.readlink(entry.full) });
        } else {
          const sink = pack.entry({ ...header, size: entry.size });
          await pipeline(createReadStream(entry.full), sink);
          bytes += entry.size;
        }
      }
      pack.finalize();
      resolveTotal(bytes);
    } catch (error) {
      rejectTotal(error);
      pack.destroy(error as Error);
    }
  })();
  return Object.assign(pack as unknown as NodeJS.ReadableStream, { total });
}

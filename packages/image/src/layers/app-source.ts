import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { ImageError } from '../errors.js';
import { readDockerignore } from './dockerignore.js';
import type { LayerEntry } from './write-layer.js';

export interface SourceLayerOptions {
  /** Destination in the image (default /app). */
  dest?: string;
  uid: number;
  gid?: number;
}

/**
 * The entries copying a source directory to /app owned by uid:gid (what the seed's Dockerfile-source does with
 * COPY + chown), honouring the directory's .dockerignore. File contents are streamed when the layer is written.
 */
export async function sourceEntries(dir: string, options: SourceLayerOptions): Promise<LayerEntry[]> {
  const dest = (options.dest ?? '/app').replace(/^\/+|\/+$/g, '');
  const owner = { uid: options.uid, gid: options.gid ?? options.uid };
  try {
    if (!(await fs.stat(dir)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new ImageError('IMAGE_SOURCE_INVALID', `source directory ${dir} cannot be read`, { cause: err });
  }
  const rules = await readDockerignore(dir);
  const entries: LayerEntry[] = [{ path: dest, type: 'directory', ...owner }];
  const walk = async (rel: string): Promise<void> => {
    const names = (await fs.readdir(path.join(dir, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, r);
      const st = await fs.lstat(full);
      // A directory is walked even when ignored: an exception ("!dir/keep") may bring part of it back.
      if (st.isDirectory()) {
        if (!rules.hasExceptions && rules.ignores(r)) continue;
        const before = entries.length;
        await walk(r);
        if (!rules.ignores(r) || entries.length > before) entries.splice(before, 0, { path: `${dest}/${r}`, type: 'directory', ...owner });
        continue;
      }
      if (rules.ignores(r)) continue;
      if (st.isSymbolicLink()) entries.push({ path: `${dest}/${r}`, type: 'symlink', linkname: await fs.readlink(full), ...owner });
      else if (st.isFile()) {
        entries.push({
          path: `${dest}/${r}`,
          type: 'file',
          size: st.size,
          mode: st.mode & 0o111 ? 0o755 : 0o644,
          open: () => createReadStream(full),
          ...owner,
        });
      }
    }
  };
  await walk('');
  return entries;
}

import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { ImageError } from '../errors.js';
import type { LayerEntry } from './write-layer.js';

interface IgnoreRule {
  negate: boolean;
  re: RegExp;
}

/** One .dockerignore pattern (Go filepath.Match syntax plus "**", as Docker's patternmatcher) as a regex. */
function patternToRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('^')) cls = '^' + cls.slice(1);
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) {
      re += '\\' + pattern[++i];
    } else re += c.replace(/[.+^${}()|/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Parses a .dockerignore: comments, blank lines, "!" exceptions; paths cleaned and relative to the context. */
export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let negate = false;
    if (line.startsWith('!')) {
      negate = true;
      line = line.slice(1).trim();
    }
    line = path.posix.normalize(line).replace(/^\/+/, '').replace(/\/+$/, '');
    if (line === '.' || line === '') continue;
    rules.push({ negate, re: patternToRegex(line) });
  }
  return rules;
}

/** Docker's rule: the last matching pattern wins; a pattern matching a parent directory matches its contents. */
export function isIgnored(rules: IgnoreRule[], rel: string): boolean {
  let ignored = false;
  const parents: string[] = [];
  const parts = rel.split('/');
  for (let i = 1; i <= parts.length; i++) parents.push(parts.slice(0, i).join('/'));
  for (const r of rules) {
    if (parents.some((p) => r.re.test(p))) ignored = !r.negate;
  }
  return ignored;
}

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
  let rules: IgnoreRule[] = [];
  try {
    rules = parseDockerignore(await fs.readFile(path.join(dir, '.dockerignore'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    if (!(await fs.stat(dir)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new ImageError('IMAGE_SOURCE_INVALID', `source directory ${dir} cannot be read`, { cause: err });
  }
  const entries: LayerEntry[] = [{ path: dest, type: 'directory', ...owner }];
  const hasExceptions = rules.some((r) => r.negate);
  const walk = async (rel: string): Promise<void> => {
    const names = (await fs.readdir(path.join(dir, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, r);
      const st = await fs.lstat(full);
      // A directory is walked even when ignored: an exception ("!dir/keep") may bring part of it back.
      if (st.isDirectory()) {
        if (!hasExceptions && isIgnored(rules, r)) continue;
        const before = entries.length;
        await walk(r);
        if (!isIgnored(rules, r) || entries.length > before) entries.splice(before, 0, { path: `${dest}/${r}`, type: 'directory', ...owner });
        continue;
      }
      if (isIgnored(rules, r)) continue;
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

import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { BlobCache } from '../cache/blob-cache.js';
import { sha256Digest } from '../core/digest.js';
import { ImageError } from '../errors.js';
import type { Image } from '../core/image.js';
import { readAll } from '../core/streams.js';

/** What the image builder needs to know about a base image, read from its files and config (no container run). */
export interface BaseInfo {
  /** The interpreter a venv should point at, e.g. "/usr/bin/python3.11". */
  python: string;
  /** "3.11". */
  pythonVersion: string;
  /** "3.11.2" when the base says so (PYTHON_VERSION env, dpkg status, an existing venv), else null. */
  pythonFullVersion: string | null;
  /** The base already has a venv at /env (its pyvenv.cfg). */
  venv: { home: string; version: string | null } | null;
  passwd: string | null;
  group: string | null;
}

const INTERPRETER_RE = /^(usr\/local\/bin|usr\/bin)\/python(3\.\d+)$/;
const TRACKED = new Set(['etc/passwd', 'etc/group', 'env/pyvenv.cfg', 'var/lib/dpkg/status']);

/**
 * Reads the base's layers in order (whiteouts honoured for the files it tracks) for its Python interpreters,
 * /etc/passwd, /etc/group, /env/pyvenv.cfg and dpkg's status; the result is cached by the layers' diffIDs.
 */
export async function inspectBase(image: Image, options: { cache?: BlobCache } = {}): Promise<BaseInfo> {
  const key = sha256Digest(JSON.stringify({ v: 1, layers: image.config.rootfs.diff_ids, env: image.config.config?.Env ?? [] })).slice(7);
  const cached = options.cache ? await options.cache.readKey<BaseInfo>('base', key) : null;
  if (cached) return cached;
  const files = new Map<string, Buffer>();
  const interpreters = new Set<string>();
  for (const layer of image.layers) {
    const extract = tar.extract();
    const src = await layer.uncompressed();
    src.on('error', (e) => extract.destroy(e));
    src.pipe(extract as unknown as NodeJS.WritableStream);
    for await (const entry of extract) {
      const name = entry.header.name.replace(/^\.?\//, '').replace(/\/$/, '');
      const base = name.slice(name.lastIndexOf('/') + 1);
      if (base.startsWith('.wh.')) {
        const dir = name.slice(0, name.length - base.length);
        if (base === '.wh..wh..opq') {
          for (const k of [...files.keys()]) if (k.startsWith(dir)) files.delete(k);
          for (const k of [...interpreters]) if (k.startsWith(dir)) interpreters.delete(k);
        } else {
          const target = dir + base.slice(4);
          files.delete(target);
          interpreters.delete(target);
        }
        entry.resume();
        continue;
      }
      if (INTERPRETER_RE.test(name) && (entry.header.type === 'file' || entry.header.type === 'symlink' || entry.header.type === 'link')) {
        interpreters.add(name);
      }
      if (TRACKED.has(name) && entry.header.type === 'file') files.set(name, await readAll(entry as unknown as Readable));
      else entry.resume();
    }
  }
  const env = new Map((image.config.config?.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const text = (k: string): string | null => files.get(k)?.toString('utf8') ?? null;
  let venv: BaseInfo['venv'] = null;
  const cfg = text('env/pyvenv.cfg');
  if (cfg !== null) {
    const kv = new Map(cfg.split('\n').map((l) => l.split('=').map((s) => s.trim()) as [string, string]));
    venv = { home: kv.get('home') ?? '/usr/bin', version: kv.get('version') ?? kv.get('version_info') ?? null };
  }
  const sorted = [...interpreters].sort((a, b) => {
    const va = a.match(/3\.(\d+)$/)![1]!;
    const vb = b.match(/3\.(\d+)$/)![1]!;
    if (va !== vb) return Number(vb) - Number(va);
    return a.startsWith('usr/local') ? -1 : 1;
  });
  let python = sorted[0];
  if (venv) {
    const wanted = venv.version?.split('.').slice(0, 2).join('.');
    python = sorted.find((p) => (wanted ? p.endsWith(`python${wanted}`) : p.startsWith(venv!.home.replace(/^\//, '')))) ?? python;
  }
  if (!python) {
    throw new ImageError('IMAGE_BASE_NO_PYTHON', 'the base image has no python3.X interpreter in /usr/bin or /usr/local/bin', {
      hint: 'use a base with Python installed (the runtime image, or a debootstrapped Debian with python3)',
    });
  }
  const pythonVersion = python.match(/python(3\.\d+)$/)![1]!;
  let full: string | null = null;
  const pyenv = env.get('PYTHON_VERSION');
  if (pyenv && pyenv.startsWith(pythonVersion + '.')) full = pyenv;
  if (!full && venv?.version?.startsWith(pythonVersion + '.')) full = venv.version;
  if (!full) {
    const status = text('var/lib/dpkg/status');
    if (status) {
      const re = new RegExp(`^Package: (?:lib)?python${pythonVersion.replace('.', '\\.')}-minimal\\n(?:[^\\n]+\\n)*?Version: ([0-9.]+)`, 'm');
      const m = re.exec(status);
      if (m) full = m[1]!;
    }
  }
  const info: BaseInfo = { python: '/' + python, pythonVersion, pythonFullVersion: full, venv, passwd: text('etc/passwd'), group: text('etc/group') };
  if (options.cache) await options.cache.writeKey('base', key, info);
  return info;
}

// An image's filesystem as the dynamic loader sees it, read from its layers without running anything: every
// path (files, directories, symbolic links with their targets), whiteouts applied; the machine of each shared
// object; the text of /etc/ld.so.conf and /etc/ld.so.conf.d/*; and which Debian package ships each library
// (/var/lib/dpkg/info/*.list). Built once per image (cached by its layers' diffIDs).
import type { BlobCache } from '../cache/blob-cache.js';
import { sha256Digest } from '../core/digest.js';
import type { Image } from '../core/image.js';
import { walkLayers, type LayerVisitor } from '../core/walk-layers.js';
import { isRecord, isString, isStrings } from '../core/shapes.js';

/** A path in the image: a file (with its ELF machine/class when it is a shared object), a directory, a link. */
export type FileNode = { t: 'f'; elf?: string } | { t: 'd' } | { t: 'l'; to: string };

export interface ImageFilesData {
  /** Paths without the leading slash. */
  nodes: Record<string, FileNode>;
  /** Contents of etc/ld.so.conf and etc/ld.so.conf.d/* (by path). */
  ldconf: Record<string, string>;
  /** Library file name (e.g. libpq.so.5) -> the Debian packages whose .list names it. */
  dpkg: Record<string, string[]>;
}

const SHARED_OBJECT_RE = /\.so(\.[0-9]+)*$/;
const LDCONF_RE = /^etc\/ld\.so\.conf(\.d\/[^/]+)?$/;
const DPKG_LIST_RE = /^var\/lib\/dpkg\/info\/([^/]+)\.list$/;
const MAX_TEXT_BYTES = 4 << 20;

/** "62/64/little" style key of an ELF header's machine, class and byte order (ppc64 and ppc64le share a machine). */
export function elfKey(machine: number, bits: number, endian: 'little' | 'big'): string {
  return `${machine}/${bits}/${endian}`;
}

function normalise(name: string): string {
  return name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
}

function isFileNode(x: unknown): x is FileNode {
  if (!isRecord(x)) return false;
  if (x.t === 'd') return true;
  if (x.t === 'l') return isString(x.to);
  return x.t === 'f' && (x.elf === undefined || isString(x.elf));
}

/** Whether `x` is {@link ImageFilesData} (from elsewhere: a base's own index), checked before it is used. */
export function isImageFilesData(x: unknown): x is ImageFilesData {
  return (
    isRecord(x) &&
    isRecord(x.nodes) &&
    Object.values(x.nodes).every(isFileNode) &&
    isRecord(x.ldconf) &&
    Object.values(x.ldconf).every(isString) &&
    isRecord(x.dpkg) &&
    Object.values(x.dpkg).every(isStrings)
  );
}

/** The paths of an image (or of anything laid over one) and the loader-relevant facts read with them. */
export class ImageFiles {
  readonly nodes: Map<string, FileNode>;
  readonly ldconf: Map<string, string>;
  readonly dpkg: Map<string, string[]>;

  constructor(data: ImageFilesData = { nodes: {}, ldconf: {}, dpkg: {} }) {
    this.nodes = new Map(Object.entries(data.nodes));
    this.ldconf = new Map(Object.entries(data.ldconf));
    this.dpkg = new Map(Object.entries(data.dpkg));
  }

  toJSON(): ImageFilesData {
    return {
      nodes: Object.fromEntries(this.nodes),
      ldconf: Object.fromEntries(this.ldconf),
      dpkg: Object.fromEntries(this.dpkg),
    };
  }

  /** A copy with more files laid over it (what wheels add to a base). */
  overlay(files: Iterable<[string, FileNode]>): ImageFiles {
    const next = new ImageFiles();
    for (const [k, v] of this.nodes) next.nodes.set(k, v);
    for (const [k, v] of this.ldconf) next.ldconf.set(k, v);
    for (const [k, v] of this.dpkg) next.dpkg.set(k, v);
    for (const [path, node] of files) {
      const parts = normalise(path).split('/');
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        if (!next.nodes.has(dir)) next.nodes.set(dir, { t: 'd' });
      }
      next.nodes.set(parts.join('/'), node);
    }
    return next;
  }

  /**
   * Follows symbolic links (in every component, relative and absolute, `..` after links as the kernel does) and
   * returns the final path (leading slash) and its node, or null when nothing is there.
   */
  resolve(path: string): { path: string; node: FileNode } | null {
    let pending = normalise(path).split('/').filter((p) => p !== '' && p !== '.');
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') {
        done.pop();
        continue;
      }
      const here = [...done, part].join('/');
      const node = this.nodes.get(here);
      if (!node) return null;
      if (node.t === 'l') {
        if (++hops > 40) return null;
        const target = node.to.split('/').filter((p) => p !== '' && p !== '.');
        if (node.to.startsWith('/')) done.length = 0;
        pending = [...target, ...pending];
        continue;
      }
      if (node.t === 'f' && pending.length > 0) return null;
      done.push(part);
    }
    const final = done.join('/');
    const node = final === '' ? ({ t: 'd' } as FileNode) : this.nodes.get(final);
    return node ? { path: '/' + final, node } : null;
  }

  /** A text file's content when it was kept (ld.so.conf and its includes), following links. */
  text(path: string): string | null {
    const r = this.resolve(path);
    return r ? (this.ldconf.get(r.path.slice(1)) ?? null) : null;
  }

  /** The folders /etc/ld.so.conf lists (includes with globs followed), in order: what ldconfig caches. */
  ldSoConfDirs(): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    const read = (file: string, depth: number): void => {
      if (depth > 8 || seen.has(file)) return;
      seen.add(file);
      const text = this.text(file);
      if (text === null) return;
      for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        if (!line) continue;
        const include = /^include\s+(.+)$/.exec(line);
        if (include) {
          for (const pattern of include[1]!.split(/\s+/)) {
            const abs = pattern.startsWith('/') ? pattern : `${file.slice(0, file.lastIndexOf('/'))}/${pattern}`;
            for (const match of this.glob(abs)) read(match, depth + 1);
          }
          continue;
        }
        if (/^hwcap\s/.test(line)) continue;
        for (const dir of line.split(/[\s:,]+/)) {
          const d = dir.replace(/=.*$/, '').replace(/\/+$/, '');
          if (d.startsWith('/') && !out.includes(d)) out.push(d);
        }
      }
    };
    read('/etc/ld.so.conf', 0);
    return out;
  }

  /** Files matching a pattern whose last component may hold `*` and `?` (what ld.so.conf's include uses). */
  private glob(pattern: string): string[] {
    const slash = pattern.lastIndexOf('/');
    const dir = this.resolve(pattern.slice(0, slash) || '/');
    if (!dir || dir.node.t !== 'd') return [];
    const re = new RegExp(`^${pattern.slice(slash + 1).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
    const prefix = dir.path === '/' ? '' : dir.path.slice(1) + '/';
    const out: string[] = [];
    for (const k of this.nodes.keys()) {
      if (!k.startsWith(prefix)) continue;
      const rest = k.slice(prefix.length);
      if (!rest.includes('/') && re.test(rest)) out.push(`${pattern.slice(0, slash)}/${rest}`);
    }
    return out.sort();
  }
}

const filesKey = (diffIds: string[]): string => sha256Digest(JSON.stringify({ v: 3, layers: diffIds })).slice(7);

/** The files of an image with these layers (diffIDs) when `readImageFiles` has cached them, else null: no layer is read. */
export async function cachedImageFiles(diffIds: string[], cache: BlobCache): Promise<ImageFiles | null> {
  const data = await cache.readKey<ImageFilesData>('image-files', filesKey(diffIds));
  return data ? new ImageFiles(data) : null;
}

interface LayerEntry {
  path: string;
  node: FileNode | null;
  /** A hard link: the path it names. */
  link?: string;
  text?: string;
}

/**
 * Reads an image's layers in order into an {@link ImageFiles}: one pass over each layer; of file contents only
 * the first bytes of shared objects, the ld.so.conf files and dpkg's *.list files are read.
 * Cached in `cache` by the layers' diffIDs.
 */
export async function readImageFiles(image: Image, options: { cache?: BlobCache } = {}): Promise<ImageFiles> {
  const cached = options.cache ? await cachedImageFiles(image.config.rootfs.diff_ids, options.cache) : null;
  if (cached) return cached;
  const reader = imageFilesReader();
  await walkLayers(image.layers, [reader.visitor]);
  const files = reader.result();
  if (options.cache) await saveImageFiles(image.config.rootfs.diff_ids, options.cache, files);
  return files;
}

/** Whether `cachedImageFiles` would answer (the index is not read). */
export async function hasCachedImageFiles(diffIds: string[], cache: BlobCache): Promise<boolean> {
  return cache.hasKey('image-files', filesKey(diffIds));
}

export async function saveImageFiles(diffIds: string[], cache: BlobCache, files: ImageFiles): Promise<void> {
  await cache.writeKey('image-files', filesKey(diffIds), files.toJSON());
}

/** The visitor behind `readImageFiles`, for a walk shared with other readers; `result()` once the walk is done. */
export function imageFilesReader(): { visitor: LayerVisitor; result: () => ImageFiles } {
  const files = new ImageFiles();
  const lists = new Map<string, string>();
  let entries: LayerEntry[] = [];
  let whiteouts: string[] = [];
  let opaque: string[] = [];
  const visitor: LayerVisitor = {
    entry({ name, header: h }) {
      const base = name.slice(name.lastIndexOf('/') + 1);
      const dir = name.slice(0, name.length - base.length);
      if (base === '.wh..wh..opq') {
        opaque.push(dir.replace(/\/$/, ''));
        return null;
      }
      if (base.startsWith('.wh.')) {
        whiteouts.push(dir + base.slice(4));
        return null;
      }
      if (h.type === 'directory') entries.push({ path: name, node: { t: 'd' } });
      else if (h.type === 'symlink') entries.push({ path: name, node: { t: 'l', to: h.linkname ?? '' } });
      else if (h.type === 'link') entries.push({ path: name, node: null, link: normalise(h.linkname ?? '') });
      else if (h.type === 'file' || h.type === 'contiguous-file') {
        const wantText = (LDCONF_RE.test(name) || DPKG_LIST_RE.test(name)) && (h.size ?? 0) <= MAX_TEXT_BYTES;
        const wantElf = SHARED_OBJECT_RE.test(base);
        const node: FileNode = { t: 'f' };
        const entry: LayerEntry = { path: name, node };
        entries.push(entry);
        if (!wantText && !wantElf) return null;
        return {
          bytes: wantText ? Infinity : 20,
          use: (bytes) => {
            if (wantElf && bytes.length >= 20 && bytes.readUInt32BE(0) === 0x7f454c46) {
              const le = bytes[5] === 1;
              node.elf = elfKey(le ? bytes.readUInt16LE(18) : bytes.readUInt16BE(18), bytes[4] === 2 ? 64 : 32, le ? 'little' : 'big');
            }
            if (wantText) entry.text = bytes.toString('utf8');
          },
        };
      } else entries.push({ path: name, node: { t: 'f' } }); // devices, fifos: present, never loadable
      return null;
    },
    endLayer() {
      // What this layer hides from the layers below (one pass over the files, whatever the number of whiteouts),
      // then what it adds.
      if (whiteouts.length > 0 || opaque.length > 0) {
        const gone = new Set(whiteouts);
        const emptied = new Set(opaque);
        const hidden = (k: string): boolean => {
          if (gone.has(k) || emptied.has('')) return true;
          for (let i = k.lastIndexOf('/'); i > 0; i = k.lastIndexOf('/', i - 1)) {
            const dir = k.slice(0, i);
            if (gone.has(dir) || emptied.has(dir)) return true;
          }
          return false;
        };
        for (const k of [...files.nodes.keys()]) {
          if (!hidden(k)) continue;
          files.nodes.delete(k);
          files.ldconf.delete(k);
          lists.delete(k);
        }
      }
      const byPath = new Map(entries.map((e) => [e.path, e]));
      for (const e of entries) {
        if (e.link !== undefined) {
          const target = files.nodes.get(e.link) ?? byPath.get(e.link)?.node ?? { t: 'f' };
          files.nodes.set(e.path, target);
          continue;
        }
        files.nodes.set(e.path, e.node!);
        if (e.text !== undefined) {
          if (LDCONF_RE.test(e.path)) files.ldconf.set(e.path, e.text);
          else lists.set(e.path, e.text);
        }
      }
      entries = [];
      whiteouts = [];
      opaque = [];
    },
  };
  const result = (): ImageFiles => {
    for (const [path, text] of lists) {
      const pkg = DPKG_LIST_RE.exec(path)![1]!.replace(/:[^:]+$/, '');
      for (const line of text.split('\n')) {
        const base = line.slice(line.lastIndexOf('/') + 1);
        if (!SHARED_OBJECT_RE.test(base)) continue;
        const known = files.dpkg.get(base) ?? [];
        if (!known.includes(pkg)) files.dpkg.set(base, [...known, pkg].sort());
      }
    }
    lists.clear();
    return files;
  };
  return { visitor, result };
}

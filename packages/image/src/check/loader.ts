// Where glibc's dynamic loader (ld.so) would find each library an ELF file needs, in an image's filesystem.
// The order is ld.so's (glibc elf/dl-load.c): DT_RPATH of the object and then of the objects that loaded it
// (each only while it has no DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH of the object, the ld.so.conf folders
// (what ldconfig puts into ld.so.cache), then the default folders — the last two skipped for an object marked
// DF_1_NODEFLIB. $ORIGIN is the folder the object was found in; a library already loaded under the same name
// (or DT_SONAME) is not searched again; a file of another machine or class is passed over, as ld.so does.
// Libraries found in the base image are trusted to bring their own dependencies (their packages say so).
import { ARCHITECTURES, machineOfOciPlatform, type ElfInfo } from '@dstack/wheelhouse';
import { elfKey, type ImageFiles } from './image-files.js';

/** The machine an image runs: from its config's architecture. */
export interface LoaderArch {
  machine: number;
  bits: 32 | 64;
  endian: 'little' | 'big';
  /** Debian's multiarch triplet, e.g. x86_64-linux-gnu. */
  triplet: string;
  /** `$PLATFORM`, e.g. x86_64. */
  platform: string;
}

/** The loader's view of an OCI architecture (amd64, arm64, …; the wheelhouse's table), or null for one it does not know. */
export function loaderArch(architecture: string, variant?: string | null): LoaderArch | null {
  const name = machineOfOciPlatform(architecture, variant);
  const a = ARCHITECTURES.find((x) => x.machine === name);
  return a ? { machine: a.elf.machine, bits: a.elf.bits, endian: a.elf.endian, triplet: a.triplet, platform: a.machine } : null;
}

/**
 * Folders searched last: Debian's (its ld.so's system search path: /lib/<triplet>, /usr/lib/<triplet>, /lib,
 * /usr/lib) and, for 64-bit machines, the lib64 folders other distributions use.
 */
export function defaultDirs(arch: LoaderArch): string[] {
  return [`/lib/${arch.triplet}`, `/usr/lib/${arch.triplet}`, ...(arch.bits === 64 ? ['/lib64', '/usr/lib64'] : []), '/lib', '/usr/lib'];
}

export interface LoaderContext {
  files: ImageFiles;
  arch: LoaderArch;
  /** LD_LIBRARY_PATH from the image's environment. */
  libraryPath: string[];
  /** ld.so.conf's folders. */
  cacheDirs: string[];
  /** The full ELF facts of files the check read (those the wheels install), by image path. */
  elfOf(path: string): ElfInfo | null;
}

/** One library the loader would not find. */
export interface Unresolved {
  /** The image path of the object that needs it. */
  from: string;
  library: string;
  /** Where it was looked for, in order. */
  searched: string[];
}

interface Loaded {
  path: string;
  elf: ElfInfo | null;
  names: Set<string>;
  loader: Loaded | null;
}

const dirname = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';
const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

function expand(entry: string, origin: string, arch: LoaderArch): string {
  return entry
    .replace(/\$\{ORIGIN\}|\$ORIGIN(?![A-Za-z0-9_])/g, origin)
    .replace(/\$\{LIB\}|\$LIB(?![A-Za-z0-9_])/g, `lib/${arch.triplet}`)
    .replace(/\$\{PLATFORM\}|\$PLATFORM(?![A-Za-z0-9_])/g, arch.platform);
}

/**
 * Loads `root` (found at image path `path`) as ld.so would, breadth first through its dependencies, and returns
 * every library it would not find. Also returns the image paths it loaded (so their own checks can be skipped).
 */
export function loadObject(path: string, root: ElfInfo, ctx: LoaderContext): { unresolved: Unresolved[]; loaded: string[] } {
  const want = elfKey(ctx.arch.machine, ctx.arch.bits, ctx.arch.endian);
  const first: Loaded = { path, elf: root, names: new Set([basename(path), ...(root.soname ? [root.soname] : [])]), loader: null };
  const loaded: Loaded[] = [first];
  const unresolved: Unresolved[] = [];
  const search = (name: string, obj: Loaded): { path: string; real: string } | { searched: string[] } => {
    const elf = obj.elf!;
    const dirs: string[] = [];
    if (name.includes('/')) {
      const r = ctx.files.resolve(name);
      return r && r.node.t === 'f' ? { path: name, real: r.path } : { searched: [name] };
    }
    if (elf.runpath.length === 0) {
      for (let o: Loaded | null = obj; o; o = o.loader) {
        if (o.elf && o.elf.runpath.length === 0) dirs.push(...o.elf.rpath.map((d) => expand(d, dirname(o!.path), ctx.arch)));
      }
    }
    dirs.push(...ctx.libraryPath);
    dirs.push(...elf.runpath.map((d) => expand(d, dirname(obj.path), ctx.arch)));
    if (!elf.nodeflib) dirs.push(...ctx.cacheDirs, ...defaultDirs(ctx.arch));
    const searched: string[] = [];
    for (const raw of dirs) {
      if (raw === '' || !raw.startsWith('/')) continue; // an empty or relative entry means the working folder: unknown here
      const dir = raw.replace(/\/+$/, '');
      if (searched.includes(dir)) continue;
      searched.push(dir);
      const candidate = `${dir}/${name}`;
      const r = ctx.files.resolve(candidate);
      if (!r || r.node.t !== 'f') continue;
      const known = ctx.elfOf(r.path);
      const key = known ? elfKey(known.machine, known.bits, known.endian) : r.node.elf;
      if (key !== undefined && key !== want) continue; // another machine's library: ld.so skips it
      return { path: candidate, real: r.path };
    }
    return { searched };
  };
  for (let i = 0; i < loaded.length; i++) {
    const obj = loaded[i]!;
    if (!obj.elf) continue;
    for (const name of obj.elf.needed) {
      if (loaded.some((l) => l.names.has(name))) continue;
      const found = search(name, obj);
      if ('searched' in found) {
        unresolved.push({ from: obj.path, library: name, searched: found.searched });
        continue;
      }
      const same = loaded.find((l) => l.path === found.real || ctx.files.resolve(l.path)?.path === found.real);
      if (same) {
        same.names.add(name);
        continue;
      }
      const elf = ctx.elfOf(found.real);
      loaded.push({ path: found.path, elf, names: new Set([name, ...(elf?.soname ? [elf.soname] : [])]), loader: obj });
    }
  }
  return { unresolved, loaded: loaded.map((l) => ctx.files.resolve(l.path)?.path ?? l.path) };
}

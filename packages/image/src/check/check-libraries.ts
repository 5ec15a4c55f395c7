// The shared-library check: every ELF file an image gets from wheels must be of the image's machine, and every
// library it needs must be found by the dynamic loader in the image's own filesystem (the base's layers with
// its ld.so.conf, the wheels' bundled `<name>.libs/`, the other wheels). Daemonless: nothing is run.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readWheelElfFiles, type ElfInfo, type WheelElfFile } from '@dstack/wheelhouse';
import type { BlobCache } from '../cache/blob-cache.js';
import { sha256Digest } from '../core/digest.js';
import type { Image } from '../core/image.js';
import { ImageError } from '../errors.js';
import { forEachWheel, wheelFile, type WheelFile } from '../layers/wheels/wheel-file.js';
import { elfKey, readImageFiles, type FileNode, type ImageFiles } from './image-files.js';
import { loadObject, loaderArch, type LoaderContext } from './loader.js';

/** One ELF file to check: where it is in the image and where it came from. */
export interface CheckedObject {
  /** The wheel's file name (or, for an existing image, the distribution or folder it belongs to). */
  wheel: string;
  /** Its member name in the wheel (or its path in the image). */
  file: string;
  /** Its path in the image. */
  path: string;
  elf: ElfInfo;
}

export interface LibraryProblem {
  wheel: string;
  file: string;
  kind: 'missing' | 'architecture' | 'interpreter';
  /** The missing library (or interpreter), or for `architecture` the file's machine. */
  library: string;
  /** Debian packages that ship the library, when something could tell. */
  packages: string[];
}

export interface LibraryReport {
  problems: LibraryProblem[];
  /** How many ELF files were checked. */
  checked: number;
  /** Where the package names came from ("factory image dstack-factory/factory:py3.11", "this host's dpkg"), or null. */
  packagesFrom: string | null;
}

/** Which Debian packages ship a library file name (e.g. libpq.so.5 -> libpq5). */
export interface PackageFinder {
  /** Says where the answers come from, for the message. */
  source: string;
  packagesFor(library: string): string[];
}

/** A finder over an image's dpkg lists (the factory image's: it has the -dev packages and their runtime libraries). */
export function imagePackageFinder(files: ImageFiles, source: string): PackageFinder {
  return { source, packagesFor: (library) => files.dpkg.get(library) ?? [] };
}

/**
 * A finder over this machine's dpkg database (/var/lib/dpkg/info/*.list), when it is a Debian system; null
 * otherwise. The lists are read once, on first use.
 */
export async function hostPackageFinder(root = '/'): Promise<PackageFinder | null> {
  const info = path.join(root, 'var/lib/dpkg/info');
  const names = await fs.readdir(info).catch(() => null);
  if (!names || !(await fs.stat(path.join(root, 'etc/debian_version')).catch(() => null))) return null;
  const map = new Map<string, string[]>();
  for (const name of names) {
    if (!name.endsWith('.list')) continue;
    const pkg = name.slice(0, -5).replace(/:[^:]+$/, '');
    const text = await fs.readFile(path.join(info, name), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const base = line.slice(line.lastIndexOf('/') + 1);
      if (!/\.so(\.[0-9]+)*$/.test(base)) continue;
      const known = map.get(base) ?? [];
      if (!known.includes(pkg)) map.set(base, [...known, pkg].sort());
    }
  }
  return { source: "this machine's dpkg database", packagesFor: (library) => map.get(library) ?? [] };
}

/** The loader context of an image: its machine (config), LD_LIBRARY_PATH (config Env), ld.so.conf folders. */
export function loaderContext(image: Image, files: ImageFiles, elfOf: (path: string) => ElfInfo | null): LoaderContext {
  const arch = loaderArch(image.config.architecture, (image.config as { variant?: string }).variant);
  if (!arch) {
    throw new ImageError('IMAGE_ARCH_UNKNOWN', `the image's architecture "${image.config.architecture}" is not one the library check knows`, {
      hint: 'known: amd64, arm64, arm (v7), ppc64le, ppc64, s390x, 386, riscv64; --no-check-libs skips the check',
    });
  }
  const ldPath = (image.config.config?.Env ?? []).find((e) => e.startsWith('LD_LIBRARY_PATH='))?.slice(16) ?? '';
  return { files, arch, libraryPath: ldPath.split(':').filter((d) => d.startsWith('/')), cacheDirs: files.ldSoConfDirs(), elfOf };
}

/**
 * Checks ELF files placed into an image (`files` already holds them): machine, program interpreter, and every
 * needed library as ld.so would resolve it. Objects loaded through another one (a wheel's bundled libraries)
 * are checked in that context, as they are loaded; the others on their own.
 */
export function checkObjects(objects: CheckedObject[], ctx: LoaderContext, finder: PackageFinder | null): LibraryReport {
  const problems: LibraryProblem[] = [];
  const want = elfKey(ctx.arch.machine, ctx.arch.bits, ctx.arch.endian);
  const byPath = new Map(objects.map((o) => [ctx.files.resolve(o.path)?.path ?? o.path, o]));
  const good = objects.filter((o) => {
    if (elfKey(o.elf.machine, o.elf.bits, o.elf.endian) === want) return true;
    problems.push({ wheel: o.wheel, file: o.file, kind: 'architecture', library: `${o.elf.arch} (${o.elf.bits}-bit)`, packages: [] });
    return false;
  });
  // Roots first: files that are not a shared library of their own (no DT_SONAME: extension modules, programs).
  const order = [...good].sort((a, b) => Number(a.elf.soname !== null) - Number(b.elf.soname !== null) || (a.path < b.path ? -1 : 1));
  const covered = new Set<string>();
  const seen = new Set<string>();
  for (const o of order) {
    const real = ctx.files.resolve(o.path)?.path ?? o.path;
    if (covered.has(real)) continue;
    if (o.elf.interpreter && (o.elf.type === 'executable' || o.elf.type === 'shared')) {
      const r = ctx.files.resolve(o.elf.interpreter);
      if (!r || r.node.t !== 'f') problems.push({ wheel: o.wheel, file: o.file, kind: 'interpreter', library: o.elf.interpreter, packages: [] });
    }
    const { unresolved, loaded } = loadObject(o.path, o.elf, ctx);
    for (const l of loaded) covered.add(l);
    for (const u of unresolved) {
      // Report against the file that needs it (a bundled library loaded through an extension names itself).
      const owner = byPath.get(ctx.files.resolve(u.from)?.path ?? u.from) ?? o;
      const id = `${owner.wheel}\0${owner.file}\0${u.library}`;
      if (seen.has(id)) continue;
      seen.add(id);
      problems.push({ wheel: owner.wheel, file: owner.file, kind: 'missing', library: u.library, packages: [] });
    }
  }
  problems.sort((a, b) => (a.wheel + '\0' + a.file + '\0' + a.library < b.wheel + '\0' + b.file + '\0' + b.library ? -1 : 1));
  return withPackages({ problems, checked: objects.length, packagesFrom: null }, finder);
}

/** The report with the Debian packages that ship each missing library, as far as `finder` knows. */
export function withPackages(report: LibraryReport, finder: PackageFinder | null): LibraryReport {
  if (!finder) return report;
  const problems = report.problems.map((p) => (p.kind === 'missing' ? { ...p, packages: runtimePackages(finder.packagesFor(p.library)) } : p));
  return { ...report, problems, packagesFrom: problems.some((p) => p.packages.length > 0) ? finder.source : null };
}

/** Of the packages shipping a file, the runtime ones: a -dev package only when nothing else ships it. */
function runtimePackages(pkgs: string[]): string[] {
  const runtime = pkgs.filter((p) => !p.endsWith('-dev'));
  return runtime.length > 0 ? runtime : pkgs;
}

/** The error for a report with problems: one list, wheel -> file -> library -> package, and what to do. */
export function libraryCheckError(report: LibraryReport, base: { name: string; architecture: string }): ImageError {
  const byWheel = new Map<string, LibraryProblem[]>();
  for (const p of report.problems) byWheel.set(p.wheel, [...(byWheel.get(p.wheel) ?? []), p]);
  const lines: string[] = [];
  for (const [wheel, ps] of byWheel) {
    lines.push(`  ${wheel}`);
    for (const p of ps) {
      if (p.kind === 'architecture') lines.push(`    ${p.file}: built for ${p.library}, the image is ${base.architecture}`);
      else if (p.kind === 'interpreter') lines.push(`    ${p.file}: program interpreter ${p.library} not found`);
      else lines.push(`    ${p.file}: ${p.library} not found${p.packages.length ? ` (Debian package ${p.packages.join(' or ')})` : ''}`);
    }
  }
  const missing = report.problems.filter((p) => p.kind === 'missing');
  const arch = report.problems.some((p) => p.kind === 'architecture');
  const packages = [...new Set(missing.map((p) => p.packages[0]).filter((p): p is string => Boolean(p)))].sort();
  const hints: string[] = [];
  if (missing.length > 0) {
    hints.push(
      packages.length > 0
        ? `add ${packages.length === 1 ? 'the package' : 'the packages'} to the runtime image (EXTRA_PACKAGES="${packages.join(' ')}"${report.packagesFrom ? `; packages from ${report.packagesFrom}` : ''})`
        : 'add the libraries to the runtime image (its EXTRA_PACKAGES build argument)',
      'or use wheels that bundle them (auditwheel repair)',
    );
  }
  if (arch) hints.push(`build the wheels for ${base.architecture}`);
  const count = report.problems.length;
  return new ImageError(
    'IMAGE_LIBRARY_MISSING',
    `${base.name} would not load what the wheels install (${count} ${count === 1 ? 'problem' : 'problems'}):\n${lines.join('\n')}`,
    { hint: `${hints.join(', ')}; --no-check-libs skips this check` },
  );
}

/** Where a wheel's member lands in a venv (the PEP 427 scheme of `prefix`). */
export function installedPath(member: string, scheme: { prefix: string; pythonVersion: string }): string {
  const prefix = scheme.prefix.replace(/\/+$/, '');
  const lib = `${prefix}/lib/python${scheme.pythonVersion}/site-packages`;
  const data = /^[^/]+\.data\/(purelib|platlib|scripts|data|headers)\/(.+)$/.exec(member);
  if (!data) return `${lib}/${member}`;
  const [, kind, rest] = data;
  if (kind === 'scripts') return `${prefix}/bin/${rest}`;
  if (kind === 'data') return `${prefix}/${rest}`;
  if (kind === 'headers') return `${prefix}/include/site/python${scheme.pythonVersion}/${rest}`;
  return `${lib}/${rest}`;
}

/** A wheel's ELF files, read once per wheel content (cached by its sha256, or by name, size and mtime). */
export async function wheelElfFiles(wheel: WheelFile, cache?: BlobCache): Promise<WheelElfFile[]> {
  let key: string;
  if (wheel.sha256) key = wheel.sha256;
  else {
    const st = await fs.stat(wheel.path);
    key = sha256Digest(JSON.stringify({ name: path.basename(wheel.path), size: st.size, mtime: st.mtimeMs })).slice(7);
  }
  const hit = cache ? await cache.readKey<WheelElfFile[]>('wheel-elf', key) : null;
  if (hit) return hit;
  const files = await readWheelElfFiles(await wheelFile(wheel), path.basename(wheel.path));
  if (cache) await cache.writeKey('wheel-elf', key, files);
  return files;
}

export interface WheelLibraryCheckOptions {
  base: Image;
  /** The base's files, when read already (else read, cached in `cache`). */
  baseFiles?: ImageFiles;
  /** By sha256 (a lock's), a cached report or ELF list reads no wheel: `locate` is called only for the others. */
  wheels: WheelFile[];
  scheme: { prefix: string; pythonVersion: string };
  cache?: BlobCache;
  /** Names Debian packages for missing libraries. */
  packages?: PackageFinder | null;
}

/**
 * The check `image app` runs before writing anything: the wheels' ELF files laid over the base's filesystem
 * at their install paths, each loaded as ld.so would. Returns the report; see {@link libraryCheckError}.
 */
export async function checkWheelLibraries(options: WheelLibraryCheckOptions): Promise<LibraryReport> {
  // The report, for these wheels (by sha256) on this base (by its layers): a warm rebuild or a cold runner with
  // the registry layer cache then reads neither the base's files nor the wheels' ELF lists. Package names are
  // added after (withPackages), so a report without them is what is kept.
  const keyed = options.cache && options.packages == null && options.wheels.every((w) => w.sha256);
  const key = keyed
    ? sha256Digest(JSON.stringify({ v: 1, layers: options.base.config.rootfs.diff_ids, arch: options.base.config.architecture, scheme: options.scheme, wheels: options.wheels.map((w) => [path.basename(w.path), w.sha256]).sort() })).slice(7)
    : null;
  const hit = key ? await options.cache!.readKey<LibraryReport>('wheel-check', key) : null;
  if (hit) return hit;
  const report = await checkWheelLibrariesUncached(options);
  if (key) await options.cache!.writeKey('wheel-check', key, report);
  return report;
}

async function checkWheelLibrariesUncached(options: WheelLibraryCheckOptions): Promise<LibraryReport> {
  const baseFiles = options.baseFiles ?? (await readImageFiles(options.base, options.cache ? { cache: options.cache } : {}));
  const objects: CheckedObject[] = [];
  const added: [string, FileNode][] = [];
  const perWheel: { w: WheelFile; elfs: WheelElfFile[] }[] = new Array(options.wheels.length);
  await forEachWheel(options.wheels, options.wheels.length, async (w, i) => {
    perWheel[i] = { w, elfs: await wheelElfFiles(w, options.cache) };
  });
  for (const { w, elfs } of perWheel) {
    const name = path.basename(w.path);
    for (const f of elfs) {
      const at = installedPath(f.path, options.scheme);
      objects.push({ wheel: name, file: f.path, path: at, elf: f.elf });
      added.push([at, { t: 'f', elf: elfKey(f.elf.machine, f.elf.bits, f.elf.endian) }]);
    }
  }
  if (objects.length === 0) return { problems: [], checked: 0, packagesFrom: null };
  // Every file of every wheel is on the image's filesystem (ld.so may find a non-ELF one first and fail on
  // it, but wheels hold no such name twice); only the ELF files matter to the loader.
  const files = baseFiles.overlay(added);
  const elfByPath = new Map(objects.map((o) => [files.resolve(o.path)?.path ?? o.path, o.elf]));
  const ctx = loaderContext(options.base, files, (p) => elfByPath.get(p) ?? null);
  return checkObjects(objects, ctx, options.packages ?? null);
}


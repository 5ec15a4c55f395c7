import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { BlobCache } from '../cache/blob-cache.js';
import { sha256Digest } from '../core/digest.js';
import { ImageError } from '../errors.js';
import type { Image } from '../core/image.js';
import { walkLayers, type LayerVisitor } from '../core/walk-layers.js';
import { isNullableString, isRecord, isStrings } from '../core/shapes.js';
import { compareVersions } from '@dstack/recipe';
import {
  describeTarget,
  machineOfGlibcLoader,
  machineOfMuslLoader,
  machineOfOciPlatform,
  type Libc,
  type Target,
} from '@dstack/wheelhouse';

/** What the image builder needs to know about a base image, read from its files and config (no container run). */
export interface BaseInfo {
  /** The interpreter a venv should point at, e.g. "/usr/bin/python3.11". */
  python: string;
  /** "3.11". */
  pythonVersion: string;
  /**
   * "3.11.2": as the base says it (PYTHON_VERSION env, an existing venv, dpkg status), else as the interpreter's
   * binary states it (the interpreter or its libpython); a base that states none is refused.
   */
  pythonFullVersion: string;
  /** The base already has a venv at /env (its pyvenv.cfg). */
  venv: { home: string; version: string | null } | null;
  passwd: string | null;
  group: string | null;
  /**
   * Where wheels installed on it will run (Decision 18), read without running it: the config's
   * `architecture`/`variant`, the interpreter above, glibc's version from `libc.so.6` / `ld-linux-*`, or musl's
   * from `ld-musl-*` (or apk's database). `libc` is null when neither is found.
   */
  target: Target;
  /**
   * A pip wheel the base carries for venvs (Debian's `/usr/share/python-wheels/pip-*.whl`, else the interpreter's
   * `ensurepip/_bundled/pip-*.whl`), as a path in the image, or null.
   */
  pipWheel: string | null;
  /** The base's /env already has pip (its site-packages holds `pip/`). */
  venvHasPip: boolean;
}

/** A C library file found in the base's layers: what kind, for which machine, and its version when known. */
export interface LibcFile {
  path: string;
  kind: 'glibc' | 'musl';
  machine: string | null;
  version: string | null;
}

const LIB_DIR_RE = /^(?:usr\/)?lib(?:32|64|x32)?\/(?:[\w.-]+\/)?([^/]+)$/;
/** Library files up to this size are read for their version string (libc.so.6 is ~2 MB, musl's ~0.7 MB). */
const MAX_LIBC_BYTES = 16 << 20;

/** What a file under a lib directory is, by its name: glibc's libc or loader, or musl's loader. */
function libcFileKind(name: string): { kind: 'glibc' | 'musl'; machine: string | null; version: string | null } | null {
  const base = LIB_DIR_RE.exec(name)?.[1];
  if (!base) return null;
  if (base === 'libc.so.6') return { kind: 'glibc', machine: null, version: null };
  const old = /^libc-(\d+\.\d+)\.so$/.exec(base);
  if (old) return { kind: 'glibc', machine: null, version: old[1]! };
  const glibcLoader = machineOfGlibcLoader(base);
  if (glibcLoader) return { kind: 'glibc', machine: glibcLoader, version: null };
  const muslLoader = machineOfMuslLoader(base);
  if (muslLoader) return { kind: 'musl', machine: muslLoader, version: null };
  return null;
}

/** The version a C library states inside itself: glibc's "release version 2.36", musl's bare "1.2.3". */
function libcVersionIn(kind: 'glibc' | 'musl', bytes: Buffer): string | null {
  const text = bytes.toString('latin1');
  if (kind === 'glibc') return /release version (\d+\.\d+)/.exec(text)?.[1] ?? null;
  return /\0(1\.\d+)\.\d+\0/.exec(text)?.[1] ?? null;
}

const INTERPRETER_RE = /^(usr\/local\/bin|usr\/bin)\/python(3\.\d+)$/;
/** Where CPython's code lives: the interpreter itself (Debian links it statically), or its shared libpython. */
const LIBPYTHON_RE = /^(?:usr\/)?(?:local\/)?lib(?:64)?\/(?:[\w.-]+\/)?libpython(3\.\d+)\.so(?:\.[\d.]+)?$/;
/** Interpreter binaries up to this size are read for their version (Debian's python3.11 ~7 MB, libpython ~30 MB). */
const MAX_PYTHON_BYTES = 96 << 20;

/**
 * The full versions an interpreter binary states: CPython keeps PY_VERSION ("3.11.2") as a C string, standing
 * alone (Debian's build) or as the tail of a longer one the linker merged it into (a pyenv build's
 * "…/versions/3.11.7", "…/Python-3.11.7").
 */
function versionsIn(bytes: Buffer, minor: string): Set<string> {
  const re = new RegExp(`[\\0/-](${minor.replace('.', '\\.')}\\.\\d+(?:(?:a|b|rc)\\d+)?\\+?)\\0`, 'g');
  return new Set([...bytes.toString('latin1').matchAll(re)].map((m) => m[1]!));
}
const PIP_WHEEL_RE = /^(?:usr\/share\/python-wheels|usr(?:\/local)?\/lib\/python3\.\d+\/ensurepip\/_bundled)\/pip-[^/-]+-py3-none-any\.whl$/;
const ENV_PIP_RE = /^env\/lib\/python3\.\d+\/site-packages\/pip\/__init__\.py$/;
const pipVersionOf = (p: string): string => /pip-([^/-]+)-/.exec(p)![1]!;
const TRACKED = new Set(['etc/passwd', 'etc/group', 'env/pyvenv.cfg', 'var/lib/dpkg/status', 'lib/apk/db/installed']);

const baseKey = (image: Image): string => {
  const platform = { architecture: image.config.architecture, os: image.config.os, variant: image.config.variant ?? null };
  return sha256Digest(JSON.stringify({ v: 4, layers: image.config.rootfs.diff_ids, env: image.config.config?.Env ?? [], platform })).slice(7);
};

/** What `inspectBase` found for an image with these layers, config and platform, when it is cached; else null. */
export async function cachedBaseInfo(image: Image, cache: BlobCache): Promise<BaseInfo | null> {
  return cache.readKey<BaseInfo>('base', baseKey(image));
}

export async function saveBaseInfo(image: Image, cache: BlobCache, info: BaseInfo): Promise<void> {
  await cache.writeKey('base', baseKey(image), info);
}

/**
 * Reads the base's layers in order (whiteouts honoured for the files it tracks) for its Python interpreters,
 * /etc/passwd, /etc/group, /env/pyvenv.cfg and dpkg's status; the result is cached by the layers' diffIDs.
 */
export async function inspectBase(image: Image, options: { cache?: BlobCache } = {}): Promise<BaseInfo> {
  const cached = options.cache ? await cachedBaseInfo(image, options.cache) : null;
  if (cached) return cached;
  const reader = baseInfoReader(image);
  await walkLayers(image.layers, [reader.visitor]);
  const info = reader.result();
  if (options.cache) await saveBaseInfo(image, options.cache, info);
  return info;
}

/**
 * What one walk of a base's layers finds for {@link BaseInfo}, before the config is applied: plain data (a base
 * index carries it, app/base-index.ts). Paths without the leading slash.
 */
export interface BaseFacts {
  /** The text of the tracked files found: etc/passwd, etc/group, env/pyvenv.cfg, dpkg's status, apk's database. */
  files: Record<string, string>;
  /** usr/bin/python3.X and usr/local/bin/python3.X (files or links). */
  interpreters: string[];
  libcs: LibcFile[];
  pipWheels: string[];
  envPips: string[];
  /** The full versions each interpreter binary or libpython states, by path. */
  binaryVersions: Record<string, { minor: string; versions: string[] }>;
}

/**
 * Why `x` is not {@link BaseFacts} as a walk finds them (the shapes, and every path one the walk would have kept), or
 * null: facts from elsewhere (a base's own index) are checked before `baseInfoFromFacts` trusts them.
 */
export function baseFactsProblem(x: unknown): string | null {
  if (!isRecord(x)) return 'not an object';
  if (!isRecord(x.files) || !Object.entries(x.files).every(([k, v]) => TRACKED.has(k) && typeof v === 'string')) return 'files: not the tracked files\' text';
  if (!isStrings(x.interpreters) || !x.interpreters.every((p) => INTERPRETER_RE.test(p))) return 'interpreters: not python3.X paths';
  if (
    !Array.isArray(x.libcs) ||
    !x.libcs.every((l) => isRecord(l) && typeof l.path === 'string' && (l.kind === 'glibc' || l.kind === 'musl') && isNullableString(l.machine) && isNullableString(l.version))
  ) {
    return 'libcs: not C library files';
  }
  if (!isStrings(x.pipWheels) || !x.pipWheels.every((p) => PIP_WHEEL_RE.test(p))) return 'pipWheels: not pip wheel paths';
  if (!isStrings(x.envPips) || !x.envPips.every((p) => ENV_PIP_RE.test(p))) return "envPips: not the venv's pip";
  if (!isRecord(x.binaryVersions) || !Object.values(x.binaryVersions).every((b) => isRecord(b) && typeof b.minor === 'string' && /^3\.\d+$/.test(b.minor) && isStrings(b.versions))) {
    return 'binaryVersions: not versions by minor version';
  }
  return null;
}

/** The visitor behind `inspectBase`, for a walk shared with other readers; `facts()` and `result()` once it is done. */
export function baseInfoReader(image: Image): { visitor: LayerVisitor; facts: () => BaseFacts; result: () => BaseInfo } {
  const files = new Map<string, Buffer>();
  const interpreters = new Set<string>();
  const libcs = new Map<string, LibcFile>();
  const pipWheels = new Set<string>();
  const envPips = new Set<string>();
  const binaryVersions = new Map<string, { minor: string; versions: Set<string> }>();
  const visitor: LayerVisitor = {
    entry({ name, header }) {
      const base = name.slice(name.lastIndexOf('/') + 1);
      if (base.startsWith('.wh.')) {
        const dir = name.slice(0, name.length - base.length);
        if (base === '.wh..wh..opq') {
          for (const k of [...files.keys()]) if (k.startsWith(dir)) files.delete(k);
          for (const k of [...interpreters]) if (k.startsWith(dir)) interpreters.delete(k);
          for (const k of [...libcs.keys()]) if (k.startsWith(dir)) libcs.delete(k);
          for (const set of [pipWheels, envPips]) for (const k of [...set]) if (k.startsWith(dir)) set.delete(k);
          for (const k of [...binaryVersions.keys()]) if (k.startsWith(dir)) binaryVersions.delete(k);
        } else {
          const target = dir + base.slice(4);
          files.delete(target);
          interpreters.delete(target);
          libcs.delete(target);
          pipWheels.delete(target);
          envPips.delete(target);
          binaryVersions.delete(target);
        }
        return null;
      }
      const linkish = header.type === 'file' || header.type === 'symlink' || header.type === 'link';
      if (linkish && INTERPRETER_RE.test(name)) interpreters.add(name);
      // The version the interpreter's code states: the full version when nothing else in the base says it.
      const codeMinor = header.type === 'file' && (header.size ?? 0) <= MAX_PYTHON_BYTES ? (INTERPRETER_RE.exec(name)?.[2] ?? LIBPYTHON_RE.exec(name)?.[1]) : undefined;
      if (codeMinor) return { bytes: Infinity, use: (bytes) => binaryVersions.set(name, { minor: codeMinor, versions: versionsIn(bytes, codeMinor) }) };
      if (header.type === 'file' && PIP_WHEEL_RE.test(name)) pipWheels.add(name);
      if (ENV_PIP_RE.test(name)) envPips.add(name);
      const libc = linkish ? libcFileKind(name) : null;
      if (libc) {
        if (!libc.version && header.type === 'file' && (header.size ?? 0) <= MAX_LIBC_BYTES) {
          return { bytes: Infinity, use: (bytes) => libcs.set(name, { ...libc, path: name, version: libcVersionIn(libc.kind, bytes) }) };
        }
        libcs.set(name, { ...libc, path: name });
        return null;
      }
      if (header.type === 'file' && TRACKED.has(name)) return { bytes: Infinity, use: (bytes) => files.set(name, bytes) };
      return null;
    },
  };
  const facts = (): BaseFacts => ({
    files: Object.fromEntries([...files].map(([k, v]) => [k, v.toString('utf8')])),
    interpreters: [...interpreters],
    libcs: [...libcs.values()],
    pipWheels: [...pipWheels],
    envPips: [...envPips],
    binaryVersions: Object.fromEntries([...binaryVersions].map(([k, v]) => [k, { minor: v.minor, versions: [...v.versions] }])),
  });
  return { visitor, facts, result: () => baseInfoFromFacts(image, facts()) };
}

/** The base's facts read with its config (platform, PYTHON_VERSION): what `inspectBase` says; throws as it does. */
export function baseInfoFromFacts(image: Image, facts: BaseFacts): BaseInfo {
  const { interpreters, libcs, pipWheels, envPips, binaryVersions } = facts;
  const env = new Map((image.config.config?.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const text = (k: string): string | null => (Object.hasOwn(facts.files, k) ? facts.files[k]! : null);
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
  if (!full) {
    // The interpreter's own code: one version stated by its binaries of that minor version, else none.
    const stated = new Set(Object.values(binaryVersions).filter((b) => b.minor === pythonVersion).flatMap((b) => b.versions));
    if (stated.size === 1) full = [...stated][0]!.replace(/\+$/, '');
  }
  if (!full) {
    throw new ImageError('IMAGE_BASE_PYTHON_VERSION', `the base's /${python} states no full Python version (no PYTHON_VERSION, venv, dpkg record, nor a version in its binary)`, {
      hint: 'set PYTHON_VERSION=3.X.Y in the base image\'s environment',
    });
  }
  const target = baseTarget(image, { python: '/' + python, pythonVersion, pythonFullVersion: full }, libcs, text('lib/apk/db/installed'));
  // Debian's shared wheels first, then the interpreter's own bundle; the newest pip of the first place that has one.
  const pipWheel =
    [...pipWheels]
      .filter((p) => p.startsWith('usr/share/python-wheels/') || p.includes(`/python${pythonVersion}/ensurepip/`))
      .sort((a, b) => Number(b.startsWith('usr/share/')) - Number(a.startsWith('usr/share/')) || compareVersions(pipVersionOf(b), pipVersionOf(a)))[0] ?? null;
  const info: BaseInfo = {
    python: '/' + python,
    pythonVersion,
    pythonFullVersion: full,
    venv,
    passwd: text('etc/passwd'),
    group: text('etc/group'),
    target,
    pipWheel: pipWheel ? '/' + pipWheel : null,
    venvHasPip: venv !== null && envPips.length > 0,
  };
  return info;
}

/**
 * The base's target from its config and the C library files in its layers. glibc wins when both are there
 * (Debian's `musl` package adds a musl loader beside glibc; its Python is linked against glibc).
 */
function baseTarget(
  image: Image,
  py: { python: string; pythonVersion: string; pythonFullVersion: string },
  libcs: LibcFile[],
  apkInstalled: string | null,
): Target {
  const glibc = libcs.filter((l) => l.kind === 'glibc');
  const musl = libcs.filter((l) => l.kind === 'musl');
  let libc: Libc | null = null;
  if (glibc.length > 0) {
    const version = glibc.map((l) => l.version).find((v) => v !== null);
    if (version) libc = { kind: 'glibc', version };
  } else if (musl.length > 0) {
    const apk = apkInstalled ? /^P:musl\nV:(\d+\.\d+)/m.exec(apkInstalled)?.[1] : undefined;
    const version = apk ?? musl.map((l) => l.version).find((v) => v !== null);
    if (version) libc = { kind: 'musl', version };
  }
  const loaders = (glibc.length > 0 ? glibc : musl).filter((l): l is LibcFile & { machine: string } => l.machine !== null);
  const configured = machineOfOciPlatform(image.config.architecture, image.config.variant);
  const platform = `${image.config.os}/${image.config.architecture}${image.config.variant ? `/${image.config.variant}` : ''}`;
  // A config that disagrees with the binaries (`docker import` of a foreign rootfs says amd64) would install
  // wheels that cannot load: refused, naming both.
  const other = loaders.find((l) => configured && l.machine !== configured && !loaders.some((x) => x.machine === configured));
  if (other) {
    throw new ImageError('IMAGE_BASE_PLATFORM', `the base image's config says ${platform} (${configured}), but its C library is for ${other.machine} (${other.path})`, {
      hint: 'fix the image\'s platform (docker import ignores --platform on older engines: load an archive whose config names it)',
    });
  }
  const architecture = configured ?? loaders[0]?.machine;
  if (!architecture) {
    throw new ImageError('IMAGE_BASE_PLATFORM', `the base image's platform ${platform} has no Python wheel tags`, {
      hint: 'use a linux base for one of the architectures wheels are built for (amd64, arm64, arm/v7, ppc64le, s390x, 386)',
    });
  }
  const target = describeTarget({ pythonFullVersion: py.pythonFullVersion, architecture, libc });
  return { ...target, interpreter: `image:${py.python}` };
}

/**
 * Copies one regular file out of a base image's layers (the last layer that has it) into `dir`, once: the copy is
 * named by that layer's diffID, so a later build on the same base reuses it. Returns its path, or null.
 */
export async function extractBaseFile(image: Image, file: string, dir: string): Promise<string | null> {
  const want = file.replace(/^\//, '');
  for (let i = image.layers.length - 1; i >= 0; i--) {
    const layer = image.layers[i]!;
    const out = path.join(dir, layer.diffId.replace(/^sha256:/, ''), path.basename(want));
    if (existsSync(out)) return out;
    const extract = tar.extract();
    const src = await layer.uncompressed();
    src.on('error', (e) => extract.destroy(e));
    src.pipe(extract as unknown as NodeJS.WritableStream);
    let found = false;
    for await (const entry of extract) {
      const name = entry.header.name.replace(/^\.?\//, '');
      if (name === want && entry.header.type === 'file') {
        await mkdir(path.dirname(out), { recursive: true });
        const temp = `${out}.${process.pid}.tmp`;
        await pipeline(entry as unknown as Readable, createWriteStream(temp));
        await rename(temp, out);
        found = true;
      } else entry.resume();
    }
    if (found) return out;
  }
  return null;
}

/**
 * The real container components the tests share (DESIGN.md "Real components", Decision 15): one private
 * Docker engine per machine, one registry, one debootstrapped base image, and the images under `images/`
 * built once per machine and reused by content. The scripts in tools/system start them; the vitest
 * globalSetup (global-setup.ts) runs those scripts once per run. Here, tests connect to them.
 *
 * Outside CI a missing component is started on first use (so one test file runs without the whole
 * suite's setup); in CI (`CI=true`) a missing one is a failure whose message says what to run.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { Writable } from 'node:stream';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import { validateImageAt } from './validate-daemon-image.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** tools/system: the scripts that install and start the components. */
export const systemScriptsDir = path.join(repoRoot, 'tools/system');
/** images/: the Dockerfiles (factory, runtime, app). */
export const imagesDir = path.join(repoRoot, 'images');

const runDir = process.env.DSTACK_RUN_DIR ?? '/tmp/dstack';
/** The private engine's socket (tools/system/lib.sh: $DSTACK_RUN_DIR/engine/docker.sock). */
export const engineSocketPath = path.join(runDir, 'engine/docker.sock');
/** The registry's port (tools/system/lib.sh: $DSTACK_REGISTRY_PORT, default 5077). */
export const registryPort = Number(process.env.DSTACK_REGISTRY_PORT ?? 5077);
/**
 * The machine's cache of what the components are made from (tools/system/lib.sh: $DSTACK_CACHE_DIR, default
 * /var/cache/dstack-factory): the base's rootfs tarball, Debian's source packages, wheels built from them.
 */
export const machineCacheDir = process.env.DSTACK_CACHE_DIR ?? '/var/cache/dstack-factory';
/** The debootstrapped Debian bookworm base (python3 3.11, python3-venv, ca-certificates). */
export const baseImageName = process.env.DSTACK_BASE_IMAGE ?? 'dstack-factory/base:bookworm';
/** Label on images built by `sharedImage()`: the hash of everything that went into them. */
export const contentLabel = 'org.dstack-factory.test.content';
/** Label on every container and image tests create, so leftovers can be found and removed. */
export const testLabel = 'org.dstack-factory.test';

export interface SharedEngine {
  docker: Docker;
  /** `unix:///…/docker.sock` (or $DSTACK_TEST_DOCKER_HOST): give it to a CLI or a child process as DOCKER_HOST. */
  dockerHost: string;
  /** The process environment with DOCKER_HOST set to this engine. */
  env: NodeJS.ProcessEnv;
  /** The engine's API version, e.g. "1.41". */
  apiVersion: string;
}

export interface SharedRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, as in an image reference. */
  host: string;
  port: number;
}

const inCI = (): boolean => /^(1|true|yes)$/i.test(process.env.CI ?? '');

function runScript(name: string, args: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [path.join(systemScriptsDir, name), ...args],
      { maxBuffer: 16 * 1024 * 1024, env: process.env },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(
              `tools/system/${name} ${args.join(' ')} failed: ${(stderr || stdout).trim() || error.message}`,
            ),
          );
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

function missing(what: string, fix: string, cause?: unknown): Error {
  return new Error(`${what}. ${fix}`, { cause });
}

async function pingEngine(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

let enginePromise: Promise<SharedEngine> | undefined;

/**
 * The private Docker engine (Debian docker.io 20.10, API 1.41) on `unix://$DSTACK_RUN_DIR/engine/docker.sock`,
 * or the engine named by `$DSTACK_TEST_DOCKER_HOST`. Started by tools/system/engine.sh.
 */
export function sharedEngine(): Promise<SharedEngine> {
  enginePromise ??= connectEngine().catch((error: unknown) => {
    enginePromise = undefined;
    throw error;
  });
  return enginePromise;
}

async function connectEngine(): Promise<SharedEngine> {
  const override = process.env.DSTACK_TEST_DOCKER_HOST;
  const dockerHost = override ?? `unix://${engineSocketPath}`;
  const docker = dockerFor(dockerHost);
  if (!(await pingEngine(docker))) {
    const fix =
      'Start it with `sudo bash tools/system/engine.sh start` (`sudo bash tools/system/setup.sh` installs docker.io).';
    if (override)
      throw missing(`The Docker engine at DSTACK_TEST_DOCKER_HOST=${override} does not answer`, fix);
    if (inCI()) throw missing(`The private Docker engine does not answer on ${dockerHost}`, fix);
    try {
      await runScript('engine.sh', ['start']);
    } catch (error) {
      throw missing(`The private Docker engine could not be started on ${dockerHost}`, fix, error);
    }
    if (!(await pingEngine(docker)))
      throw missing(`The private Docker engine does not answer on ${dockerHost}`, fix);
  }
  const version = await docker.version();
  return {
    docker,
    dockerHost,
    env: { ...process.env, DOCKER_HOST: dockerHost },
    apiVersion: version.ApiVersion,
  };
}

/** A dockerode client for a DOCKER_HOST value (unix:// or tcp://). */
export function dockerFor(dockerHost: string): Docker {
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
}

/**
 * The debootstrapped base image, present in the shared engine (imported from the machine's cache if needed).
 * `{ arch: 'arm64' }`: the same Debian for arm64, its packages unpacked without emulation (tools/system/base-image.sh) (`<name>-arm64`, linux/arm64).
 */
export async function sharedBaseImage(options: { arch?: 'arm64' } = {}): Promise<string> {
  const { docker } = await sharedEngine();
  const name = options.arch ? `${baseImageName}-${options.arch}` : baseImageName;
  const args = options.arch ? ['--arch', options.arch] : [];
  if (await imageExists(docker, name)) return name;
  const fix = `Make it with \`sudo bash tools/system/base-image.sh${options.arch ? ` --arch ${options.arch}` : ''}\` (debootstrap once per machine, then \`docker import\`).`;
  if (inCI() || process.env.DSTACK_TEST_DOCKER_HOST) {
    throw missing(`The base image ${name} is not in the test engine`, fix);
  }
  try {
    await runScript('base-image.sh', args);
  } catch (error) {
    throw missing(`The base image ${name} could not be made`, fix, error);
  }
  // Made here, once per machine: read back and checked by validateImage (every image a test makes, issue 18).
  await validateImageAt(`docker:${name}`, docker);
  return name;
}

let registryPromise: Promise<SharedRegistry> | undefined;

/** The registry (Debian docker-registry, plain HTTP on 127.0.0.1) started by tools/system/registry.sh. */
export function sharedRegistry(): Promise<SharedRegistry> {
  registryPromise ??= connectRegistry().catch((error: unknown) => {
    registryPromise = undefined;
    throw error;
  });
  return registryPromise;
}

async function pingRegistry(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function connectRegistry(): Promise<SharedRegistry> {
  const host = `127.0.0.1:${registryPort}`;
  const url = `http://${host}`;
  if (!(await pingRegistry(url))) {
    const fix =
      'Start it with `bash tools/system/registry.sh start` (`sudo bash tools/system/setup.sh` installs docker-registry).';
    if (inCI()) throw missing(`The test registry does not answer on ${url}`, fix);
    try {
      await runScript('registry.sh', ['start']);
    } catch (error) {
      throw missing(`The test registry could not be started on ${url}`, fix, error);
    }
    if (!(await pingRegistry(url))) throw missing(`The test registry does not answer on ${url}`, fix);
  }
  return { url, host, port: registryPort };
}

async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Images built once per machine and reused by content.

export interface SharedImageSpec {
  /** Repository of the tag, e.g. "dstack-factory/factory". The tag is `<repo>:c-<hash>`. */
  repo: string;
  /** The build context directory. */
  context: string;
  /** Dockerfile path inside the context (default "Dockerfile"). */
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  /** Progress lines of the build (e.g. to a test's log); silent by default. */
  onLine?: (line: string) => void;
}

/** Files of a build context, sorted, without `__pycache__`, `*.pyc` and simple `.dockerignore` names. */
export async function contextFiles(context: string): Promise<string[]> {
  const ignored = new Set(['__pycache__', '.git', 'node_modules']);
  const globs: RegExp[] = [/\.pyc$/];
  try {
    for (const raw of (await fs.readFile(path.join(context, '.dockerignore'), 'utf8')).split('\n')) {
      const line = raw.trim().replace(/^\/+|\/+$/g, '');
      if (!line || line.startsWith('#') || line.startsWith('!')) continue;
      if (line.includes('*')) {
        const re = line
          .replace(/^\*\*\//, '')
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*');
        globs.push(new RegExp(`(^|/)${re}$`));
      } else {
        ignored.add(line);
      }
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(path.join(context, rel), { withFileTypes: true });
    for (const entry of entries) {
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (ignored.has(entry.name) || ignored.has(name) || globs.some((g) => g.test(name))) continue;
      if (entry.isDirectory()) await walk(name);
      else if (entry.isFile() || entry.isSymbolicLink()) out.push(name);
    }
  };
  await walk('');
  return out.sort();
}

/**
 * A tar-stream archive of `files` (relative to `context`) with fixed times and owners: a build context,
 * or with `prefix` ("src/") an input for putArchive at "/" (putArchive needs an existing target folder).
 */
export function packContext(context: string, files: string[], prefix = ''): NodeJS.ReadableStream {
  const pack = tarPack();
  void (async () => {
    try {
      const dirs = new Set<string>();
      const addDirs = (name: string) => {
        const parts = name.split('/').slice(0, -1);
        for (let i = 1; i <= parts.length; i++) {
          const dir = parts.slice(0, i).join('/');
          if (dirs.has(dir)) continue;
          dirs.add(dir);
          pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, mtime: new Date(0), uid: 0, gid: 0 });
        }
      };
      for (const rel of files) {
        const full = path.join(context, rel);
        const stat = await fs.lstat(full);
        const name = prefix + rel;
        if (prefix) addDirs(name);
        const common = { name, mtime: new Date(0), uid: 0, gid: 0, mode: stat.mode & 0o7777 };
        if (stat.isSymbolicLink()) {
          pack.entry({ ...common, type: 'symlink', linkname: await fs.readlink(full) });
        } else {
          const data = await fs.readFile(full);
          await new Promise<void>((resolve, reject) =>
            pack.entry({ ...common, size: data.length }, data, (err) => (err ? reject(err) : resolve())),
          );
        }
      }
      pack.finalize();
    } catch (error) {
      pack.destroy(error as Error);
    }
  })();
  return pack;
}

/** sha256 over the Dockerfile, the context's files (names, modes, bytes) and the build arguments. */
export async function contextDigest(spec: SharedImageSpec, files: string[], extra = ''): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`dockerfile=${spec.dockerfile ?? 'Dockerfile'}\0${extra}\0`);
  for (const [k, v] of Object.entries(spec.buildArgs ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    hash.update(`arg:${k}=${v}\0`);
  }
  for (const rel of files) {
    const full = path.join(spec.context, rel);
    const stat = await fs.lstat(full);
    hash.update(`file:${rel}\0${stat.mode & 0o777}\0`);
    hash.update(stat.isSymbolicLink() ? await fs.readlink(full) : await fs.readFile(full));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** Follows a build (or pull) stream to its end; an `errorDetail` inside a 200 stream is a failure. */
export function followBuild(
  docker: Docker,
  stream: NodeJS.ReadableStream,
  onLine?: (line: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
        if (err) return reject(err);
        const failed = output.find((o) => o.errorDetail || o.error);
        if (failed)
          return reject(new Error(`docker build failed: ${failed.errorDetail?.message ?? failed.error}`));
        resolve();
      },
      (event: { stream?: string; status?: string }) => {
        const text = event.stream ?? event.status;
        if (onLine && text) for (const line of text.split('\n')) if (line.trim()) onLine(line.trimEnd());
      },
    );
  });
}

const building = new Map<string, Promise<string>>();

/**
 * An image built from `spec` on the shared engine, reused when an image of the same content exists
 * (same Dockerfile, context files, build args and base image ids): tagged `<repo>:c-<hash16>` and
 * labelled with the full hash. Returns the tag.
 */
export function sharedImage(spec: SharedImageSpec): Promise<string> {
  const key = JSON.stringify([spec.repo, spec.context, spec.dockerfile, spec.buildArgs]);
  let promise = building.get(key);
  if (!promise) {
    promise = buildShared(spec).catch((error: unknown) => {
      building.delete(key);
      throw error;
    });
    building.set(key, promise);
  }
  return promise;
}

async function buildShared(spec: SharedImageSpec): Promise<string> {
  const { docker } = await sharedEngine();
  const files = await contextFiles(spec.context);
  // The base image's id is part of the content: a re-imported base rebuilds what stands on it.
  const bases: string[] = [];
  for (const [k, v] of Object.entries(spec.buildArgs ?? {})) {
    if (k === 'BASE_IMAGE') bases.push(`${v}@${(await docker.getImage(v).inspect()).Id}`);
  }
  const digest = await contextDigest(spec, files, bases.join(','));
  const tag = `${spec.repo}:c-${digest.slice(0, 16)}`;
  if (await imageExists(docker, tag)) return tag;
  const stream = await docker.buildImage(packContext(spec.context, files), {
    t: tag,
    dockerfile: spec.dockerfile ?? 'Dockerfile',
    buildargs: spec.buildArgs ?? {},
    labels: { [contentLabel]: digest, [testLabel]: 'shared' },
    rm: true,
    forcerm: true,
  });
  await followBuild(docker, stream, spec.onLine);
  // Built here, once per content: read back and checked by validateImage (every image a test makes, issue 18).
  await validateImageAt(`docker:${tag}`, docker);
  return tag;
}

/** The factory image (images/factory) on the debootstrapped base, built once per content. */
export async function sharedFactoryImage(
  options: { pyVersion?: string; onLine?: (line: string) => void } = {},
): Promise<string> {
  const base = await sharedBaseImage();
  return sharedImage({
    repo: 'dstack-factory/factory',
    context: path.join(imagesDir, 'factory'),
    // The arguments docker-compose.yml passes (EXTRA_PACKAGES empty): compose's builds hit the same cache.
    buildArgs: { BASE_IMAGE: base, PY_VERSION: options.pyVersion ?? '3.11', EXTRA_PACKAGES: '' },
    ...(options.onLine ? { onLine: options.onLine } : {}),
  });
}

/** The runtime image (images/runtime) on the debootstrapped base, built once per content. */
export async function sharedRuntimeImage(
  options: { pyVersion?: string; uid?: number; onLine?: (line: string) => void } = {},
): Promise<string> {
  const base = await sharedBaseImage();
  return sharedImage({
    repo: 'dstack-factory/runtime',
    context: path.join(imagesDir, 'runtime'),
    buildArgs: {
      BASE_IMAGE: base,
      PY_VERSION: options.pyVersion ?? '3.11',
      UID: String(options.uid ?? 4801),
      EXTRA_PACKAGES: '',
    },
    ...(options.onLine ? { onLine: options.onLine } : {}),
  });
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Files under `options.outputPath` after the run (path relative to it -> bytes). */
  files: Map<string, Buffer>;
}

export interface RunOptions {
  user?: string;
  env?: string[];
  workingDir?: string;
  timeoutMs?: number;
  /** A host directory copied (putArchive) into the container at `input.path` before it starts. */
  input?: { dir: string; path: string };
  /** A container directory fetched (getArchive) after the run into `RunResult.files`. */
  outputPath?: string;
  /** Keep the image's own entrypoint (default: none, `cmd` runs as given). */
  imageEntrypoint?: boolean;
}

/**
 * Runs `cmd` in a new container of `image` on the shared engine and removes the container, whatever
 * happens. For checks like "does this import work in the image".
 */
export async function runInContainer(
  image: string,
  cmd: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const { docker } = await sharedEngine();
  const container = await docker.createContainer({
    Image: image,
    Cmd: cmd,
    ...(options.imageEntrypoint ? {} : { Entrypoint: [] }),
    Labels: { [testLabel]: 'run' },
    ...(options.user ? { User: options.user } : {}),
    ...(options.env ? { Env: options.env } : {}),
    ...(options.workingDir ? { WorkingDir: options.workingDir } : {}),
    HostConfig: { AutoRemove: false },
  });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out = collector();
    const err = collector();
    docker.modem.demuxStream(stream, out.sink, err.sink);
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    if (options.input) {
      const files = await contextFiles(options.input.dir);
      const prefix = `${options.input.path.replace(/^\/+|\/+$/g, '')}/`;
      await container.putArchive(packContext(options.input.dir, files, prefix), { path: '/' });
    }
    await container.start();
    const timeout = options.timeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      container.wait() as Promise<{ StatusCode: number }>,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`container of ${image} running ${cmd.join(' ')} timed out after ${timeout} ms`)),
          timeout,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    await ended;
    const files = options.outputPath
      ? await untar(await container.getArchive({ path: options.outputPath }))
      : new Map();
    return { exitCode: waited.StatusCode, stdout: out.text(), stderr: err.text(), files };
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

function collector(): { sink: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { sink, text: () => Buffer.concat(chunks).toString() };
}

/** The regular files of a tar stream (names without their first component, as getArchive names them). */
export function untar(stream: NodeJS.ReadableStream): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const files = new Map<string, Buffer>();
    const extract = tarExtract();
    extract.on('entry', (header, entry, next) => {
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => {
        if (header.type === 'file')
          files.set(header.name.split('/').slice(1).join('/'), Buffer.concat(chunks));
        next();
      });
      entry.resume();
    });
    extract.on('finish', () => resolve(files));
    extract.on('error', reject);
    stream.on('error', reject);
    stream.pipe(extract);
  });
}

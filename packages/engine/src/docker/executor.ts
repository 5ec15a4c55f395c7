// The docker executor: the same build script (images/factory/factory.py, Decision 9) run inside a container
// of the factory image. Inputs go in and wheels come out as archives (putArchive/getArchive), so a remote
// DOCKER_HOST works like a local socket. Containers carry labels and are always removed.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { MarkerEnvironment } from '@dstack/recipe';
import { targetFromTags, type Target } from '@dstack/wheelhouse';
import { createRequire } from 'node:module';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import { acquireBuildLock, type HeldBuildLock } from '../buildlock.js';
import type { BuildJob, BuildResult, EventSink, Executor, InterpreterInfo } from '../executor.js';
import { FactoryRun, factoryArgs } from '../protocol.js';
import { buildInputs, packInputs } from './inputs.js';
import { DstackError } from '@dstack/errors';
import { EngineError } from '../errors.js';

/** Labels on every container the executor creates (find leftovers with `docker ps -a --filter label=…`). */
export const CONTAINER_LABEL = 'org.dstack-factory.executor';
export const JOB_LABEL = 'org.dstack-factory.job';

/** Where the script leaves wheels inside the container (outside every mirrored host path). */
const CONTAINER_OUTPUT = '/dstack-factory/out';
/** The build script's path inside the factory image (images/factory/Dockerfile). */
export const CONTAINER_SCRIPT = '/opt/dstack-factory/factory.py';

export interface DockerExecutorOptions {
  /** The factory image (a tag or id), e.g. the result of `ensureFactoryImage()`. */
  image: string;
  /** A dockerode client; default: from DOCKER_HOST (or the default socket). */
  docker?: Docker;
  /** The engine's address for messages (default: DOCKER_HOST or unix:///var/run/docker.sock). */
  dockerHost?: string;
  /** Container network mode (default: the engine's default bridge). */
  network?: string;
  logger?: Logger;
}

/**
 * A dockerode client for a DOCKER_HOST value (`unix://…`, `tcp://host:port`). Without one, or for the
 * process's own DOCKER_HOST, docker-modem reads the environment itself (DOCKER_HOST, DOCKER_TLS_VERIFY,
 * DOCKER_CERT_PATH), so a TLS-protected remote engine works as the docker CLI's does.
 */
export function dockerFromEnv(dockerHost = process.env.DOCKER_HOST): Docker {
  const Docker = loadDockerode();
  if (!dockerHost || dockerHost === process.env.DOCKER_HOST) return new Docker();
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
}

/** dockerode, loaded on first use: a local build, which never needs it, does not pay its ~0.1 s of loading. */
const loadDockerode = (): typeof Docker => createRequire(import.meta.url)('dockerode') as typeof Docker;

/** Environment variables passed into the container: pip's own (PIP_*) and the seed's switches. */
function containerEnv(env: Record<string, string | undefined>): string[] {
  const out: string[] = ['PYTHONUNBUFFERED=1'];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (k.startsWith('PIP_') || k === 'SOURCE_DATE_EPOCH' || /^(https?|no)_proxy$/i.test(k)) {
      out.push(`${k}=${v}`);
    }
  }
  return out;
}

function engineGone(dockerHost: string, job: string, cause: unknown): EngineError {
  return new EngineError(
    'DOCKER_UNAVAILABLE',
    `the Docker engine at ${dockerHost} stopped answering during build ${job}: ${(cause as Error)?.message ?? String(cause)}`,
    { hint: 'check that dockerd is still running (`docker info`), then run the build again', cause },
  );
}

/** Runs images/factory/factory.py in a container of the factory image. */
export class DockerExecutor implements Executor {
  readonly kind = 'docker' as const;
  /** How many containers this executor started (a warm rebuild starts none). */
  runs = 0;
  private readonly docker: Docker;
  private readonly dockerHost: string;

  constructor(private readonly options: DockerExecutorOptions) {
    this.docker = options.docker ?? dockerFromEnv();
    this.dockerHost = options.dockerHost ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  }

  /** Fails with DOCKER_UNAVAILABLE when no engine answers, IMAGE_NOT_FOUND without the factory image. */
  async check(): Promise<{ imageId: string; apiVersion: string; pyVersion: string | null }> {
    let apiVersion: string;
    try {
      apiVersion = (await this.docker.version()).ApiVersion;
    } catch (cause) {
      throw new EngineError(
        'DOCKER_UNAVAILABLE',
        `no Docker engine answers at ${this.dockerHost}: ${(cause as Error).message}`,
        { hint: 'start dockerd, or set DOCKER_HOST to a running engine (or use --executor local)', cause },
      );
    }
    try {
      const info = await this.docker.getImage(this.options.image).inspect();
      const pyVersion =
        (info.Config?.Env ?? []).find((e) => e.startsWith('PY_VERSION='))?.slice('PY_VERSION='.length) ??
        null;
      return { imageId: info.Id, apiVersion, pyVersion };
    } catch (cause) {
      if ((cause as { statusCode?: number }).statusCode === 404) {
        throw new EngineError(
          'IMAGE_NOT_FOUND',
          `the factory image ${this.options.image} is not in the engine at ${this.dockerHost}`,
          {
            hint: 'build it with `dstack-factory image factory`',
            cause,
          },
        );
      }
      throw cause;
    }
  }

  /**
   * The factory image's interpreter, asked inside a container (the same questions factory.py asks: pip's
   * own packaging gives the markers and the supported tags). Cached per executor.
   */
  interpreter(): Promise<InterpreterInfo> {
    this.interpreterInfo ??= this.askInterpreter().catch((error: unknown) => {
      this.interpreterInfo = undefined;
      throw error;
    });
    return this.interpreterInfo;
  }

  /**
   * The build target of this executor (Decision 3: a target is an interpreter): the Python inside the
   * factory image, e.g. Debian bookworm's 3.11.2 — not the host's. Its `interpreter` is `docker:<image>`.
   */
  async target(): Promise<Target> {
    const info = await this.interpreter();
    return targetFromTags({
      interpreter: `docker:${this.options.image}`,
      implementation: info.implementation,
      pythonFullVersion: info.pythonFullVersion,
      tags: info.tags,
      markers: info.markers as unknown as MarkerEnvironment,
    });
  }

  private interpreterInfo: Promise<InterpreterInfo> | undefined;

  private async askInterpreter(): Promise<InterpreterInfo> {
    await this.check();
    const code = [
      'import json, sys, pip',
      'from pip._vendor.packaging import tags, markers',
      'env = markers.default_environment()',
      "print(json.dumps({'executable': sys.executable, 'implementation': tags.interpreter_name(),",
      "  'pythonVersion': '%d.%d' % sys.version_info[:2], 'pythonFullVersion': env['python_full_version'],",
      "  'pipVersion': pip.__version__, 'markers': env, 'tags': [str(t) for t in tags.sys_tags()]}))",
    ].join('\n');
    const container = await this.docker.createContainer({
      Image: this.options.image,
      Entrypoint: ['python', '-I', '-c', code],
      Cmd: [],
      Labels: { [CONTAINER_LABEL]: 'docker', [JOB_LABEL]: `interpreter-${process.pid}` },
      HostConfig: { NetworkMode: 'none' },
    });
    try {
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      this.docker.modem.demuxStream(stream, stdout, stderr);
      const chunks: Buffer[] = [];
      const errs: Buffer[] = [];
      stdout.on('data', (c: Buffer) => chunks.push(c));
      stderr.on('data', (c: Buffer) => errs.push(c));
      const ended = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
      });
      await container.start();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      await Promise.race([ended, delay(5000)]);
      if (StatusCode !== 0) {
        throw new EngineError(
          'TARGET_DETECT_FAILED',
          `could not ask the Python of the factory image ${this.options.image}: ${Buffer.concat(errs).toString().trim()}`,
        );
      }
      return JSON.parse(Buffer.concat(chunks).toString()) as InterpreterInfo;
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }

  async run(job: BuildJob, events: EventSink, signal?: AbortSignal): Promise<BuildResult> {
    signal?.throwIfAborted();
    const { imageId, pyVersion } = await this.check();
    // The image's Python is the target: a job for another version is a mistake, not a silent substitution.
    const wanted = /^\d+\.\d+/.exec(job.python)?.[0];
    if (wanted && pyVersion && wanted !== pyVersion) {
      throw new EngineError(
        'PYTHON_MISMATCH',
        `the factory image ${this.options.image} has Python ${pyVersion}, the build asks for ${job.python}`,
        { hint: `build a factory image with PY_VERSION=${wanted} (and a base image that has it)` },
      );
    }
    const log = this.options.logger?.child({ component: 'docker-executor', build: job.id });
    const inputs = await buildInputs(job);
    const wheelhouse = path.resolve(job.wheelhouse);
    const args = factoryArgs({
      recipe: job.recipePath ? path.resolve(job.recipePath) : null,
      fromWheel: job.fromWheel ? path.resolve(job.fromWheel) : null,
      wheelhouse,
      output: CONTAINER_OUTPUT,
      jobs: job.jobs,
      prebuild: job.prebuild,
      rebuild: job.rebuild,
      // Locks on a copy of the wheelhouse would guard nothing: the script asks this process for the host's.
      buildLockDir: null,
      ack: true,
      hostLocks: job.buildLockDir !== null,
      noIndex: job.noIndex === true,
      planOnly: job.planOnly === true,
      pins: job.pins ?? [],
    });
    const command = ['docker', 'run', this.options.image, ...args];
    await fs.mkdir(job.outputDir, { recursive: true });

    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        Image: this.options.image,
        Cmd: args,
        Env: containerEnv(job.env ?? process.env),
        WorkingDir: process.cwd(),
        Labels: { [CONTAINER_LABEL]: 'docker', [JOB_LABEL]: job.id },
        OpenStdin: true,
        StdinOnce: false,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        HostConfig: {
          AutoRemove: false,
          ...(this.options.network ? { NetworkMode: this.options.network } : {}),
        },
      });
    } catch (cause) {
      throw engineGone(this.dockerHost, job.id, cause);
    }
    this.runs += 1;
    log?.debug({ container: container.id, image: this.options.image }, 'container created');
    const onAbort = () => void container.kill().catch(() => undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    const locks = new HostLocks(signal);
    try {
      const packed = packInputs(inputs);
      await container.putArchive(packed, { path: '/' });
      log?.debug({ bytes: await packed.total }, 'inputs copied');

      const run = new FactoryRun(job.id, job.outputDir, events, {
        executor: 'docker',
        image: this.options.image,
        imageId,
      });
      const stream = (await container.attach({
        stream: true,
        hijack: true,
        stdin: true,
        stdout: true,
        stderr: true,
      })) as NodeJS.ReadWriteStream;
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      this.docker.modem.demuxStream(stream, stdout, stderr);
      let streamError: unknown = null;
      const streamEnded = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', (err: unknown) => {
          streamError ??= err;
          resolve();
        });
      });
      void streamEnded.then(() => {
        stdout.end();
        stderr.end();
      });

      // Lines are handled one at a time, in order: a `built` wheel is copied out, then handed to the sink
      // (which ingests it), then acknowledged so the script may go on.
      let chain = Promise.resolve();
      let sinkError: unknown = null;
      const guard = (p: Promise<void>): Promise<void> =>
        p.catch((err: unknown) => {
          sinkError ??= err;
        });
      const outLines = createInterface({ input: stdout });
      const outDone = new Promise<void>((resolve) => outLines.once('close', resolve));
      outLines.on('line', (line) => {
        // Build locks are answered beside the chain: a wait for one must not hold up the `built` events
        // (and acks, and unlocks) of the container's other requirements.
        const control = lockEvent(line);
        if (control) {
          if (control.event === 'unlock') void locks.release(control.lock);
          else if (job.buildLockDir)
            void guard(
              locks
                .grant(job.buildLockDir, control, async () => {
                  await this.copyIn(container, wheelhouse, control.package, control.version);
                  stream.write(`granted ${control.lock}\n`);
                })
                .catch((err: unknown) => {
                  // Unanswered, the script would wait for ever: stop it, and report why.
                  void container.kill().catch(() => undefined);
                  throw err;
                }),
            );
          return;
        }
        chain = guard(
          chain.then(async () => {
            const built = builtFilename(line);
            if (built) await this.copyOut(container, built, job.outputDir);
            const ack = await run.line(line);
            if (ack !== null) stream.write(`ack ${ack}\n`);
          }),
        );
      });
      const errLines = createInterface({ input: stderr });
      const errDone = new Promise<void>((resolve) => errLines.once('close', resolve));
      errLines.on('line', (line) => {
        chain = guard(chain.then(() => run.line(line).then(() => undefined)));
      });

      await container.start();
      let exitCode: number | null;
      // An engine that dies leaves the wait response open without an error (the response started with its
      // headers): a watchdog pings the engine while the build runs.
      const watchdog = this.watch();
      try {
        exitCode = ((await Promise.race([container.wait(), watchdog.lost])) as { StatusCode: number })
          .StatusCode;
      } catch (cause) {
        if (signal?.aborted) throw signal.reason;
        throw engineGone(this.dockerHost, job.id, cause);
      } finally {
        watchdog.stop();
      }
      await Promise.race([Promise.all([streamEnded, outDone, errDone]), delay(5000)]);
      await chain;
      if (sinkError) throw sinkError;
      if (signal?.aborted) throw signal.reason;
      if (streamError && exitCode === null) throw engineGone(this.dockerHost, job.id, streamError);
      return run.finish(exitCode, command);
    } catch (error) {
      if (error instanceof DstackError || signal?.aborted) throw error;
      // A dead engine shows as a socket error on any call: say so, not "ECONNREFUSED".
      if (!(await this.alive())) throw engineGone(this.dockerHost, job.id, error);
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await locks.close();
      await container.remove({ force: true, v: true }).catch((err: unknown) => {
        log?.warn({ container: container.id, err }, 'could not remove the build container');
      });
    }
  }

  /** Pings the engine every `intervalMs`; `lost` rejects after two failed pings in a row. */
  private watch(intervalMs = 2000): { lost: Promise<never>; stop: () => void } {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    let failures = 0;
    const lost = new Promise<never>((_, reject) => {
      const tick = async () => {
        if (stopped) return;
        const ok = await Promise.race([this.alive(), delay(intervalMs).then(() => false)]);
        if (stopped) return;
        failures = ok ? 0 : failures + 1;
        if (failures >= 2) return reject(new Error('the engine does not answer /_ping'));
        timer = setTimeout(() => void tick(), intervalMs);
      };
      timer = setTimeout(() => void tick(), intervalMs);
    });
    lost.catch(() => undefined);
    return {
      lost,
      stop: () => {
        stopped = true;
        clearTimeout(timer);
      },
    };
  }

  private async alive(): Promise<boolean> {
    try {
      await this.docker.ping();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Copies the host wheelhouse's wheels of name-version into the container's copy of the wheelhouse (one
   * another build made while this one waited for the lock), so the script reuses them instead of building.
   */
  private async copyIn(
    container: Docker.Container,
    wheelhouse: string,
    name: string,
    version: string,
  ): Promise<void> {
    const files = (await fs.readdir(wheelhouse).catch(() => [] as string[])).filter((f) => {
      const parts = f.endsWith('.whl') ? f.slice(0, -4).split('-') : [];
      return (
        (parts.length === 5 || parts.length === 6) &&
        canonicalName(parts[0]!) === name &&
        parts[1] === version
      );
    });
    if (files.length === 0) return;
    const tar = tarPack();
    for (const f of files) {
      const data = await fs.readFile(path.join(wheelhouse, f));
      tar.entry({ name: f, size: data.length, mode: 0o644 }, data);
    }
    tar.finalize();
    await container.putArchive(tar as unknown as NodeJS.ReadableStream, { path: wheelhouse });
  }

  /** Copies one finished wheel out of the container into `outputDir` (temp name, then rename). */
  private async copyOut(container: Docker.Container, filename: string, outputDir: string): Promise<void> {
    if (filename.includes('/') || filename.startsWith('.')) {
      throw new EngineError(
        'EXECUTOR_FAILED',
        `the build script reported a wheel with an unsafe name: ${filename}`,
      );
    }
    const archive = await container.getArchive({ path: `${CONTAINER_OUTPUT}/${filename}` });
    const target = path.join(outputDir, filename);
    const temp = `${target}.part-${process.pid}`;
    let found = false;
    await new Promise<void>((resolve, reject) => {
      const extract = tarExtract();
      extract.on('entry', (header, entry, next) => {
        if (header.type !== 'file' || header.name !== filename || found) {
          entry.resume();
          entry.on('end', next);
          return;
        }
        found = true;
        void fs
          .open(temp, 'w')
          .then(async (handle) => {
            const out = handle.createWriteStream();
            await new Promise<void>((res, rej) => {
              entry.pipe(out as unknown as Writable);
              out.on('finish', () => res());
              out.on('error', rej);
              entry.on('error', rej);
            });
          })
          .then(() => next(), reject);
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
      archive.on('error', reject);
      archive.pipe(extract);
    });
    if (!found)
      throw new EngineError(
        'EXECUTOR_FAILED',
        `the container has no wheel ${filename} in ${CONTAINER_OUTPUT}`,
      );
    await fs.rename(temp, target);
  }
}

const canonicalName = (name: string): string => name.replace(/[-_.]+/g, '-').toLowerCase();

type LockEvent =
  { event: 'lock'; lock: number; package: string; version: string } | { event: 'unlock'; lock: number };

/** The script's `lock`/`unlock` events (--host-locks), or null for any other line. */
function lockEvent(line: string): LockEvent | null {
  if (!line.startsWith('{') || !line.includes('lock"')) return null;
  try {
    const raw = JSON.parse(line) as Record<string, unknown>;
    if (typeof raw.lock !== 'number') return null;
    if (raw.event === 'unlock') return { event: 'unlock', lock: raw.lock };
    if (raw.event === 'lock' && typeof raw.package === 'string' && typeof raw.version === 'string')
      return { event: 'lock', lock: raw.lock, package: raw.package, version: raw.version };
    return null;
  } catch {
    return null;
  }
}

/** The host build locks one container run holds, by the script's lock number; all released at the end. */
class HostLocks {
  private readonly held = new Map<number, HeldBuildLock>();
  private closed = false;
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;

  constructor(signal?: AbortSignal) {
    this.signal = signal ? AbortSignal.any([signal, this.stop.signal]) : this.stop.signal;
  }

  /** Takes the lock, then runs `granted` (copy in, answer); a failure there releases the lock. */
  async grant(
    buildLockDir: string,
    request: { lock: number; package: string; version: string },
    granted: () => Promise<void>,
  ): Promise<void> {
    const lock = await acquireBuildLock(buildLockDir, request.package, request.version, this.signal);
    if (this.closed) return lock.release();
    this.held.set(request.lock, lock);
    try {
      await granted();
    } catch (err) {
      await this.release(request.lock);
      throw err;
    }
  }

  async release(n: number): Promise<void> {
    const lock = this.held.get(n);
    this.held.delete(n);
    await lock?.release();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stop.abort(new Error('the build is over'));
    await Promise.all([...this.held.keys()].map((n) => this.release(n)));
  }
}

function builtFilename(line: string): string | null {
  if (!line.startsWith('{') || !line.includes('"built"')) return null;
  try {
    const raw = JSON.parse(line) as { event?: unknown; filename?: unknown };
    return raw.event === 'built' && typeof raw.filename === 'string' ? raw.filename : null;
  } catch {
    return null;
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

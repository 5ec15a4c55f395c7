// Bytecode at assembly (issue 13 point 7): the .pyc files `pip install` writes, made deterministic.
//
// pip compiles every installed module (compileall.compile_file) into timestamp-based .pyc files, whose header
// holds the source's mtime: fine for pip, fatal to a reproducible layer. These are PEP 552 hash-based .pyc
// files instead, *checked*: the header holds the SipHash of the source, and the interpreter re-hashes the source
// at import (`--check-hash-based-pycs default`) — so a later layer that edits a module (a Dockerfile's `sed` on
// an installed file) is never served stale bytecode. Reading and hashing the source costs nothing measurable
// (the 25-wheel closure imports in the same CPU time with checked, unchecked and timestamp .pyc). They are what
// py_compile itself writes when SOURCE_DATE_EPOCH is set, and what `pip install` then writes.
//
// One Python program does the compiling, on this machine or in a container (the same bytes in, the same bytes
// out): it reads chunks of sources on stdin and forks a child per chunk, a few at a time, so every chunk is
// compiled from the same fresh state (marshal's output depends on what the process compiled before) and with a
// fixed hash seed (frozenset constants are written in iteration order).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type Docker from 'dockerode';
import { ImageError } from '../../errors.js';
import type { PlannedWheel } from './install.js';

/** One module to compile: its absolute path in the image (the .pyc's co_filename, as pip's) and its bytes. */
export interface PySource {
  path: string;
  data: Buffer;
}

/** Where .pyc files are made: an interpreter of the target's Python minor version, here or on an engine. */
export interface BytecodeCompiler {
  /** The interpreter's `sys.implementation.cache_tag` ("cpython-311"): the .pyc names' middle part. */
  readonly cacheTag: string;
  /** Who compiles, for logs: "/usr/bin/python3.11" or "engine: dstack-factory/base:bookworm". */
  readonly description: string;
  /**
   * Compiles chunks of sources (each chunk in its own forked process); per source its .pyc bytes, or null where
   * it does not compile (pip's compileall skips those and records no .pyc).
   */
  compile(chunks: AsyncIterable<PySource[]>, onResult: (chunk: number, file: number, pyc: Buffer | null) => Promise<void> | void): Promise<void>;
}

/** Sources per forked process: fixed, so that which sources share a process never depends on the machine. */
export const CHUNK_FILES = 256;

const SCRIPT = String.raw`
import importlib._bootstrap_external as be, importlib.machinery, importlib.util, os, shutil, struct, sys, tempfile, warnings
warnings.filterwarnings('ignore')
inp, out = sys.stdin.buffer, sys.stdout.buffer
jobs = int(sys.argv[1])
loader = importlib.machinery.SourceFileLoader('<pyc>', '<pyc>')
def read(n):
    b = inp.read(n)
    if len(b) != n:
        sys.exit('input ended early')
    return b
def compile_chunk(files, f):
    for name, src in files:
        try:
            code = loader.source_to_code(src, name)
            pyc = be._code_to_hash_pyc(code, importlib.util.source_hash(src), True)
        except Exception:
            f.write(struct.pack('>q', -1))
            continue
        f.write(struct.pack('>q', len(pyc)))
        f.write(pyc)
running = []
def flush_oldest():
    pid, f = running.pop(0)
    if os.waitpid(pid, 0)[1] != 0:
        sys.exit('a compiling process failed')
    f.seek(0)
    shutil.copyfileobj(f, out)
    f.close()
out.write(sys.implementation.cache_tag.encode() + b'\n')
out.flush()
while True:
    count = struct.unpack('>I', read(4))[0]
    if count == 0xFFFFFFFF:
        break
    files = []
    for _ in range(count):
        name = read(struct.unpack('>I', read(4))[0]).decode('utf-8', 'surrogateescape')
        files.append((name, read(struct.unpack('>Q', read(8))[0])))
    if len(running) >= jobs:
        flush_oldest()
    out.flush()
    f = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        try:
            compile_chunk(files, f)
            f.flush()
            code = 0
        except BaseException:
            code = 1
        os._exit(code)
    running.append((pid, f))
while running:
    flush_oldest()
out.flush()
`;

const ENV = { PYTHONHASHSEED: '0', LC_ALL: 'C.UTF-8' };
// -S: no site (nothing of site-packages is needed), -s: no user site, -B: the program writes no bytecode itself.
const ARGS = (jobs: number): string[] => ['-S', '-s', '-B', '-c', SCRIPT, String(jobs)];

function frame(chunk: PySource[]): Buffer[] {
  const parts: Buffer[] = [u32(chunk.length)];
  for (const s of chunk) {
    const name = Buffer.from(s.path, 'utf8');
    const size = Buffer.alloc(8);
    size.writeBigUInt64BE(BigInt(s.data.length));
    parts.push(u32(name.length), name, size, s.data);
  }
  return parts;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Writes to a stream, waiting for it to drain. */
async function put(stream: Writable, data: Buffer): Promise<void> {
  if (!stream.write(data)) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        stream.off('drain', done);
        stream.off('error', done);
        stream.off('close', closed);
        if (err) reject(err);
        else resolve();
      };
      const closed = (): void => done(new Error('the compiler closed its input'));
      stream.once('drain', done);
      stream.once('error', done);
      stream.once('close', closed);
    });
  }
}

/** Reads the compiler's answer: the cache tag line, then per source a signed 64-bit length and the bytes. */
class AnswerReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private readonly it: AsyncIterator<Buffer>;
  constructor(stream: Readable) {
    this.it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }
  private async fill(n: number): Promise<boolean> {
    while (this.length < n) {
      const next = await this.it.next();
      if (next.done) return false;
      this.buffered.push(next.value);
      this.length += next.value.length;
    }
    return true;
  }
  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    this.buffered = n < all.length ? [all.subarray(n)] : [];
    this.length = all.length - n;
    return all.subarray(0, n);
  }
  async line(): Promise<string | null> {
    for (;;) {
      const all = Buffer.concat(this.buffered);
      this.buffered = [all];
      const nl = all.indexOf(0x0a);
      if (nl >= 0) return this.take(nl + 1).subarray(0, nl).toString('utf8');
      if (!(await this.fill(this.length + 1))) return null;
    }
  }
  async exactly(n: number): Promise<Buffer | null> {
    return (await this.fill(n)) ? Buffer.from(this.take(n)) : null;
  }
}

/**
 * Runs the program over one process's stdin/stdout: chunks are written as they come (with back-pressure),
 * answers read at the same time; results come back in the order the sources went in.
 */
async function converse(
  io: { stdin: Writable; stdout: Readable; done: Promise<string | null> },
  who: string,
  expectedTag: string | null,
  chunks: AsyncIterable<PySource[]>,
  onResult: (chunk: number, file: number, pyc: Buffer | null) => Promise<void> | void,
): Promise<string> {
  const counts: number[] = [];
  let writerDone = false;
  const waiter: { wake: (() => void) | null } = { wake: null };
  const writing = (async () => {
    try {
      for await (const chunk of chunks) {
        if (chunk.length === 0) continue;
        counts.push(chunk.length);
        waiter.wake?.();
        for (const part of frame(chunk)) await put(io.stdin, part);
      }
      await put(io.stdin, u32(0xffffffff));
      io.stdin.end();
    } finally {
      writerDone = true;
      waiter.wake?.();
    }
  })();
  writing.catch(() => io.stdin.destroy());
  const reader = new AnswerReader(io.stdout);
  const failed = async (what: string): Promise<ImageError> => {
    const stderr = await io.done.catch((e: Error) => e.message);
    return new ImageError('IMAGE_BYTECODE_FAILED', `${who}: ${what}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`, {
      hint: 'build with --no-compile to leave bytecode out, and report the failure',
    });
  };
  const tag = await reader.line();
  if (tag === null) throw await failed('the compiler did not start');
  if (expectedTag !== null && tag !== expectedTag) {
    io.stdin.destroy();
    throw new ImageError('IMAGE_BYTECODE_FAILED', `${who} writes ${tag} bytecode, the target needs ${expectedTag}`, {
      hint: 'compile with an interpreter of the base\'s Python version',
    });
  }
  for (let c = 0; ; c++) {
    while (c >= counts.length && !writerDone) await new Promise<void>((r) => (waiter.wake = r));
    waiter.wake = null;
    if (c >= counts.length) break;
    for (let f = 0; f < counts[c]!; f++) {
      const head = await reader.exactly(8);
      if (head === null) throw await failed(`its answer ended after ${c} chunks`);
      const n = head.readBigInt64BE();
      if (n < 0n) await onResult(c, f, null);
      else {
        const pyc = await reader.exactly(Number(n));
        if (pyc === null) throw await failed(`its answer ended inside chunk ${c}`);
        await onResult(c, f, pyc);
      }
    }
  }
  await writing;
  const problem = await io.done;
  if (problem !== null) throw await failed(problem);
  return tag;
}

/** A compiler running an interpreter on this machine. */
export function hostBytecodeCompiler(python: string, cacheTag: string, options: { jobs?: number } = {}): BytecodeCompiler {
  const jobs = options.jobs ?? availableParallelism();
  return {
    cacheTag,
    description: python,
    async compile(chunks, onResult) {
      const child = spawn(python, ARGS(jobs), { env: { ...ENV, PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')).length > 65536 && (stderr = stderr.slice(-16384)));
      const done = new Promise<string | null>((resolve) => {
        child.on('error', (e) => resolve(e.message));
        child.on('close', (code, signal) => resolve(code === 0 ? null : `exit ${code ?? signal}${stderr ? `: ${stderr}` : ''}`));
      });
      child.stdin.on('error', () => undefined); // a dead child is reported by `done`
      try {
        await converse({ stdin: child.stdin, stdout: child.stdout, done }, python, cacheTag, chunks, onResult);
      } finally {
        if (child.exitCode === null) child.kill();
      }
    },
  };
}

/**
 * A compiler running an image's own interpreter in a container on a Docker engine (no network, removed
 * afterwards): for a target whose Python this machine does not have. `python` is the interpreter's path in the
 * image (the base's `BaseInfo.python`).
 */
export function engineBytecodeCompiler(docker: Docker, image: string, python: string, cacheTag: string, options: { jobs?: number } = {}): BytecodeCompiler {
  const jobs = options.jobs ?? availableParallelism();
  return {
    cacheTag,
    description: `engine: ${image} ${python}`,
    async compile(chunks, onResult) {
      let container: Docker.Container;
      try {
        container = await docker.createContainer({
          Image: image,
          Entrypoint: [python],
          Cmd: ARGS(jobs),
          Env: Object.entries(ENV).map(([k, v]) => `${k}=${v}`),
          User: '0:0',
          WorkingDir: '/',
          AttachStdin: true,
          AttachStdout: true,
          AttachStderr: true,
          OpenStdin: true,
          StdinOnce: true,
          Tty: false,
          NetworkDisabled: true,
          HostConfig: { NetworkMode: 'none' },
        });
      } catch (cause) {
        throw new ImageError('IMAGE_BYTECODE_FAILED', `engine: cannot run ${image} to compile bytecode: ${(cause as Error).message}`, {
          hint: 'load the base into the engine (or build with --no-compile)',
          cause,
        });
      }
      try {
        const stream = (await container.attach({ stream: true, hijack: true, stdin: true, stdout: true, stderr: true })) as NodeJS.ReadWriteStream;
        const stdout = new PassThrough();
        let stderr = '';
        const errSink = new PassThrough();
        errSink.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-16384)));
        docker.modem.demuxStream(stream, stdout, errSink);
        stream.on('end', () => stdout.end());
        stream.on('close', () => stdout.end());
        stream.on('error', (e: Error) => stdout.destroy(e));
        await container.start();
        const done = (async (): Promise<string | null> => {
          const { StatusCode } = (await container.wait()) as { StatusCode: number };
          return StatusCode === 0 ? null : `exit ${StatusCode}${stderr ? `: ${stderr}` : ''}`;
        })();
        await converse({ stdin: stream as unknown as Writable, stdout, done }, `engine: ${image}`, cacheTag, chunks, onResult);
      } finally {
        await container.remove({ force: true }).catch(() => undefined);
      }
    },
  };
}

/** "cpython-311" for Python "3.11" (the CPython images this tool builds on). */
export function cacheTagOf(pythonVersion: string): string {
  return `cpython-${pythonVersion.replace('.', '')}`;
}

/**
 * Interpreters on this machine of a Python minor version, the target's exact full version first: pyenv's
 * (`$PYENV_ROOT/versions/3.X.Y`), then /usr/local/bin and /usr/bin's python3.X. Only paths; none is run.
 */
export function hostPythonCandidates(pythonVersion: string, fullVersion: string | null, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: { python: string; exact: boolean }[] = [];
  const versions = path.join(env.PYENV_ROOT ?? path.join(homedir(), '.pyenv'), 'versions');
  if (existsSync(versions)) {
    for (const v of readdirSync(versions).sort()) {
      if (v === pythonVersion || v.startsWith(`${pythonVersion}.`)) {
        const p = path.join(versions, v, 'bin', 'python');
        if (/^3\.\d+\.\d+$/.test(v) && existsSync(p)) out.push({ python: p, exact: v === fullVersion });
      }
    }
  }
  for (const dir of ['/usr/local/bin', '/usr/bin']) {
    const p = `${dir}/python${pythonVersion}`;
    if (existsSync(p)) out.push({ python: p, exact: false });
  }
  return out.sort((a, b) => Number(b.exact) - Number(a.exact)).map((c) => c.python);
}

/** The full version of an interpreter ("3.11.2"), or null when it does not run. */
export async function hostPythonVersion(python: string): Promise<string | null> {
  return new Promise((resolve) => {
    const child = spawn(python, ['-S', '-c', 'import platform; print(platform.python_version())'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code === 0 ? out.trim() : null));
  });
}

/**
 * A compiler from this machine's interpreters for a target Python ("3.11", full version "3.11.2" when known):
 * one of the exact full version when there is one (then even the compiler's output is the base's own), else
 * any of the minor version; null when this machine has none.
 */
export async function findHostBytecodeCompiler(pythonVersion: string, fullVersion: string | null, env: NodeJS.ProcessEnv = process.env): Promise<BytecodeCompiler | null> {
  let fallback: string | null = null;
  for (const python of hostPythonCandidates(pythonVersion, fullVersion, env)) {
    const version = await hostPythonVersion(python);
    if (version === null || !version.startsWith(`${pythonVersion}.`)) continue;
    if (version === fullVersion) return hostBytecodeCompiler(python, cacheTagOf(pythonVersion));
    fallback ??= python;
  }
  return fallback ? hostBytecodeCompiler(fallback, cacheTagOf(pythonVersion)) : null;
}

/** What a layer builder is told: the .pyc tag the target needs, and where a compiler comes from (asked lazily). */
export interface BytecodeOptions {
  /** `sys.implementation.cache_tag` of the target's interpreter: "cpython-311" (part of the cache keys). */
  cacheTag: string;
  /**
   * The target interpreter's full version ("3.11.2"), when known: part of the cache keys too, since the compiler
   * is chosen by it (its exact version first) and another patch release may write other bytes for a module.
   */
  pythonFullVersion?: string | null;
  /** Asked only when some wheel is not cached already: a warm build starts no interpreter. */
  compiler: () => Promise<BytecodeCompiler>;
}

/**
 * What of the bytecode options goes into a cache key (a wheel's segment, a dependencies layer): the .pyc kind, the
 * cache tag and the target's full version.
 */
export function bytecodeKey(options: BytecodeOptions): { tag: string; pyc: 'checked-hash'; python?: string } {
  return { tag: options.cacheTag, pyc: 'checked-hash', ...(options.pythonFullVersion ? { python: options.pythonFullVersion } : {}) };
}

/** The .pyc of compiled wheels not yet written (held in memory) above which no further source is sent to compile. */
export const HELD_PYC_BYTES = 64 << 20;

/** A run of the compiler over planned wheels: each wheel's .pyc are added to its plan as soon as they are all back. */
export interface Compiling {
  /** Per plan: resolves once its .pyc are added to it (RECORD included); rejects when the compiling fails. */
  ready: Promise<void>[];
  /** Resolves when the compiler is done with every plan. */
  done: Promise<void>;
  /** Tells that a plan's layer entries are written (its .pyc bytes may go): lets more sources be sent. */
  release(plan: number): void;
  /** Sends no further source (the layer failed): the compiler finishes what it has and stops. */
  cancel(): void;
  /** Lifts the bound on held .pyc (for a caller that waits for `done` before it writes anything). */
  unbound(): void;
}

/**
 * Compiles the modules of planned wheels in one run of the compiler (chunks of {@link CHUNK_FILES} sources of one
 * wheel each, in parallel), in plan order: a wheel's .pyc are added to its plan (RECORD included) as soon as its
 * last chunk is back, so that its layer entries can be written while later wheels compile. The .pyc bytes are
 * held in memory until `release`; no new source is sent while more than {@link HELD_PYC_BYTES} are held by
 * finished plans the writer has not taken yet.
 */
export function compilePlannedWheels(plans: PlannedWheel[], compiler: BytecodeCompiler): Compiling {
  const chunkOwner: { plan: number; first: number }[] = [];
  const results: (Buffer | null)[][] = plans.map((p) => new Array<Buffer | null>(p.pySources.length).fill(null));
  const remaining = plans.map((p) => p.pySources.length);
  const held = plans.map(() => 0);
  const settle: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  const ready = plans.map(
    (_, i) =>
      new Promise<void>((resolve, reject) => {
        settle[i] = { resolve, reject };
      }),
  );
  for (const r of ready) r.catch(() => undefined); // observed by whoever awaits it; `done` carries the failure
  let heldBytes = 0;
  let wake: (() => void) | null = null;
  let cancelled = false;
  let limit = HELD_PYC_BYTES;
  const wakeUp = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const finishedUnwritten = new Set<number>();
  const finish = (i: number): void => {
    const pycs = results[i]!;
    results[i] = [];
    plans[i]!.addBytecode(compiler.cacheTag, pycs.map((b) => (b ? { size: b.length, open: () => b } : null)));
    finishedUnwritten.add(i);
    settle[i]!.resolve();
  };
  for (const [i, p] of plans.entries()) if (p.pySources.length === 0) finish(i);
  async function* chunks(): AsyncGenerator<PySource[]> {
    for (const [i, p] of plans.entries()) {
      for (let first = 0; first < p.pySources.length; first += CHUNK_FILES) {
        // Bounded memory: wait while finished plans the writer can take (so it progresses) hold too much.
        while (!cancelled && heldBytes > limit && finishedUnwritten.size > 0) await new Promise<void>((r) => (wake = r));
        if (cancelled) return;
        const chunk: PySource[] = [];
        for (const s of p.pySources.slice(first, first + CHUNK_FILES)) chunk.push({ path: s.compiledAs, data: await s.read() });
        chunkOwner.push({ plan: i, first });
        yield chunk;
      }
    }
  }
  const done = compiler
    .compile(chunks(), (chunk, file, pyc) => {
      const { plan, first } = chunkOwner[chunk]!;
      results[plan]![first + file] = pyc;
      if (pyc) {
        held[plan]! += pyc.length;
        heldBytes += pyc.length;
      }
      if (--remaining[plan]! === 0) finish(plan);
    })
    .then(() => {
      const missing = remaining.findIndex((n) => n > 0);
      if (missing >= 0) throw new Error(`${plans[missing]!.wheel}: the compiler answered ${plans[missing]!.pySources.length - remaining[missing]!} of its ${plans[missing]!.pySources.length} sources`);
    });
  done.catch((err: unknown) => {
    for (const [i, s] of settle.entries()) if (remaining[i]! > 0) s.reject(err);
  });
  return {
    ready,
    done,
    release(plan) {
      if (!finishedUnwritten.delete(plan)) return;
      heldBytes -= held[plan]!;
      held[plan] = 0;
      wakeUp();
    },
    cancel() {
      cancelled = true;
      wakeUp();
    },
    unbound() {
      limit = Infinity;
      wakeUp();
    },
  };
}

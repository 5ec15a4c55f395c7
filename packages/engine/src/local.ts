// The local executor (the embedded default): runs the build script with an interpreter of this machine.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { BuildJob, BuildResult, EventSink, Executor } from './executor.js';
import { FACTORY_SCRIPT, FactoryRun, factoryArgs } from './protocol.js';
import { EngineError } from './errors.js';

/** An interpreter for a `--python` value: a path, a command on PATH, or a version ("3.11", "3.11.7"). */
export function resolvePython(spec: string, env: NodeJS.ProcessEnv = process.env): string {
  if (spec.includes('/')) {
    if (!existsSync(spec)) throw new EngineError('PYTHON_NOT_FOUND', `no Python interpreter at ${spec}`);
    return spec;
  }
  if (/^\d+(\.\d+){1,2}$/.test(spec)) {
    // pyenv first (its versions are real builds with ensurepip), then pythonX.Y on PATH.
    const root = env.PYENV_ROOT ?? join(homedir(), '.pyenv');
    const versions = join(root, 'versions');
    if (existsSync(versions)) {
      const match = readdirSync(versions)
        .filter((v) => v === spec || v.startsWith(`${spec}.`))
        .filter((v) => /^\d+\.\d+\.\d+$/.test(v))
        .sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]));
      for (const v of match) {
        const p = join(versions, v, 'bin', 'python');
        if (existsSync(p)) return p;
      }
    }
    const minor = spec.split('.').slice(0, 2).join('.');
    const onPath = findOnPath(`python${minor}`, env);
    if (onPath) return onPath;
    throw new EngineError('PYTHON_NOT_FOUND', `no Python ${spec} interpreter on this machine`, {
      hint: `install it (e.g. \`pyenv install ${spec}\`) or pass --python with the interpreter's path`,
    });
  }
  const found = findOnPath(spec, env);
  if (!found) throw new EngineError('PYTHON_NOT_FOUND', `no Python interpreter named ${spec} on PATH`);
  return found;
}

function findOnPath(command: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir || !isAbsolute(dir)) continue;
    const p = join(dir, command);
    if (existsSync(p)) return p;
  }
  return null;
}

export interface LocalExecutorOptions {
  /** The build script (default: images/factory/factory.py of this repository). */
  script?: string;
}

/** Runs images/factory/factory.py with `job.python` on this machine. */
export class LocalExecutor implements Executor {
  readonly kind = 'local' as const;
  /** How many times this executor started the build script (a warm rebuild starts none). */
  runs = 0;
  private readonly script: string;

  constructor(options: LocalExecutorOptions = {}) {
    this.script = options.script ?? FACTORY_SCRIPT;
  }

  async run(job: BuildJob, events: EventSink, signal?: AbortSignal): Promise<BuildResult> {
    const python = resolvePython(job.python);
    const args = [
      this.script,
      ...factoryArgs({
        recipe: job.recipePath,
        fromWheel: job.fromWheel,
        wheelhouse: job.wheelhouse,
        output: job.outputDir,
        jobs: job.jobs,
        prebuild: job.prebuild,
        rebuild: job.rebuild,
        buildLockDir: job.buildLockDir,
        cacheDir: job.cacheDir ?? null,
        ack: true,
        noIndex: job.noIndex === true,
        planOnly: job.planOnly === true,
        pins: job.pins ?? [],
      }),
    ];
    this.runs += 1;
    const run = new FactoryRun(job.id, job.outputDir, events, { executor: 'local' });
    const child = spawn(python, ['-u', ...args], {
      env: { ...(job.env ?? process.env), PYTHONUNBUFFERED: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
      signal,
    });
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on('error', (err) => {
        if ((err as NodeJS.ErrnoException).code === 'ABORT_ERR') resolve(null);
        else
          reject(
            new EngineError('EXECUTOR_FAILED', `cannot start ${python}: ${err.message}`, { cause: err }),
          );
      });
      child.on('close', (code) => resolve(code));
    });
    // stdout lines are handled one at a time, in order: a `built` is acknowledged after the sink ingested it.
    let chain = Promise.resolve();
    let sinkError: unknown = null;
    const guard = (p: Promise<void>): Promise<void> =>
      p.catch((err: unknown) => {
        sinkError ??= err;
      });
    const lines = createInterface({ input: child.stdout });
    let stdoutClosed = false;
    const stdoutDone = new Promise<void>((resolve) =>
      lines.once('close', () => {
        stdoutClosed = true;
        resolve();
      }),
    );
    lines.on('line', (line) => {
      chain = guard(
        chain.then(async () => {
          const ack = await run.line(line);
          if (ack !== null && child.stdin.writable) child.stdin.write(`ack ${ack}\n`);
        }),
      );
    });
    const errLines = createInterface({ input: child.stderr });
    errLines.on('line', (line) => {
      chain = guard(chain.then(() => run.line(line).then(() => undefined)));
    });
    child.stdin.on('error', () => {
      /* the script exited before reading an ack */
    });
    const code = await exited;
    if (!stdoutClosed) await stdoutDone;
    await chain;
    child.stdin.end();
    if (sinkError) throw sinkError;
    return run.finish(code, [python, ...args]);
  }
}

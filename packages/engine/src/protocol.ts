// The build script's stdout protocol (images/factory/factory.py): one JSON object per line, `event` naming it.
// Both executors read it with `FactoryRun`, so one behaviour is parsed once.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { WheelSource } from '@dstack/wheelhouse';
import type {
  BuildFailure,
  BuildResult,
  BuiltWheel,
  EventSink,
  InterpreterInfo,
  PlannedPackage,
} from './executor.js';

/**
 * The build script (the factory image copies the same file to /usr/local/bin). A build carries a copy in
 * dist/images/factory/ (tools/pack/copy-images.mjs; a bundle that includes this module carries one beside
 * itself), so an installed package finds it inside itself; run from src/, it is the repository's images/factory/.
 */
const PACKAGED_SCRIPT = fileURLToPath(new URL('./images/factory/factory.py', import.meta.url));
export const FACTORY_SCRIPT = existsSync(PACKAGED_SCRIPT)
  ? PACKAGED_SCRIPT
  : fileURLToPath(new URL('../../../images/factory/factory.py', import.meta.url));

export interface FactoryArgs {
  recipe: string | null;
  fromWheel: string | null;
  wheelhouse: string;
  output: string;
  jobs: number;
  prebuild: string[];
  rebuild: string[];
  /** Folder of the per-requirement build locks (flock files); null: none, or the host's (hostLocks). */
  buildLockDir: string | null;
  cacheDir?: string | null;
  /** Ask the script to wait for `ack N` on stdin after each built wheel. */
  ack: boolean;
  /**
   * Take each requirement's build lock through the host (docker: the container's lock dir would be a
   * copy): the script emits `{"event":"lock","lock":N,…}` and waits for `granted N`, then `unlock`.
   */
  hostLocks?: boolean;
  /** Resolve and download from the wheelhouse (and the recipe's own --find-links) only: pip's --no-index. */
  noIndex?: boolean;
  /** Resolve and report the plan, then stop (build --dry-run): nothing prebuilt, fetched or built. */
  planOnly?: boolean;
  /** NAME==VERSION constraints on the plan (build --upgrade: the rest of the lock stays as it is). */
  pins?: string[];
}

/** The script's command-line arguments (after the script path). */
export function factoryArgs(a: FactoryArgs): string[] {
  const args: string[] = [];
  if (a.recipe) args.push('--recipe', a.recipe);
  if (a.fromWheel) args.push('--from-wheel', a.fromWheel);
  args.push('--wheelhouse', a.wheelhouse, '--output', a.output, '--jobs', String(Math.max(1, a.jobs)));
  if (a.prebuild.length > 0) args.push('--prebuild', a.prebuild.join(','));
  else args.push('--no-cext');
  for (const r of a.rebuild) args.push('--rebuild', r);
  if (a.buildLockDir) args.push('--build-lock-dir', a.buildLockDir);
  if (a.cacheDir) args.push('--cache-dir', a.cacheDir);
  if (a.ack) args.push('--ack');
  if (a.hostLocks) args.push('--host-locks');
  if (a.noIndex) args.push('--no-index');
  if (a.planOnly) args.push('--plan-only');
  for (const p of a.pins ?? []) args.push('--pin', p);
  return args;
}

type Raw = Record<string, unknown> & { event: string };

/** The script's `source` of a built wheel (factory.py's source_of), checked field by field; undefined if absent or malformed. */
export function wheelSource(v: unknown): WheelSource | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const s = (k: string): string | undefined => (typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : undefined);
  const optional = (k: string, name = k): Record<string, string> => (s(k) ? { [name]: s(k)! } : {});
  switch (o.kind) {
    case 'sdist': {
      const url = s('url');
      const sha256 = s('sha256');
      return url ? { kind: 'sdist', url, sha256: sha256 && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : null } : undefined;
    }
    case 'vcs': {
      const [vcs, url, commit] = [s('vcs'), s('url'), s('commit')];
      return vcs && url && commit ? { kind: 'vcs', vcs, url, commit, ...optional('requestedRevision'), ...optional('subdirectory') } : undefined;
    }
    case 'directory': {
      const path = s('path');
      return path ? { kind: 'directory', path, ...optional('subdirectory') } : undefined;
    }
    case 'wheel': {
      const url = s('url');
      return url ? { kind: 'wheel', url } : undefined;
    }
    default:
      return undefined;
  }
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/**
 * Folds the script's events into a BuildResult, forwarding each as a BuildEvent to the sink.
 * `outputDir` is the host directory where `built` wheels are (for docker: after copying them out).
 */
export class FactoryRun {
  readonly result: BuildResult;
  private done = false;
  private readonly logLines: string[] = [];

  constructor(
    private readonly job: string,
    private readonly outputDir: string,
    private readonly sink: EventSink,
    builtBy: Record<string, string>,
  ) {
    this.result = {
      ok: false,
      interpreter: null,
      packages: [],
      cached: [],
      built: [],
      failures: [],
      builtBy,
    };
  }

  /** The last lines that were not JSON (the script's own traceback, if it crashed). */
  get stray(): string[] {
    return this.logLines.slice(-40);
  }

  /** Handles one stdout line; resolves once the sink has taken the event. Returns the ack number of a `built`. */
  async line(text: string): Promise<number | null> {
    let raw: Raw;
    try {
      raw = JSON.parse(text) as Raw;
      if (typeof raw !== 'object' || raw === null || typeof raw.event !== 'string')
        throw new Error('no event');
    } catch {
      this.logLines.push(text);
      await this.sink({ type: 'log', job: this.job, package: null, line: text });
      return null;
    }
    const job = this.job;
    switch (raw.event) {
      case 'started': {
        const interpreter = raw.interpreter as InterpreterInfo;
        this.result.interpreter = interpreter;
        this.result.builtBy.interpreter ??= `${interpreter.executable} (${interpreter.implementation} ${interpreter.pythonFullVersion})`;
        await this.sink({
          type: 'started',
          job,
          executor: this.result.builtBy.executor === 'docker' ? 'docker' : 'local',
          interpreter,
          builtBy: { ...this.result.builtBy },
        });
        return null;
      }
      case 'planned': {
        // The source of each package to fetch or build, checked as a built wheel's is.
        const packages = (raw.packages as (PlannedPackage & { source?: unknown })[]).map(({ source, ...p }) => {
          const checked = wheelSource(source);
          return checked ? { ...p, source: checked } : p;
        });
        this.result.packages = packages;
        await this.sink({ type: 'planned', job, packages });
        return null;
      }
      case 'cached': {
        const c = { package: str(raw.package), version: str(raw.version), filename: str(raw.filename) };
        this.result.cached.push(c);
        await this.sink({ type: 'cached', job, ...c });
        return null;
      }
      case 'building':
        await this.sink({
          type: 'building',
          job,
          package: str(raw.package),
          version: str(raw.version),
          action: raw.action === 'download' ? 'download' : raw.action === 'prebuild' ? 'prebuild' : 'build',
          command: strs(raw.command),
        });
        return null;
      case 'built': {
        const filename = str(raw.filename);
        const source = wheelSource(raw.source);
        const wheel: BuiltWheel = {
          package: str(raw.package),
          version: str(raw.version),
          filename,
          path: join(this.outputDir, filename),
          ...(source ? { source } : {}),
        };
        this.result.built.push(wheel);
        await this.sink({ type: 'built', job, ...wheel });
        return typeof raw.ack === 'number' ? raw.ack : null;
      }
      case 'failed': {
        const f: BuildFailure = {
          package: str(raw.package),
          version: typeof raw.version === 'string' ? raw.version : null,
          command: strs(raw.command),
          exitCode: typeof raw.exitCode === 'number' ? raw.exitCode : null,
          logTail: strs(raw.logTail),
        };
        this.result.failures.push(f);
        await this.sink({ type: 'failed', job, ...f });
        return null;
      }
      case 'log':
        await this.sink({
          type: 'log',
          job,
          package: typeof raw.package === 'string' ? raw.package : null,
          line: str(raw.line),
        });
        return null;
      case 'done':
        this.done = true;
        this.result.ok = raw.ok === true && this.result.failures.length === 0;
        return null;
      default:
        return null;
    }
  }

  /** Called when the script exited: a missing `done` (a crash) becomes a failure naming the command. */
  finish(exitCode: number | null, command: string[]): BuildResult {
    if (!this.done || (exitCode !== 0 && this.result.failures.length === 0)) {
      this.result.failures.push({
        package: '(factory)',
        version: null,
        command,
        exitCode,
        logTail: this.stray,
      });
    }
    this.result.ok = this.result.ok && exitCode === 0 && this.result.failures.length === 0;
    return this.result;
  }
}

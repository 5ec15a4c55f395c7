/**
 * Builds over HTTP: a queue with bounded concurrency, each job's log kept in memory and fanned out to
 * live subscribers (SSE). A job belongs to the server, not to the request that submitted it: a client
 * that disconnects does not stop it. Identical submissions (same recipe text and options) while one is
 * queued or running return that job instead of building twice.
 *
 * The actual build is a `BuildRunner` (the engine wired in by serve, or anything in tests), so this
 * file knows queues and logs, not pip.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ServerError } from './errors.js';
import type { Metrics } from './metrics.js';

export interface BuildRequest {
  /** The recipe's text (a pip requirements file). */
  recipe: string;
  /** Target interpreter: a version ("3.11") or a path, as the executor understands it. */
  python?: string;
  executor?: 'local' | 'docker';
  jobs?: number;
  /** CEXT: packages prebuilt first (empty: off). */
  prebuild?: string[];
  rebuild?: string[];
}

export type BuildState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface BuildOutcome {
  ok: boolean;
  wheels: { filename: string; sha256?: string; status: 'added' | 'present' | 'cached' }[];
  /** `message`: the failure's summary lines joined (pip's last line when there is none); `summary`: those lines. */
  failures: { package: string; message: string; summary?: string[] }[];
  /** The lock written (PEP 751 text), when the engine wrote one. */
  lock?: string | null;
}

export interface BuildRecord {
  id: string;
  state: BuildState;
  request: BuildRequest;
  submittedBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  outcome: BuildOutcome | null;
  error: string | null;
}

export interface BuildRunnerContext {
  id: string;
  request: BuildRequest;
  signal: AbortSignal;
  /** One line of the build's log. */
  log(line: string): void;
}

export type BuildRunner = (ctx: BuildRunnerContext) => Promise<BuildOutcome>;

interface Job {
  record: BuildRecord;
  key: string;
  lines: string[];
  listeners: Set<(event: BuildStreamEvent) => void>;
  abort: AbortController;
  done: Promise<void>;
  resolveDone: () => void;
}

export type BuildStreamEvent =
  { type: 'log'; index: number; line: string } | { type: 'state'; record: BuildRecord };

const MAX_LOG_LINES = 50_000;

export class BuildManager {
  readonly #jobs = new Map<string, Job>();
  readonly #queue: Job[] = [];
  #running = 0;
  #closing = false;

  constructor(
    private readonly runner: BuildRunner,
    private readonly options: {
      concurrency: number;
      maxQueued: number;
      keep: number;
      logger: Logger;
      metrics?: Metrics;
    },
  ) {
    options.metrics?.onCollect(() => {
      options.metrics?.set('dstack_builds_running', this.#running);
      options.metrics?.set('dstack_builds_queued', this.#queue.length);
    });
  }

  submit(request: BuildRequest, submittedBy: string): { record: BuildRecord; existing: boolean } {
    if (this.#closing)
      throw new ServerError('SHUTTING_DOWN', 'the server is shutting down; submit the build again later');
    const key = createHash('sha256').update(JSON.stringify(request)).digest('hex');
    for (const job of this.#jobs.values()) {
      if (job.key === key && (job.record.state === 'queued' || job.record.state === 'running')) {
        return { record: job.record, existing: true };
      }
    }
    if (this.#queue.length >= this.options.maxQueued) {
      throw new ServerError('BUILD_QUEUE_FULL', `${this.#queue.length} builds are already waiting`, {
        hint: 'try again when some have finished',
      });
    }
    const id = randomUUID();
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const job: Job = {
      record: {
        id,
        state: 'queued',
        request,
        submittedBy,
        createdAt: new Date().toISOString(),
        startedAt: null,
        finishedAt: null,
        outcome: null,
        error: null,
      },
      key,
      lines: [],
      listeners: new Set(),
      abort: new AbortController(),
      done,
      resolveDone,
    };
    this.#jobs.set(id, job);
    this.#queue.push(job);
    this.#prune();
    this.#pump();
    return { record: job.record, existing: false };
  }

  get(id: string): BuildRecord | null {
    return this.#jobs.get(id)?.record ?? null;
  }

  /** Most recent first. */
  list(limit = 50): BuildRecord[] {
    return [...this.#jobs.values()]
      .map((j) => j.record)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, limit);
  }

  log(id: string): string[] | null {
    return this.#jobs.get(id)?.lines ?? null;
  }

  /** Replays the log from line `from`, then calls `listener` for every new line and state change. */
  subscribe(id: string, from: number, listener: (event: BuildStreamEvent) => void): (() => void) | null {
    const job = this.#jobs.get(id);
    if (job === undefined) return null;
    for (let i = from; i < job.lines.length; i++) listener({ type: 'log', index: i, line: job.lines[i]! });
    listener({ type: 'state', record: job.record });
    job.listeners.add(listener);
    return () => job.listeners.delete(listener);
  }

  /** Resolves when the build has finished (any final state). */
  async wait(id: string): Promise<BuildRecord> {
    const job = this.#jobs.get(id);
    if (job === undefined) throw new ServerError('BUILD_NOT_FOUND', `no build ${id}`);
    await job.done;
    return job.record;
  }

  /**
   * Graceful shutdown: queued builds are cancelled, running ones are aborted and fail with a message
   * saying the server stopped (they are not resumed on restart).
   */
  async close(): Promise<void> {
    this.#closing = true;
    for (const job of this.#queue.splice(0))
      this.#finish(job, 'cancelled', null, 'the server shut down before this build started');
    const running = [...this.#jobs.values()].filter((j) => j.record.state === 'running');
    for (const job of running)
      job.abort.abort(new ServerError('SHUTTING_DOWN', 'the server is shutting down'));
    await Promise.all(running.map((j) => j.done));
  }

  #emit(job: Job, event: BuildStreamEvent): void {
    for (const l of job.listeners) {
      try {
        l(event);
      } catch (err) {
        this.options.logger.warn({ err }, 'build log listener failed');
      }
    }
  }

  #appendLog(job: Job, line: string): void {
    for (const l of line.split(/\r?\n/)) {
      if (job.lines.length >= MAX_LOG_LINES) return;
      job.lines.push(l);
      this.#emit(job, { type: 'log', index: job.lines.length - 1, line: l });
    }
  }

  #pump(): void {
    while (this.#running < this.options.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running += 1;
      void this.#run(job).finally(() => {
        this.#running -= 1;
        this.#pump();
      });
    }
  }

  async #run(job: Job): Promise<void> {
    job.record.state = 'running';
    job.record.startedAt = new Date().toISOString();
    this.#emit(job, { type: 'state', record: job.record });
    const logger = this.options.logger.child({ build: job.record.id });
    logger.info({ submittedBy: job.record.submittedBy }, 'build started');
    try {
      const outcome = await this.runner({
        id: job.record.id,
        request: job.record.request,
        signal: job.abort.signal,
        log: (line) => this.#appendLog(job, line),
      });
      this.#finish(
        job,
        outcome.ok ? 'succeeded' : 'failed',
        outcome,
        outcome.ok ? null : 'the build failed: see its log',
      );
    } catch (err) {
      const message = job.abort.signal.aborted
        ? 'the server shut down while this build was running; submit it again'
        : err instanceof Error
          ? err.message
          : String(err);
      this.#appendLog(job, `error: ${message}`);
      this.#finish(job, 'failed', null, message);
    }
    logger.info({ state: job.record.state }, 'build finished');
  }

  #finish(job: Job, state: BuildState, outcome: BuildOutcome | null, error: string | null): void {
    job.record.state = state;
    job.record.outcome = outcome;
    job.record.error = error;
    job.record.finishedAt = new Date().toISOString();
    this.options.metrics?.inc('dstack_builds_total', { state });
    this.#emit(job, { type: 'state', record: job.record });
    job.listeners.clear();
    job.resolveDone();
  }

  #prune(): void {
    const finished = [...this.#jobs.values()].filter((j) => j.record.finishedAt !== null);
    const excess = this.#jobs.size - this.options.keep;
    if (excess <= 0) return;
    finished
      .sort((a, b) => a.record.createdAt.localeCompare(b.record.createdAt))
      .slice(0, excess)
      .forEach((j) => this.#jobs.delete(j.record.id));
  }
}

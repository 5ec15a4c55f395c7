// The full output of a build, one file per step (the plan and setup in main.log, each requirement in its own),
// streamed to disk as it comes. Files of the steps that failed are kept and named in the failure; the rest, and
// the whole folder when nothing failed, are removed at the end.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { BuildFailure } from './executor.js';
import { FailureDigest, type ExplainedFailure } from './failure.js';

const MAIN = 'main';

export class BuildLogs {
  private readonly streams = new Map<string, WriteStream>();
  private readonly digests = new Map<string, FailureDigest>();

  constructor(readonly dir: string) {}

  private fileOf(key: string): string {
    return join(this.dir, `${key.replace(/[^A-Za-z0-9._-]/g, '_')}.log`);
  }

  /** One line of output; `pkg` null for the plan and the build script's own lines. */
  line(pkg: string | null, text: string): void {
    const key = pkg ?? MAIN;
    let stream = this.streams.get(key);
    if (!stream) {
      if (this.streams.size === 0) mkdirSync(this.dir, { recursive: true });
      stream = createWriteStream(this.fileOf(key));
      stream.on('error', () => undefined); // a full disk loses the log, not the build
      this.streams.set(key, stream);
      this.digests.set(key, new FailureDigest());
    }
    stream.write(`${text}\n`);
    this.digests.get(key)!.add(text);
  }

  /** Each failure with its summary (`where`: where pip looked, e.g. "in the wheelhouse") and its log file. */
  explain(failures: BuildFailure[], where: string): ExplainedFailure[] {
    return failures.map((f) => {
      const key = this.streams.has(f.package) ? f.package : this.streams.has(MAIN) && !f.command[0]?.startsWith('ingest') ? MAIN : null;
      let digest = key ? this.digests.get(key)! : null;
      if (!digest) {
        digest = new FailureDigest();
        for (const l of f.logTail) digest.add(l);
      }
      return { ...f, summary: digest.summary(where), missing: digest.missing, logFile: key ? this.fileOf(key) : null };
    });
  }

  /** Closes the files; keeps those `failures` name, removes the others (and the folder when none is kept). */
  async close(failures: ExplainedFailure[]): Promise<void> {
    const keep = new Set(failures.map((f) => f.logFile).filter((f): f is string => f !== null));
    await Promise.all(
      [...this.streams.values()].map((s) => {
        s.end();
        return finished(s).catch(() => undefined);
      }),
    );
    if (keep.size === 0) {
      if (this.streams.size > 0) await rm(this.dir, { recursive: true, force: true });
      return;
    }
    await Promise.all(
      [...this.streams.keys()].map((k) => this.fileOf(k)).filter((f) => !keep.has(f)).map((f) => rm(f, { force: true })),
    );
  }
}

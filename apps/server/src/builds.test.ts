// The builds queue with a runner made for the test: bounded concurrency, joined duplicates, log replay,
// and shutdown (queued builds cancelled, running ones failed with a message saying why).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BuildManager, type BuildRunner, type BuildStreamEvent } from './builds.js';

const logger = pino({ level: 'silent' });

/** A runner whose builds log a line, then wait until released or aborted. */
function gatedRunner() {
  const gates = new Map<string, () => void>();
  let running = 0;
  let maxRunning = 0;
  const runner: BuildRunner = async ({ request, signal, log }) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    log(`building ${request.recipe}`);
    try {
      await new Promise<void>((resolve, reject) => {
        gates.set(request.recipe, resolve);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
      log('done');
      return {
        ok: true,
        wheels: [{ filename: `${request.recipe}-1.0-py3-none-any.whl`, status: 'added' }],
        failures: [],
      };
    } finally {
      running--;
    }
  };
  const release = async (recipe: string) => {
    for (let i = 0; i < 100 && !gates.has(recipe); i++) await new Promise((r) => setTimeout(r, 5));
    gates.get(recipe)!();
  };
  return { runner, release, maxRunning: () => maxRunning };
}

describe('BuildManager', () => {
  it('runs at most `concurrency` builds, joins duplicates and replays logs', async () => {
    const g = gatedRunner();
    const m = new BuildManager(g.runner, { concurrency: 2, maxQueued: 10, keep: 10, logger });
    const a = m.submit({ recipe: 'a' }, 'me').record;
    const b = m.submit({ recipe: 'b' }, 'me').record;
    const c = m.submit({ recipe: 'c' }, 'me').record;
    expect(m.submit({ recipe: 'a' }, 'other')).toEqual({ record: a, existing: true });
    expect([a.state, b.state, c.state]).toEqual(['running', 'running', 'queued']);
    const events: string[] = [];
    m.subscribe(a.id, 0, (e: BuildStreamEvent) => events.push(e.type === 'log' ? e.line : e.record.state));
    await g.release('a');
    await m.wait(a.id);
    expect(events).toEqual(['building a', 'running', 'done', 'succeeded']);
    expect(m.get(c.id)!.state).toBe('running');
    await g.release('b');
    await g.release('c');
    await Promise.all([m.wait(b.id), m.wait(c.id)]);
    expect(g.maxRunning()).toBe(2);
    expect(m.list().map((r) => r.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(m.log(c.id)).toEqual(['building c', 'done']);
  });

  it('refuses new builds past max_queued', () => {
    const g = gatedRunner();
    const m = new BuildManager(g.runner, { concurrency: 1, maxQueued: 1, keep: 10, logger });
    m.submit({ recipe: 'x' }, 'me');
    m.submit({ recipe: 'y' }, 'me');
    expect(() => m.submit({ recipe: 'z' }, 'me')).toThrow('1 builds are already waiting');
  });

  it('on close cancels queued builds and fails running ones with a clear message', async () => {
    const g = gatedRunner();
    const m = new BuildManager(g.runner, { concurrency: 1, maxQueued: 10, keep: 10, logger });
    const running = m.submit({ recipe: 'r' }, 'me').record;
    const queued = m.submit({ recipe: 'q' }, 'me').record;
    await m.close();
    expect([running.state, running.error]).toEqual([
      'failed',
      'the server shut down while this build was running; submit it again',
    ]);
    expect([queued.state, queued.error]).toEqual([
      'cancelled',
      'the server shut down before this build started',
    ]);
    expect(m.log(running.id)).toEqual([
      'building r',
      'error: the server shut down while this build was running; submit it again',
    ]);
    expect(() => m.submit({ recipe: 'n' }, 'me')).toThrow(
      'the server is shutting down; submit the build again later',
    );
  });
});

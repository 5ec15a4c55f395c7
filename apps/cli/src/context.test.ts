import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { createContext, lazyChild } from './context.js';

/** A context whose root logger is a real pino writing JSON lines into `lines`, and counts how often it is made. */
function context(level: 'warn' | 'debug') {
  const lines: Record<string, unknown>[] = [];
  const stderr = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const real = createContext({ stdout: process.stdout, stderr, env: {}, cwd: '/' }, { logFormat: 'json', ...(level === 'debug' ? { verbose: true } : {}) });
  let made = 0;
  const ctx = {
    logLevel: real.logLevel,
    get logger(): Logger {
      made++;
      return real.logger;
    },
  };
  return { ctx, lines, made: () => made };
}

describe('lazyChild', () => {
  it('makes no logger for records below the level, nor for its children; a record at the level makes one, with every binding', () => {
    const { ctx, lines, made } = context('warn');
    const log = lazyChild(ctx, { component: 'image' });
    log.info({ digest: 'x' }, 'dependencies layer');
    log.debug('base inspected');
    const child = log.child({ image: 'runtime' });
    child.info('layer');
    expect(log.level).toBe('warn');
    expect(log.isLevelEnabled('info')).toBe(false);
    expect(log.isLevelEnabled('warn')).toBe(true);
    expect(made()).toBe(0);
    child.warn({ cache: 'registry:r' }, 'layer cache not readable');
    expect(made()).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, component: 'image', image: 'runtime', cache: 'registry:r', msg: 'layer cache not readable' });
  });

  it('with --verbose, debug records go out', () => {
    const { ctx, lines } = context('debug');
    lazyChild(ctx, { component: 'image' }).debug({ python: '/usr/bin/python3.11' }, 'base inspected');
    expect(lines).toEqual([expect.objectContaining({ level: 20, component: 'image', python: '/usr/bin/python3.11', msg: 'base inspected' })]);
  });
});

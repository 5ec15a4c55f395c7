// `serve` through its command: flags win over the config file, tokens come from the file and the
// environment, the wheelhouse given is the one served.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { writeWheel } from '@dstack/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { CliContext } from '../context.js';
import { startServe } from './serve.js';

let dir: string;
const sink = new Writable({ write: (_c, _e, cb) => cb() });

function context(env: NodeJS.ProcessEnv): CliContext {
  return {
    stdout: sink,
    stderr: sink,
    env,
    cwd: dir,
    interactive: false,
    color: false,
    logger: pino({ level: 'silent' }),
    logLevel: 'silent',
    logFormat: 'json',
    quiet: false,
    verbose: false,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-serve-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

test("serves the given wheelhouse with the config file's tokens, flags over the file", async () => {
  await writeFile(
    path.join(dir, 'server.toml'),
    [
      'port = 1',
      'public_read = false',
      '[[tokens]]',
      'name = "reader"',
      'token_env = "READER_TOKEN"',
      'scopes = ["read"]',
    ].join('\n'),
  );
  const wh = path.join(dir, 'wh');
  await writeWheel(path.join(dir), { name: 'served', version: '3.0' });
  const server = await startServe(
    context({ READER_TOKEN: 'r-123', DSTACK_SERVER_TOKENS: 'up:upload:u-456' }),
    {
      port: '0',
      host: '127.0.0.1',
      wheelhouse: 'wh',
      config: path.join(dir, 'server.toml'),
    },
  );
  try {
    expect(server.config.wheelhouse).toBe(wh);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.config.tokens.map((t) => t.name)).toEqual(['reader', 'up']);
    await server.store.add(path.join(dir, 'served-3.0-py3-none-any.whl'));
    expect((await fetch(`${server.url}/simple/`)).status).toBe(401);
    const page = await fetch(`${server.url}/simple/served/`, { headers: { authorization: 'Bearer r-123' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('served-3.0-py3-none-any.whl');
  } finally {
    await server.close();
  }
});

test('refuses a port that is not a number', async () => {
  await expect(startServe(context({}), { port: 'http' })).rejects.toThrow(
    '--port must be a port number (0-65535), got "http"',
  );
});

test('names the config problem', async () => {
  await writeFile(path.join(dir, 'bad.json'), '{"tokens": [{"token_env": "MISSING"}]}');
  await expect(startServe(context({}), { port: '0', config: path.join(dir, 'bad.json') })).rejects.toThrow(
    `${path.join(dir, 'bad.json')}: tokens[0] ("token1") reads $MISSING, which is not set`,
  );
});

// Issue 12, point 4, over raw sockets: anonymous bodies are answered 401 before they are read, a body that
// stops arriving and headers that never finish are cut off, and a slow but steady upload still passes.
import { connect, type Socket } from 'node:net';
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWheel, multipartBody, startTestServer, type TestServer } from './fixtures.test-support.js';

const UPLOAD = 'slow-upload-token';
let s: TestServer;
let port: number;

beforeAll(async () => {
  s = await startTestServer({
    tokens: [{ name: 'ci', token: UPLOAD, scopes: ['upload', 'build'] }],
    headersTimeoutSeconds: 1,
    bodyIdleTimeoutSeconds: 1,
  });
  port = Number(new URL(s.url).port);
});
afterAll(async () => s?.close());

interface RawResult {
  /** The response's head and body as received ('' when the server closed without answering). */
  response: string;
  status: number;
  /** Milliseconds from connecting until the server closed the connection. */
  closedAfter: number;
}

/** Writes `head`, then each chunk after its delay; resolves when the server closes the connection. */
function rawExchange(
  head: string,
  chunks: { delay: number; data: Buffer | string }[] = [],
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket: Socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    const timers: NodeJS.Timeout[] = [];
    socket.on('connect', () => {
      socket.write(head);
      let at = 0;
      for (const c of chunks) {
        at += c.delay;
        timers.push(setTimeout(() => socket.writable && socket.write(c.data), at));
      }
    });
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('error', () => {}); // a reset after the server answered is part of being cut off
    socket.on('close', () => {
      timers.forEach(clearTimeout);
      const response = Buffer.concat(received).toString('latin1');
      resolve({
        response,
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0),
        closedAfter: Date.now() - started,
      });
    });
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open: ${Buffer.concat(received).toString('latin1')}`));
    }, 20_000).unref();
  });
}

const postHead = (path: string, length: number, extra = '', type = 'application/json'): string =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n${extra}\r\n`;

describe('slow clients (issue 12, point 4)', () => {
  it('answers an anonymous build whose body never finishes with 401 at once, and closes', async () => {
    const r = await rawExchange(postHead('/api/builds', 4_000_000), [{ delay: 10, data: '{"recipe": "' }]);
    expect(r.status).toBe(401);
    expect(r.response).toContain('"code":"AUTH_REQUIRED"');
    expect(r.closedAfter).toBeLessThan(900);
  });

  it('cuts off 300 anonymous slow uploads at once', async () => {
    const results = await Promise.all(
      Array.from({ length: 300 }, () =>
        rawExchange(postHead('/', 10_000_000, '', 'multipart/form-data; boundary=x'), [
          { delay: 5, data: '--x\r\n' },
        ]),
      ),
    );
    expect(new Set(results.map((r) => r.status))).toEqual(new Set([401]));
    expect(Math.max(...results.map((r) => r.closedAfter))).toBeLessThan(5_000);
  });

  it('cuts off an authenticated body that stops arriving (body_idle_timeout_seconds)', async () => {
    const auth = `Authorization: Bearer ${UPLOAD}\r\n`;
    const r = await rawExchange(postHead('/', 10_000_000, auth, 'multipart/form-data; boundary=x'), [
      { delay: 10, data: '--x\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n' },
      {
        delay: 10,
        data: '--x\r\nContent-Disposition: form-data; name="content"; filename="a-1-py3-none-any.whl"\r\n\r\nPK',
      },
    ]);
    expect(r.closedAfter).toBeGreaterThan(900);
    expect(r.closedAfter).toBeLessThan(4_000);
    expect((await readdir(`${s.dir}/wheelhouse`).catch(() => [])).filter((f) => f.endsWith('.whl'))).toEqual(
      [],
    );
  });

  it('cuts off headers that never finish (headers_timeout_seconds)', async () => {
    const r = await rawExchange('GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\n', [
      { delay: 200, data: 'X-Slow: 1\r\n' },
    ]);
    expect(r.closedAfter).toBeGreaterThan(900);
    expect(r.closedAfter).toBeLessThan(4_000);
    expect([0, 408]).toContain(r.status);
  });

  it('lets a slow but steady upload through: no total limit', async () => {
    const wheel = await makeWheel(s.dir, { name: 'steady', version: '1.0' });
    const { readFile } = await import('node:fs/promises');
    const { body, contentType } = multipartBody(
      { ':action': 'file_upload', name: 'steady', version: '1.0' },
      { name: 'steady-1.0-py3-none-any.whl', data: await readFile(wheel) },
    );
    const pieces = 8;
    const size = Math.ceil(body.length / pieces);
    const chunks = Array.from({ length: pieces }, (_, i) => ({
      delay: 400,
      data: body.subarray(i * size, (i + 1) * size),
    }));
    const head = `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${UPLOAD}\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const r = await rawExchange(head, chunks);
    expect(r.status).toBe(200);
    expect(r.closedAfter).toBeGreaterThan(3_000); // longer than both timeouts together
    expect(r.response).toContain('"status":"added"');
  });
});

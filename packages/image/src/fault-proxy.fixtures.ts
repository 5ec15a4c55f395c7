// A small HTTP proxy in front of the real registry that injects the faults a real registry will not produce on
// demand (500s, dropped connections), and can demand bearer tokens like Docker Hub. Test-only.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Fault {
  /** Which request: method and a regex on the path. */
  method: string;
  path: RegExp;
  /** 'status' answers with that status; 'drop' reads part of the body then destroys the connection. */
  kind: 'status' | 'drop';
  status?: number;
  /** How many matching requests to hit (default 1). */
  times?: number;
}

export interface FaultProxy {
  url: string;
  host: string;
  log: string[];
  injected: string[];
  tokenRequests: number;
  close(): Promise<void>;
}

export async function startFaultProxy(
  upstream: { host: string; port: number },
  options: { faults?: Fault[]; bearer?: { user: string; password: string } } = {},
): Promise<FaultProxy> {
  const faults = (options.faults ?? []).map((f) => ({ ...f, left: f.times ?? 1 }));
  const state = { log: [] as string[], injected: [] as string[], tokenRequests: 0 };
  const TOKEN = 'test-token-123';
  const server = http.createServer((req, res) => {
    const line = `${req.method} ${req.url}`;
    state.log.push(line);
    const url = new URL(req.url ?? '/', 'http://x');
    if (options.bearer) {
      if (url.pathname === '/token') {
        state.tokenRequests++;
        const expected = 'Basic ' + Buffer.from(`${options.bearer.user}:${options.bearer.password}`).toString('base64');
        if (req.headers.authorization !== expected) {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: TOKEN }));
        return;
      }
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        req.resume();
        req.on('end', () => {
          const host = req.headers.host;
          res
            .writeHead(401, {
              'www-authenticate': `Bearer realm="http://${host}/token",service="test-registry",scope="repository:x:pull"`,
              'content-type': 'application/json',
            })
            .end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        });
        return;
      }
    }
    const fault = faults.find((f) => f.left > 0 && f.method === req.method && f.path.test(url.pathname));
    if (fault) {
      fault.left--;
      state.injected.push(`${fault.kind} ${line}`);
      if (fault.kind === 'status') {
        req.resume();
        req.on('end', () => res.writeHead(fault.status ?? 500, { 'content-type': 'text/plain' }).end('injected failure'));
      } else {
        let seen = 0;
        req.on('data', (c: Buffer) => {
          seen += c.length;
          if (seen > 0) req.socket.destroy();
        });
        req.on('end', () => req.socket.destroy());
      }
      return;
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    const up = http.request({ host: upstream.host, port: upstream.port, method: req.method, path: req.url, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    get log() {
      return state.log;
    },
    get injected() {
      return state.injected;
    },
    get tokenRequests() {
      return state.tokenRequests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

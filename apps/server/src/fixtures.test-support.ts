// Test fixtures for the server's tests: small wheels built in code (yazl), with Metadata-Version 2.1 so
// Debian's twine 4.0.2 reads them (Decision 14), and a server listening on 127.0.0.1 with its log captured.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { FsWheelStore } from '@dstack/wheelhouse';
import { pino } from 'pino';
import { writeWheel } from '@dstack/testing';
import { buildServer, type BuildServerOptions } from './server.js';
import { DEFAULT_CONFIG, type ServerConfig } from './config.js';
import type { BuildManager } from './builds.js';
import { serverMetrics, type Metrics } from './metrics.js';
import type { FastifyInstance } from 'fastify';

/** Writes a py3-none-any wheel (Metadata-Version 2.1, Decision 14) into `dir`; returns its path. */
export async function makeWheel(
  dir: string,
  spec: { name: string; version: string; dependencies?: string[]; requiresPython?: string; salt?: string },
): Promise<string> {
  const module = spec.name.replace(/[-.]+/g, '_').toLowerCase();
  return writeWheel(dir, {
    name: spec.name,
    version: spec.version,
    requires: spec.dependencies ?? [],
    ...(spec.requiresPython ? { requiresPython: spec.requiresPython } : {}),
    files: {
      [`${module}/__init__.py`]: `NAME = ${JSON.stringify(spec.name)}\nVERSION = ${JSON.stringify(spec.version)}\n# ${spec.salt ?? ''}\n`,
    },
  });
}

/** A log destination that keeps every JSON line. */
export function captureLog(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, dest);
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export interface TestServer {
  app: FastifyInstance;
  url: string;
  dir: string;
  store: FsWheelStore;
  log: () => Record<string, unknown>[];
  close(): Promise<void>;
}

/** A server over a fresh wheelhouse in a temp dir, listening on 127.0.0.1 (port chosen by the OS). */
export async function startTestServer(
  config: Partial<ServerConfig> = {},
  extra: Partial<BuildServerOptions> & {
    /** Makes the builds queue once the store and the full config (wheelhouse set) exist. */
    makeBuilds?: (store: FsWheelStore, config: ServerConfig, metrics: Metrics) => BuildManager;
  } = {},
): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'dstack-server-'));
  const wheelhouse = join(dir, 'wheelhouse');
  const store = new FsWheelStore(wheelhouse);
  const { logger, lines } = captureLog();
  const full: ServerConfig = {
    ...DEFAULT_CONFIG,
    ...config,
    wheelhouse,
    builds: { ...DEFAULT_CONFIG.builds, ...config.builds },
  };
  const { makeBuilds, ...options } = extra;
  const metrics = options.metrics ?? serverMetrics();
  const builds = makeBuilds ? makeBuilds(store, full, metrics) : (options.builds ?? null);
  const app = buildServer({ store, config: full, logger, ...options, builds, metrics });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    dir,
    store,
    log: lines,
    close: async () => {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A multipart/form-data body as twine sends it: fields first, then the file in `content`. */
export function multipartBody(
  fields: Record<string, string>,
  file?: { name: string; data: Buffer; field?: string },
): { body: Buffer; contentType: string } {
  const boundary = `----dstack${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`;
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  }
  if (file) {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${file.field ?? 'content'}"; filename="${file.name}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
      file.data,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const basic = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** GET `path` exactly as given (no client-side normalisation), on a fresh connection. */
export async function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const { port, hostname } = new URL(base);
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const bodyStart = text.indexOf('\r\n\r\n');
      let body = text.slice(bodyStart + 4);
      if (/transfer-encoding: chunked/i.test(text.slice(0, bodyStart))) {
        body = body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '');
      }
      resolve({ status, body });
    });
  });
}

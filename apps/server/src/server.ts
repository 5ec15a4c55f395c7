/**
 * The fastify app: `buildServer({ store, config, logger })` returns the instance (not listening), so
 * tests use `app.inject` or `app.listen({ host: '127.0.0.1', port: 0 })`. The access log is one pino
 * line per request with its id, route, status, content type and duration; no header is ever logged,
 * so tokens never reach the log.
 */
import { randomUUID } from 'node:crypto';
import multipart from '@fastify/multipart';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { pino, type Logger } from 'pino';
import { REALM, TokenAuthenticator } from './auth.js';
import type { BuildManager } from './builds.js';
import { registerBuildRoutes } from './builds-routes.js';
import { DEFAULT_CONFIG, type Scope, type ServerConfig } from './config.js';
import type { ServerContext } from './context.js';
import { errorResponse, reasonPhrase, ServerError } from './errors.js';
import { labelKey, serverMetrics, type Metrics } from './metrics.js';
import { isSuspiciousUrl } from './paths.js';
import { IndexCache } from './index-cache.js';
import { fileUrl, registerSimpleRoutes } from './simple.js';
import type { ServerWheelStore } from './store.js';
import { registerUploadRoutes } from './upload.js';
import { PAGE_CSP, registerWebRoutes } from './web.js';

export interface BuildServerOptions {
  store: ServerWheelStore;
  config?: Partial<ServerConfig>;
  /** The root logger (see createServerLogger); silent when omitted. */
  logger?: Logger;
  /** The builds queue; without it the builds API answers 503 BUILDS_DISABLED. */
  builds?: BuildManager | null;
  metrics?: Metrics;
  /** Values for `${VAR}` in recipes sent over HTTP: `[builds] recipe_env` (see recipeVariables). */
  recipeVars?: Record<string, string>;
}

/** Paths that could carry a secret in logs: redacted whatever logs them. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'tokens[*].token',
  'config.tokens[*].token',
];

/** A pino logger for the server: JSON to `destination` (stdout by default), tokens redacted. */
export function createServerLogger(
  options: { level?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  return pino(
    { level: options.level ?? 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    (options.destination ?? process.stdout) as pino.DestinationStream,
  );
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Routes that change something, and the scope they need; every other route reads (null: no token at all). */
const WRITE_SCOPES: Readonly<Record<string, Scope>> = {
  'POST /': 'upload',
  'POST /legacy/': 'upload',
  'POST /legacy': 'upload',
  'POST /api/builds': 'build',
};

function scopeOf(request: FastifyRequest): Scope | null {
  const route = request.routeOptions.url;
  if (route === '/healthz') return null;
  return WRITE_SCOPES[`${request.method} ${route}`] ?? 'read';
}

export function buildServer(options: BuildServerOptions): FastifyInstance {
  const config: ServerConfig = {
    ...DEFAULT_CONFIG,
    ...options.config,
    builds: { ...DEFAULT_CONFIG.builds, ...options.config?.builds },
  };
  const logger = options.logger ?? pino({ level: 'silent' });
  const metrics = options.metrics ?? serverMetrics();
  const auth = new TokenAuthenticator(config.tokens);

  const app = Fastify({
    loggerInstance: logger,
    // Our own access line (onResponse below) replaces fastify's two lines per request.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'reqId' }),
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    bodyLimit: 4 * 1024 * 1024,
    // Slow clients (issue 12, point 4): headers must arrive within headers_timeout_seconds (node checks every
    // connection each second); a body idle for body_idle_timeout_seconds is cut off (onRequest below). No
    // total limit, so a large upload at a steady rate passes.
    http: {
      headersTimeout: Math.round(config.headersTimeoutSeconds * 1000),
      connectionsCheckingInterval: Math.min(1000, Math.round(config.headersTimeoutSeconds * 500)),
    },
    requestTimeout: 0,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 1000 },
    // Malformed URLs (bad percent-encoding) get the same error shape as everything else.
    frameworkErrors: (err, _request, reply) => {
      const bad = new ServerError('BAD_PATH', `the URL cannot be decoded (${err.message})`);
      void (reply as unknown as FastifyReply)
        .code(400)
        .type('application/json; charset=utf-8')
        .send({ error: { code: bad.code, message: bad.message } });
    },
  });

  const ctx: ServerContext = {
    store: options.store,
    config,
    auth,
    metrics,
    builds: options.builds ?? null,
    index: new IndexCache(options.store, { fileUrl: (e) => fileUrl(e.filename), storeMaxAgeMs: config.indexCacheSeconds * 1000 }),
    logger,
    recipeVars: options.recipeVars ?? {},
    authorize: (request: FastifyRequest, scope: Scope) =>
      auth.authorize(request.headers.authorization, scope, { publicRead: config.publicRead }),
    authorizeBuilds: (request: FastifyRequest) =>
      auth.authorize(request.headers.authorization, 'read', {
        publicRead: config.publicRead && config.builds.public,
      }),
  };

  const bodyIdleMs = Math.round(config.bodyIdleTimeoutSeconds * 1000);
  app.addHook('onRequest', async (request, reply) => {
    // Every response: no MIME sniffing, no referrer (HTML pages add their CSP where they are sent).
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    // A body that stops arriving is cut off; once it is all here, the handler may take its time. (GET and
    // HEAD have no body: slow headers are node's headersTimeout, idle connections its keepAliveTimeout.)
    const socket = request.raw.socket as Partial<import('node:net').Socket> | undefined;
    if (request.method !== 'GET' && request.method !== 'HEAD' && typeof socket?.setTimeout === 'function') {
      socket.setTimeout(bodyIdleMs);
      request.raw.once('end', () => socket.setTimeout!(0));
    }
    if (isSuspiciousUrl(request.raw.url ?? '')) {
      throw new ServerError('BAD_PATH', 'the path holds "..", a backslash, NUL or bad percent-encoding');
    }
    // Authenticate before any body is read: an anonymous or unknown client is answered (and its
    // connection closed) at once. The handlers authorize again to learn the principal.
    const scope = scopeOf(request);
    if (scope !== null) ctx.authorize(request, scope);
  });

  const requestKeys = new Map<string, string>();
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const id = `${request.method} ${route} ${reply.statusCode}`;
    let key = requestKeys.get(id);
    if (key === undefined) {
      key = labelKey({ method: request.method, route, status: String(reply.statusCode) });
      requestKeys.set(id, key);
    }
    metrics.incKey('dstack_http_requests_total', key);
    request.log.info(
      {
        method: request.method,
        url: request.url.split('?')[0], // query strings may carry secrets: never logged
        status: reply.statusCode,
        type: reply.getHeader('content-type'),
        length: reply.getHeader('content-length'),
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ua: request.headers['user-agent'],
      },
      'request',
    );
  });

  app.setErrorHandler(async (err, request, reply) => {
    const { status, body, internal } = errorResponse(err);
    // Error bodies name files, never the server's folders.
    body.error.message = body.error.message.split(config.wheelhouse).join('<wheelhouse>');
    if (internal) request.log.error({ err }, 'internal error');
    else request.log.debug({ code: body.error.code, message: body.error.message }, 'request refused');
    if (status === 401) reply.header('www-authenticate', `Basic realm="${REALM}"`);
    // A body the client is still sending is not read: close the connection after answering.
    if (!request.raw.complete && request.method !== 'GET' && request.method !== 'HEAD')
      reply.header('connection', 'close');
    reply.raw.statusMessage = reasonPhrase(status, body.error.message);
    reply.code(status);
    if (request.method === 'HEAD') return reply.send();
    const wantsHtml =
      (request.headers.accept ?? '').includes('text/html') && !request.url.startsWith('/simple');
    if (wantsHtml && status !== 401) {
      const { errorPage } = await import('./web.js');
      return reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', PAGE_CSP)
        .send(errorPage(status, body.error.message));
    }
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.setNotFoundHandler(async (request) => {
    throw new ServerError('NOT_FOUND', `nothing at ${request.method} ${request.url.split('?')[0]}`);
  });

  app.register(multipart, {
    limits: {
      fileSize: config.maxUploadBytes + 1, // upload.ts counts and answers 413 itself
      files: 4,
      fields: 100,
      fieldSize: 16 * 1024 * 1024,
      parts: 110,
      headerPairs: 100,
    },
  });

  app.register(async (scope) => {
    scope.get('/healthz', async () => ({ status: 'ok' }));
    scope.get('/metrics', async (request, reply) => {
      ctx.authorize(request, 'read');
      return reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render());
    });
    registerSimpleRoutes(scope, ctx);
    registerUploadRoutes(scope, ctx);
    registerBuildRoutes(scope, ctx);
    registerWebRoutes(scope, ctx);
  });

  app.addHook('onClose', async () => {
    await ctx.builds?.close();
  });

  return app as unknown as FastifyInstance;
}

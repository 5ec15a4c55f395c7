/**
 * The simple repository API over the store: /simple/ and /simple/<project>/ (PEP 503 HTML or PEP 691
 * JSON), files under /files/<wheel> with ETag (sha256), Range and Content-Length, and PEP 658/714
 * metadata under /files/<wheel>.metadata. Pages are rendered by @dstack/wheelhouse on every request, so
 * an upload or a build shows at once.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import parseRangeHeader from 'range-parser';
import type { WheelStore } from '@dstack/wheelhouse';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from './context.js';
import { ServerError } from './errors.js';
import { SIMPLE_JSON, negotiateSimple, type SimpleType } from './negotiate.js';
import { checkFileName, checkProjectName, normalizeProjectName } from './paths.js';
import { metadataBytes } from './store.js';

/** Files up to this size are read whole, sent as one buffer, and kept in memory. */
const SMALL_FILE = 256 * 1024;
/** Memory for small wheels, keyed by sha256 (a wheel's bytes never change under its name here). */
const SMALL_FILE_CACHE = 32 * 1024 * 1024;

function pathOf(store: WheelStore, filename: string): string | null {
  const fs = store as WheelStore & { pathOf?: (f: string) => string };
  return typeof fs.pathOf === 'function' ? fs.pathOf(filename) : null;
}

/** The simple index's HTML pages hold links only: no script, style or framing. */
const INDEX_CSP = "default-src 'none'; frame-ancestors 'none'";

export const fileUrl = (filename: string): string => `/files/${encodeURIComponent(filename)}`;

function contentType(type: SimpleType): string {
  return type === SIMPLE_JSON ? type : `${type}; charset=utf-8`;
}

function chooseType(request: FastifyRequest): SimpleType {
  const query = request.query as { format?: string };
  const type = negotiateSimple(request.headers.accept, query.format);
  if (type === null) {
    throw new ServerError(
      'NOT_ACCEPTABLE',
      `none of the types in Accept (${request.headers.accept ?? ''}${query.format ? `, format=${query.format}` : ''}) is served here`,
      {
        hint: 'ask for application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html or text/html',
      },
    );
  }
  return type;
}

/** Keeps the query string when redirecting to a canonical URL. */
function withQuery(request: FastifyRequest, path: string): string {
  const q = request.url.indexOf('?');
  return q < 0 ? path : path + request.url.slice(q);
}

interface ByteRange {
  start: number;
  end: number; // inclusive
}

/** One byte range from a Range header; null to send the whole file; 'unsatisfiable' for 416. */
export function parseRange(header: string | undefined, size: number): ByteRange | null | 'unsatisfiable' {
  if (header === undefined) return null;
  const ranges = parseRangeHeader(size, header, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  // Malformed, another unit, or several ranges: the whole file is a valid answer.
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return null;
  return { start: ranges[0]!.start, end: ranges[0]!.end };
}

export function registerSimpleRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store, metrics } = ctx;
  const smallFiles = new LRUCache<string, Buffer>({
    maxSize: SMALL_FILE_CACHE,
    sizeCalculation: (b) => b.length,
  });

  app.get('/simple', async (request, reply) => reply.redirect(withQuery(request, '/simple/'), 301));

  app.get('/simple/', async (request, reply) => {
    ctx.authorize(request, 'read');
    const type = chooseType(request);
    reply.header('vary', 'Accept').header('cache-control', 'no-cache').type(contentType(type));
    if (type !== SIMPLE_JSON) reply.header('content-security-policy', INDEX_CSP);
    // A Buffer, so fastify adds no charset to the JSON type (PEP 691 names it exactly).
    return ctx.index.projectList(type === SIMPLE_JSON ? 'json' : 'html');
  });

  const projectPage = async (
    request: FastifyRequest,
    reply: FastifyReply,
    slash: boolean,
  ): Promise<unknown> => {
    const { project } = request.params as { project: string };
    checkProjectName(project);
    const canonical = normalizeProjectName(project);
    if (canonical !== project || !slash)
      return reply.redirect(withQuery(request, `/simple/${canonical}/`), 301);
    ctx.authorize(request, 'read');
    const type = chooseType(request);
    const page = await ctx.index.projectPage(canonical, type === SIMPLE_JSON ? 'json' : 'html');
    if (page === null) throw new ServerError('NOT_FOUND', `no project named "${canonical}" in this index`);
    reply.header('vary', 'Accept').header('cache-control', 'no-cache').type(contentType(type));
    if (type !== SIMPLE_JSON) reply.header('content-security-policy', INDEX_CSP);
    return page;
  };
  app.get('/simple/:project', (request, reply) => projectPage(request, reply, false));
  app.get('/simple/:project/', (request, reply) => projectPage(request, reply, true));

  app.route({
    method: ['GET', 'HEAD'],
    url: '/files/:filename',
    handler: async (request, reply) => {
      ctx.authorize(request, 'read');
      const name = checkFileName((request.params as { filename: string }).filename);
      if (name.endsWith('.whl.metadata')) {
        const wheel = name.slice(0, -'.metadata'.length);
        const entry = await store.get(wheel);
        if (entry === null) throw new ServerError('NOT_FOUND', `no wheel named ${wheel} in this index`);
        const body = await metadataBytes(store, wheel);
        const etag = `"${entry.metadataSha256}"`;
        reply.header('etag', etag).header('cache-control', 'public, max-age=31536000, immutable');
        if (request.headers['if-none-match'] === etag) return reply.code(304).send();
        metrics.inc('dstack_bytes_served_total', {}, body.length);
        return reply.type('text/plain; charset=utf-8').send(body);
      }
      if (!name.endsWith('.whl')) throw new ServerError('NOT_FOUND', `no file named ${name} in this index`);
      const entry = await store.get(name);
      if (entry === null) throw new ServerError('NOT_FOUND', `no wheel named ${name} in this index`);
      const etag = `"${entry.sha256}"`;
      reply
        .header('etag', etag)
        .header('accept-ranges', 'bytes')
        .header('last-modified', new Date(entry.addedAt).toUTCString())
        // A wheel name never changes bytes here (409 otherwise): caches may keep it.
        .header('cache-control', 'public, max-age=31536000, immutable')
        .type('application/octet-stream');
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      const ifRange = request.headers['if-range'];
      let range = parseRange(request.headers.range, entry.size);
      if (ifRange !== undefined && ifRange !== etag) range = null;
      if (range === 'unsatisfiable') {
        reply.header('content-range', `bytes */${entry.size}`);
        throw new ServerError(
          'RANGE_NOT_SATISFIABLE',
          `range ${request.headers.range} is outside ${name} (${entry.size} bytes)`,
        );
      }
      let length = entry.size;
      let stream: NodeJS.ReadableStream;
      const cached = range === null && request.method !== 'HEAD' ? smallFiles.get(entry.sha256) : undefined;
      if (cached !== undefined) {
        reply.header('content-length', cached.length);
        metrics.inc('dstack_bytes_served_total', {}, cached.length);
        return reply.send(cached);
      }
      const path = pathOf(store, name);
      if (range !== null) {
        length = range.end - range.start + 1;
        reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${entry.size}`);
      }
      if (path !== null) {
        // Straight from the flat folder: one open() instead of the store's stat and record lookup.
        let handle: FileHandle;
        try {
          handle = await open(path, 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT')
            throw new ServerError('NOT_FOUND', `no wheel named ${name} in this index`);
          throw err;
        }
        if (range === null && entry.size <= SMALL_FILE && request.method !== 'HEAD') {
          let body: Buffer;
          try {
            body = await handle.readFile();
          } finally {
            await handle.close();
          }
          // Kept only when the bytes are the ones the index lists (sha256 is the cache key).
          if (body.length === entry.size) smallFiles.set(entry.sha256, body);
          reply.header('content-length', body.length);
          metrics.inc('dstack_bytes_served_total', {}, body.length);
          return reply.send(body);
        }
        stream = handle.createReadStream(range === null ? {} : { start: range.start, end: range.end });
      } else {
        stream = await store.openRead(
          name,
          range === null ? undefined : { start: range.start, end: range.end },
        );
      }
      reply.header('content-length', length);
      if (request.method === 'HEAD') {
        (stream as NodeJS.ReadableStream & { destroy(): void }).destroy();
        return reply.send(Readable.from([]));
      }
      reply.raw.once('finish', () => metrics.inc('dstack_bytes_served_total', {}, length));
      return reply.send(stream);
    },
  });
}

/**
 * The builds API: POST /api/builds (JSON: recipe text, python, executor, jobs, prebuild, rebuild),
 * GET /api/builds, GET /api/builds/:id, and GET /api/builds/:id/log — text, or Server-Sent Events
 * (`Accept: text/event-stream`) that replay the log and then follow it live until the build ends.
 */
import type { FastifyInstance } from 'fastify';
import type { BuildRequest, BuildStreamEvent } from './builds.js';
import type { ServerContext } from './context.js';
import { ServerError } from './errors.js';
import { prepareRemoteRecipe } from './recipe-policy.js';
import { redactLine, redactRecord } from './redact.js';

const MAX_RECIPE = 256 * 1024;

function parseBuildRequest(body: unknown): BuildRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ServerError('BUILD_INVALID', 'the body must be a JSON object with a "recipe" string');
  }
  const b = body as Record<string, unknown>;
  const known = ['recipe', 'python', 'executor', 'jobs', 'prebuild', 'rebuild'];
  for (const k of Object.keys(b)) {
    if (!known.includes(k))
      throw new ServerError('BUILD_INVALID', `unknown field "${k}" (known: ${known.join(', ')})`);
  }
  if (typeof b.recipe !== 'string' || b.recipe.trim() === '') {
    throw new ServerError('BUILD_INVALID', '"recipe" must be the non-empty text of a requirements file');
  }
  if (b.recipe.length > MAX_RECIPE)
    throw new ServerError('BUILD_INVALID', `"recipe" is longer than ${MAX_RECIPE} characters`);
  const req: BuildRequest = { recipe: b.recipe };
  if (b.python !== undefined) {
    if (typeof b.python !== 'string' || !/^[\w./+-]{1,200}$/.test(b.python)) {
      throw new ServerError('BUILD_INVALID', '"python" must be a version like "3.11" or an interpreter path');
    }
    req.python = b.python;
  }
  if (b.executor !== undefined) {
    if (b.executor !== 'local' && b.executor !== 'docker')
      throw new ServerError('BUILD_INVALID', '"executor" must be "local" or "docker"');
    req.executor = b.executor;
  }
  if (b.jobs !== undefined) {
    if (typeof b.jobs !== 'number' || !Number.isInteger(b.jobs) || b.jobs < 1 || b.jobs > 64) {
      throw new ServerError('BUILD_INVALID', '"jobs" must be an integer from 1 to 64');
    }
    req.jobs = b.jobs;
  }
  for (const key of ['prebuild', 'rebuild'] as const) {
    const v = b[key];
    if (v === undefined) continue;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && /^[A-Za-z0-9._-]{1,100}$/.test(x))) {
      throw new ServerError('BUILD_INVALID', `"${key}" must be a list of project names`);
    }
    req[key] = v as string[];
  }
  return req;
}

export function registerBuildRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const builds = () => {
    if (ctx.builds === null) {
      throw new ServerError('BUILDS_DISABLED', 'this server runs no builds', {
        hint: 'start it with an executor available (dstack-factory serve wires the engine in)',
      });
    }
    return ctx.builds;
  };
  const found = (id: string) => {
    const record = builds().get(id);
    if (record === null) throw new ServerError('BUILD_NOT_FOUND', `no build with id ${id}`);
    return record;
  };

  app.post('/api/builds', async (request, reply) => {
    const principal = ctx.authorize(request, 'build');
    const req = parseBuildRequest(request.body);
    // Refusals and syntax errors answer 400 now (with line and column), not as a failed build later; the
    // runner prepares the same recipe again for the build (Decisions 13, 20).
    await prepareRemoteRecipe(req.recipe, {
      allowLocalPaths: ctx.config.builds.allowLocalPaths,
      vars: ctx.recipeVars,
    });
    const { record, existing } = builds().submit(req, principal?.name ?? 'anonymous');
    reply.code(existing ? 200 : 202).header('location', `/api/builds/${record.id}`);
    return { ...record, existing };
  });

  // Anonymous readers (when allowed at all) get records and logs without server paths (redact.ts).
  app.get('/api/builds', async (request) => {
    const anonymous = ctx.authorizeBuilds(request) === null;
    const list = ctx.builds?.list() ?? [];
    return { builds: anonymous ? list.map(redactRecord) : list };
  });

  app.get('/api/builds/:id', async (request) => {
    const anonymous = ctx.authorizeBuilds(request) === null;
    const record = found((request.params as { id: string }).id);
    return anonymous ? redactRecord(record) : record;
  });

  app.get('/api/builds/:id/log', async (request, reply) => {
    const anonymous = ctx.authorizeBuilds(request) === null;
    const shown = (line: string): string => (anonymous ? redactLine(line) : line);
    const { id } = request.params as { id: string };
    const record = found(id);
    const wantsStream = (request.headers.accept ?? '').includes('text/event-stream');
    if (!wantsStream) {
      return reply.type('text/plain; charset=utf-8').send(builds().log(id)!.map(shown).join('\n') + '\n');
    }
    const lastId = Number(
      request.headers['last-event-id'] ?? (request.query as { from?: string }).from ?? -1,
    );
    const from = Number.isInteger(lastId) && lastId >= 0 ? lastId + 1 : 0;
    reply.hijack();
    request.raw.socket?.setTimeout?.(0); // the server talks here (heartbeats below), not the client
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': request.id,
      'x-accel-buffering': 'no',
    });
    res.write(': log of build ' + record.id + '\n\n');
    let unsubscribe: (() => void) | null = null;
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    const end = (): void => {
      clearInterval(heartbeat);
      unsubscribe?.();
      if (!res.writableEnded) res.end();
    };
    // The client going away only stops this stream; the build goes on.
    request.raw.once('close', end);
    unsubscribe = builds().subscribe(id, from, (event: BuildStreamEvent) => {
      if (event.type === 'log') {
        res.write(`id: ${event.index}\nevent: log\ndata: ${JSON.stringify(shown(event.line))}\n\n`);
      } else {
        const finished = event.record.finishedAt !== null;
        const record = anonymous ? redactRecord(event.record) : event.record;
        res.write(`event: ${finished ? 'end' : 'state'}\ndata: ${JSON.stringify(record)}\n\n`);
        if (finished) setImmediate(end);
      }
    });
  });
}

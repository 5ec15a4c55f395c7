/**
 * `startServer`: what `dstack-factory serve` does — read the config (file + environment), open the
 * wheelhouse, set up the builds queue, listen. Flags given here win over the config file.
 */
import { readdir, rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { FsWheelStore, type WheelStore } from '@dstack/wheelhouse';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { recipeVariables } from './build-env.js';
import { BuildManager, type BuildRunner } from './builds.js';
import { loadServerConfig, type ServerConfig } from './config.js';
import { defaultExecutorKind, engineRunner } from './engine-runner.js';
import { serverMetrics } from './metrics.js';
import { buildServer } from './server.js';

export interface StartServerOptions {
  host?: string;
  port?: number;
  wheelhouse?: string;
  configFile?: string | null;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logger?: Logger;
  /**
   * Runs builds. Default: the engine (engineRunner, executor by defaultExecutorKind); `null` turns builds off.
   */
  runner?: BuildRunner | null;
}

export interface StartedServer {
  app: FastifyInstance;
  url: string;
  config: ServerConfig;
  /** FsWheelStore for a folder, RegistryWheelStore for `registry:HOST/REPO`. */
  store: WheelStore;
  close(): Promise<void>;
}

const TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files of writers that died (a server killed with -9 mid-upload): FsWheelStore names
 * them `.<wheel>.<pid>.<random>.tmp`. Files of live processes (a `wheelhouse add` running now) stay; the
 * store's own sweep removes anything older than its grace period.
 */
export async function sweepDeadWriters(dir: string, logger?: Logger): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const m = TEMP_FILE.exec(name);
    if (m === null || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    await rm(join(dir, name), { force: true });
    removed++;
    logger?.info({ file: name }, 'removed the temp file of a writer that died');
  }
  return removed;
}

export async function startServer(options: StartServerOptions = {}): Promise<StartedServer> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const logger = options.logger ?? pino({ level: 'silent' });
  const config = await loadServerConfig({ file: options.configFile ?? null, env });
  if (options.host !== undefined) config.host = options.host;
  if (options.port !== undefined) config.port = options.port;
  if (options.wheelhouse !== undefined) config.wheelhouse = options.wheelhouse;
  const inRegistry = config.wheelhouse.startsWith('registry:');
  let store: WheelStore;
  if (inRegistry) {
    // A stateless replica: the wheels live in the registry; this process keeps a cache of its listing.
    const [{ RegistryWheelStore }, { RegistryClient, dockerConfigAuths }] = await Promise.all([
      import('@dstack/wheelhouse-registry'),
      import('@dstack/oci'),
    ]);
    const storeLogger = logger.child({ component: 'wheelhouse' });
    const client = new RegistryClient({ credentials: dockerConfigAuths(env), insecure: config.insecureRegistries, logger: storeLogger });
    store = new RegistryWheelStore(config.wheelhouse, { client, cacheMs: config.indexCacheSeconds * 1000, logger: storeLogger });
  } else {
    config.wheelhouse = isAbsolute(config.wheelhouse) ? config.wheelhouse : resolve(cwd, config.wheelhouse);
    await sweepDeadWriters(config.wheelhouse, logger);
    store = new FsWheelStore(config.wheelhouse, { logger: logger.child({ component: 'wheelhouse' }) });
  }
  const metrics = serverMetrics();
  let runner = options.runner;
  if (runner === undefined && inRegistry) {
    // Builds need a wheelhouse folder (pip's --find-links): builders build into one and `wheelhouse push`.
    logger.info({ store: config.wheelhouse }, 'builds are off: the store is a registry');
    runner = null;
  }
  if (runner === undefined) {
    const engineLogger = logger.child({ component: 'engine' });
    const defaultKind = await defaultExecutorKind(config, engineLogger);
    runner = engineRunner({ config, store, env, logger: engineLogger, defaultKind });
  }
  const builds =
    runner === null
      ? null
      : new BuildManager(runner, {
          concurrency: config.builds.concurrency,
          maxQueued: config.builds.maxQueued,
          keep: config.builds.keep,
          logger: logger.child({ component: 'builds' }),
          metrics,
        });
  const app = buildServer({
    store,
    config,
    logger,
    builds,
    metrics,
    recipeVars: recipeVariables(env, config),
  });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;
  logger.info(
    {
      url,
      wheelhouse: config.wheelhouse,
      publicRead: config.publicRead,
      tokens: config.tokens.map((t) => t.name),
    },
    'serving',
  );
  return { app, url, config, store, close: () => app.close() };
}

import type { Command } from 'commander';
import type { StartedServer } from '@dstack/server';
import { serviceLogger, type CliContext, type Runner } from '../context.js';
import { UsageError } from '../errors.js';

export interface ServeOptions {
  host?: string;
  port?: string;
  wheelhouse?: string;
  store?: string;
  config?: string;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port must be a port number (0-65535), got "${value}"`);
  }
  return port;
}

/** Starts the server for `serve` and resolves once it listens (the tests call this directly). */
export async function startServe(ctx: CliContext, options: ServeOptions): Promise<StartedServer> {
  if (options.store !== undefined && options.wheelhouse !== undefined) {
    throw new UsageError('give --store or --wheelhouse, not both (--store takes a folder too)');
  }
  const { startServer } = await import('@dstack/server');
  return startServer({
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.port !== undefined ? { port: parsePort(options.port) } : {}),
    ...(options.store !== undefined || options.wheelhouse !== undefined ? { wheelhouse: options.store ?? options.wheelhouse! } : {}),
    configFile: options.config ?? null,
    env: ctx.env,
    cwd: ctx.cwd,
    logger: serviceLogger(ctx),
  });
}

/** Resolves on SIGINT or SIGTERM (the first one); a second one exits at once. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

export function registerServeCommand(program: Command, run: Runner): void {
  program
    .command('serve')
    .description(
      'serve the wheelhouse as a package index (pip, uv), take twine uploads, run builds over HTTP, and show a web page',
    )
    .option('--host <host>', "address to listen on (default 127.0.0.1, or the config file's)")
    .option('--port <port>', "port to listen on (default 8080, or the config file's; 0 picks a free one)")
    .option('--wheelhouse <dir>', "the wheelhouse to serve (default ./wheelhouse, or the config file's)")
    .option(
      '--store <dir|registry:HOST/REPO>',
      'the store to serve: a wheelhouse folder, or an OCI registry repository (stateless replicas over one registry; builds off)',
    )
    .option('--config <file>', 'server config, TOML or JSON (tokens, public reads, limits, builds)')
    .addHelpText(
      'after',
      '\nTokens also come from DSTACK_SERVER_TOKENS="name:scope,scope:token ..." (scopes: read, upload, build).\n' +
        'The build scope lets a client run code on this machine: recipes are built here.',
    )
    .action(
      run(async (ctx: CliContext, options: ServeOptions) => {
        const server = await startServe(ctx, options);
        ctx.stderr.write(`dstack-factory serving ${server.config.wheelhouse} at ${server.url}/\n`);
        const signal = await untilSignal();
        serviceLogger(ctx).info({ signal }, 'shutting down: finishing in-flight requests');
        await server.close();
        return 0;
      }),
    );
}

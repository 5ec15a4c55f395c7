import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Principal, TokenAuthenticator } from './auth.js';
import type { BuildManager } from './builds.js';
import type { Scope, ServerConfig } from './config.js';
import type { IndexCache } from './index-cache.js';
import type { Metrics } from './metrics.js';
import type { ServerWheelStore } from './store.js';

/** What every route module gets from buildServer. */
export interface ServerContext {
  store: ServerWheelStore;
  config: ServerConfig;
  auth: TokenAuthenticator;
  metrics: Metrics;
  builds: BuildManager | null;
  /** The wheelhouse as last listed, and its rendered pages. */
  index: IndexCache;
  logger: Logger;
  /** Values for `${VAR}` in recipes sent over HTTP (Decision 20). */
  recipeVars: Record<string, string>;
  /** Checks the request's token for `scope` (throws AUTH_*); null for a public read. */
  authorize(request: FastifyRequest, scope: Scope): Principal | null;
  /** Checks that a request may read build records and logs ([builds] public); null for an anonymous reader. */
  authorizeBuilds(request: FastifyRequest): Principal | null;
}

// @dstack/server: the wheelhouse as a package index (PEP 503/691/658), twine uploads, builds over HTTP,
// and a web page. `buildServer` returns a fastify instance; `dstack-factory serve` listens with it.
export { buildServer, createServerLogger, REDACT_PATHS, type BuildServerOptions } from './server.js';
export {
  loadServerConfig,
  configFromObject,
  tokensFromEnv,
  DEFAULT_CONFIG,
  SCOPES,
  type ServerConfig,
  type BuildsConfig,
  type TokenConfig,
  type Scope,
} from './config.js';
export { TokenAuthenticator, tokenFromHeader, REALM, type Principal } from './auth.js';
export { ServerError, STATUS_BY_CODE, errorResponse } from './errors.js';
export {
  negotiateSimple,
  parseAccept,
  SIMPLE_JSON,
  SIMPLE_HTML,
  TEXT_HTML,
  type SimpleType,
} from './negotiate.js';
export { isSuspiciousUrl, checkFileName, checkProjectName } from './paths.js';
export { parseRange } from './simple.js';
export {
  BuildManager,
  type BuildRequest,
  type BuildRecord,
  type BuildOutcome,
  type BuildRunner,
  type BuildRunnerContext,
  type BuildState,
  type BuildStreamEvent,
} from './builds.js';
export {
  findRecipeViolations,
  prepareRemoteRecipe,
  renderRecipe,
  type RecipeViolation,
  type RemoteRecipe,
} from './recipe-policy.js';
export { buildEnvironment, recipeVariables } from './build-env.js';
export { Metrics, serverMetrics } from './metrics.js';
export type { ServerWheelStore, ServerWheelEntry } from './store.js';
export { startServer, sweepDeadWriters, type StartServerOptions, type StartedServer } from './start.js';
export { engineRunner, defaultExecutorKind, formatEvent } from './engine-runner.js';

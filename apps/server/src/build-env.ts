/**
 * Decision 20: a build's environment is an allow-list, never the server's own environment. A build runs
 * code from the recipe (setup.py, build backends), and its log is readable: whatever it can see, a
 * build-token holder can print.
 */
import type { ServerConfig } from './config.js';

/** Passed when set: what pip, compilers and the executors need, nothing that names the server's secrets. */
const ALLOWED = new Set([
  'PATH',
  'HOME',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'PYENV_ROOT',
  'XDG_CACHE_HOME',
  'SOURCE_DATE_EPOCH',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'all_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'ALL_PROXY',
]);

/**
 * The environment builds run with: the allow-list, the operator's PIP_* settings and `[builds] pass_env`;
 * never DSTACK_SERVER_TOKENS, a token's `token_env`, or any variable whose value holds a token.
 */
export function buildEnvironment(
  serverEnv: Record<string, string | undefined>,
  config: Pick<ServerConfig, 'tokens' | 'builds'>,
): Record<string, string> {
  const secretNames = new Set([
    'DSTACK_SERVER_TOKENS',
    ...config.tokens.flatMap((t) => (t.env ? [t.env] : [])),
  ]);
  const secrets = config.tokens.map((t) => t.token).filter((t) => t !== '');
  const passed = new Set(config.builds.passEnv);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(serverEnv)) {
    if (value === undefined || secretNames.has(name)) continue;
    if (!ALLOWED.has(name) && !name.startsWith('PIP_') && !passed.has(name)) continue;
    if (secrets.some((s) => value.includes(s))) continue;
    env[name] = value;
  }
  return env;
}

/** The values `${VAR}` in a recipe sent over HTTP expands from: `[builds] recipe_env`, set and non-empty. */
export function recipeVariables(
  serverEnv: Record<string, string | undefined>,
  config: Pick<ServerConfig, 'builds'>,
): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const name of config.builds.recipeEnv) {
    const value = serverEnv[name];
    if (value !== undefined && value !== '') vars[name] = value;
  }
  return vars;
}

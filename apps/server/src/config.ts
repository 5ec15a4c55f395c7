/**
 * Server configuration: a JSON or TOML file (by extension; TOML otherwise) plus tokens from the
 * environment. Keys are snake_case in files. Unknown keys are errors, so a typo never silently
 * opens or closes the server.
 *
 *   host = "127.0.0.1"          port = 8080            wheelhouse = "./wheelhouse"   (or "registry:HOST/REPO")
 *   index_cache_seconds = 5     insecure_registries = ["registry.lan:5000"]
 *   public_read = true          max_upload_bytes = 2147483648
 *   headers_timeout_seconds = 30   body_idle_timeout_seconds = 60
 *   [[tokens]]  name = "ci"  token_env = "CI_UPLOAD_TOKEN"  scopes = ["read", "upload"]
 *   [builds]    concurrency = 1  allow_local_paths = false  executor = "auto"  factory_image = "…"
 *
 * Environment: DSTACK_SERVER_TOKENS="name:scope,scope:token name2:scope:token2" (whitespace separated;
 * the token is everything after the second colon).
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ServerError } from './errors.js';

export type Scope = 'read' | 'upload' | 'build';
export const SCOPES: readonly Scope[] = ['read', 'upload', 'build'];

export interface TokenConfig {
  name: string;
  /** The token in plain text, or "" when only its digest is configured (`token_sha256`). */
  token: string;
  /** Hex sha256 of the token (`token_sha256`): no plaintext on disk. */
  sha256?: string;
  scopes: Scope[];
  /** The environment variable the token was read from (kept out of builds' environments). */
  env?: string;
}

export interface BuildsConfig {
  /** Builds running at once; more wait in the queue. */
  concurrency: number;
  /** Queued builds beyond which POST /api/builds answers 503. */
  maxQueued: number;
  /** Decision 13: recipes over HTTP may not include files, name local paths or file: URLs unless true. */
  allowLocalPaths: boolean;
  /** Which executor runs builds: docker when an engine is reachable ("auto"), or forced. */
  executor: 'auto' | 'local' | 'docker';
  /** Interpreter for the local executor (default: python3), or PY_VERSION for docker. */
  python: string | null;
  /** The factory image the docker executor runs (e.g. built by `dstack-factory image factory`). */
  factoryImage: string | null;
  /** Builds kept in memory for the page and the API. */
  keep: number;
  /**
   * Build records and logs readable without a token when `public_read` is true (anonymous readers see them
   * without absolute paths or pip's sources); false requires the read scope for them alone.
   */
  public: boolean;
  /**
   * Decision 20: the only variables `${VAR}` in a recipe sent over HTTP expands from (values from the
   * server's environment); any other stays literal.
   */
  recipeEnv: string[];
  /** Variables passed to builds beyond the allow-list (PATH, HOME, LANG, PIP_*, proxies); never a token's. */
  passEnv: string[];
}

export interface ServerConfig {
  host: string;
  port: number;
  /** The store: a folder, or `registry:HOST/REPO` (an OCI registry; `serve --store`). */
  wheelhouse: string;
  /**
   * How long the index of a store without a folder (a registry) is served before it is listed again: an
   * upload through another replica shows within this time.
   */
  indexCacheSeconds: number;
  /** Registries reached over plain HTTP besides loopback ones ("host:port"). */
  insecureRegistries: string[];
  /** Reads (index, files, page) without a token. */
  publicRead: boolean;
  tokens: TokenConfig[];
  /** Largest upload accepted (bytes); larger ones are answered 413 before the body is read. */
  maxUploadBytes: number;
  /** A client must send its request's headers within this many seconds (slow-header clients are cut off). */
  headersTimeoutSeconds: number;
  /**
   * A request body that sends no byte for this many seconds is cut off (not a total limit: a 1 GB upload at
   * any steady rate passes).
   */
  bodyIdleTimeoutSeconds: number;
  /** Take uploads whose file name has a build tag (refused with WHEEL_BUILD_TAG otherwise). */
  allowBuildTags: boolean;
  builds: BuildsConfig;
}

export const DEFAULT_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  wheelhouse: './wheelhouse',
  indexCacheSeconds: 5,
  insecureRegistries: [],
  publicRead: true,
  tokens: [],
  maxUploadBytes: 2 * 1024 ** 3,
  headersTimeoutSeconds: 30,
  bodyIdleTimeoutSeconds: 60,
  allowBuildTags: false,
  builds: {
    concurrency: 1,
    maxQueued: 100,
    allowLocalPaths: false,
    executor: 'auto',
    python: null,
    factoryImage: null,
    keep: 200,
    public: true,
    recipeEnv: [],
    passEnv: [],
  },
};

type Raw = Record<string, unknown>;

function configError(file: string, message: string): ServerError {
  return new ServerError('CONFIG_INVALID', `${file}: ${message}`);
}

function take<T>(
  raw: Raw,
  key: string,
  file: string,
  check: (v: unknown) => v is T,
  what: string,
): T | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (!check(v)) throw configError(file, `"${key}" must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isPositive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

function checkKeys(raw: Raw, allowed: string[], file: string, where: string): void {
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) {
      throw configError(file, `unknown key "${key}"${where} (known: ${allowed.join(', ')})`);
    }
  }
}

function parseScopes(scopes: string[], where: string): Scope[] {
  for (const s of scopes) {
    if (!SCOPES.includes(s as Scope)) {
      throw new ServerError('CONFIG_INVALID', `${where}: unknown scope "${s}" (known: ${SCOPES.join(', ')})`);
    }
  }
  return [...new Set(scopes as Scope[])];
}

/** Builds a config from parsed file contents (JSON or TOML object); `env` resolves `token_env`. */
export function configFromObject(
  raw: Raw,
  options: { file?: string; env?: NodeJS.ProcessEnv } = {},
): ServerConfig {
  const file = options.file ?? 'config';
  const env = options.env ?? {};
  checkKeys(
    raw,
    [
      'host',
      'port',
      'wheelhouse',
      'index_cache_seconds',
      'insecure_registries',
      'public_read',
      'tokens',
      'max_upload_bytes',
      'headers_timeout_seconds',
      'body_idle_timeout_seconds',
      'allow_build_tags',
      'builds',
    ],
    file,
    '',
  );
  const config: ServerConfig = structuredClone(DEFAULT_CONFIG);
  config.host = take(raw, 'host', file, isString, 'a string') ?? config.host;
  const port = take(raw, 'port', file, isInt, 'a port number');
  if (port !== undefined) {
    if (port > 65535) throw configError(file, `"port" must be a port number, got ${port}`);
    config.port = port;
  }
  config.wheelhouse = take(raw, 'wheelhouse', file, isString, 'a path') ?? config.wheelhouse;
  config.indexCacheSeconds =
    take(raw, 'index_cache_seconds', file, (v): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0, 'a number of seconds (0 or more)') ??
    config.indexCacheSeconds;
  config.insecureRegistries = take(raw, 'insecure_registries', file, isStringArray, 'a list of host:port') ?? config.insecureRegistries;
  config.publicRead = take(raw, 'public_read', file, isBool, 'true or false') ?? config.publicRead;
  config.allowBuildTags =
    take(raw, 'allow_build_tags', file, isBool, 'true or false') ?? config.allowBuildTags;
  config.maxUploadBytes = take(raw, 'max_upload_bytes', file, isInt, 'a byte count') ?? config.maxUploadBytes;
  for (const [key, field] of [
    ['headers_timeout_seconds', 'headersTimeoutSeconds'],
    ['body_idle_timeout_seconds', 'bodyIdleTimeoutSeconds'],
  ] as const) {
    const seconds = take(raw, key, file, isPositive, 'a number of seconds above 0');
    if (seconds !== undefined) config[field] = seconds;
  }
  const tokens = raw.tokens;
  if (tokens !== undefined) {
    if (!Array.isArray(tokens)) throw configError(file, '"tokens" must be a list of tables');
    tokens.forEach((t: unknown, i) => {
      const where = ` in tokens[${i}]`;
      if (typeof t !== 'object' || t === null) throw configError(file, `tokens[${i}] must be a table`);
      const tr = t as Raw;
      checkKeys(tr, ['name', 'token', 'token_env', 'token_sha256', 'scopes'], file, where);
      const name = take(tr, 'name', file, isString, 'a string') ?? `token${i + 1}`;
      let token = take(tr, 'token', file, isString, 'a string');
      const tokenEnv = take(tr, 'token_env', file, isString, 'an environment variable name');
      if (token === undefined && tokenEnv !== undefined) {
        token = env[tokenEnv];
        if (token === undefined || token === '') {
          throw configError(file, `tokens[${i}] ("${name}") reads $${tokenEnv}, which is not set`);
        }
      }
      const digest = take(tr, 'token_sha256', file, isString, 'a hex sha256');
      if (digest !== undefined && !/^[0-9a-f]{64}$/i.test(digest))
        throw configError(file, `tokens[${i}] ("${name}"): "token_sha256" must be 64 hex digits`);
      if ((token === undefined || token === '') && digest === undefined)
        throw configError(file, `tokens[${i}] ("${name}") has no token`);
      const scopes = take(tr, 'scopes', file, isStringArray, 'a list of scopes') ?? ['read'];
      config.tokens.push({
        name,
        token: token ?? '',
        ...(digest !== undefined ? { sha256: digest.toLowerCase() } : {}),
        scopes: parseScopes(scopes, `${file}: tokens[${i}]`),
        ...(tokenEnv !== undefined ? { env: tokenEnv } : {}),
      });
    });
  }
  const builds = raw.builds;
  if (builds !== undefined) {
    if (typeof builds !== 'object' || builds === null || Array.isArray(builds)) {
      throw configError(file, '"builds" must be a table');
    }
    const b = builds as Raw;
    checkKeys(
      b,
      [
        'concurrency',
        'max_queued',
        'allow_local_paths',
        'executor',
        'python',
        'factory_image',
        'keep',
        'public',
        'recipe_env',
        'pass_env',
      ],
      file,
      ' in [builds]',
    );
    const concurrency = take(b, 'concurrency', file, isInt, 'a positive integer');
    if (concurrency !== undefined) {
      if (concurrency < 1) throw configError(file, '"concurrency" must be at least 1');
      config.builds.concurrency = concurrency;
    }
    config.builds.maxQueued = take(b, 'max_queued', file, isInt, 'an integer') ?? config.builds.maxQueued;
    config.builds.allowLocalPaths =
      take(b, 'allow_local_paths', file, isBool, 'true or false') ?? config.builds.allowLocalPaths;
    const executor = take(b, 'executor', file, isString, '"auto", "local" or "docker"');
    if (executor !== undefined) {
      if (executor !== 'auto' && executor !== 'local' && executor !== 'docker') {
        throw configError(file, `"executor" must be "auto", "local" or "docker", got "${executor}"`);
      }
      config.builds.executor = executor;
    }
    config.builds.python = take(b, 'python', file, isString, 'an interpreter path') ?? config.builds.python;
    config.builds.factoryImage =
      take(b, 'factory_image', file, isString, 'an image name') ?? config.builds.factoryImage;
    config.builds.keep = take(b, 'keep', file, isInt, 'an integer') ?? config.builds.keep;
    config.builds.public = take(b, 'public', file, isBool, 'true or false') ?? config.builds.public;
    for (const [key, field] of [
      ['recipe_env', 'recipeEnv'],
      ['pass_env', 'passEnv'],
    ] as const) {
      const names = take(b, key, file, isStringArray, 'a list of environment variable names');
      if (names === undefined) continue;
      const bad = names.find((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n));
      if (bad !== undefined) throw configError(file, `"${key}" names "${bad}", which is not a variable name`);
      config.builds[field] = names;
    }
  }
  return config;
}

/** Parses DSTACK_SERVER_TOKENS: "name:scope,scope:token" entries separated by whitespace. */
export function tokensFromEnv(value: string | undefined): TokenConfig[] {
  if (value === undefined || value.trim() === '') return [];
  return value
    .trim()
    .split(/\s+/)
    .map((entry, i) => {
      const first = entry.indexOf(':');
      const second = first < 0 ? -1 : entry.indexOf(':', first + 1);
      if (first < 0 || second < 0 || second === entry.length - 1) {
        throw new ServerError(
          'CONFIG_INVALID',
          `DSTACK_SERVER_TOKENS entry ${i + 1} must look like name:scope,scope:token`,
          { hint: 'for example DSTACK_SERVER_TOKENS="ci:read,upload:s3cret"' },
        );
      }
      const name = entry.slice(0, first);
      const scopes = entry
        .slice(first + 1, second)
        .split(',')
        .filter(Boolean);
      return {
        name,
        token: entry.slice(second + 1),
        scopes: parseScopes(scopes, `DSTACK_SERVER_TOKENS entry ${i + 1} ("${name}")`),
      };
    });
}

/** Reads a config file (JSON when it ends in .json, TOML otherwise) and adds tokens from the environment. */
export async function loadServerConfig(
  options: { file?: string | null; env?: NodeJS.ProcessEnv } = {},
): Promise<ServerConfig> {
  const env = options.env ?? process.env;
  let config = structuredClone(DEFAULT_CONFIG);
  if (options.file) {
    let text: string;
    try {
      text = await readFile(options.file, 'utf8');
    } catch (cause) {
      throw new ServerError('CONFIG_INVALID', `cannot read the server config ${options.file}`, { cause });
    }
    let raw: unknown;
    try {
      raw = extname(options.file) === '.json' ? JSON.parse(text) : parseToml(text);
    } catch (cause) {
      throw new ServerError('CONFIG_INVALID', `${options.file}: ${(cause as Error).message}`, { cause });
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ServerError('CONFIG_INVALID', `${options.file}: the config must be an object/table`);
    }
    config = configFromObject(raw as Raw, { file: options.file, env });
  }
  config.tokens.push(...tokensFromEnv(env.DSTACK_SERVER_TOKENS));
  return config;
}

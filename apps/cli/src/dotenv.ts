// `.env` as docker-compose 1.29 reads it: through python-dotenv 0.21's `dotenv_values(interpolate=True)`
// (compose/config/environment.py), whose grammar this follows. Hand-written because the npm `dotenv` reads it
// otherwise: no `${VAR}` / `${VAR:-default}` interpolation, `a#b` cut at the `#`, `\"` kept in double quotes.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CliContext } from './context.js';
import { UsageError } from './errors.js';

const MULTILINE_WS = /\s*/y;
const WS = /[^\S\r\n]*/y;
const EXPORT = /(?:export[^\S\r\n]+)?/y;
const SINGLE_QUOTED_KEY = /'([^']+)'/y;
const UNQUOTED_KEY = /([^=#\s]+)/y;
const EQUAL_SIGN = /(=[^\S\r\n]*)/y;
const SINGLE_QUOTED_VALUE = /'((?:\\'|[^'])*)'/y;
const DOUBLE_QUOTED_VALUE = /"((?:\\"|[^"])*)"/y;
const UNQUOTED_VALUE = /([^\r\n]*)/y;
const COMMENT = /(?:[^\S\r\n]*#[^\r\n]*)?/y;
const END_OF_LINE = /[^\S\r\n]*(?:\r\n|\n|\r|$)/y;
const REST_OF_LINE = /[^\r\n]*(?:\r\n|\n|\r)?/y;
const DOUBLE_QUOTE_ESCAPES = /\\[\\'"abfnrtv]/g;
const SINGLE_QUOTE_ESCAPES = /\\[\\']/g;
const ESCAPED: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
/** python-dotenv's POSIX variable: `${NAME}` or `${NAME:-default}` (a bare `$NAME` stays as it is). */
const VARIABLE = /\$\{([^}:]*)(?::-([^}]*))?\}/g;

class Reader {
  pos = 0;
  constructor(readonly text: string) {}
  peek(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }
  /** Matches `re` (sticky) here and moves past it; null when it does not match. */
  read(re: RegExp): RegExpExecArray | null {
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (m) this.pos = re.lastIndex;
    return m;
  }
}

function parseValue(r: Reader): string | null {
  if (r.peek("'")) {
    const m = r.read(SINGLE_QUOTED_VALUE);
    return m ? m[1]!.replace(SINGLE_QUOTE_ESCAPES, (e) => e[1]!) : null;
  }
  if (r.peek('"')) {
    const m = r.read(DOUBLE_QUOTED_VALUE);
    return m ? m[1]!.replace(DOUBLE_QUOTE_ESCAPES, (e) => ESCAPED[e[1]!] ?? e[1]!) : null;
  }
  const part = r.read(UNQUOTED_VALUE)![1]!;
  return part.replace(/\s+#[\s\S]*/, '').trimEnd();
}

/** One binding, or undefined for a blank line or a comment; null for a line python-dotenv skips (with a warning). */
function parseBinding(r: Reader): [string, string | null] | null | undefined {
  const start = r.pos;
  const fail = (): null => {
    r.pos = start;
    r.read(REST_OF_LINE);
    return null;
  };
  r.read(MULTILINE_WS);
  if (r.pos >= r.text.length) return undefined;
  if (r.peek('#')) {
    r.read(REST_OF_LINE);
    return undefined;
  }
  r.read(EXPORT);
  const key = (r.peek("'") ? r.read(SINGLE_QUOTED_KEY) : r.read(UNQUOTED_KEY))?.[1];
  if (key === undefined) return fail();
  r.read(WS);
  let value: string | null = null;
  if (r.peek('=')) {
    r.read(EQUAL_SIGN);
    value = parseValue(r);
    if (value === null) return fail();
  }
  r.read(COMMENT);
  if (!r.read(END_OF_LINE)) return fail();
  return [key, value];
}

/**
 * The variables of a `.env` file as docker-compose 1.29 sees them: `KEY=VALUE` lines (optionally `export `),
 * `#` comments (inline after whitespace), single or double quotes (escapes decoded, newlines allowed), and
 * `${VAR}` / `${VAR:-default}` expanded from the file's earlier variables, then `env`. A key without `=` and a line
 * that does not parse are left out, as compose leaves them.
 */
export function parseDotEnv(
  text: string,
  env: Record<string, string | undefined> = {},
): Record<string, string> {
  const r = new Reader(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  const values: Record<string, string> = {};
  while (r.pos < r.text.length) {
    const binding = parseBinding(r);
    if (!binding || binding[1] === null) continue;
    const [key, raw] = binding;
    values[key] = raw.replace(VARIABLE, (_m, name: string, fallback: string | undefined) => {
      const value = Object.hasOwn(values, name) ? values[name] : env[name];
      return value ?? fallback ?? '';
    });
  }
  return values;
}

/**
 * The environment a command sees as docker-compose would: `.env` from the current folder (or --env-file),
 * overridden by the shell's. `build` and `image factory|runtime` read it alike.
 */
export function buildEnvironment(
  ctx: Pick<CliContext, 'env' | 'cwd'>,
  envFile?: string,
): Record<string, string | undefined> {
  const file = envFile ? resolve(ctx.cwd, envFile) : join(ctx.cwd, '.env');
  if (envFile && !existsSync(file)) throw new UsageError(`no such env file: ${file}`);
  const fromFile = existsSync(file) ? parseDotEnv(readFileSync(file, 'utf8'), ctx.env) : {};
  return { ...fromFile, ...ctx.env };
}

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CliContext } from './context.js';
import { UsageError } from './errors.js';

/** A docker-compose style `.env`: KEY=VALUE lines, `#` comments, optional quotes, optional `export `. */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2]!;
    const quoted = /^(['"])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2]!;
    else value = value.replace(/\s+#.*$/, '').trim();
    out[m[1]!] = value;
  }
  return out;
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
  const fromFile = existsSync(file) ? parseDotEnv(readFileSync(file, 'utf8')) : {};
  return { ...fromFile, ...ctx.env };
}

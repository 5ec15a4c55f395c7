/**
 * Decisions 13 and 20: a build runs code, and a recipe sent over HTTP must not reach into the server's
 * own files or secrets. What it may use is decided on @dstack/recipe's parse — which reads a recipe
 * exactly as pip 23.2 does (line breaks, continuations, comments, option abbreviations, ${VAR}) — never
 * on the text. Unless `[builds] allow_local_paths` is set:
 *   - includes (-r/-c) are refused, whatever they name;
 *   - every --index-url, --extra-index-url, --find-links, requirement URL and editable must be a remote
 *     URL (http(s), ftp or a VCS over the network, with a host); local paths, archives, file: and
 *     vcs+file: URLs are refused.
 * The build then gets the recipe rendered from that parse, not the text sent: what was checked is what
 * runs, and no reader with other rules (pip's own `${VAR}` expansion included) sees anything else.
 * `${VAR}` expands only from the operator's `[builds] recipe_env` values; any other stays literal (in a
 * URL as %24%7BVAR%7D, so pip cannot expand it from the build's environment either).
 */
import {
  formatRequirement,
  parseRecipe,
  preprocessLines,
  RecipeError,
  type Recipe,
  type RecipeRequirement,
} from '@dstack/recipe';
import { ServerError } from './errors.js';

export interface RecipeViolation {
  /** Physical line where the logical line starts; null for an index option (its line is not kept). */
  line: number | null;
  /** The logical line (or option and value) at fault, as pip reads it. */
  text: string;
  reason: string;
}

export interface RemoteRecipe {
  /** The text the build gets: the parse rendered back, one option or requirement per line. */
  text: string;
  /** The parse (null when local paths are allowed: the text then goes as sent). */
  recipe: Recipe | null;
}

const HINT =
  'name packages by index name or remote URL, or set [builds] allow_local_paths = true in the server config';
const FILES = "read the server's own files";

/** Schemes that reach over the network; the URL must also name a host. */
const REMOTE_SCHEMES = new Set([
  'http',
  'https',
  'ftp',
  'git+http',
  'git+https',
  'git+ssh',
  'git+git',
  'hg+http',
  'hg+https',
  'hg+ssh',
  'hg+static-http',
  'svn+http',
  'svn+https',
  'svn+ssh',
  'svn+svn',
  'bzr+http',
  'bzr+https',
  'bzr+ssh',
  'bzr+sftp',
  'bzr+ftp',
]);
const INDEX_SCHEMES = new Set(['http', 'https']);
const VAR = /\$\{([A-Z0-9_]+)\}/g;

/** A URL with one of `schemes` and a non-empty host (`https:/srv` and `https://@/srv` have none). */
function isRemoteUrl(value: string, schemes: Set<string>): boolean {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/.exec(value);
  if (m === null || !schemes.has(m[1]!.toLowerCase())) return false;
  const host = m[2]!
    .slice(m[2]!.lastIndexOf('@') + 1)
    .replace(/:\d*$/, '')
    .trim();
  return host !== '' && !/[\s\\]/.test(host);
}

/** `${VAR}` left unexpanded in a URL: percent-encoded, so that it stays literal for pip too. */
function literalVars(url: string): string {
  return url.replace(VAR, '%24%7B$1%7D');
}

/** pip's shlex reads option values: quote what it would split or unquote. */
function shQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'"'"'`)}'`;
}

class IncludeRefused extends Error {
  constructor(readonly path: string) {
    super(`include ${path} refused`);
  }
}

/** The parse a remote recipe gets: ${VAR} from `vars` only, includes recorded and refused. */
async function parseRemote(
  text: string,
  vars: Record<string, string>,
): Promise<{ recipe: Recipe; includes: RecipeError[] }> {
  const errors: RecipeError[] = [];
  const recipe = await parseRecipe(text, {
    file: 'recipe.txt',
    env: vars,
    cwd: '/',
    readFile: (path) => {
      throw new IncludeRefused(path);
    },
    errors,
  });
  const includes = errors.filter((e) => e.cause instanceof IncludeRefused);
  const other = errors.find((e) => !(e.cause instanceof IncludeRefused));
  if (other !== undefined) throw other;
  return { recipe, includes };
}

/** Every place the parsed recipe reaches into the server's files (empty: none). */
export async function findRecipeViolations(
  text: string,
  vars: Record<string, string> = {},
): Promise<RecipeViolation[]> {
  const { recipe, includes } = await parseRemote(text, vars);
  return violationsOf(text, vars, recipe, includes);
}

function violationsOf(
  text: string,
  vars: Record<string, string>,
  recipe: Recipe,
  includes: RecipeError[],
): RecipeViolation[] {
  const logical = new Map(preprocessLines(text, vars).map((l) => [l.line, l.text]));
  const violations: RecipeViolation[] = [];
  for (const inc of includes) {
    violations.push({
      line: inc.line,
      text: inc.source,
      reason: `includes (-r/-c) ${FILES}`,
    });
  }
  const o = recipe.options;
  const options: [string, string[]][] = [
    ['--index-url', o.indexUrl === null ? [] : [o.indexUrl]],
    ['--extra-index-url', o.extraIndexUrls],
    ['--find-links', o.findLinks],
  ];
  for (const [option, values] of options) {
    for (const v of values) {
      if (!isRemoteUrl(v, INDEX_SCHEMES))
        violations.push({ line: null, text: `${option} ${v}`, reason: `a local path or file: URL ${FILES}` });
    }
  }
  for (const r of recipe.requirements) {
    if (r.url === null || isRemoteUrl(r.url, REMOTE_SCHEMES)) continue;
    violations.push({
      line: r.line,
      text: logical.get(r.line) ?? formatRequirement(r),
      reason: r.editable
        ? `an editable that is not a remote VCS URL ${FILES}`
        : `local paths, archives and file: URLs ${FILES}`,
    });
  }
  return violations.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

function formatViolation(v: RecipeViolation): string {
  return v.line === null
    ? `recipe option "${v.text}": ${v.reason}; not allowed in builds sent over HTTP`
    : `recipe line ${v.line}: "${v.text}": ${v.reason}; not allowed in builds sent over HTTP`;
}

/** A `${VAR}` left where percent-encoding would change what it means (a marker, a build option). */
function unexpandedOutsideUrls(recipe: Recipe): { line: number; value: string } | null {
  for (const r of recipe.requirements) {
    const values = [
      r.marker ?? '',
      r.name ?? '',
      ...r.hashes,
      ...(r.globalOptions ?? []),
      ...Object.entries(r.configSettings ?? {}).flatMap(([k, v]) => [k, ...(Array.isArray(v) ? v : [v])]),
    ];
    const found = values.find((v) => /\$\{[A-Z0-9_]+\}/.test(v));
    if (found !== undefined) return { line: r.line, value: found };
  }
  const hosts = recipe.options.trustedHosts.find((v) => /\$\{[A-Z0-9_]+\}/.test(v));
  return hosts === undefined ? null : { line: 0, value: hosts };
}

function renderRequirement(r: RecipeRequirement): string {
  let line = formatRequirement({ ...r, url: r.url === null ? null : literalVars(r.url) });
  for (const [key, value] of Object.entries(r.configSettings ?? {})) {
    for (const v of Array.isArray(value) ? value : [value])
      line += ` --config-settings ${shQuote(`${key}=${v}`)}`;
  }
  for (const g of r.globalOptions ?? []) line += ` --global-option ${shQuote(g)}`;
  return line;
}

/** The recipe as one option or requirement per line, read by pip as the same recipe (see the fuzz test). */
export function renderRecipe(recipe: Recipe): string {
  const o = recipe.options;
  const lines: string[] = [];
  if (o.noIndex) lines.push('--no-index');
  if (o.indexUrl !== null) lines.push(`--index-url ${shQuote(literalVars(o.indexUrl))}`);
  for (const u of o.extraIndexUrls) lines.push(`--extra-index-url ${shQuote(literalVars(u))}`);
  for (const u of o.findLinks) lines.push(`--find-links ${shQuote(literalVars(u))}`);
  for (const h of o.trustedHosts) lines.push(`--trusted-host ${shQuote(h)}`);
  if (o.pre) lines.push('--pre');
  if (o.preferBinary) lines.push('--prefer-binary');
  if (o.requireHashes) lines.push('--require-hashes');
  // pip's FormatControl: ":all:" on one side clears the other, so that side goes first.
  const binary = [
    ['--no-binary', o.noBinary],
    ['--only-binary', o.onlyBinary],
  ] as const;
  const ordered = o.onlyBinary.includes(':all:') ? [binary[1], binary[0]] : binary;
  for (const [option, names] of ordered)
    if (names.length > 0) lines.push(`${option} ${shQuote(names.join(','))}`);
  for (const r of recipe.requirements) lines.push(renderRequirement(r));
  return lines.join('\n') + '\n';
}

/**
 * Checks a recipe sent over HTTP (Decisions 13, 20) and returns what the build gets. Throws
 * RECIPE_FORBIDDEN naming the first offending line or option, or the parser's RecipeError (400 either way).
 */
export async function prepareRemoteRecipe(
  text: string,
  options: { allowLocalPaths: boolean; vars: Record<string, string> },
): Promise<RemoteRecipe> {
  if (options.allowLocalPaths) {
    // The operator trusts build-token holders with the server's files: the text goes as sent (pip reads
    // its includes and paths on the build's side, ${VAR} from the build's allow-listed environment).
    return { text, recipe: null };
  }
  const { recipe, includes } = await parseRemote(text, options.vars);
  const violations = violationsOf(text, options.vars, recipe, includes);
  if (violations.length > 0)
    throw new ServerError('RECIPE_FORBIDDEN', formatViolation(violations[0]!), { hint: HINT });
  const left = unexpandedOutsideUrls(recipe);
  if (left !== null) {
    throw new ServerError(
      'RECIPE_FORBIDDEN',
      `recipe${left.line > 0 ? ` line ${left.line}` : ''}: "${left.value}": \${VAR} outside a URL is not expanded in builds sent over HTTP`,
      { hint: 'name the variable in [builds] recipe_env in the server config, or write its value' },
    );
  }
  return { text: renderRecipe(recipe), recipe };
}

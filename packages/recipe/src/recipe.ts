// pip requirements files ("recipes"), read exactly as pip 23.2's req_file.py and req/constructors.py read them.
// The parser does no I/O: files come through an injected reader, and the few questions pip asks the file
// system about a requirement (is this path a directory? a project? an existing file?) go through an
// optional injected `pathKind`; without it, a path-like requirement that is not a PEP 508 string is taken
// to be a project directory.
import * as path from 'node:path';
import type { RecipeErrorCode } from '@dstack/errors';
import { RecipeError } from './errors.js';
import { MarkerSyntaxError, formatMarkerTree, parseMarkerTree } from './marker.js';
import {
  type FormatControl,
  type LineOptions,
  OptionError,
  emptyLineOptions,
  parseLineOptions,
} from './options.js';
import { Pep508SyntaxError, parsePep508Raw, type Pep508Requirement } from './pep508.js';
import {
  PY_WS,
  isPyWs,
  ShlexError,
  pyQuote,
  pySplitLines,
  pyStrip,
  pyUnquote,
  pyUrlSplit,
  shlexSplit,
} from './pyshim.js';
import { pyStringCompare } from './specifier.js';

export interface RecipeRequirement {
  /** As written; null for an unnamed URL or path. */
  name: string | null;
  extras: string[];
  /** `str(SpecifierSet)`, "" if none. */
  specifier: string;
  marker: string | null;
  /** The link pip builds: the URL as written, or a `file://` URL for a local path. */
  url: string | null;
  editable: boolean;
  constraint: boolean;
  /** "sha256:…" */
  hashes: string[];
  file: string;
  /** Physical line where the (logical) line starts. */
  line: number;
  configSettings?: Record<string, string | string[]>;
  globalOptions?: string[];
}

export interface RecipeOptions {
  indexUrl: string | null;
  extraIndexUrls: string[];
  findLinks: string[];
  noIndex: boolean;
  pre: boolean;
  noBinary: string[];
  onlyBinary: string[];
  preferBinary: boolean;
  trustedHosts: string[];
  requireHashes: boolean;
}

export interface Recipe {
  requirements: RecipeRequirement[];
  options: RecipeOptions;
  /** Every file read, the top one first. */
  files: string[];
}

export type ReadFile = (path: string) => string | Promise<string>;
/** What pip would find on disk at an absolute path: a project is a directory with setup.py or pyproject.toml. */
export type PathKind = 'missing' | 'file' | 'directory' | 'project';

export interface ParseRecipeOptions {
  /** The name of the file `text` came from, as the user gave it; includes are relative to it. */
  file: string;
  /** Values for `${VAR}`; unset or empty variables stay literal, as in pip. */
  env?: Record<string, string | undefined>;
  /** Reads included files (-r/-c). Without it, an include is an error. */
  readFile?: ReadFile;
  /** Answers pip's questions about local paths; see the module comment. */
  pathKind?: (absolutePath: string) => PathKind | Promise<PathKind>;
  /** pip resolves local paths (not includes) against the working directory. Default: process.cwd(). */
  cwd?: string;
  /** Collect every error instead of throwing the first (what `recipe check` shows). */
  errors?: RecipeError[];
}

const LEADING_WS = new RegExp(`^[${PY_WS}]+`);

/** COMMENT_RE.sub("", line): cut at the first "#" that starts the line or follows whitespace (with that whitespace). */
function stripComment(line: string): string {
  let j = line.indexOf('#');
  while (j >= 0) {
    if (j === 0) return '';
    if (isPyWs(line.charCodeAt(j - 1))) {
      let start = j - 1;
      while (start > 0 && isPyWs(line.charCodeAt(start - 1))) start--;
      return line.slice(0, start);
    }
    j = line.indexOf('#', j + 1);
  }
  return line;
}

/** COMMENT_RE.match: the line starts with "#", or with whitespace then "#". */
function isCommentLine(line: string): boolean {
  let i = 0;
  while (i < line.length && isPyWs(line.charCodeAt(i))) i++;
  return line.charCodeAt(i) === 35;
}
const ENV_VAR = /\$\{([A-Z0-9_]+)\}/g;
const SCHEME_RE = /^(http|https|file):/i;
const VCS_SCHEMES = [
  'bzr+http',
  'bzr+https',
  'bzr+ssh',
  'bzr+sftp',
  'bzr+ftp',
  'bzr+lp',
  'bzr+file',
  'git+http',
  'git+https',
  'git+ssh',
  'git+git',
  'git+file',
  'hg+file',
  'hg+http',
  'hg+https',
  'hg+ssh',
  'hg+static-http',
  'svn+ssh',
  'svn+http',
  'svn+https',
  'svn+svn',
  'svn+file',
];
const URL_SCHEMES = new Set(['http', 'https', 'file', 'ftp', ...VCS_SCHEMES]);
const VCS_NAMES = ['bzr', 'git', 'hg', 'svn'];
const ARCHIVE_EXTENSIONS = new Set([
  '.zip',
  '.whl',
  '.tar.bz2',
  '.tbz',
  '.tar.gz',
  '.tgz',
  '.tar',
  '.tar.xz',
  '.txz',
  '.tlz',
  '.tar.lz',
  '.tar.lzma',
]);
const WHEEL_FILE =
  /^(?<namever>(?<name>[^\s-]+?)-(?<ver>[^\s-]*?))((-(?<build>\d[^-]*?))?-(?<pyver>[^\s-]+?)-(?<abi>[^\s-]+?)-(?<plat>[^\s-]+?)\.whl|\.dist-info)$/;
const EGG_FRAGMENT = /[#&]egg=([^&]*)/;

interface LogicalLine {
  line: number;
  text: string;
}

/** req_file.preprocess: split, join `\` continuations, drop comments and blank lines, expand ${VAR}. */
export function preprocessLines(
  content: string,
  env: Record<string, string | undefined> = {},
): LogicalLine[] {
  const out: LogicalLine[] = [];
  const physical = pySplitLines(content);
  let joined: string[] = [];
  let primary = 0;
  const emit = (line: number, raw: string): void => {
    const text = pyStrip(stripComment(raw));
    if (!text) return;
    out.push({ line, text: text.includes('${') ? expandEnv(text, env) : text });
  };
  for (let i = 0; i < physical.length; i++) {
    let line = physical[i]!;
    const isComment = isCommentLine(line);
    if (!line.endsWith('\\') || isComment) {
      if (isComment) line = ` ${line}`;
      if (joined.length > 0) {
        joined.push(line);
        emit(primary, joined.join(''));
        joined = [];
      } else emit(i + 1, line);
    } else {
      if (joined.length === 0) primary = i + 1;
      joined.push(line.replace(/^\\+|\\+$/g, ''));
    }
  }
  if (joined.length > 0) emit(primary, joined.join(''));
  return out;
}

function expandEnv(line: string, env: Record<string, string | undefined>): string {
  for (const m of [...line.matchAll(ENV_VAR)]) {
    const value = env[m[1]!];
    if (!value) continue;
    line = line.split(m[0]).join(value);
  }
  return line;
}

/** req_file.break_args_options: words up to the first one starting with "-" are the requirement. */
function breakArgsOptions(line: string): [string, string] {
  if (line.charCodeAt(0) !== 45 && !line.includes(' -')) return [line, ''];
  const tokens = line.split(' ');
  let i = 0;
  while (i < tokens.length && !tokens[i]!.startsWith('-')) i++;
  return [tokens.slice(0, i).join(' '), tokens.slice(i).join(' ')];
}

function urlScheme(text: string): string | null {
  const colon = text.indexOf(':');
  return colon < 0 ? null : text.slice(0, colon).toLowerCase();
}

function isUrl(text: string): boolean {
  const s = urlScheme(text);
  return s !== null && URL_SCHEMES.has(s);
}

/** pip's splitext: ".tar.gz" and friends count as one extension. */
function pipSplitExt(p: string): [string, string] {
  const base = path.posix.basename(p);
  const dot = base.lastIndexOf('.');
  let stem = p;
  let ext = '';
  if (dot > 0 && !/^\.+$/.test(base.slice(0, dot))) {
    stem = p.slice(0, p.length - (base.length - dot));
    ext = base.slice(dot);
  }
  if (stem.toLowerCase().endsWith('.tar')) {
    ext = stem.slice(-4) + ext;
    stem = stem.slice(0, -4);
  }
  return [stem, ext];
}

const ARCHIVE_TAIL = /\.(zip|whl|bz2|tbz|gz|tgz|tar|xz|txz|tlz|lz|lzma)$/i;

function isArchiveFile(p: string): boolean {
  if (!ARCHIVE_TAIL.test(p)) return false;
  return ARCHIVE_EXTENSIONS.has(pipSplitExt(p)[1].toLowerCase());
}

function looksLikePath(name: string): boolean {
  return name.includes('/') || name.startsWith('.');
}

/** pip's path_to_url */
export function pathToFileUrl(p: string): string {
  return `file://${pyQuote(p)}`;
}

function linkPath(url: string): string {
  return pyUnquote(pyUrlSplit(url).path);
}

function linkFilename(url: string): string {
  const p = linkPath(url).replace(/\/+$/, '');
  const name = path.posix.basename(p);
  if (name) return name;
  const netloc = pyUrlSplit(url).netloc;
  const at = netloc.lastIndexOf('@');
  return at >= 0 ? netloc.slice(at + 1) : netloc;
}

function eggFragment(url: string): string | null {
  const m = EGG_FRAGMENT.exec(url);
  return m ? m[1]! : null;
}

function stripExtras(p: string): [string, string | null] {
  // re.match(r"^(.+)(\[[^\]]+\])$", p) without the regex's quadratic backtracking
  const n = p.length;
  if (n < 4 || p.charCodeAt(n - 1) !== 93) return [p, null];
  const lastClose = p.lastIndexOf(']', n - 2);
  const open = p.lastIndexOf('[', n - 3);
  if (open < 1 || open <= lastClose) return [p, null];
  return [p.slice(0, open), p.slice(open)];
}

/** The error for one line: `reason` at `pos` (0-based in the logical line `source`). */
class LineError extends Error {
  constructor(
    readonly reason: string,
    readonly pos = 0,
    readonly spanStart = pos,
    readonly code: RecipeErrorCode = 'RECIPE_SYNTAX',
    readonly hint?: string,
  ) {
    super(reason);
  }
}

interface RequirementParts {
  req: Pep508Requirement | null;
  url: string | null;
  marker: string | null;
  extras: string[] | null;
}

function parseReqString(text: string, offset: number, what: string): Pep508Requirement {
  let req: Pep508Requirement;
  try {
    req = parsePep508Raw(text);
  } catch (e) {
    if (e instanceof Pep508SyntaxError) {
      let hint: string | undefined;
      if (text.includes('/'))
        hint =
          'It looks like a path; a local project must exist as a directory with setup.py or pyproject.toml.';
      else if (
        text.includes('=') &&
        !['~=', '==', '!=', '<=', '>=', '<', '>', '==='].some((op) => text.includes(op))
      )
        hint = '= is not a valid operator. Did you mean == ?';
      throw new LineError(
        `invalid ${what} ${JSON.stringify(text)}: ${e.reason}`,
        offset + e.pos,
        offset + e.spanStart,
        'RECIPE_SYNTAX',
        hint,
      );
    }
    throw e;
  }
  for (const clause of req.specifier ? req.specifier.split(',') : []) {
    if (clause.endsWith(']'))
      throw new LineError(`extras after version '${clause}'`, offset + text.indexOf(']'));
  }
  return req;
}

const markerCache = new Map<string, string>();

function parseMarkerAt(text: string, offset: number): string {
  const known = markerCache.get(text);
  if (known !== undefined) return known;
  try {
    const normal = formatMarkerTree(parseMarkerTree(text));
    if (markerCache.size >= 4096) markerCache.clear();
    markerCache.set(text, normal);
    return normal;
  } catch (e) {
    if (e instanceof MarkerSyntaxError)
      throw new LineError(
        `invalid marker ${JSON.stringify(text)}: ${e.reason}`,
        offset + e.pos,
        offset + e.spanStart,
      );
    throw e;
  }
}

function convertExtras(extras: string | null, offset: number): string[] | null {
  if (!extras) return null;
  const r = parseReqString(`placeholder${extras.toLowerCase()}`, offset - 'placeholder'.length, 'extras');
  return r.extras.length > 0 ? r.extras : null;
}

/** A trimmed-marker split, as pip's parse_req_from_line does before anything else. */
/** Answers "what is at this path" synchronously: from the cache, or by asking for it (see NeedPathKind). */
type KindOf = ((absolutePath: string) => PathKind) | null;

/** Thrown by a line that needs an asynchronous pathKind answer: the caller awaits it and reads the line again. */
class NeedPathKind {
  constructor(
    readonly path: string,
    readonly answer: Promise<PathKind>,
  ) {}
}

function parseRequirementLine(line: string, cwd: string, pathKind: KindOf): RequirementParts {
  let name = line;
  let marker: string | null = null;
  const sep = isUrl(name) ? '; ' : ';';
  const at = name.indexOf(sep);
  if (at >= 0) {
    const rawMarker = name.slice(at + sep.length);
    const markerText = pyStrip(rawMarker);
    if (markerText) marker = parseMarkerAt(markerText, at + sep.length + rawMarker.indexOf(markerText));
    name = name.slice(0, at);
  }
  const lead = name.length - name.replace(LEADING_WS, '').length;
  name = pyStrip(name);
  let url: string | null = null;
  let extrasText: string | null = null;
  if (isUrl(name)) url = name;
  else if (!looksLikePath(name) && !name.startsWith('[') && !isArchiveFile(stripExtras(name)[0])) {
    // not path-like: pip's absolute path ends with the name itself, so its extras are the name's, and
    // _get_url_from_path only looks for an archive
    extrasText = stripExtras(name)[1];
  } else {
    const [p, extras] = stripExtras(path.resolve(cwd, name));
    extrasText = extras;
    url = urlFromPath(p, name, pathKind);
  }
  let reqText: string | null;
  if (url !== null) {
    if (urlScheme(url) === 'file' && url.includes('../'))
      url = pathToFileUrl(path.resolve(cwd, linkPath(url)));
    const filename = linkFilename(url);
    if (pipSplitExt(path.posix.basename(linkPath(url).replace(/\/+$/, '')))[1] === '.whl') {
      const m = WHEEL_FILE.exec(filename);
      if (!m) throw new LineError(`${filename} is not a valid wheel filename.`, lead);
      reqText = `${m.groups!.name!.replace(/_/g, '-')}==${m.groups!.ver!.replace(/_/g, '-')}`;
    } else reqText = eggFragment(url);
  } else reqText = name;
  const extras = convertExtras(extrasText, lead + name.length - (extrasText?.length ?? 0));
  const req =
    reqText === null
      ? null
      : parseReqString(
          reqText,
          url === null ? lead : lead,
          url === null ? 'requirement' : 'requirement name',
        );
  return { req, url, marker, extras };
}

/** constructors._get_url_from_path */
function urlFromPath(p: string, name: string, pathKind: KindOf): string | null {
  if (looksLikePath(name)) {
    const kind = pathKind ? pathKind(p) : guessKind(name);
    if (kind === 'project') return pathToFileUrl(p);
    if (kind === 'directory') {
      throw new LineError(
        `Directory '${name}' is not installable. Neither 'setup.py' nor 'pyproject.toml' found.`,
        0,
        0,
        'RECIPE_PATH_NOT_INSTALLABLE',
      );
    }
  }
  if (!isArchiveFile(p)) return null;
  if (pathKind && pathKind(p) === 'file') return pathToFileUrl(p);
  const parts = name.split('@');
  if (parts.length >= 2 && !looksLikePath(parts[0]!)) return null;
  return pathToFileUrl(p);
}

/** Without a pathKind: a path-like name is a project directory unless it is a PEP 508 string or an archive. */
function guessKind(name: string): PathKind {
  if (isArchiveFile(stripExtras(name)[0])) return 'missing';
  if (/^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@/.test(name)) return 'missing'; // name @ url
  try {
    parsePep508Raw(name);
    return 'missing';
  } catch {
    return 'project';
  }
}

/** constructors.parse_editable */
function parseEditable(text: string, cwd: string, pathKind: KindOf): RequirementParts {
  const [stripped, extras] = stripExtras(text);
  let urlNoExtras = stripped;
  const abs = path.resolve(cwd, urlNoExtras);
  const isDir = pathKind
    ? ['directory', 'project'].includes(pathKind(abs))
    : !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(urlNoExtras);
  if (isDir) urlNoExtras = pathToFileUrl(abs);
  if (urlNoExtras.toLowerCase().startsWith('file:')) {
    const egg = eggFragment(urlNoExtras);
    const req = egg ? editableName(egg) : null;
    const ex = extras
      ? parseReqString(
          `placeholder${extras.toLowerCase()}`,
          text.length - extras.length - 'placeholder'.length,
          'extras',
        ).extras
      : [];
    return { req, url: urlNoExtras, marker: null, extras: ex.length > 0 ? ex : null };
  }
  let url = text;
  for (const v of VCS_NAMES) {
    if (url.toLowerCase().startsWith(`${v}:`)) {
      url = `${v}+${url}`;
      break;
    }
  }
  if (!VCS_SCHEMES.includes(pyUrlSplit(url).scheme)) {
    throw new LineError(
      `${text} is not a valid editable requirement. It should either be a path to a local project or a VCS URL (beginning with ${VCS_SCHEMES.join(', ')}).`,
      0,
      0,
      'RECIPE_SYNTAX',
    );
  }
  const egg = eggFragment(url);
  if (!egg)
    throw new LineError(
      `Could not detect requirement name for '${text}', please specify one with #egg=your_package_name`,
      0,
    );
  return { req: editableName(egg), url, marker: null, extras: null };
}

function editableName(egg: string): Pep508Requirement {
  try {
    return parsePep508Raw(egg);
  } catch (e) {
    if (e instanceof Pep508SyntaxError)
      throw new LineError(`invalid requirement ${JSON.stringify(egg)}: ${e.reason}`, 0);
    throw e;
  }
}

const safeExtra = (extra: string): string => extra.replace(/[^A-Za-z0-9.-]+/g, '_').toLowerCase();

function uniqueSorted(values: string[]): string[] {
  if (values.length < 2) return values.length === 0 ? [] : [values[0]!];
  return [...new Set(values)].sort(pyStringCompare);
}

function emptyRecipeOptions(): RecipeOptions {
  return {
    indexUrl: null,
    extraIndexUrls: [],
    findLinks: [],
    noIndex: false,
    pre: false,
    noBinary: [],
    onlyBinary: [],
    preferBinary: false,
    trustedHosts: [],
    requireHashes: false,
  };
}

/** Joins an include to the including file as pip does (URLs joined as URLs, paths to the file's folder). */
function includePath(parent: string, child: string): string {
  if (SCHEME_RE.test(parent)) return new URL(child, parent).href;
  if (SCHEME_RE.test(child)) return child;
  return path.isAbsolute(child)
    ? path.normalize(child)
    : path.normalize(path.join(path.dirname(parent), child));
}

function includeKey(file: string, cwd: string): string {
  return SCHEME_RE.test(file) ? file : path.resolve(cwd, file);
}

interface State {
  options: ParseRecipeOptions;
  cwd: string;
  env: Record<string, string | undefined>;
  recipe: Recipe;
  fc: FormatControl;
  stack: string[];
  errors: RecipeError[] | null;
  /** pathKind answers so far (an asynchronous pathKind is asked once per path). */
  kinds: Map<string, PathKind>;
  kindOf: KindOf;
}

function fail(state: State, err: RecipeError): void {
  if (state.errors === null) throw err;
  state.errors.push(err);
}

async function parseFile(state: State, text: string, file: string, constraint: boolean): Promise<void> {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  for (const { line, text: logical } of preprocessLines(text, state.env)) {
    for (;;) {
      try {
        const pending = parseLine(state, logical, file, line, constraint);
        if (pending) await pending;
      } catch (e) {
        if (e instanceof NeedPathKind) {
          state.kinds.set(e.path, await e.answer);
          continue; // read the line again, now that the answer is known (what it did so far is idempotent)
        }
        if (e instanceof LineError) fail(state, lineError(e, file, line, logical));
        else throw e;
      }
      break;
    }
  }
}

function lineError(e: LineError, file: string, line: number, source: string): RecipeError {
  const where = { file, line, column: e.pos + 1, spanStart: e.spanStart + 1, source };
  return new RecipeError(e.code, e.reason, where, e.hint ? { hint: e.hint } : {});
}

const NO_OPTIONS: Readonly<LineOptions> = emptyLineOptions();

function parseLine(
  state: State,
  text: string,
  file: string,
  line: number,
  constraint: boolean,
): Promise<void> | undefined {
  const [args, optionText] = breakArgsOptions(text);
  let words: string[] = [];
  try {
    if (optionText) words = shlexSplit(optionText);
  } catch (e) {
    if (e instanceof ShlexError)
      throw new LineError(
        `could not split options: ${e.message}`,
        args ? args.length + 1 : 0,
        args ? args.length + 1 : 0,
      );
    throw e;
  }
  let opts;
  try {
    opts = words.length > 0 ? parseLineOptions(words, state.fc) : NO_OPTIONS;
  } catch (e) {
    if (e instanceof OptionError) {
      const at = Math.max(0, text.indexOf(e.token, args.length));
      throw new LineError(e.message, at, at);
    }
    throw e;
  }

  if (args || opts.editables.length > 0) {
    const editable = !args;
    const reqText = editable ? opts.editables[0]! : args;
    const parts = editable
      ? parseEditable(reqText, state.cwd, state.kindOf)
      : parseRequirementLine(reqText, state.cwd, state.kindOf);
    const req = parts.req;
    const extras = parts.extras ?? (req ? req.extras.map(safeExtra) : []);
    const requirement: RecipeRequirement = {
      name: req?.name ?? null,
      extras: uniqueSorted(extras),
      specifier: req?.specifier ?? '',
      marker: parts.marker ?? req?.marker ?? null,
      url: parts.url ?? req?.url ?? null,
      editable,
      constraint,
      hashes:
        editable || opts.hashes.size === 0
          ? []
          : [...opts.hashes].flatMap(([algo, digests]) => digests.map((d) => `${algo}:${d}`)),
      file,
      line,
    };
    if (!editable && opts.configSettings) requirement.configSettings = opts.configSettings;
    if (!editable && opts.globalOptions.length > 0) requirement.globalOptions = opts.globalOptions;
    state.recipe.requirements.push(requirement);
    return undefined;
  }

  if (opts.requirements.length > 0 || opts.constraints.length > 0) {
    const nested = opts.requirements.length > 0 ? opts.requirements[0]! : opts.constraints[0]!;
    return include(state, file, line, text, nested, opts.requirements.length === 0);
  }

  const o = state.recipe.options;
  if (opts.noIndex) o.noIndex = true;
  if (opts.indexUrl !== null) o.indexUrl = opts.indexUrl;
  o.extraIndexUrls.push(...opts.extraIndexUrls);
  o.findLinks.push(...opts.findLinks);
  o.trustedHosts.push(...opts.trustedHosts);
  if (opts.pre) o.pre = true;
  if (opts.preferBinary) o.preferBinary = true;
  if (opts.requireHashes) o.requireHashes = true;
  return undefined;
}

async function include(
  state: State,
  parent: string,
  line: number,
  source: string,
  nested: string,
  constraint: boolean,
): Promise<void> {
  const file = includePath(parent, nested);
  const col = Math.max(0, source.indexOf(nested));
  const at = { file: parent, line, column: col + 1, source };
  const key = includeKey(file, state.cwd);
  if (state.stack.includes(key)) {
    const chain = [...state.stack.slice(state.stack.indexOf(key)), key].map(
      (k) => path.relative(state.cwd, k) || k,
    );
    fail(state, new RecipeError('RECIPE_INCLUDE_CYCLE', `include cycle: ${chain.join(' -> ')}`, at));
    return;
  }
  const readFile = state.options.readFile;
  if (!readFile) {
    fail(
      state,
      new RecipeError('RECIPE_INCLUDE_UNREADABLE', `cannot read ${file}: no file reader was given`, at),
    );
    return;
  }
  let text: string;
  try {
    text = await readFile(file);
  } catch (e) {
    const why =
      e instanceof Error
        ? (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'no such file'
          : e.message
        : String(e);
    fail(
      state,
      new RecipeError('RECIPE_INCLUDE_UNREADABLE', `could not open requirements file ${file}: ${why}`, at, {
        cause: e,
      }),
    );
    return;
  }
  state.recipe.files.push(file);
  state.stack.push(key);
  try {
    await parseFile(state, text, file, constraint);
  } finally {
    state.stack.pop();
  }
}

/**
 * Parses a requirements file's text as pip 23.2 does. Includes are read through `options.readFile`, relative
 * to the including file. Throws the first RecipeError (pip stops there too), unless `options.errors` is
 * given: then every error is pushed there and the recipe holds what could be read.
 */
export async function parseRecipe(text: string, options: ParseRecipeOptions): Promise<Recipe> {
  const cwd = options.cwd ?? process.cwd();
  const state: State = {
    options,
    cwd,
    env: options.env ?? {},
    recipe: { requirements: [], options: emptyRecipeOptions(), files: [options.file] },
    fc: { noBinary: new Set(), onlyBinary: new Set() },
    stack: [includeKey(options.file, cwd)],
    errors: options.errors ?? null,
    kinds: new Map(),
    kindOf: null,
  };
  const pathKind = options.pathKind;
  if (pathKind) {
    state.kindOf = (p) => {
      const known = state.kinds.get(p);
      if (known !== undefined) return known;
      const answer = pathKind(p);
      if (typeof answer === 'string') {
        state.kinds.set(p, answer);
        return answer;
      }
      throw new NeedPathKind(p, answer);
    };
  }
  await parseFile(state, text, options.file, false);
  state.recipe.options.noBinary = uniqueSorted([...state.fc.noBinary]);
  state.recipe.options.onlyBinary = uniqueSorted([...state.fc.onlyBinary]);
  return state.recipe;
}

/** Exactly the `recipe show --json` shape of issue 2. */
export function recipeToJSON(recipe: Recipe): object {
  return {
    requirements: recipe.requirements.map((r) => ({
      name: r.name,
      extras: r.extras,
      specifier: r.specifier,
      marker: r.marker,
      url: r.url,
      editable: r.editable,
      constraint: r.constraint,
      hashes: r.hashes,
      file: r.file,
      line: r.line,
    })),
    options: { ...recipe.options },
  };
}

/** The fields `formatRequirement` reads: a RecipeRequirement, its JSON, or a Pep508Requirement. */
export interface RequirementLike {
  name: string | null;
  extras: string[];
  specifier: string;
  marker: string | null;
  url: string | null;
  editable?: boolean;
  hashes?: string[];
}

/**
 * Renders a requirement back to one requirements-file line that pip (and parseRecipe) read as the same
 * requirement: `name[extras]specifier ; marker`, `name[extras] @ url ; marker`, `-e url`, local paths as paths.
 */
export function formatRequirement(r: RequirementLike): string {
  const extras = r.extras.length > 0 ? `[${r.extras.join(',')}]` : '';
  const localPath = (url: string): string | null => {
    if (!url.startsWith('file://') || url.includes('#')) return null;
    const p = pyUnquote(pyUrlSplit(url).path);
    return p.startsWith('/') ? p : null;
  };
  let text: string;
  if (r.url !== null) {
    const local = localPath(r.url);
    if (r.editable) text = `-e ${local !== null ? `${local}${extras}` : r.url}`;
    else if (r.name !== null && r.specifier === '') text = `${r.name}${extras} @ ${r.url}`;
    else text = local !== null ? `${local}${extras}` : r.url;
  } else text = `${r.name ?? ''}${extras}${r.specifier}`;
  if (r.marker !== null && !r.editable) text += ` ; ${r.marker}`;
  for (const h of r.hashes ?? []) text += ` --hash=${h}`;
  return text;
}

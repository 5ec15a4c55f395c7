// pip requirements files ("recipes"), read exactly as pip 23.2's req_file.py and req/constructors.py read them.
// The parser does no I/O: files come through an injected reader, and the few questions pip asks the file
// system about a requirement (is this path a directory? a project? an existing file?) go through an
// optional injected `pathKind`; without it, a path-like requirement that is not a PEP 508 string is taken
// to be a project directory.
//
// This file walks the lines and keeps the state; the pieces it calls each do one thing: lines.ts (logical
// lines), options.ts (a line's options), requirement-line.ts with links.ts (a requirement), includes.ts (-r/-c).
import { RecipeError } from './errors.js';
import { includeKey, readInclude } from './includes.js';
import { LineError } from './line-error.js';
import { breakArgsOptions, preprocessLines } from './lines.js';
import {
  type FormatControl,
  type LineOptions,
  OptionError,
  emptyLineOptions,
  parseLineOptions,
} from './options.js';
import { ShlexError, shlexSplit } from './pyshim.js';
import type {
  ParseRecipeOptions,
  PathKind,
  Recipe,
  RecipeOptions,
  RecipeRequirement,
} from './recipe-types.js';
import { NeedPathKind, parseEditable, parseRequirementLine, type KindOf } from './requirement-line.js';
import { pyStringCompare } from './specifier.js';

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
  const read = await readInclude({
    parent,
    line,
    source,
    nested,
    cwd: state.cwd,
    stack: state.stack,
    readFile: state.options.readFile,
  });
  if (read instanceof RecipeError) return fail(state, read);
  state.recipe.files.push(read.file);
  state.stack.push(read.key);
  try {
    await parseFile(state, read.text, read.file, constraint);
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

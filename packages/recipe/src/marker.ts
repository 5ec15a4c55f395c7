// PEP 508 environment markers. The grammar, the legacy names (`sys.platform`, `os.name`, …) and the printed
// form are those of pip 23.2's vendored packaging 21.3; evaluation follows current packaging (`extra` compared
// normalised, versions compared as PEP 440 when both sides are versions, strings otherwise).
import { RecipeError } from './errors.js';
import { canonicalizeName } from './names.js';
import { isValidVersion, versionSatisfies } from './version.js';
import { parseSpecifierClause, pyStringCompare } from './specifier.js';

/** The values markers are evaluated against: a target interpreter, not necessarily this machine. */
export interface MarkerEnvironment {
  implementation_name: string;
  implementation_version: string;
  os_name: string;
  platform_machine: string;
  platform_release: string;
  platform_system: string;
  platform_version: string;
  platform_python_implementation: string;
  python_full_version: string;
  python_version: string;
  sys_platform: string;
}

/** packaging 21.3's VARIABLE literals, in its order (a literal matches as a prefix, first one wins). */
const VARIABLES: readonly string[] = [
  'implementation_version',
  'platform_python_implementation',
  'implementation_name',
  'python_full_version',
  'platform_release',
  'platform_version',
  'platform_machine',
  'platform_system',
  'python_version',
  'sys_platform',
  'os_name',
  'os.name',
  'sys.platform',
  'platform.version',
  'platform.machine',
  'platform.python_implementation',
  'python_implementation',
  'extra',
];
const ALIASES: Record<string, string> = {
  'os.name': 'os_name',
  'sys.platform': 'sys_platform',
  'platform.version': 'platform_version',
  'platform.machine': 'platform_machine',
  'platform.python_implementation': 'platform_python_implementation',
  python_implementation: 'platform_python_implementation',
};
const OPERATORS: readonly string[] = ['===', '==', '>=', '<=', '!=', '~=', '>', '<', 'not in', 'in'];

export type MarkerValue = { variable: string } | { value: string };
export interface MarkerComparison {
  lhs: MarkerValue;
  op: string;
  rhs: MarkerValue;
}
/** packaging's parse tree: comparisons, "and"/"or", and nested lists for parenthesised groups. */
export type MarkerTree = (MarkerComparison | MarkerTree | 'and' | 'or')[];

export class MarkerSyntaxError extends Error {
  constructor(
    readonly reason: string,
    readonly pos: number,
    readonly spanStart: number,
  ) {
    super(reason);
  }
}

const MAX_DEPTH = 100;
const isWs = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13;

/** A recursive-descent reader of packaging 21.3's marker grammar over `text` from `start`. */
export class MarkerReader {
  pos: number;
  constructor(
    readonly text: string,
    start = 0,
  ) {
    this.pos = start;
  }

  skipWs(): void {
    while (this.pos < this.text.length && isWs(this.text.charCodeAt(this.pos))) this.pos++;
  }

  private literal(options: readonly string[]): string | null {
    const first = this.text[this.pos];
    for (const lit of options) {
      if (lit[0] !== first) continue;
      if (this.text.startsWith(lit, this.pos)) {
        this.pos += lit.length;
        return lit;
      }
    }
    return null;
  }

  private fail(reason: string, spanStart = this.pos): never {
    throw new MarkerSyntaxError(reason, this.pos, spanStart);
  }

  private markerVar(): MarkerValue {
    this.skipWs();
    const v = this.literal(VARIABLES);
    if (v !== null) return { variable: ALIASES[v] ?? v };
    const q = this.text[this.pos];
    if (q === '"' || q === "'") {
      const start = this.pos;
      let end = this.pos + 1;
      while (end < this.text.length) {
        const ch = this.text[end];
        if (ch === q) break;
        if (ch === '\n' || ch === '\r') end = this.text.length;
        else end++;
      }
      if (end >= this.text.length) this.fail('unterminated string in marker', start);
      this.pos = end + 1;
      return { value: this.text.slice(start + 1, end) };
    }
    this.fail('expected a marker variable (python_version, sys_platform, extra, …) or a quoted string');
  }

  private atom(depth: number): MarkerComparison | MarkerTree {
    this.skipWs();
    if (this.text[this.pos] === '(') {
      const open = this.pos;
      this.pos++;
      const inner = this.expr(depth + 1);
      this.skipWs();
      if (this.text[this.pos] !== ')') this.fail("expected ')' to close the '(' of the marker", open);
      this.pos++;
      return inner;
    }
    const lhs = this.markerVar();
    this.skipWs();
    const op = this.literal(OPERATORS);
    if (op === null) this.fail('expected a marker operator (==, !=, <, <=, >, >=, ~=, ===, in, not in)');
    const rhs = this.markerVar();
    return { lhs, op, rhs };
  }

  /** MARKER_EXPR: atom (("and" | "or") MARKER_EXPR)*, flattened as packaging does (read iteratively). */
  expr(depth = 0): MarkerTree {
    if (depth > MAX_DEPTH) this.fail(`markers nested deeper than ${MAX_DEPTH} parentheses`);
    const out: MarkerTree = [this.atom(depth)];
    for (;;) {
      const save = this.pos;
      this.skipWs();
      const op = this.literal(['and', 'or']);
      if (op === null) {
        this.pos = save;
        return out;
      }
      out.push(op as 'and' | 'or', this.atom(depth));
    }
  }
}

/** Parses a whole marker string (surrounding whitespace allowed); throws MarkerSyntaxError. */
export function parseMarkerTree(text: string): MarkerTree {
  const reader = new MarkerReader(text);
  const tree = reader.expr();
  reader.skipWs();
  if (reader.pos !== text.length)
    throw new MarkerSyntaxError("expected 'and', 'or' or the end of the marker", reader.pos, reader.pos);
  return tree;
}

const serializeValue = (v: MarkerValue): string => ('variable' in v ? v.variable : `"${v.value}"`);

/** packaging 21.3's `_format_marker`: `str(Marker)`, double quotes, legacy names replaced. */
export function formatMarkerTree(tree: MarkerTree | MarkerComparison, first = true): string {
  if (Array.isArray(tree)) {
    if (tree.length === 1 && typeof tree[0] === 'object') return formatMarkerTree(tree[0]);
    const inner = tree.map((m) => (typeof m === 'string' ? m : formatMarkerTree(m, false))).join(' ');
    return first ? inner : `(${inner})`;
  }
  return `${serializeValue(tree.lhs)} ${tree.op} ${serializeValue(tree.rhs)}`;
}

function markerError(text: string, e: MarkerSyntaxError): RecipeError {
  return new RecipeError('RECIPE_SYNTAX', `invalid marker: ${e.reason}`, {
    file: '<marker>',
    line: 1,
    column: e.pos + 1,
    spanStart: e.spanStart + 1,
    source: text,
  });
}

/** The normal form of a marker (`str(Marker(text))` in pip 23.2); throws RecipeError (RECIPE_SYNTAX). */
export function normalizeMarker(text: string): string {
  try {
    return formatMarkerTree(parseMarkerTree(text));
  } catch (e) {
    if (e instanceof MarkerSyntaxError) throw markerError(text, e);
    throw e;
  }
}

type Env = Record<string, string>;

function compareOp(lhs: string, op: string, rhs: string): boolean {
  if (op === '===') return lhs.toLowerCase() === rhs.toLowerCase();
  const clause = op === 'in' || op === 'not in' ? null : parseSpecifierClause(op + rhs);
  if (clause?.pep440 && isValidVersion(lhs)) {
    try {
      return versionSatisfies(lhs, op + rhs, { prereleases: true });
    } catch {
      // not a specifier @renovatebot/pep440 accepts: fall back to comparing strings, as below
    }
  }
  const c = pyStringCompare(lhs, rhs);
  switch (op) {
    case 'in':
      return rhs.includes(lhs);
    case 'not in':
      return !rhs.includes(lhs);
    case '==':
      return c === 0;
    case '!=':
      return c !== 0;
    case '<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '>':
      return c > 0;
    case '>=':
      return c >= 0;
    default:
      throw new RecipeError(
        'MARKER_UNDEFINED_COMPARISON',
        `undefined comparison ${op} on ${JSON.stringify(lhs)} and ${JSON.stringify(rhs)}`,
        {
          file: '<marker>',
          line: 1,
          column: 1,
        },
      );
  }
}

function lookup(env: Env, name: string): string {
  const value = env[name];
  if (typeof value !== 'string') {
    throw new RecipeError('MARKER_ENVIRONMENT_INCOMPLETE', `the marker environment has no ${name}`, {
      file: '<marker>',
      line: 1,
      column: 1,
    });
  }
  return value;
}

function evaluateTree(tree: MarkerTree, env: Env): boolean {
  const groups: boolean[][] = [[]];
  for (const m of tree) {
    if (m === 'or') groups.push([]);
    else if (m === 'and') continue;
    else if (Array.isArray(m)) groups[groups.length - 1]!.push(evaluateTree(m, env));
    else {
      let lhs = 'variable' in m.lhs ? lookup(env, m.lhs.variable) : m.lhs.value;
      let rhs = 'variable' in m.rhs ? lookup(env, m.rhs.variable) : m.rhs.value;
      if (
        ('variable' in m.lhs && m.lhs.variable === 'extra') ||
        ('variable' in m.rhs && m.rhs.variable === 'extra')
      ) {
        lhs = canonicalizeName(lhs);
        rhs = canonicalizeName(rhs);
      }
      groups[groups.length - 1]!.push(compareOp(lhs, m.op, rhs));
    }
  }
  return groups.some((g) => g.every(Boolean));
}

const cache = new Map<string, MarkerTree>();

/**
 * Evaluates a PEP 508 marker for a target environment. With `extras`, true when it holds for any of them
 * (as pip does for a requirement's extras); without, `extra` is "". Throws RecipeError: RECIPE_SYNTAX for a
 * marker that does not parse, MARKER_UNDEFINED_COMPARISON for e.g. `~=` between strings that are not versions.
 */
export function evaluateMarker(marker: string, env: MarkerEnvironment, extras?: string[]): boolean {
  let tree = cache.get(marker);
  if (!tree) {
    try {
      tree = parseMarkerTree(marker);
    } catch (e) {
      if (e instanceof MarkerSyntaxError) throw markerError(marker, e);
      throw e;
    }
    if (cache.size > 1000) cache.clear();
    cache.set(marker, tree);
  }
  const base: Env = { ...(env as unknown as Env) };
  const list = extras && extras.length > 0 ? extras : [''];
  return list.some((extra) => evaluateTree(tree, { ...base, extra }));
}

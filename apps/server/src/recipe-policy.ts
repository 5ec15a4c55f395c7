/**
 * Decision 13: a build runs code, and a recipe sent over HTTP must not reach into the server's own
 * files. Unless the config allows it, a remote recipe may not include other files (-r/-c), name local
 * paths or archives, or use file: / git+file: URLs (in requirements, -e, -f, -i or --extra-index-url).
 * Checked on logical lines (continuations joined, comments removed), as pip reads them.
 */
import { ServerError } from './errors.js';

export interface RecipeViolation {
  line: number;
  text: string;
  reason: string;
}

function logicalLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const physical = text.split(/\r?\n/);
  let buf = '';
  let start = 0;
  physical.forEach((raw, i) => {
    if (buf === '') start = i + 1;
    if (raw.endsWith('\\')) {
      buf += raw.slice(0, -1);
      return;
    }
    buf += raw;
    out.push({ line: start, text: buf });
    buf = '';
  });
  if (buf !== '') out.push({ line: start, text: buf });
  return out
    .map((l) => ({ line: l.line, text: l.text.replace(/(^|\s)#.*$/, '').trim() }))
    .filter((l) => l.text !== '');
}

const LOCAL_PATH = /^(\.{1,2}([/\\]|$)|[/\\~]|[A-Za-z]:[/\\])/;
const ARCHIVE = /\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|tar)$/i;

function valueOf(text: string, option: string): string {
  return text
    .slice(option.length)
    .replace(/^[=\s]+/, '')
    .trim();
}

export function findRecipeViolations(text: string): RecipeViolation[] {
  const violations: RecipeViolation[] = [];
  for (const { line, text: l } of logicalLines(text)) {
    const add = (reason: string): void => {
      violations.push({ line, text: l, reason });
    };
    if (/file:/i.test(l)) {
      add("file: URLs read the server's own files");
      continue;
    }
    const include = /^(-r|--requirement|-c|--constraint)(\s|=|$|(?=\S))/.exec(l);
    if (include !== null) {
      add(`includes (${include[1]}) read the server's own files`);
      continue;
    }
    const pathOptions = ['--editable', '-e', '--find-links', '-f', '--index-url', '-i', '--extra-index-url'];
    const option = pathOptions.find(
      (o) => l === o || l.startsWith(o + ' ') || l.startsWith(o + '=') || (o.length === 2 && l.startsWith(o)),
    );
    if (option !== undefined) {
      const value = valueOf(l, option);
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value))
        add(`${option} with a local path reads the server's own files`);
      continue;
    }
    if (l.startsWith('-')) continue; // other options (--pre, --hash, --no-binary, ...) read no files
    const req = l
      .split(/\s+--?\w/)[0]!
      .split(';')[0]!
      .trim();
    const at = /@\s*(\S+)/.exec(req);
    const target = at !== null ? at[1]! : req;
    if (LOCAL_PATH.test(target) || (at === null && (ARCHIVE.test(target) || /[/\\]/.test(target)))) {
      add("local paths and archives read the server's own files");
    }
  }
  return violations;
}

/** Throws RECIPE_FORBIDDEN naming the first offending line (Decision 13). */
export function checkRemoteRecipe(text: string): void {
  const v = findRecipeViolations(text);
  if (v.length === 0) return;
  const first = v[0]!;
  throw new ServerError(
    'RECIPE_FORBIDDEN',
    `recipe line ${first.line}: "${first.text}": ${first.reason}; not allowed in builds sent over HTTP`,
    {
      hint: 'name packages by index name or remote URL, or set [builds] allow_local_paths = true in the server config',
    },
  );
}

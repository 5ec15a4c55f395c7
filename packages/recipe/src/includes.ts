// -r / -c includes: where an included file is (relative to the including file, URLs joined as URLs), and
// reading it, with a cycle or an unreadable file reported as the RecipeError of the including line.
import * as path from 'node:path';
import { RecipeError } from './errors.js';
import type { ReadFile } from './recipe-types.js';

const SCHEME_RE = /^(http|https|file):/i;

/** Joins an include to the including file as pip does (URLs joined as URLs, paths to the file's folder). */
export function includePath(parent: string, child: string): string {
  if (SCHEME_RE.test(parent)) return new URL(child, parent).href;
  if (SCHEME_RE.test(child)) return child;
  return path.isAbsolute(child)
    ? path.normalize(child)
    : path.normalize(path.join(path.dirname(parent), child));
}

export function includeKey(file: string, cwd: string): string {
  return SCHEME_RE.test(file) ? file : path.resolve(cwd, file);
}

/** An included file, read. */
export interface IncludedFile {
  file: string;
  /** Its key on the include stack (absolute path or URL). */
  key: string;
  text: string;
}

/**
 * Resolves the include `nested`, written on `line` of `parent` (`source` is that logical line), and reads it.
 * Returns the error instead when it would close a cycle through `stack` or cannot be read.
 */
export async function readInclude(options: {
  parent: string;
  line: number;
  source: string;
  nested: string;
  cwd: string;
  stack: readonly string[];
  readFile: ReadFile | undefined;
}): Promise<IncludedFile | RecipeError> {
  const { parent, line, source, nested, stack, readFile } = options;
  const file = includePath(parent, nested);
  const col = Math.max(0, source.indexOf(nested));
  const at = { file: parent, line, column: col + 1, source };
  const key = includeKey(file, options.cwd);
  if (stack.includes(key)) {
    const chain = [...stack.slice(stack.indexOf(key)), key].map((k) => path.relative(options.cwd, k) || k);
    return new RecipeError('RECIPE_INCLUDE_CYCLE', `include cycle: ${chain.join(' -> ')}`, at);
  }
  if (!readFile) {
    return new RecipeError('RECIPE_INCLUDE_UNREADABLE', `cannot read ${file}: no file reader was given`, at);
  }
  try {
    return { file, key, text: await readFile(file) };
  } catch (e) {
    const why =
      e instanceof Error
        ? (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'no such file'
          : e.message
        : String(e);
    return new RecipeError(
      'RECIPE_INCLUDE_UNREADABLE',
      `could not open requirements file ${file}: ${why}`,
      at,
      {
        cause: e,
      },
    );
  }
}

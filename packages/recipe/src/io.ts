// The node:fs side of @dstack/recipe: reading recipe files from disk for parseRecipe.
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { RecipeError } from './errors.js';
import { parseRecipe } from './recipe.js';
import type { PathKind, Recipe } from './recipe-types.js';

/** pip's auto_decode: a BOM decides (UTF-8, UTF-16, UTF-32), else UTF-8. */
export function decodeRecipeBytes(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return b.subarray(3).toString('utf8');
  if (b[0] === 0xff && b[1] === 0xfe && !(b[2] === 0 && b[3] === 0))
    return new TextDecoder('utf-16le').decode(b.subarray(2));
  if (b[0] === 0xfe && b[1] === 0xff) return new TextDecoder('utf-16be').decode(b.subarray(2));
  return b.toString('utf8');
}

/** Reads a recipe include: a path, or a `file:` URL. Remote includes are refused (no network here). */
export async function readRecipeText(file: string): Promise<string> {
  if (/^https?:/i.test(file)) throw new Error(`remote requirements files are not read: ${file}`);
  const p = /^file:/i.test(file) ? fileURLToPath(file) : file;
  return decodeRecipeBytes(await readFile(p));
}

/** What is at `p`, as pip's checks see it. */
export async function pathKindOnDisk(p: string): Promise<PathKind> {
  const s = await stat(p).catch(() => null);
  if (!s) return 'missing';
  if (!s.isDirectory()) return 'file';
  for (const f of ['pyproject.toml', 'setup.py']) {
    const inner = await stat(path.join(p, f)).catch(() => null);
    if (inner?.isFile()) return 'project';
  }
  return 'directory';
}

/**
 * Reads and parses a recipe file from disk (includes too). `${VAR}` values come from `env` (default
 * process.env); local paths resolve against `cwd` (default process.cwd()), as pip does.
 */
export async function readRecipeFile(
  file: string,
  options: { env?: Record<string, string | undefined>; cwd?: string; errors?: RecipeError[] } = {},
): Promise<Recipe> {
  const cwd = options.cwd ?? process.cwd();
  const abs = (f: string): string => (/^[a-z]+:/i.test(f) ? f : path.resolve(cwd, f));
  let text: string;
  try {
    text = await readRecipeText(abs(file));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new RecipeError(
      'RECIPE_NOT_FOUND',
      `could not open requirements file: ${why}`,
      { file, line: 0, column: 0 },
      { cause: e },
    );
  }
  return parseRecipe(text, {
    file,
    cwd,
    env: options.env ?? process.env,
    readFile: (f) => readRecipeText(abs(f)),
    pathKind: pathKindOnDisk,
    ...(options.errors ? { errors: options.errors } : {}),
  });
}

/**
 * The seed's recipe naming: `django-1.10.5` is `<recipesDir>/django-1.10.5.txt`; a value with a path
 * separator or a `.txt` suffix is a path already. An empty name is the seed's default, `requirements`.
 */
export function resolveRecipePath(recipe: string, recipesDir: string): string {
  const name = recipe.trim() || 'requirements';
  if (name.includes('/') || name.includes(path.sep) || name.endsWith('.txt')) return name;
  return path.join(recipesDir, `${name}.txt`);
}

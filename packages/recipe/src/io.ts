// The node:fs side of @dstack/recipe: reading recipe files from disk for parseRecipe.
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { RecipeError } from './errors.js';
import { parseRecipe } from './recipe.js';
import type { PathKind, Recipe } from './recipe-types.js';

/** pip's ENCODING_RE (PEP 263), searched in the first two lines when they start with `#`. */
const CODING = /coding[:=]\s*([-\w.]+)/;

/**
 * Python codec names (normalised as Python does: lower case, `-` and spaces as `_`) to WHATWG labels that
 * TextDecoder knows with the same mapping. Latin-1 is not among them: WHATWG's "latin1" is windows-1252, so it
 * is decoded byte for byte (Node's 'latin1' is ISO-8859-1 exactly).
 */
const CODECS: Record<string, string> = {
  utf_8: 'utf-8', utf8: 'utf-8', u8: 'utf-8', utf: 'utf-8', utf_8_sig: 'utf-8', cp65001: 'utf-8',
  utf_16: 'utf-16le', utf_16_le: 'utf-16le', utf_16_be: 'utf-16be',
  cp1250: 'windows-1250', windows_1250: 'windows-1250', cp1251: 'windows-1251', windows_1251: 'windows-1251',
  cp1253: 'windows-1253', cp1254: 'windows-1254',
  cp1255: 'windows-1255', cp1256: 'windows-1256', cp1257: 'windows-1257', cp1258: 'windows-1258',
  iso_8859_2: 'iso-8859-2', latin2: 'iso-8859-2', iso_8859_3: 'iso-8859-3', iso_8859_4: 'iso-8859-4',
  iso_8859_5: 'iso-8859-5', cyrillic: 'iso-8859-5', iso_8859_6: 'iso-8859-6', iso_8859_7: 'iso-8859-7',
  greek: 'iso-8859-7', iso_8859_8: 'iso-8859-8', hebrew: 'iso-8859-8', iso_8859_10: 'iso-8859-10',
  iso_8859_13: 'iso-8859-13', iso_8859_14: 'iso-8859-14', iso_8859_15: 'iso-8859-15', latin9: 'iso-8859-15',
  iso_8859_16: 'iso-8859-16', koi8_r: 'koi8-r', koi8_u: 'koi8-u', mac_roman: 'macintosh', macroman: 'macintosh',
  shift_jis: 'shift_jis', sjis: 'shift_jis', s_jis: 'shift_jis', euc_jp: 'euc-jp', iso2022_jp: 'iso-2022-jp',
  euc_kr: 'euc-kr', gbk: 'gbk', gb2312: 'gbk', gb18030: 'gb18030', big5: 'big5', cp866: 'ibm866',
};
// Node 20's TextDecoder('windows-1252') drops 0x80-0x9F: cp1252 is Latin-1 with these 27 differences.
const CP1252_HIGH = '€\ufffd‚ƒ„…†‡ˆ‰Š‹Œ\ufffdŽ\ufffd\ufffd‘’“”•–—˜™š›œ\ufffdžŸ';
const CP1252 = new Set(['cp1252', 'windows_1252']);
const LATIN_1 = new Set(['latin_1', 'latin1', 'latin', 'l1', 'iso_8859_1', 'iso8859_1', '8859', 'cp819', 'iso_ir_100']);

/**
 * pip's auto_decode: a BOM decides (UTF-8, UTF-16, UTF-32); else a PEP 263 coding line in the first two lines
 * (`# -*- coding: latin-1 -*-`); else UTF-8. An encoding pip would not know is an error, as it is for pip.
 */
export function decodeRecipeBytes(bytes: Uint8Array, file = '<recipe>'): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return b.subarray(3).toString('utf8');
  if (b[0] === 0xff && b[1] === 0xfe && !(b[2] === 0 && b[3] === 0))
    return new TextDecoder('utf-16le').decode(b.subarray(2));
  if (b[0] === 0xfe && b[1] === 0xff) return new TextDecoder('utf-16be').decode(b.subarray(2));
  let start = 0;
  for (let n = 1; n <= 2 && start < b.length; n++) {
    const nl = b.indexOf(0x0a, start);
    const line = b.subarray(start, nl < 0 ? b.length : nl).toString('latin1');
    const coding = line.startsWith('#') ? CODING.exec(line) : null;
    if (coding) {
      const name = coding[1]!;
      const codec = name.toLowerCase().replace(/[-\s]/g, '_');
      if (LATIN_1.has(codec)) return b.toString('latin1');
      if (CP1252.has(codec))
        return b.toString('latin1').replace(/[\x80-\x9f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]!);
      if (codec === 'ascii' || codec === 'us_ascii' || codec === '646') {
        const bad = b.findIndex((x) => x > 0x7f);
        if (bad >= 0) throw codingError(file, n, line, coding.index + coding[0].indexOf(name), `byte 0x${b[bad]!.toString(16)} at offset ${bad} is not ASCII, the encoding its coding line names`);
        return b.toString('latin1');
      }
      const label = CODECS[codec];
      if (!label) throw codingError(file, n, line, coding.index + coding[0].indexOf(name), `unknown encoding "${name}" in the coding line`);
      return new TextDecoder(label).decode(b);
    }
    if (nl < 0) break;
    start = nl + 1;
  }
  return b.toString('utf8');
}

function codingError(file: string, line: number, source: string, index: number, reason: string): RecipeError {
  return new RecipeError('RECIPE_SYNTAX', reason, { file, line, column: index + 1, source: source.replace(/\r$/, '') }, {
    hint: 'Name an encoding Python knows (utf-8, latin-1, cp1252, …) or save the file as UTF-8 and drop the line.',
  });
}

/** Reads a recipe include: a path, or a `file:` URL. Remote includes are refused (no network here). */
export async function readRecipeText(file: string): Promise<string> {
  if (/^https?:/i.test(file)) throw new Error(`remote requirements files are not read: ${file}`);
  const p = /^file:/i.test(file) ? fileURLToPath(file) : file;
  return decodeRecipeBytes(await readFile(p), file);
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
    if (e instanceof RecipeError) throw e;
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

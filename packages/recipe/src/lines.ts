// Line preprocessing, as pip's req_file.preprocess: physical lines into logical lines (continuations joined,
// comments and blank lines dropped, ${VAR} expanded), and a logical line into its requirement and options parts.
import { isPyWs, pySplitLines, pyStrip } from './pyshim.js';

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

export interface LogicalLine {
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
export function breakArgsOptions(line: string): [string, string] {
  if (line.charCodeAt(0) !== 45 && !line.includes(' -')) return [line, ''];
  const tokens = line.split(' ');
  let i = 0;
  while (i < tokens.length && !tokens[i]!.startsWith('-')) i++;
  return [tokens.slice(0, i).join(' '), tokens.slice(i).join(' ')];
}

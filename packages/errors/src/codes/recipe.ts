import type { CodeEntry } from './entry.js';

/** The codes @dstack/recipe throws (as RecipeError, with file, line, column and a caret excerpt). */
export const RECIPE_CODES = {
  RECIPE_SYNTAX: {
    summary: 'A line of a requirements file, a PEP 508 requirement or a marker does not parse as pip would read it.',
    hint: 'Fix the text at the caret; `dstack-factory recipe check FILE` lists every error of a recipe at once.',
  },
  RECIPE_NOT_FOUND: {
    summary: 'The recipe named on the command line (or by RECIPE) is neither a file nor a name under recipes/.',
    hint: 'Check the path or name; `recipes/NAME.txt` is found as NAME.',
  },
  RECIPE_INCLUDE_UNREADABLE: {
    summary: 'A `-r`/`-c` include could not be read (missing, unreadable, or no file reader was given).',
    hint: 'Includes are relative to the including file: check the path from there.',
  },
  RECIPE_INCLUDE_CYCLE: {
    summary: 'Recipes include each other in a cycle (pip would recurse until it fails).',
    hint: 'Remove one of the `-r`/`-c` lines named in the chain.',
  },
  RECIPE_PATH_NOT_INSTALLABLE: {
    summary: 'A local directory named as a requirement has neither setup.py nor pyproject.toml.',
    hint: "Point at the project's root directory (the one holding pyproject.toml or setup.py).",
  },
  VERSION_INVALID: {
    summary: 'A version or specifier is not valid PEP 440.',
    hint: 'Write it as PEP 440 does (1.0, 1.0.post1, 2!1.0, 1.0rc1), not as SemVer.',
  },
  MARKER_UNDEFINED_COMPARISON: {
    summary: 'A marker compares two values with an operator PEP 508 leaves undefined for them (e.g. `~=` on non-versions).',
    hint: 'Compare versions with version operators and strings with == / != / in.',
  },
  MARKER_ENVIRONMENT_INCOMPLETE: {
    summary: 'A marker names a variable the target environment does not define.',
    hint: 'Give the full PEP 508 environment of the target (its interpreter reports it).',
  },
  LOCK_INVALID: {
    summary: 'A pylock.*.toml file is not valid TOML or not a PEP 751 lock.',
    hint: 'Write the lock again with `dstack-factory build --refresh`; do not edit it by hand.',
  },
  LOCK_NAME_INVALID: {
    summary: 'A lock name would hold a dot: PEP 751 names are `pylock.<name>.toml` with no dot in `<name>`.',
    hint: 'Name the target without dots (like cp3_11_7-manylinux_2_36_x86_64).',
  },
} as const satisfies Record<string, CodeEntry>;

export type RecipeErrorCode = keyof typeof RECIPE_CODES;

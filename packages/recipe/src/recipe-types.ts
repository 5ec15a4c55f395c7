// The typed Recipe: what parseRecipe returns, and what it is given.
import type { RecipeError } from './errors.js';

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

// .dockerignore rules as Docker reads them (moby's patternmatcher: the last matching pattern wins, "!" exceptions,
// "**", a pattern matching a directory matches what is inside it), through @balena/dockerignore, its port to JS.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import dockerignore from '@balena/dockerignore';

// CommonJS (module.exports = the factory) typed as `export default`: Node's ESM default import is the factory.
const ignore = dockerignore as unknown as typeof dockerignore.default;

export interface DockerIgnore {
  /** Whether a path relative to the context ("pkg/a.py") is left out. */
  ignores(rel: string): boolean;
  /** Some pattern starts with "!": an ignored directory must still be walked, an exception may bring part back. */
  readonly hasExceptions: boolean;
}

export function parseDockerignore(text: string): DockerIgnore {
  // Case-sensitive, as Docker is on Linux (the library folds case unless told otherwise).
  const rules = ignore({ ignorecase: false }).add(text.split(/\r?\n/));
  const hasExceptions = text.split(/\r?\n/).some((line) => line.trim().startsWith('!'));
  return { ignores: (rel) => rules.ignores(rel), hasExceptions };
}

/** The context's .dockerignore, or rules that ignore nothing when it has none. */
export async function readDockerignore(context: string): Promise<DockerIgnore> {
  try {
    return parseDockerignore(await fs.readFile(path.join(context, '.dockerignore'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return parseDockerignore('');
  }
}

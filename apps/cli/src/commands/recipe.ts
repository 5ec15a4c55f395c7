import type { Command } from 'commander';
import type { Runner } from '../main.js';

// Filled in with @dstack/recipe: `recipe show FILE [--json]` and `recipe check FILE`.
export function registerRecipeCommands(program: Command, _run: Runner): void {
  program.command('recipe').description('read pip requirements files (recipes)');
}

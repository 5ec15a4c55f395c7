import * as path from 'node:path';
import type { Command } from 'commander';
import type { RecipeError } from '@dstack/recipe';
import type { Runner } from '../context.js';

export function registerRecipeCommands(program: Command, run: Runner): void {
  const recipe = program
    .command('recipe')
    .description('read pip requirements files (recipes), exactly as pip reads them');

  recipe
    .command('show')
    .description('print the parsed recipe: one requirement a line with its file:line, or JSON')
    .argument('<file>', 'requirements file (includes are read relative to it; ${VAR} from the environment)')
    .option(
      '--json',
      'print the recipe as JSON (requirements in file order, includes expanded in place, and options)',
    )
    .action(
      run(async (ctx, file: string, opts: { json?: boolean }) => {
        const [{ readRecipeFile, recipeToJSON }, { renderRecipe }] = await Promise.all([
          import('@dstack/recipe'),
          import('./recipe-render.js'),
        ]);
        const parsed = await readRecipeFile(file, { cwd: ctx.cwd, env: ctx.env });
        ctx.stdout.write(
          opts.json ? `${JSON.stringify(recipeToJSON(parsed), null, 2)}\n` : renderRecipe(parsed),
        );
        return 0;
      }),
    );

  recipe
    .command('check')
    .description(
      'check a recipe: every error as file:line:col with the offending line and a caret; exit 1 if any',
    )
    .argument('<file>', 'requirements file')
    .action(
      run(async (ctx, file: string) => {
        const { readRecipeFile } = await import('@dstack/recipe');
        const errors: RecipeError[] = [];
        const parsed = await readRecipeFile(file, { cwd: ctx.cwd, env: ctx.env, errors });
        if (errors.length === 0) {
          const files = parsed.files.length;
          ctx.stdout.write(
            `${file}: ok, ${parsed.requirements.length} requirement${parsed.requirements.length === 1 ? '' : 's'} in ${files} file${files === 1 ? '' : 's'}\n`,
          );
          return 0;
        }
        for (const e of errors) {
          ctx.stdout.write(`${e.message}\n${e.hint ? `    hint: ${e.hint}\n` : ''}`);
        }
        ctx.stdout.write(
          `${path.normalize(file)}: ${errors.length} error${errors.length === 1 ? '' : 's'}\n`,
        );
        return 1;
      }),
    );
}

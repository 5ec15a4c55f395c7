import * as path from 'node:path';
import type { Command } from 'commander';
import {
  RecipeError,
  formatRequirement,
  readRecipeFile,
  recipeToJSON,
  type Recipe,
  type RecipeOptions,
} from '@dstack/recipe';
import type { Runner } from '../main.js';

/** The options a person reads: only those the recipe sets, as they would be written in it. */
function describeOptions(o: RecipeOptions): string[] {
  const lines: string[] = [];
  if (o.indexUrl !== null) lines.push(`--index-url ${o.indexUrl}`);
  for (const u of o.extraIndexUrls) lines.push(`--extra-index-url ${u}`);
  for (const f of o.findLinks) lines.push(`--find-links ${f}`);
  if (o.noIndex) lines.push('--no-index');
  if (o.pre) lines.push('--pre');
  if (o.noBinary.length > 0) lines.push(`--no-binary ${o.noBinary.join(',')}`);
  if (o.onlyBinary.length > 0) lines.push(`--only-binary ${o.onlyBinary.join(',')}`);
  if (o.preferBinary) lines.push('--prefer-binary');
  for (const h of o.trustedHosts) lines.push(`--trusted-host ${h}`);
  if (o.requireHashes) lines.push('--require-hashes');
  return lines;
}

/** One requirement a line: `file:line  requirement  (flags)`, columns aligned. */
export function renderRecipe(recipe: Recipe): string {
  const where = recipe.requirements.map((r) => `${r.file}:${r.line}`);
  const width = Math.max(0, ...where.map((w) => w.length));
  const out: string[] = [];
  recipe.requirements.forEach((r, i) => {
    const flags = [
      r.constraint ? 'constraint' : '',
      r.hashes.length > 0 ? `${r.hashes.length} hash${r.hashes.length > 1 ? 'es' : ''}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    out.push(
      `${where[i]!.padEnd(width)}  ${formatRequirement({ ...r, hashes: [] })}${flags ? `  (${flags})` : ''}`,
    );
  });
  const requirements = recipe.requirements.filter((r) => !r.constraint).length;
  const constraints = recipe.requirements.length - requirements;
  const summary = [`${requirements} requirement${requirements === 1 ? '' : 's'}`];
  if (constraints > 0) summary.push(`${constraints} constraint${constraints === 1 ? '' : 's'}`);
  summary.push(`${recipe.files.length} file${recipe.files.length === 1 ? '' : 's'}`);
  const options = describeOptions(recipe.options);
  if (options.length > 0) out.push('', 'options:', ...options.map((o) => `  ${o}`));
  out.push('', summary.join(', '));
  return `${out.join('\n')}\n`;
}

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

// How `recipe show` prints a recipe; loaded by the command's action, with @dstack/recipe.
import { formatRequirement, type Recipe, type RecipeOptions } from '@dstack/recipe';

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

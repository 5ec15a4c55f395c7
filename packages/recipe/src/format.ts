// Output: a Recipe as the JSON of `recipe show --json`, and a requirement back to one requirements-file line.
import { pyUnquote, pyUrlSplit } from './pyshim.js';
import type { Recipe } from './recipe-types.js';

/** Exactly the `recipe show --json` shape of issue 2. */
export function recipeToJSON(recipe: Recipe): object {
  return {
    requirements: recipe.requirements.map((r) => ({
      name: r.name,
      extras: r.extras,
      specifier: r.specifier,
      marker: r.marker,
      url: r.url,
      editable: r.editable,
      constraint: r.constraint,
      hashes: r.hashes,
      file: r.file,
      line: r.line,
    })),
    options: { ...recipe.options },
  };
}

/** The fields `formatRequirement` reads: a RecipeRequirement, its JSON, or a Pep508Requirement. */
export interface RequirementLike {
  name: string | null;
  extras: string[];
  specifier: string;
  marker: string | null;
  url: string | null;
  editable?: boolean;
  hashes?: string[];
}

/**
 * Renders a requirement back to one requirements-file line that pip (and parseRecipe) read as the same
 * requirement: `name[extras]specifier ; marker`, `name[extras] @ url ; marker`, `-e url`, local paths as paths.
 */
export function formatRequirement(r: RequirementLike): string {
  const extras = r.extras.length > 0 ? `[${r.extras.join(',')}]` : '';
  const localPath = (url: string): string | null => {
    if (!url.startsWith('file://') || url.includes('#')) return null;
    const p = pyUnquote(pyUrlSplit(url).path);
    return p.startsWith('/') ? p : null;
  };
  let text: string;
  if (r.url !== null) {
    const local = localPath(r.url);
    if (r.editable) text = `-e ${local !== null ? `${local}${extras}` : r.url}`;
    else if (r.name !== null && r.specifier === '') text = `${r.name}${extras} @ ${r.url}`;
    else text = local !== null ? `${local}${extras}` : r.url;
  } else text = `${r.name ?? ''}${extras}${r.specifier}`;
  if (r.marker !== null && !r.editable) text += ` ; ${r.marker}`;
  for (const h of r.hashes ?? []) text += ` --hash=${h}`;
  return text;
}

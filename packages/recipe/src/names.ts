/** A project name in PEP 503 normal form; only `canonicalizeName()` makes one. */
export type NormalizedName = string & { readonly __normalized: true };

const SEPARATORS = /[-_.]+/g;

/** PEP 503: lower case, runs of `-`, `_`, `.` become one `-`. */
export function canonicalizeName(name: string): NormalizedName {
  return name.replace(SEPARATORS, '-').toLowerCase() as NormalizedName;
}

/** What docs/errors.md says about one code: what went wrong, and what to do about it. */
export interface CodeEntry {
  readonly summary: string;
  readonly hint: string;
}

// Type guards for JSON read from elsewhere (a base's own index): decide on parsed, checked data only.
export const isString = (x: unknown): x is string => typeof x === 'string';
export const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);
export const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every(isString);
export const isNullableString = (x: unknown): x is string | null => x === null || isString(x);

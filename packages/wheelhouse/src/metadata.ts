import { canonicalizeName } from '@dstack/recipe';
import { WheelError } from './errors.js';

/** What a wheel's `*.dist-info/METADATA` says (core metadata 1.0 to 2.4). */
export interface WheelMetadata {
  name: string;
  version: string;
  metadataVersion: string;
  requiresDist: string[];
  requiresPython: string | null;
  providesExtra: string[];
  summary: string | null;
  /** The long description: the body after the headers (Metadata 2.1+), else the `Description` header. */
  description: string | null;
  /** Description-Content-Type, e.g. `text/markdown; charset=UTF-8` (null: plain text, as PyPI reads it). */
  descriptionContentType: string | null;
  /** METADATA as is: what PEP 658 serves. */
  text: string;
}

/** Headers of an RFC 822 style file (METADATA, WHEEL): lower-cased keys, every value, in order. */
export function parseHeaders(text: string): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  let last: { key: string; index: number } | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break; // the body (the long description) follows the first blank line
    if ((line.startsWith(' ') || line.startsWith('\t')) && last) {
      const values = headers.get(last.key)!;
      values[last.index] += `\n${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const values = headers.get(key) ?? [];
    values.push(value);
    headers.set(key, values);
    last = { key, index: values.length - 1 };
  }
  return headers;
}

/** Parses METADATA; `where` names the file in error messages. */
export function parseMetadata(text: string, where: string): WheelMetadata {
  const h = parseHeaders(text);
  const one = (key: string): string | null => h.get(key)?.[0] ?? null;
  const metadataVersion = one('metadata-version');
  if (metadataVersion === null) {
    throw new WheelError('WHEEL_METADATA_INVALID', `${where} has no Metadata-Version`);
  }
  const mv = /^(\d+)\.(\d+)$/.exec(metadataVersion);
  if (!mv || Number(mv[1]) < 1 || Number(mv[1]) > 2) {
    throw new WheelError('WHEEL_METADATA_INVALID', `${where} has Metadata-Version ${metadataVersion}; supported: 1.0 to 2.4`);
  }
  const name = one('name');
  const version = one('version');
  if (!name || !version) {
    throw new WheelError('WHEEL_METADATA_INVALID', `${where} lacks ${!name ? 'Name' : 'Version'}`);
  }
  canonicalizeName(name);
  return {
    name,
    version,
    metadataVersion,
    requiresDist: h.get('requires-dist') ?? [],
    requiresPython: one('requires-python'),
    providesExtra: h.get('provides-extra') ?? [],
    summary: one('summary'),
    description: descriptionOf(text) ?? one('description'),
    descriptionContentType: one('description-content-type'),
    text,
  };
}

/** The body of METADATA (after the first blank line), or null when there is none. */
function descriptionOf(text: string): string | null {
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return null;
  const body = text.slice(m.index + m[0].length);
  return body.trim() === '' ? null : body;
}

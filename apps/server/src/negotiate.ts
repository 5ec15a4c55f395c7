/**
 * Content negotiation for the simple repository API (PEP 691): the Accept header with q-values, or
 * `?format=<content type>` (which wins). The answer's Content-Type is the type the client chose.
 */
// Kept by hand: it runs on every index request, where negotiator (@fastify/accepts) measured ~8 µs a call, and
// PEP 691's `latest` aliases would need mapping on top of it anyway.
export const SIMPLE_JSON = 'application/vnd.pypi.simple.v1+json';
export const SIMPLE_HTML = 'application/vnd.pypi.simple.v1+html';
export const TEXT_HTML = 'text/html';

/** Types we serve, in our order of preference when the client weighs them equally. */
const OFFERS = [SIMPLE_JSON, SIMPLE_HTML, TEXT_HTML] as const;
export type SimpleType = (typeof OFFERS)[number];

const ALIASES: Record<string, SimpleType> = {
  'application/vnd.pypi.simple.latest+json': SIMPLE_JSON,
  'application/vnd.pypi.simple.latest+html': SIMPLE_HTML,
  json: SIMPLE_JSON,
  html: TEXT_HTML,
};

interface AcceptItem {
  type: string;
  q: number;
  order: number;
}

export function parseAccept(header: string): AcceptItem[] {
  const items: AcceptItem[] = [];
  header.split(',').forEach((part, order) => {
    const [rawType, ...params] = part.split(';');
    const type = (rawType ?? '').trim().toLowerCase();
    if (type === '') return;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=').map((s) => s.trim());
      if (k?.toLowerCase() === 'q' && v !== undefined) {
        const n = Number(v);
        q = Number.isFinite(n) ? Math.min(Math.max(n, 0), 1) : 0;
      }
    }
    items.push({ type, q, order });
  });
  return items;
}

function matches(range: string, offer: string): number {
  // Specificity: exact 3, alias 3, type/* 2, */* 1, none 0.
  if (range === offer) return 3;
  if (ALIASES[range] === offer) return 3;
  if (range === '*/*') return 1;
  if (range.endsWith('/*') && offer.startsWith(range.slice(0, -1))) return 2;
  return 0;
}

/**
 * The type to answer with, or null when nothing acceptable (406). No Accept header means text/html,
 * as PEP 691 asks for clients that do not negotiate.
 */
export function negotiateSimple(accept: string | undefined, format: string | undefined): SimpleType | null {
  if (format !== undefined && format !== '') {
    const f = format.trim().toLowerCase();
    if ((OFFERS as readonly string[]).includes(f)) return f as SimpleType;
    return ALIASES[f] ?? null;
  }
  if (accept === undefined || accept.trim() === '') return TEXT_HTML;
  const items = parseAccept(accept);
  let best: { offer: SimpleType; q: number; pref: number } | null = null;
  OFFERS.forEach((offer, pref) => {
    // The q of the most specific range matching this offer.
    let spec = 0;
    let q = 0;
    for (const item of items) {
      const s = matches(item.type, offer);
      if (s > spec) {
        spec = s;
        q = item.q;
      }
    }
    if (spec === 0 || q <= 0) return;
    if (best === null || q > best.q) best = { offer, q, pref };
  });
  return (best as { offer: SimpleType } | null)?.offer ?? null;
}

export const isJson = (t: SimpleType): boolean => t === SIMPLE_JSON;

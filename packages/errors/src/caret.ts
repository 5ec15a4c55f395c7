/**
 * "    text\n    ~~~~^": the line indented by four, then tildes under the span and a caret at `column`
 * (1-based; the span starts at `spanStart`). Tabs in the line are kept in the padding so the caret stays aligned;
 * line breaks inside `source` are shown as spaces.
 */
export function caretExcerpt(source: string, column: number, spanStart = column): string {
  const shown = source.replace(/[\r\n]/g, ' ');
  const start = Math.max(1, Math.min(spanStart, column));
  let pad = '';
  for (let i = 0; i < start - 1; i++) pad += shown[i] === '\t' ? '\t' : ' ';
  return `    ${shown}\n    ${pad}${'~'.repeat(column - start)}^`;
}

// What a project's page says beside its files, as PyPI and devpi show it: the summary, the long description
// (Markdown rendered when its content type says so, else plain text), Requires-Python and the dependencies; and
// for each wheel where it came from and who built it, without server paths for anonymous readers.
//
// Markdown is rendered by markdown-it with raw HTML off: any HTML in a description is escaped as text, not
// filtered after the fact, so there is nothing for a sanitizer to miss; its link check refuses javascript:,
// vbscript:, file: and non-image data: URLs. Images and styles stay within the page's CSP (img-src 'self' data:).
import MarkdownIt from 'markdown-it';
import { esc } from './html.js';
import type { ServerWheelEntry } from './store.js';
import { redactLine } from './redact.js';

const markdown = new MarkdownIt({ html: false, linkify: false, typographer: false });
// Links out of a description are the author's, not the server's.
markdown.renderer.rules.link_open = (tokens, idx, options, _env, self) => {
  tokens[idx]!.attrSet('rel', 'nofollow ugc noopener');
  return self.renderToken(tokens, idx, options);
};

/** Whether a Description-Content-Type is Markdown (`text/markdown`, any parameters). */
export function isMarkdown(contentType: string | null): boolean {
  return contentType !== null && contentType.split(';')[0]!.trim().toLowerCase() === 'text/markdown';
}

/** The description as HTML: Markdown rendered (raw HTML escaped), anything else as preformatted text. */
export function renderDescription(text: string, contentType: string | null): string {
  return isMarkdown(contentType)
    ? `<div class="description" data-format="markdown">${markdown.render(text)}</div>`
    : `<pre class="description wrap" data-format="text">${esc(text)}</pre>`;
}

const IMPLEMENTATIONS: Record<string, string> = { cp: 'CPython', pp: 'PyPy' };

/**
 * One builder record value as a reader may see it. An interpreter ("/opt/py/bin/python (cp 3.11.7)") is shown
 * by its version alone to anonymous readers; any other absolute path is hidden from them.
 */
export function builderValue(key: string, value: string, anonymous: boolean): string {
  if (!anonymous) return value;
  if (key === 'interpreter') {
    const m = /\((\w+) ([^)]+)\)\s*$/.exec(value);
    if (m) return `${IMPLEMENTATIONS[m[1]!] ?? m[1]} ${m[2]}`;
  }
  return redactLine(value);
}

/** Who built a wheel, as one line ("executor: local, interpreter: CPython 3.11.7, …"); empty when not recorded. */
export function describeBuilder(entry: ServerWheelEntry, anonymous: boolean): string {
  if (!entry.builtBy) return '';
  return Object.entries(entry.builtBy)
    .map(([k, v]) => `${k}: ${builderValue(k, v, anonymous)}`)
    .join(', ');
}

/**
 * Where a wheel came from, as one line, from the wheelhouse's source record (issue 23): an sdist's URL and sha256,
 * a VCS URL and the commit built, a local folder, or the URL of a wheel fetched as it was. Without a record: an
 * upload says so, a build older than the records says the source was not recorded. Anonymous readers see no
 * local path (a folder or a file: URL is shown as …).
 */
export function describeSource(entry: ServerWheelEntry, anonymous: boolean): string {
  const hide = (v: string): string => (anonymous ? redactLine(v) : v);
  const s = entry.source;
  if (s) {
    switch (s.kind) {
      case 'sdist':
        return `sdist ${hide(s.url)}${s.sha256 ? ` sha256:${s.sha256}` : ' (no sha256 recorded)'}`;
      case 'vcs':
        return `${s.vcs}+${hide(s.url)}@${s.commit}${s.subdirectory ? ` (${s.subdirectory})` : ''}`;
      case 'directory':
        return `local folder ${hide(s.path)}${s.subdirectory ? ` (${s.subdirectory})` : ''}`;
      case 'wheel':
        return `wheel ${hide(s.url)}`;
    }
  }
  if (entry.builtBy?.uploadedBy !== undefined) return 'uploaded';
  return entry.builtBy ? 'built here; source not recorded' : 'not recorded';
}

/** A Requires-Dist line split into the project it names and the rest (specifier, extras, marker). */
export function splitRequirement(line: string): { name: string; rest: string } {
  const m = /^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(.*)$/.exec(line);
  return m ? { name: m[1]!, rest: m[2]!.trim() } : { name: line.trim(), rest: '' };
}

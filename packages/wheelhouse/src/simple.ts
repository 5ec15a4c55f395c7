// The simple repository API: PEP 503 HTML, PEP 691 JSON (with PEP 700's 1.1 fields), PEP 658/714 metadata.
// Pure renderers (the server reuses them) and a static tree on disk that pip reads through file://.
import { copyFile, link, mkdir, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { compareVersions, type NormalizedName } from '@dstack/recipe';
import { FsWheelStore, type WheelEntry, type WheelStore } from './store.js';

export type SimpleFormat = 'html' | 'json';
export type ApiVersion = '1.0' | '1.1';
export const SIMPLE_JSON_CONTENT_TYPE = 'application/vnd.pypi.simple.v1+json';
export const SIMPLE_HTML_CONTENT_TYPE = 'application/vnd.pypi.simple.v1+html';

export interface RenderOptions {
  /** The URL of a wheel file as the page links it; default: the file name (relative to the project page). */
  fileUrl?: (entry: WheelEntry) => string;
  /** PEP 691 api-version: "1.1" (default, PEP 700: sizes, upload times, versions) or "1.0". */
  apiVersion?: ApiVersion;
  /**
   * Also emit the pre-PEP 714 names (`data-dist-info-metadata`, `dist-info-metadata`). Off by default, as on PyPI:
   * pip 23.0.x (bundled with Python 3.8 to 3.10) follows them and then refuses any dependency whose METADATA
   * Name is spelled differently from the requirement ("inconsistent Name"); PEP 714 renamed the field for that.
   */
  distInfoMetadata?: boolean;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const defaultFileUrl = (e: WheelEntry): string => encodeURIComponent(e.filename);

/** PEP 503 / 691 project list. */
export function renderProjectList(projects: NormalizedName[], format: SimpleFormat, options: { apiVersion?: ApiVersion } = {}): string {
  const apiVersion = options.apiVersion ?? '1.1';
  const sorted = [...projects].sort();
  if (format === 'json') {
    return JSON.stringify({ meta: { 'api-version': apiVersion }, projects: sorted.map((name) => ({ name })) });
  }
  const links = sorted.map((p) => `    <a href="${escapeHtml(encodeURIComponent(p))}/">${escapeHtml(p)}</a>`).join('\n');
  return `<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="${apiVersion}">
    <title>Simple index</title>
  </head>
  <body>
${links}
  </body>
</html>
`;
}

/** PEP 700 wants "yyyy-mm-ddThh:mm:ss.ffffffZ". */
function uploadTime(iso: string): string {
  return iso.replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** PEP 503 / 691 project page: every wheel with its sha256, Requires-Python and PEP 658/714 metadata hash. */
export function renderProjectPage(
  project: NormalizedName,
  entries: WheelEntry[],
  format: SimpleFormat,
  options: RenderOptions = {},
): string {
  const fileUrl = options.fileUrl ?? defaultFileUrl;
  const apiVersion = options.apiVersion ?? '1.1';
  const files = entries
    .filter((e) => e.name === project)
    .sort((a, b) => compareVersions(a.version, b.version) || (a.filename < b.filename ? -1 : 1));
  if (format === 'json') {
    const body: Record<string, unknown> = {
      meta: { 'api-version': apiVersion },
      name: project,
      files: files.map((e) => ({
        filename: e.filename,
        url: fileUrl(e),
        hashes: { sha256: e.sha256 },
        'requires-python': e.requiresPython,
        'core-metadata': { sha256: e.metadataSha256 },
        ...(options.distInfoMetadata ? { 'dist-info-metadata': { sha256: e.metadataSha256 } } : {}),
        ...(apiVersion === '1.1' ? { size: e.size, 'upload-time': uploadTime(e.addedAt) } : {}),
      })),
    };
    if (apiVersion === '1.1') body.versions = [...new Set(files.map((e) => e.version))];
    return JSON.stringify(body);
  }
  const links = files
    .map((e) => {
      const attrs = [`href="${escapeHtml(`${fileUrl(e)}#sha256=${e.sha256}`)}"`];
      if (e.requiresPython) attrs.push(`data-requires-python="${escapeHtml(e.requiresPython)}"`);
      if (options.distInfoMetadata) attrs.push(`data-dist-info-metadata="sha256=${e.metadataSha256}"`);
      attrs.push(`data-core-metadata="sha256=${e.metadataSha256}"`);
      return `    <a ${attrs.join(' ')}>${escapeHtml(e.filename)}</a><br>`;
    })
    .join('\n');
  return `<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="${apiVersion}">
    <title>Links for ${escapeHtml(project)}</title>
  </head>
  <body>
    <h1>Links for ${escapeHtml(project)}</h1>
${links}
  </body>
</html>
`;
}

/**
 * Writes a static simple index under `outDir`: `simple/index.html` (+ `index.json`), and per project
 * `simple/<project>/index.html` (+ `index.json`), its wheels (hard links when possible, else copies) and
 * `<wheel>.metadata` files. pip reads it with `--index-url file://<outDir>/simple`. Replaces what was there.
 */
export async function writeStaticIndex(store: WheelStore, outDir: string): Promise<{ projects: number; files: number }> {
  const simple = join(outDir, 'simple');
  await rm(simple, { recursive: true, force: true });
  await mkdir(simple, { recursive: true });
  const entries = await store.list();
  const projects = [...new Set(entries.map((e) => e.name))].sort();
  await writeFile(join(simple, 'index.html'), renderProjectList(projects, 'html'));
  await writeFile(join(simple, 'index.json'), renderProjectList(projects, 'json'));
  const writeProject = async (project: NormalizedName): Promise<void> => {
    const dir = join(simple, project);
    await mkdir(dir);
    const mine = entries.filter((e) => e.name === project);
    for (const e of mine) {
      const dest = join(dir, e.filename);
      if (store instanceof FsWheelStore) {
        try {
          await link(store.pathOf(e.filename), dest);
        } catch {
          await copyFile(store.pathOf(e.filename), dest);
        }
        await copyFile(store.metadataFile(e.filename), `${dest}.metadata`).catch(async () =>
          writeFile(`${dest}.metadata`, await store.metadataBytes(e.filename)),
        );
      } else {
        await pipeline(await store.openRead(e.filename), createWriteStream(dest));
        await writeFile(`${dest}.metadata`, await store.metadata(e.filename));
      }
    }
    await writeFile(join(dir, 'index.html'), renderProjectPage(project, mine, 'html'));
    await writeFile(join(dir, 'index.json'), renderProjectPage(project, mine, 'json'));
  };
  // A few projects at a time: the work is small file operations, bound by their latency.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < projects.length) await writeProject(projects[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(8, projects.length) }, worker));
  return { projects: projects.length, files: entries.length };
}

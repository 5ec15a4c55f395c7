/**
 * The web page: server-rendered HTML with a little script. `/` lists projects (search box, filtered
 * as you type and by `?q=`), recent builds, and a form to start a build with a token that has the build
 * scope; `/project/<name>` shows what PyPI does (summary, the description as Markdown with its HTML escaped or as
 * plain text, Requires-Python, dependencies) and the versions' files (tags, size, sha256, upload time, source,
 * builder — an anonymous reader sees an interpreter as its version, no server path);
 * `/builds/<id>` shows a build with its log following live (EventSource).
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { compareVersions } from '@dstack/recipe';
import { parseMetadata } from '@dstack/wheelhouse';
import type { BuildRecord } from './builds.js';
import type { ServerContext } from './context.js';
import { ServerError } from './errors.js';
import { checkProjectName, normalizeProjectName } from './paths.js';
import { redactRecord } from './redact.js';
import { fileUrl } from './simple.js';
import { esc } from './html.js';
import { describeBuilder, describeSource, renderDescription, splitRequirement } from './project-meta.js';
import { metadataBytes, type ServerWheelEntry } from './store.js';

export { esc };

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The compatibility tag triple(s) of a wheel file name: "py3-none-any". */
export function wheelTags(filename: string): string {
  const parts = filename.replace(/\.whl$/, '').split('-');
  return parts.length >= 5 ? parts.slice(-3).join('-') : '';
}

const when = (iso: string | null): string =>
  iso === null
    ? ''
    : `<time datetime="${esc(iso)}">${esc(iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</time>`;

const CSS = `
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2433;--muted:#667085;--line:#e4e7ec;--accent:#2f6fed;--ok:#12805c;--bad:#c4320a;--warn:#b54708}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{background:#101828;color:#fff;padding:0 24px;display:flex;align-items:center;gap:24px;height:56px}
header a.brand{color:#fff;text-decoration:none;font-weight:700;font-size:18px;letter-spacing:.2px}
header a.brand span{color:#8ab4ff}header nav a{color:#d0d5dd;text-decoration:none;margin-right:16px}header nav a:hover{color:#fff}
header .token{margin-left:auto;display:flex;gap:8px;align-items:center;font-size:13px;color:#d0d5dd}
header .token input{width:180px;padding:4px 8px;border-radius:6px;border:1px solid #475467;background:#1d2939;color:#fff}
main{max-width:1180px;margin:24px auto;padding:0 24px;display:grid;gap:24px}
.grid{display:grid;grid-template-columns:2fr 1fr;gap:24px}@media(max-width:900px){.grid{grid-template-columns:1fr}}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:20px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}.muted{color:var(--muted)}
.stats{display:flex;gap:32px;margin-top:8px}.stats b{font-size:20px;display:block}
input[type=search]{width:100%;padding:10px 12px;font-size:15px;border:1px solid var(--line);border-radius:8px;margin-bottom:12px}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:8px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.4px;color:var(--muted);font-weight:600}
td a{color:var(--accent);text-decoration:none}td a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
.tag{display:inline-block;background:#eef4ff;color:#3538cd;border-radius:999px;padding:1px 8px;font-size:12px;margin:1px 2px 1px 0}
.state{display:inline-block;border-radius:999px;padding:1px 10px;font-size:12px;font-weight:600}
.state-succeeded{background:#ecfdf3;color:var(--ok)}.state-failed,.state-cancelled{background:#fef3f2;color:var(--bad)}
.state-running{background:#eff8ff;color:var(--accent)}.state-queued{background:#fffaeb;color:var(--warn)}
textarea{width:100%;min-height:140px;font-family:ui-monospace,monospace;font-size:13px;border:1px solid var(--line);border-radius:8px;padding:10px}
button{background:var(--accent);color:#fff;border:0;border-radius:8px;padding:9px 16px;font-weight:600;cursor:pointer}button:disabled{background:#98a2b3;cursor:not-allowed}
label{font-size:13px;color:var(--muted);display:block;margin:8px 0 4px}.row{display:flex;gap:12px;align-items:end}
.row input{padding:7px 10px;border:1px solid var(--line);border-radius:8px}
pre.log{background:#0c111d;color:#d0d5dd;border-radius:8px;padding:14px;max-height:520px;overflow:auto;font-size:12.5px;line-height:1.45;white-space:pre-wrap}
.version{margin-top:18px}.version h3{font-size:15px;margin:0 0 6px}.copy{cursor:pointer;border:0;background:none;color:var(--accent);padding:0;font-size:12px}
.snippet{background:#f2f4f7;border-radius:8px;padding:8px 12px;display:inline-block}.empty{padding:24px;text-align:center;color:var(--muted)}
.msg{margin-top:8px;font-size:13px}.msg.err{color:var(--bad)}
.token-label{margin:0;color:inherit}aside.side{display:grid;gap:24px;align-content:start}.spaced{margin-top:16px}.wrap{white-space:pre-wrap}
.summary{font-size:16px;margin:4px 0 12px}.description{overflow-wrap:anywhere}.description img{max-width:100%}.description pre{background:#f2f4f7;border-radius:8px;padding:10px;overflow:auto}#dependencies{margin:0;padding-left:18px}
`;

const SCRIPT = `
const tokenInput=document.getElementById('token');
const getToken=()=>sessionStorage.getItem('dstack-token')||'';
if(tokenInput){tokenInput.value=getToken();tokenInput.addEventListener('change',()=>{sessionStorage.setItem('dstack-token',tokenInput.value.trim());refreshScopes();});}
const authHeaders=()=>getToken()?{authorization:'Bearer '+getToken()}:{};
async function refreshScopes(){const f=document.getElementById('build-form');if(!f)return;
  const r=await fetch('/api/whoami',{headers:authHeaders()});const who=r.ok?await r.json():{scopes:[]};
  const can=(who.scopes||[]).includes('build');f.querySelector('button').disabled=!can;
  document.getElementById('build-hint').textContent=can?('Signed in as '+who.name+': builds run code on this server.'):'Enter a token with the build scope (top right) to start builds.';}
refreshScopes();
const search=document.getElementById('search');
if(search){const rows=[...document.querySelectorAll('[data-project]')];const f=()=>{const q=search.value.trim().toLowerCase().replace(/[-_.]+/g,'-');let n=0;
  for(const r of rows){const show=r.dataset.project.includes(q);r.hidden=!show;if(show)n++;}document.getElementById('count').textContent=n;};
  search.addEventListener('input',f);f();}
const form=document.getElementById('build-form');
if(form){form.addEventListener('submit',async(e)=>{e.preventDefault();const msg=document.getElementById('build-msg');msg.className='msg';msg.textContent='Submitting…';
  const body={recipe:form.recipe.value};if(form.python.value.trim())body.python=form.python.value.trim();
  const r=await fetch('/api/builds',{method:'POST',headers:{'content-type':'application/json',...authHeaders()},body:JSON.stringify(body)});
  const j=await r.json();if(!r.ok){msg.className='msg err';msg.textContent=j.error?j.error.message:('HTTP '+r.status);return;}
  location.href='/builds/'+j.id;});}
document.querySelectorAll('.copy').forEach(b=>b.addEventListener('click',()=>{navigator.clipboard&&navigator.clipboard.writeText(b.dataset.copy);b.textContent='copied';}));
const log=document.getElementById('log');
if(log){const state=document.getElementById('state');const es=new EventSource(log.dataset.src);
  es.addEventListener('log',(e)=>{const atEnd=log.scrollTop+log.clientHeight>=log.scrollHeight-4;log.textContent+=JSON.parse(e.data)+'\\n';if(atEnd)log.scrollTop=log.scrollHeight;});
  const setState=(e)=>{const rec=JSON.parse(e.data);state.textContent=rec.state;state.className='state state-'+rec.state;
    if(rec.outcome){const w=document.getElementById('wheels');w.innerHTML='';for(const x of rec.outcome.wheels){const li=document.createElement('li');li.textContent=x.filename+' ('+x.status+')';w.appendChild(li);}}
    if(rec.error){document.getElementById('error').textContent=rec.error;}};
  es.addEventListener('state',setState);es.addEventListener('end',(e)=>{setState(e);es.close();});}
`;

/**
 * Content-Security-Policy of every HTML page: the one inline script and style block allowed by their
 * hashes, nothing else inline, no framing (issue 12, point 8).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'`,
  `style-src 'sha256-${createHash('sha256').update(CSS).digest('base64')}'`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · dstack-factory</title><style>${CSS}</style></head>
<body><header><a class="brand" href="/">dstack<span>-factory</span></a>
<nav><a href="/">Projects</a><a href="/#builds">Builds</a><a href="/simple/">Simple index</a></nav>
<div class="token"><label for="token" class="token-label">Token</label><input id="token" type="password" placeholder="paste a token" autocomplete="off"></div>
</header>
<main>${body}</main><script>${SCRIPT}</script></body></html>`;
}

export function errorPage(status: number, message: string): string {
  return layout(
    `Error ${status}`,
    `<div class="card"><h1>${status}</h1><p>${esc(message)}</p><p><a href="/">Back to the projects</a></p></div>`,
  );
}

interface ProjectSummary {
  name: string;
  versions: string[];
  latest: string;
  files: number;
  size: number;
  lastUpload: string;
}

function summarize(entries: ServerWheelEntry[]): ProjectSummary[] {
  const byName = new Map<string, ServerWheelEntry[]>();
  for (const e of entries) {
    const list = byName.get(e.name) ?? [];
    list.push(e);
    byName.set(e.name, list);
  }
  return [...byName.entries()]
    .map(([name, list]) => {
      const newest = [...list].sort((a, b) => b.addedAt.localeCompare(a.addedAt))[0]!;
      const versions = [...new Set(list.map((e) => e.version))];
      return {
        name,
        versions,
        latest: newest.version,
        files: list.length,
        size: list.reduce((n, e) => n + e.size, 0),
        lastUpload: newest.addedAt,
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function buildRows(builds: BuildRecord[]): string {
  if (builds.length === 0) return '<div class="empty">No builds yet.</div>';
  return `<table><thead><tr><th>Build</th><th>State</th><th>Recipe</th><th>Started</th></tr></thead><tbody>${builds
    .map((b) => {
      const first =
        b.request.recipe.split('\n').find((l) => l.trim() !== '' && !l.trim().startsWith('#')) ?? '';
      return `<tr><td><a href="/builds/${esc(b.id)}" class="mono">${esc(b.id.slice(0, 8))}</a></td><td><span class="state state-${esc(b.state)}">${esc(b.state)}</span></td><td class="mono">${esc(first.slice(0, 40))}</td><td>${when(b.startedAt ?? b.createdAt)}</td></tr>`;
    })
    .join('')}</tbody></table>`;
}

/** Sorts newest version first: PEP 440 order, text order for a version that is not PEP 440. */
function newestVersion(a: string, b: string): number {
  try {
    return compareVersions(b, a);
  } catch {
    return b.localeCompare(a);
  }
}

export function registerWebRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/api/whoami', async (request) => {
    const principal = ctx.authorize(request, 'read');
    return principal === null
      ? { name: null, scopes: ['read'] }
      : { name: principal.name, scopes: [...principal.scopes].sort() };
  });

  app.get('/', async (request, reply) => {
    ctx.authorize(request, 'read');
    let buildsReadable = true;
    try {
      ctx.authorizeBuilds(request);
    } catch {
      buildsReadable = false;
    }
    const q = String((request.query as { q?: string }).q ?? '');
    const all = summarize((await ctx.index.snapshot()).entries);
    const projects = q ? all.filter((p) => p.name.includes(normalizeProjectName(q))) : all;
    const files = all.reduce((n, p) => n + p.files, 0);
    const size = all.reduce((n, p) => n + p.size, 0);
    const rows =
      projects.length === 0
        ? `<tr><td colspan="5" class="empty">${all.length === 0 ? 'The wheelhouse is empty: upload wheels with twine or start a build.' : 'No project matches.'}</td></tr>`
        : projects
            .map(
              (p) =>
                `<tr data-project="${esc(p.name)}"><td><a href="/project/${esc(p.name)}">${esc(p.name)}</a></td><td>${esc(p.latest)}</td><td>${p.versions.length}</td><td>${p.files} · ${formatSize(p.size)}</td><td>${when(p.lastUpload)}</td></tr>`,
            )
            .join('');
    const origin = `${request.protocol}://${request.host}`;
    const body = `
<div class="card"><h1>Wheelhouse</h1><div class="muted">pip install --index-url <code>${esc(origin)}/simple/</code> · twine upload --repository-url <code>${esc(origin)}/</code></div>
<div class="stats"><div><b>${all.length}</b><span class="muted">projects</span></div><div><b>${files}</b><span class="muted">wheels</span></div><div><b>${formatSize(size)}</b><span class="muted">stored</span></div></div></div>
<div class="grid">
<section class="card"><h2>Projects <span class="muted">(<span id="count">${projects.length}</span>)</span></h2>
<form method="get" action="/"><input id="search" type="search" name="q" value="${esc(q)}" placeholder="Search projects…" autocomplete="off"></form>
<table><thead><tr><th>Project</th><th>Latest</th><th>Versions</th><th>Files</th><th>Last upload</th></tr></thead><tbody id="projects">${rows}</tbody></table></section>
<aside class="side">
<section class="card" id="builds"><h2>Recent builds</h2>${!ctx.builds ? '<div class="empty">Builds are not enabled on this server.</div>' : buildsReadable ? buildRows(ctx.builds.list(10)) : '<div class="empty">Builds are shown to tokens with the read scope.</div>'}</section>
${
  ctx.builds
    ? `<section class="card"><h2>Start a build</h2><form id="build-form"><label for="recipe">Recipe (pip requirements)</label><textarea id="recipe" name="recipe" placeholder="requests==2.31.0&#10;lxml&gt;=5"></textarea>
<div class="row"><div><label for="python">Python</label><input id="python" name="python" placeholder="3.11"></div><button type="submit" disabled>Start build</button></div>
<div id="build-hint" class="msg muted"></div><div id="build-msg" class="msg"></div></form></section>`
    : ''
}
</aside></div>`;
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', PAGE_CSP)
      .header('cache-control', 'no-cache')
      .send(layout('Wheelhouse', body));
  });

  app.get('/project/:name', async (request, reply) => {
    const anonymous = ctx.authorize(request, 'read') === null;
    const raw = checkProjectName((request.params as { name: string }).name);
    const name = normalizeProjectName(raw);
    if (name !== raw) return reply.redirect(`/project/${name}`, 301);
    const snapshot = await ctx.index.snapshot();
    const entries = snapshot.byProject.get(name) ?? [];
    if (entries.length === 0)
      throw new ServerError('NOT_FOUND', `no project named "${name}" in this wheelhouse`);
    // Newest version first (PEP 440 order, as PyPI lists releases); a version's files newest upload first.
    const byVersion = new Map<string, ServerWheelEntry[]>();
    const ordered = [...entries].sort((a, b) => newestVersion(a.version, b.version) || b.addedAt.localeCompare(a.addedAt));
    for (const e of ordered) byVersion.set(e.version, [...(byVersion.get(e.version) ?? []), e]);
    const sections = [...byVersion.entries()]
      .map(
        ([version, files]) => `<div class="version" data-version="${esc(version)}"><h3>${esc(version)}</h3>
<table><thead><tr><th>File</th><th>Tags</th><th>Size</th><th>sha256</th><th>Uploaded</th><th>Source</th><th>Built by</th></tr></thead><tbody>${files
          .map((f) => {
            const tags = wheelTags(f.filename)
              .split('-')
              .map((t) => `<span class="tag">${esc(t)}</span>`)
              .join('');
            return `<tr data-file="${esc(f.filename)}"><td><a href="${esc(fileUrl(f.filename))}" class="mono">${esc(f.filename)}</a></td><td>${tags}</td><td>${formatSize(f.size)}</td><td><span class="mono" title="${esc(f.sha256)}">${esc(f.sha256.slice(0, 12))}…</span> <button class="copy" data-copy="${esc(f.sha256)}">copy</button></td><td>${when(f.addedAt)}</td><td class="muted source">${esc(describeSource(f, anonymous))}</td><td class="muted builder">${esc(describeBuilder(f, anonymous))}</td></tr>`;
          })
          .join('')}</tbody></table></div>`,
      )
      .join('');
    const latest = [...byVersion.keys()][0]!;
    const shown = byVersion.get(latest)![0]!;
    // What PyPI shows, from the latest version's METADATA (PEP 658's copy in the wheelhouse's records).
    const meta = parseMetadata((await metadataBytes(ctx.store, shown.filename)).toString('utf8'), shown.filename);
    const dependencies = meta.requiresDist
      .map((line) => {
        const { name: dep, rest } = splitRequirement(line);
        const normal = normalizeProjectName(dep);
        const link = snapshot.byProject.has(normal) ? `<a href="/project/${esc(normal)}">${esc(dep)}</a>` : esc(dep);
        return `<li data-dependency="${esc(normal)}">${link}${rest ? ` <code>${esc(rest)}</code>` : ''}</li>`;
      })
      .join('');
    const origin = `${request.protocol}://${request.host}`;
    const body = `<div class="card"><div class="muted"><a href="/">Projects</a> /</div><h1>${esc(name)} <span class="muted">${esc(latest)}</span></h1>
${meta.summary ? `<p class="summary">${esc(meta.summary)}</p>` : ''}
<div class="snippet mono">pip install --index-url ${esc(origin)}/simple/ ${esc(name)}==${esc(latest)}</div>
<div class="stats"><div><b>${byVersion.size}</b><span class="muted">versions</span></div><div><b>${entries.length}</b><span class="muted">wheels</span></div><div><b id="requires-python">${esc(meta.requiresPython ?? 'any')}</b><span class="muted">Requires-Python</span></div></div></div>
<div class="grid"><section class="card"><h2>Description</h2>${meta.description ? renderDescription(meta.description, meta.descriptionContentType) : '<div class="empty">No description.</div>'}</section>
<aside class="card"><h2>Dependencies</h2>${dependencies ? `<ul id="dependencies">${dependencies}</ul>` : '<div class="empty" id="dependencies">None.</div>'}</aside></div>
<div class="card"><h2>Files</h2>${sections}</div>`;
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', PAGE_CSP)
      .header('cache-control', 'no-cache')
      .send(layout(name, body));
  });

  app.get('/builds/:id', async (request, reply) => {
    const anonymous = ctx.authorizeBuilds(request) === null;
    const { id } = request.params as { id: string };
    const found = ctx.builds?.get(id) ?? null;
    if (found === null) throw new ServerError('BUILD_NOT_FOUND', `no build with id ${id}`);
    const record = anonymous ? redactRecord(found) : found;
    const wheels = (record.outcome?.wheels ?? [])
      .map((w) => `<li>${esc(w.filename)} (${esc(w.status)})</li>`)
      .join('');
    const body = `<div class="card"><div class="muted"><a href="/#builds">Builds</a> /</div><h1>Build <span class="mono">${esc(record.id.slice(0, 8))}</span> <span id="state" class="state state-${esc(record.state)}">${esc(record.state)}</span></h1>
<div class="muted">submitted by ${esc(record.submittedBy)} · ${when(record.createdAt)}${record.request.python ? ` · Python ${esc(record.request.python)}` : ''}</div>
<div class="grid spaced"><div><h2>Log</h2><pre class="log" id="log" data-src="/api/builds/${esc(record.id)}/log"></pre><div id="error" class="msg err">${esc(record.error ?? '')}</div></div>
<div><h2>Recipe</h2><pre class="mono wrap">${esc(record.request.recipe)}</pre><h2>Wheels</h2><ul id="wheels">${wheels}</ul></div></div></div>`;
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', PAGE_CSP)
      .header('cache-control', 'no-cache')
      .send(layout(`Build ${record.id.slice(0, 8)}`, body));
  });
}

// `image self`: an image of this tool — CLI and server — assembled without a build or a daemon: a base, the Node
// binary running now, and the CLI's esbuild bundle with the few packages the bundle leaves out (bundle.mjs's
// `external`). CI runners and index replicas (`serve --store registry:…`) run it without Node installed.
import { createReadStream, existsSync } from 'node:fs';
import { lstat, mkdtemp, readFile, readdir, readlink, realpath, rm, stat } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { LayerEntry } from '@dstack/image';
import { dockerConfigAuths } from '@dstack/oci';
import type { CliContext, Runner } from '../context.js';
import { UsageError } from '../errors.js';
import { execFileAsync as exec } from '../exec.js';

/** Where the tool lives in the image; `dstack-factory` is on PATH (/usr/local/bin), as is `node`. */
export const SELF_PREFIX = 'opt/dstack-factory';

/** Packages the bundle loads by a computed name (never seen as an import in its text): bundle.mjs keeps them out. */
const LOADED_BY_NAME = ['pino', 'pino-pretty', 'dockerode'];

/** The CLI package's folder (its package.json names dstack-factory), from this module's own place. */
async function cliRoot(): Promise<string> {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'dstack-factory') return dir;
    } catch {
      // no package.json here
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`dstack-factory's package.json is not above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Every file under `dir` (recursively), but not what `skip` refuses (given the path relative to `dir`). */
async function filesUnder(dir: string, skip: (rel: string, isDir: boolean) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (skip(r, d.isDirectory())) continue;
      if (d.isDirectory()) await walk(r);
      else if (d.isFile() || d.isSymbolicLink()) out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/**
 * The bare module names a bundle imports: its `import … from "x"` statements (esbuild writes them at the start of
 * a line), `import("x")` and `require("x")` with a literal package name; Node's own are left out.
 */
export function bundleImports(code: string): string[] {
  const SPEC = '((?:@[a-z0-9][\\w.-]*\\/)?[a-z0-9][\\w.-]*(?:\\/[\\w.-]+)*)';
  const patterns = [
    new RegExp(`^import\\s[^;]*?\\bfrom\\s*"${SPEC}";`, 'gm'),
    new RegExp(`^import\\s*"${SPEC}";`, 'gm'),
    new RegExp(`\\bimport\\(\\s*"${SPEC}"\\s*\\)`, 'g'),
    new RegExp(`\\brequire\\(\\s*"${SPEC}"\\s*\\)`, 'g'),
  ];
  const names = new Set<string>();
  for (const re of patterns) {
    for (const m of code.matchAll(re)) {
      const spec = m[1]!;
      if (isBuiltin(spec)) continue;
      const parts = spec.split('/');
      names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
    }
  }
  return [...names].sort();
}

/** A package's folder as Node would resolve `name` from `from` (the nearest node_modules up the tree). */
function resolvePackage(name: string, from: string): string | null {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

/**
 * The packages `roots` need, each with where it goes under the image's node_modules (its path below the topmost
 * node_modules it was found in, so nested copies stay nested). Optional dependencies that are not installed are
 * left out, as npm leaves them out.
 */
export async function moduleClosure(roots: string[], from: string): Promise<{ dir: string; dest: string }[]> {
  const found = new Map<string, string>();
  const queue: [string, string, boolean][] = roots.map((r) => [r, from, false]);
  while (queue.length > 0) {
    const [name, at, optional] = queue.shift()!;
    const dir = resolvePackage(name, at);
    if (!dir) {
      if (optional) continue;
      throw new Error(`${name} (needed by ${at}) is not installed: run npm ci first`);
    }
    const real = await realpath(dir);
    if (found.has(real)) continue;
    const i = dir.indexOf(`${path.sep}node_modules${path.sep}`);
    found.set(real, dir.slice(i + 1));
    const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const dep of Object.keys(pkg.dependencies ?? {})) queue.push([dep, dir, false]);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) queue.push([dep, dir, true]);
  }
  return [...found].map(([dir, dest]) => ({ dir, dest })).sort((a, b) => (a.dest < b.dest ? -1 : 1));
}

async function fileEntries(root: string, rels: string[], dest: string): Promise<LayerEntry[]> {
  return Promise.all(
    rels.map(async (rel): Promise<LayerEntry> => {
      const abs = path.join(root, rel);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) return { path: `${dest}/${rel}`, type: 'symlink', linkname: await readlink(abs) };
      return { path: `${dest}/${rel}`, type: 'file', mode: (st.mode & 0o111) !== 0 ? 0o755 : 0o644, size: st.size, open: () => createReadStream(abs) };
    }),
  );
}

export interface SelfFiles {
  node: LayerEntry[];
  modules: LayerEntry[];
  app: LayerEntry[];
  version: string;
}

/**
 * The three layers' entries: the Node binary (changes least), the packages the bundle leaves out, and the bundle
 * with package.json, bin/ and images/. From the sources (a checkout), the bundle is made first into a temp folder.
 */
export async function selfFiles(options: { nodeBinary?: string } = {}): Promise<{ files: SelfFiles; cleanup: () => Promise<void> }> {
  const root = await cliRoot();
  const here = fileURLToPath(import.meta.url);
  let dist = path.dirname(here);
  let cleanup = async (): Promise<void> => {};
  if (!here.endsWith('.cjs')) {
    // Running from src/ (tsx, tests): bundle exactly these sources, never a dist/ that may be stale.
    const tmp = await mkdtemp(path.join(tmpdir(), 'dstack-self-bundle-'));
    await exec(process.execPath, [path.join(root, 'bundle.mjs'), path.join(tmp, 'dist')], { cwd: root });
    dist = path.join(tmp, 'dist');
    cleanup = () => rm(tmp, { recursive: true, force: true });
  }
  const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  const code = (await filesUnder(dist, (rel, isDir) => isDir ? rel === 'images' : !rel.endsWith('.cjs'))).filter((f) => f.endsWith('.cjs'));
  const imports = new Set(LOADED_BY_NAME);
  for (const f of code) for (const name of bundleImports(await readFile(path.join(dist, f), 'utf8'))) imports.add(name);
  const modules: LayerEntry[] = [];
  for (const { dir, dest } of await moduleClosure([...imports].sort(), root)) {
    const rels = await filesUnder(dir, (rel, isDir) => isDir && (rel === 'node_modules' || rel === '.bin'));
    modules.push(...(await fileEntries(dir, rels, `${SELF_PREFIX}/${dest}`)));
  }
  const images = existsSync(path.join(dist, 'images')) ? path.join(dist, 'images') : path.join(root, '..', '..', 'images');
  const imageFiles = (await filesUnder(images, (rel) => /(^|\/)__pycache__$|\.pyc$/.test(rel))).filter(Boolean);
  const node = options.nodeBinary ?? process.execPath;
  const nodeSize = (await stat(node)).size;
  const files: SelfFiles = {
    version: pkg.version,
    node: [{ path: 'usr/local/bin/node', type: 'file', mode: 0o755, size: nodeSize, open: () => createReadStream(node) }],
    modules,
    app: [
      ...(await fileEntries(root, ['package.json', 'bin/dstack-factory.cjs'], SELF_PREFIX)),
      ...(await fileEntries(dist, code, `${SELF_PREFIX}/dist`)),
      ...(await fileEntries(images, imageFiles, `${SELF_PREFIX}/dist/images`)),
      { path: 'usr/local/bin/dstack-factory', type: 'symlink', linkname: `/${SELF_PREFIX}/bin/dstack-factory.cjs` },
    ],
  };
  return { files, cleanup };
}

interface SelfOptions {
  base: string;
  output: string;
  tag?: string;
  cache?: string;
  compression?: string;
  insecureRegistry?: string[];
  json?: boolean;
}

export function registerImageSelfCommand(image: Command, run: Runner, helpers: { cacheDir: (ctx: CliContext, opt: string | undefined) => string; dockerFrom: (env: NodeJS.ProcessEnv) => Promise<import('dockerode')> }): void {
  image
    .command('self')
    .description('an image of dstack-factory itself (CLI and server: `docker run IMAGE serve --store registry:HOST/REPO`), daemonless: the base + this Node binary + the CLI bundle')
    .option('--base <ref>', 'the base (glibc and libstdc++; Debian bookworm-slim has both)', 'registry:debian:bookworm-slim')
    .option('--output <dest>', 'docker:TAG | oci:DIR[:REF] | archive:FILE | registry:REF (default docker:dstack-factory/self:VERSION)')
    .option('--tag <name>', 'the tag recorded in an archive: output')
    .option('--compression <gzip|none>', 'how new layers are stored (default: none for docker:, gzip otherwise)')
    .option('--cache <dir>', 'layer and blob cache (default: $DSTACK_IMAGE_CACHE or ~/.cache/dstack-factory/image)')
    .option('--insecure-registry <host...>', 'registries reached over plain HTTP (loopback ones always are)')
    .option('--json', 'print the result as JSON')
    .action(
      run(async (ctx, opts: SelfOptions) => {
        const { BlobCache, RegistryClient, appendLayers, mutateConfig, openImage, parseImageSpec, sourceDateEpoch, writeImage, writeLayer } = await import('@dstack/image');
        const { files, cleanup } = await selfFiles();
        try {
          const outputText = opts.output ?? `docker:dstack-factory/self:${files.version}`;
          const output = parseImageSpec(outputText);
          const baseSpec = parseImageSpec(opts.base);
          const compression = opts.compression ?? (output.kind === 'docker' ? 'none' : 'gzip');
          if (compression !== 'gzip' && compression !== 'none') throw new UsageError(`--compression is gzip or none, not "${compression}"`);
          const resolveSpec = <T extends { kind: string }>(s: T): T =>
            s.kind === 'oci' ? { ...s, dir: path.resolve(ctx.cwd, (s as unknown as { dir: string }).dir) } : s.kind === 'archive' ? { ...s, file: path.resolve(ctx.cwd, (s as unknown as { file: string }).file) } : s;
          const logger = ctx.logger.child({ component: 'image' });
          const cache = new BlobCache(helpers.cacheDir(ctx, opts.cache));
          const registry = new RegistryClient({ credentials: dockerConfigAuths(ctx.env), insecure: opts.insecureRegistry ?? [], logger });
          const engine = baseSpec.kind === 'docker' || output.kind === 'docker' ? await helpers.dockerFrom(ctx.env) : null;
          const docker = () => {
            if (!engine) throw new Error('no docker: image here, yet the engine was asked for');
            return engine;
          };
          const base = await openImage(resolveSpec(baseSpec), { cache, docker, registry });
          const mtime = sourceDateEpoch(ctx.env);
          const layer = (entries: LayerEntry[]) => writeLayer(entries, { cache, mtime, compression });
          const [node, modules, app] = [await layer(files.node), await layer(files.modules), await layer(files.app)];
          const created = new Date(mtime * 1000).toISOString();
          let img = appendLayers(base, [
            { layer: node, history: { created, created_by: `dstack-factory image self: node ${process.version}` } },
            { layer: modules, history: { created, created_by: 'dstack-factory image self: the packages the bundle loads' } },
            { layer: app, history: { created, created_by: `dstack-factory image self: dstack-factory ${files.version}` } },
          ]);
          img = mutateConfig(
            img,
            (c) => ({
              ...c,
              Entrypoint: ['dstack-factory'],
              Cmd: ['--help'],
              ExposedPorts: { '8080/tcp': {} },
              Labels: { ...(c.Labels ?? {}), 'org.opencontainers.image.title': 'dstack-factory', 'org.opencontainers.image.version': files.version, 'org.opencontainers.image.base.name': opts.base },
            }),
            { created },
          );
          const out = await writeImage(img, resolveSpec(output), {
            docker,
            registry,
            ...(opts.tag ? { tag: opts.tag } : {}),
            ...(baseSpec.kind === 'docker' ? { reuseFrom: [(baseSpec as { name: string }).name] } : {}),
          });
          const sizes = { node: node.size, modules: modules.size, app: app.size };
          if (opts.json) ctx.stdout.write(`${JSON.stringify({ digest: img.digest(), output: out, layers: sizes }, null, 2)}\n`);
          else ctx.stdout.write(`node ${node.size} B, packages ${modules.size} B, dstack-factory ${app.size} B\nimage ${img.digest()} -> ${out.where}  ${out.digest}\n`);
          return 0;
        } finally {
          await cleanup();
        }
      }),
    );
}

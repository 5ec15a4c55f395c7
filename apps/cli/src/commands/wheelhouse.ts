import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { WheelEntry, WheelStore } from '@dstack/wheelhouse';
import type { CliContext, Runner } from '../context.js';
import { UsageError } from '../errors.js';

interface StoreOptions {
  wheelhouse?: string;
  insecureRegistry?: string[];
  /** Another repository of the same registry whose blobs are mounted instead of uploaded. */
  mountFrom?: string;
}

/**
 * The store, with its packages loaded on first use (not at start-up): the folder, or `registry:HOST/REPO` (an
 * OCI registry, with the credentials `docker login` stored).
 */
export async function openStore(ctx: CliContext, opts: StoreOptions, location?: string): Promise<WheelStore> {
  const where = location ?? opts.wheelhouse ?? ctx.env.WHEELHOUSE ?? 'wheelhouse';
  const logger = ctx.logger.child({ component: 'wheelhouse' });
  if (where.startsWith('registry:')) {
    const [{ RegistryWheelStore }, { RegistryClient, dockerConfigAuths }] = await Promise.all([
      import('@dstack/wheelhouse-registry'),
      import('@dstack/oci'),
    ]);
    const client = new RegistryClient({ credentials: dockerConfigAuths(ctx.env), insecure: opts.insecureRegistry ?? [], logger });
    return new RegistryWheelStore(where, { client, logger, ...(opts.mountFrom ? { mountFrom: opts.mountFrom } : {}) });
  }
  const { FsWheelStore } = await import('@dstack/wheelhouse');
  return new FsWheelStore(path.resolve(ctx.cwd, where), { logger });
}

/** How messages name a store: the folder, or registry:HOST/REPO. */
function locationOf(store: WheelStore): string {
  const s = store as WheelStore & { dir?: string; location?: string };
  return s.location ?? s.dir ?? 'the store';
}

const withStore = (cmd: Command): Command =>
  cmd
    .option('--wheelhouse <dir|registry:HOST/REPO>', 'the wheelhouse: a folder (default: $WHEELHOUSE or ./wheelhouse), or a registry repository')
    .option('--insecure-registry <host...>', 'registries reached over plain HTTP (loopback ones always are)');

function builtByText(b: Record<string, string> | null): string {
  return b
    ? Object.entries(b)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')
    : '-';
}

/** The wheels list as aligned columns. */
export function renderWheelList(entries: WheelEntry[]): string {
  if (entries.length === 0) return 'no wheels\n';
  const rows = entries.map((e) => [
    e.filename,
    String(e.size),
    e.addedAt.slice(0, 19) + 'Z',
    builtByText(e.builtBy),
    e.sha256.slice(0, 12),
  ]);
  const head = ['wheel', 'bytes', 'added', 'built by', 'sha256'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

/** Each wheel and the libraries it needs from the system ("-" for none, "unknown" for records without them). */
export function renderNeeds(entries: WheelEntry[]): string {
  if (entries.length === 0) return 'no wheels\n';
  const width = Math.max('wheel'.length, ...entries.map((e) => e.filename.length));
  const needs = (e: WheelEntry): string => (e.needs === undefined ? 'unknown' : e.needs.length === 0 ? '-' : e.needs.join(' '));
  return `${['wheel'.padEnd(width) + '  needs', ...entries.map((e) => `${e.filename.padEnd(width)}  ${needs(e)}`)].join('\n')}\n`;
}

async function expandSources(inputs: string[], cwd: string): Promise<string[]> {
  const out: string[] = [];
  for (const input of inputs) {
    const p = path.resolve(cwd, input);
    let isDir = false;
    try {
      isDir = (await stat(p)).isDirectory();
    } catch {
      isDir = false;
    }
    if (isDir) {
      for (const f of (await readdir(p)).sort()) if (f.endsWith('.whl')) out.push(path.join(p, f));
    } else out.push(p);
  }
  return out;
}

function parseBuiltBy(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--built-by takes KEY=VALUE, not "${pair}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function registerWheelhouseCommands(program: Command, run: Runner): void {
  const wheelhouse = program
    .command('wheelhouse')
    .description(
      'the wheelhouse: a flat folder of validated wheels (pip --find-links reads it), served as an index',
    );

  withStore(
    wheelhouse
      .command('add')
      .description(
        'validate wheels and store them; prints added / present / refused for each (exit 1 if any is refused)',
      )
      .argument('<paths...>', 'wheel files, or folders whose *.whl to add')
      .option(
        '--overwrite',
        'replace the wheel of the same release (name, version, tags: any spelling) with different bytes instead of refusing it',
      )
      .option('--allow-build-tag', 'take wheels whose file name has a build tag (refused otherwise)')
      .option('--built-by <key=value...>', 'record which builder made the wheels (e.g. executor=local)'),
  ).action(
    run(
      async (
        ctx,
        paths: string[],
        opts: StoreOptions & { overwrite?: boolean; allowBuildTag?: boolean; builtBy?: string[] },
      ) => {
        const { WheelError } = await import('@dstack/wheelhouse');
        const store = await openStore(ctx, opts);
        const builtBy = parseBuiltBy(opts.builtBy);
        let refused = 0;
        for (const source of await expandSources(paths, ctx.cwd)) {
          try {
            const { status, entry } = await store.add(source, {
              overwrite: opts.overwrite === true,
              refuseBuildTag: opts.allowBuildTag !== true,
              ...(builtBy ? { builtBy } : {}),
            });
            ctx.stdout.write(
              `${status === 'added' ? 'added  ' : 'present'} ${entry.filename}  sha256:${entry.sha256.slice(0, 12)}\n`,
            );
          } catch (err) {
            refused++;
            const code =
              err instanceof WheelError ? err.code : ((err as NodeJS.ErrnoException).code ?? 'ERROR');
            const message = err instanceof Error ? err.message : String(err);
            ctx.stdout.write(`refused ${path.basename(source)}  ${code}: ${message}\n`);
          }
        }
        return refused > 0 ? 1 : 0;
      },
    ),
  );

  withStore(
    wheelhouse
      .command('list')
      .description('list the wheels (of one project), with size, date added and builder')
      .argument('[project]', 'only this project (any spelling: Foo.Bar = foo-bar)')
      .option('--json', 'print the entries as JSON')
      .option('--needs', 'show the shared libraries each wheel needs from the system (recorded when it was added)'),
  ).action(
    run(async (ctx, project: string | undefined, opts: StoreOptions & { json?: boolean; needs?: boolean }) => {
      const entries = await (await openStore(ctx, opts)).list(project);
      ctx.stdout.write(opts.json ? `${JSON.stringify(entries, null, 2)}\n` : opts.needs ? renderNeeds(entries) : renderWheelList(entries));
      return 0;
    }),
  );

  withStore(
    wheelhouse
      .command('verify')
      .description('re-hash every wheel against its record; exit 1 on any corruption'),
  ).action(
    run(async (ctx, opts: StoreOptions) => {
      const { ok, corrupt } = await (await openStore(ctx, opts)).verify();
      for (const c of corrupt) ctx.stdout.write(`corrupt ${c.filename}: ${c.reason}\n`);
      ctx.stdout.write(`${ok.length} wheel${ok.length === 1 ? '' : 's'} ok, ${corrupt.length} corrupt\n`);
      return corrupt.length > 0 ? 1 : 0;
    }),
  );

  withStore(
    wheelhouse
      .command('remove')
      .description('remove every wheel of one project version')
      .argument('<requirement>', 'PROJECT==VERSION'),
  ).action(
    run(async (ctx, requirement: string, opts: StoreOptions) => {
      const [{ compareVersions, isValidVersion }, { WheelError, canonicalizeName }] = await Promise.all([
        import('@dstack/recipe'),
        import('@dstack/wheelhouse'),
      ]);
      const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(\S+)\s*$/.exec(requirement);
      if (!m || !isValidVersion(m[2]!))
        throw new UsageError(`remove takes PROJECT==VERSION, not "${requirement}"`);
      const store = await openStore(ctx, opts);
      const wanted = (await store.list(m[1]!)).filter((e) => compareVersions(e.version, m[2]!) === 0);
      if (wanted.length === 0) {
        throw new WheelError(
          'WHEEL_NOT_FOUND',
          `no wheel of ${canonicalizeName(m[1]!)} ${m[2]} in ${locationOf(store)}`,
        );
      }
      for (const e of wanted) {
        await store.remove(e.filename);
        ctx.stdout.write(`removed ${e.filename}\n`);
      }
      return 0;
    }),
  );

  withStore(
    wheelhouse
      .command('prune')
      .description(
        'remove the wheels no lock names (recipes/locks/**/pylock.*.toml), each only once the archive holds it: nothing is lost',
      )
      .option('--archive <dir>', 'the archive (default $ARCHIVE, or ARCHIVE in ./.env); required')
      .option('--locks <dir>', 'the locks whose wheels stay (default: $RECIPES/locks or ./recipes/locks)')
      .option('--dry-run', 'say what would go, remove nothing'),
  ).action(
    run(async (ctx, opts: StoreOptions & { archive?: string; locks?: string; dryRun?: boolean }) => {
      const { buildEnvironment } = await import('../dotenv.js');
      const env = buildEnvironment(ctx);
      const archiveDir = opts.archive ?? env.ARCHIVE;
      if (!archiveDir) {
        throw new UsageError(
          'prune removes wheels from the wheelhouse only once the archive holds them: set ARCHIVE or pass --archive DIR',
        );
      }
      const archive = path.resolve(ctx.cwd, archiveDir);
      const locks = path.resolve(ctx.cwd, opts.locks ?? path.join(env.RECIPES ?? 'recipes', 'locks'));
      const [{ parseLock }, { archiveWheels }, { readFile }] = await Promise.all([
        import('@dstack/recipe'),
        import('@dstack/engine'),
        import('node:fs/promises'),
      ]);
      const keep = new Set<string>();
      for (const file of await lockFiles(locks)) {
        for (const p of parseLock(await readFile(file, 'utf8'), file).packages) for (const w of p.wheels) keep.add(w.name);
      }
      const store = await openStore(ctx, opts);
      const entries = await store.list();
      const go = entries.filter((e) => !keep.has(e.filename));
      if (opts.dryRun) {
        for (const e of go) ctx.stdout.write(`would remove ${e.filename}\n`);
        ctx.stdout.write(`${go.length} to remove, ${entries.length - go.length} named by locks in ${locks}\n`);
        return 0;
      }
      const archived = await archiveWheels(store, archive, go.map((e) => e.filename));
      let removed = 0;
      for (const e of go) {
        // Only what the archive holds with the same bytes goes: a different wheel under the name stays here.
        const there = path.join(archive, e.filename);
        if ((await sha256File(there)) !== e.sha256) {
          ctx.stderr.write(`kept ${e.filename}: ${there} holds other bytes under that name\n`);
          continue;
        }
        await store.remove(e.filename);
        removed += 1;
        ctx.stdout.write(`removed ${e.filename}\n`);
      }
      ctx.stdout.write(
        `${removed} removed (${archived.copied.length} archived now, into ${archive}), ${entries.length - go.length} named by locks kept\n`,
      );
      return removed === go.length ? 0 : 1;
    }),
  );

  for (const direction of ['push', 'pull'] as const) {
    withStore(
      wheelhouse
        .command(direction)
        .description(
          direction === 'push'
            ? 'copy the wheels the registry lacks from the wheelhouse folder to registry:HOST/REPO (in parallel; run again to resume)'
            : 'copy the wheels the wheelhouse folder lacks from registry:HOST/REPO (in parallel; run again to resume)',
        )
        .argument('<ref>', 'the registry repository: registry:HOST/REPO (or HOST/REPO)')
        .option('--jobs <n>', 'wheels copied at once', '8')
        .option('--mount-from <repo>', 'push: another repository of the same registry (e.g. team/wheels) whose blobs are mounted, not uploaded'),
    ).action(
      run(async (ctx, ref: string, opts: StoreOptions & { jobs: string }) => {
        const jobs = Number(opts.jobs);
        if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs takes a whole number from 1, not "${opts.jobs}"`);
        const { copyWheels } = await import('@dstack/wheelhouse-registry');
        const registry = await openStore(ctx, opts, ref.startsWith('registry:') ? ref : `registry:${ref}`);
        const folder = await openStore(ctx, opts);
        const [from, to] = direction === 'push' ? [folder, registry] : [registry, folder];
        const started = Date.now();
        const result = await copyWheels(from, to, {
          concurrency: jobs,
          onWheel: (e) => {
            if (e.status === 'copied') ctx.stdout.write(`${direction === 'push' ? 'pushed' : 'pulled'} ${e.filename}\n`);
            else if (e.status === 'failed') {
              const code = (e.error as { code?: string }).code ?? 'ERROR';
              ctx.stdout.write(`failed ${e.filename}  ${code}: ${e.error.message}\n`);
            }
          },
        });
        const mb = (result.bytes / 1e6).toFixed(1);
        ctx.stdout.write(
          `${result.copied.length} ${direction === 'push' ? 'pushed' : 'pulled'} (${mb} MB, ${((Date.now() - started) / 1000).toFixed(1)} s), ${result.present.length} already there, ${result.failed.length} failed: ${locationOf(from)} -> ${locationOf(to)}\n`,
        );
        if (result.copied.length + result.present.length + result.failed.length === 0) {
          // A misspelt registry repository reads as an empty one: say so rather than report a quiet success.
          ctx.stderr.write(`warning: ${locationOf(from)} holds no wheels (a registry repository that does not exist reads as empty: check its name)\n`);
        }
        return result.failed.length > 0 ? 1 : 0;
      }),
    );
  }

  withStore(
    wheelhouse
      .command('index')
      .description(
        'write a static simple index (PEP 503 HTML + PEP 691 JSON + PEP 658 metadata) for pip --index-url file://DIR/simple',
      )
      .requiredOption('--out <dir>', 'where to write it (its simple/ folder is replaced)'),
  ).action(
    run(async (ctx, opts: StoreOptions & { out: string }) => {
      const out = path.resolve(ctx.cwd, opts.out);
      const { writeStaticIndex } = await import('@dstack/wheelhouse');
      const { projects, files } = await writeStaticIndex(await openStore(ctx, opts), out);
      ctx.stdout.write(
        `wrote ${projects} project${projects === 1 ? '' : 's'}, ${files} wheel${files === 1 ? '' : 's'} to ${path.join(out, 'simple')}\n`,
      );
      return 0;
    }),
  );
}

/** Every pylock.*.toml under `dir` (none when it is missing). */
async function lockFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((e) => e.isFile() && /^pylock\.[^/]*\.toml$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/** The sha256 of a file, streamed; null when it is not there. */
async function sha256File(file: string): Promise<string | null> {
  const [{ createHash }, { createReadStream }] = await Promise.all([import('node:crypto'), import('node:fs')]);
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return hash.digest('hex');
}

import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { FsWheelStore, WheelEntry } from '@dstack/wheelhouse';
import type { CliContext, Runner } from '../context.js';
import { UsageError } from '../errors.js';

interface StoreOptions {
  wheelhouse?: string;
}

/** `--wheelhouse DIR`, else $WHEELHOUSE, else ./wheelhouse (relative to the current folder). */
export function wheelhouseDir(ctx: Pick<CliContext, 'env' | 'cwd'>, opts: StoreOptions): string {
  return path.resolve(ctx.cwd, opts.wheelhouse ?? ctx.env.WHEELHOUSE ?? 'wheelhouse');
}

/** The store, with @dstack/wheelhouse loaded on first use (not at start-up). */
async function openStore(ctx: CliContext, opts: StoreOptions): Promise<FsWheelStore> {
  const { FsWheelStore } = await import('@dstack/wheelhouse');
  return new FsWheelStore(wheelhouseDir(ctx, opts), {
    logger: ctx.logger.child({ component: 'wheelhouse' }),
  });
}

const withStore = (cmd: Command): Command =>
  cmd.option('--wheelhouse <dir>', 'the wheelhouse folder (default: $WHEELHOUSE or ./wheelhouse)');

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
      .option('--json', 'print the entries as JSON'),
  ).action(
    run(async (ctx, project: string | undefined, opts: StoreOptions & { json?: boolean }) => {
      const entries = await (await openStore(ctx, opts)).list(project);
      ctx.stdout.write(opts.json ? `${JSON.stringify(entries, null, 2)}\n` : renderWheelList(entries));
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
          `no wheel of ${canonicalizeName(m[1]!)} ${m[2]} in ${store.dir}`,
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

import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { BuildEvent, BuildOptions, BuildPlan, BuildSummary, Executor } from '@dstack/engine';
import type { Target, WheelSource } from '@dstack/wheelhouse';
import { logs, type CliContext, type Runner } from '../context.js';
import { CliError, EXIT_FAILURE, EXIT_OK, UsageError } from '../errors.js';
import { LiveLine } from '../progress.js';
import { buildEnvironment } from '../dotenv.js';

/** The seed's CEXT prebuild list. */
export const DEFAULT_PREBUILD = ['cython', 'numpy'];
const TRUE = new Set(['1', 'true', 'yes', 'on']);

export interface BuildCommandOptions {
  recipes?: string;
  wheelhouse?: string;
  executor?: 'local' | 'docker';
  factoryImage?: string;
  python?: string;
  jobs?: string;
  prebuild?: string;
  cext?: boolean;
  fromWheel?: boolean;
  lockDir?: string;
  archive?: string;
  refresh?: boolean;
  rebuild?: string[];
  upgrade?: string[];
  envFile?: string;
  dryRun?: boolean;
  json?: boolean;
  platform?: string;
}

export { buildEnvironment, parseDotEnv } from '../dotenv.js';

const flag = (value: string | undefined, fallback: boolean): boolean =>
  value === undefined || value.trim() === '' ? fallback : TRUE.has(value.trim().toLowerCase());

const list = (value: string): string[] =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Progress of a build. In pipes and CI: one plain line per event. On a terminal: one live line (elapsed,
 * done/total, what is being built or downloaded), and lasting lines only for what the user must see — the plan,
 * wheels added, failures.
 */
class Progress {
  private readonly active = new Map<string, string>();
  private done = 0;
  private total = 0;
  private readonly live: LiveLine;

  constructor(ctx: CliContext) {
    this.live = new LiveLine(ctx.stderr, ctx.interactive);
  }

  private update(target: string, item: string): void {
    const current = [...this.active.values()];
    this.live.update({
      label: `[${target}]`,
      done: this.done,
      total: this.total,
      item: current.length > 0 ? `${current.slice(0, 3).join(', ')}${current.length > 3 ? ' …' : ''}` : item,
    });
  }

  /** A line in pipes; on a terminal only when `lasting`. */
  private line(text: string, lasting: boolean): void {
    if (!this.live.enabled || lasting) this.live.log(text);
  }

  event(e: BuildEvent, target: string): void {
    switch (e.type) {
      case 'planned':
        this.total += e.packages.length;
        this.line(`[${target}] planned ${e.packages.length} distributions`, true);
        break;
      case 'cached':
        this.done += 1;
        this.line(`[${target}] cached ${e.package} ${e.version} (${e.filename})`, false);
        break;
      case 'building': {
        const verb =
          e.action === 'build' ? 'building' : e.action === 'prebuild' ? 'prebuilding' : 'downloading';
        this.active.set(`${target}/${e.package}`, `${verb} ${e.package}`);
        this.line(`[${target}] ${verb} ${e.package} ${e.version}`.trimEnd(), false);
        break;
      }
      case 'ingested':
        this.active.delete(`${target}/${e.package}`);
        this.done += 1;
        this.line(
          `[${target}] ${e.status === 'added' ? 'added' : 'present'} ${e.filename}`,
          e.status === 'added',
        );
        break;
      case 'failed':
        this.active.delete(`${target}/${e.package}`);
        this.line(`[${target}] FAILED ${e.package}${e.version ? ` ${e.version}` : ''}`, true);
        break;
      default:
        return;
    }
    this.update(target, e.type === 'cached' ? `cached ${e.package}` : '');
  }

  finish(): void {
    this.live.finish();
  }
}

function report(ctx: CliContext, summary: BuildSummary): void {
  for (const t of summary.targets) {
    for (const f of t.failures) {
      ctx.stderr.write(
        `\nerror: ${f.package}${f.version ? ` ${f.version}` : ''} failed for ${t.target}` +
          (f.exitCode !== null ? ` (exit ${f.exitCode})` : '') +
          '\n',
      );
      for (const line of f.summary) ctx.stderr.write(`  ${line}\n`);
      ctx.stderr.write(`command: ${f.command.join(' ')}\n`);
      // Nothing recognised in the output: its last lines are the best there is.
      if (f.summary.length === 0 && f.logTail.length > 0)
        ctx.stderr.write(
          `last lines:\n${f.logTail
            .slice(-10)
            .map((l) => `  ${l}`)
            .join('\n')}\n`,
        );
      if (f.logFile) ctx.stderr.write(`full log: ${f.logFile}\n`);
    }
    const added = t.ingested.filter((i) => i.status === 'added').length;
    ctx.stderr.write(
      `[${t.target}] ${t.warm ? 'up to date (lock)' : 'done'}: ${t.packages} distributions, ${t.cached} cached, ${added} added` +
        (t.failures.length > 0 ? `, ${t.failures.length} failed` : '') +
        (t.lockFile && t.failures.length === 0 ? `; lock ${t.lockFile}` : '') +
        '\n',
    );
  }
}

/** Who built (or would build) a wheel, in one line: "local, /usr/bin/python3.11 (cp 3.11.2)". */
export function describeBuilder(builder: Record<string, string> | null): string {
  if (!builder) return 'not recorded';
  const { executor, image, interpreter } = builder;
  const parts = [executor, image, interpreter].filter((v): v is string => Boolean(v));
  return parts.length > 0
    ? parts.join(', ')
    : Object.entries(builder)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
}

/** What a wheel is made from, in one line: "sdist URL sha256:…", "git+URL@COMMIT", "local folder PATH", a wheel's URL. */
export function describeSource(source: WheelSource): string {
  switch (source.kind) {
    case 'sdist':
      return `sdist ${source.url}${source.sha256 ? ` sha256:${source.sha256.slice(0, 12)}` : ''}`;
    case 'vcs':
      return `${source.vcs}+${source.url}@${source.commit}${source.subdirectory ? ` (${source.subdirectory})` : ''}`;
    case 'directory':
      return `local folder ${source.path}${source.subdirectory ? ` (${source.subdirectory})` : ''}`;
    case 'wheel':
      return source.url;
  }
}

/** The plan of --dry-run, as text: per target, the lock's state and one line per distribution. */
export function printPlan(ctx: CliContext, plan: BuildPlan): void {
  for (const t of plan.targets) {
    const lock = t.lockFile ? relativeTo(ctx, t.lockFile) : '(no lock)';
    const state = {
      current: 'current: nothing to resolve, download or build',
      stale: 'out of date: pip resolves again',
      missing: 'not written yet: pip resolves',
      ignored: 'not used (--refresh/--rebuild/--upgrade): pip resolves',
    }[t.lock];
    ctx.stdout.write(`[${t.target}] lock ${lock}: ${state}\n`);
    if (t.pins.length > 0) ctx.stdout.write(`  kept from the lock: ${t.pins.join(' ')}\n`);
    if (t.prebuild.length > 0)
      ctx.stdout.write(`  CEXT: ${t.prebuild.join(', ')} prebuilt first, unless their wheels are present\n`);
    const width = Math.max(0, ...t.steps.map((s) => `${s.name} ${s.version}`.length));
    for (const s of t.steps) {
      const what = `${s.name} ${s.version}`.padEnd(width);
      const verb = { reuse: 'reuse', download: 'download', build: 'build' }[s.action].padEnd(8);
      const detail =
        s.action === 'reuse'
          ? `${s.filename}${s.sha256 ? ` sha256:${s.sha256.slice(0, 12)}` : ''} (built by ${describeBuilder(s.builder)}${s.source ? `; from ${describeSource(s.source)}` : ''})`
          : s.action === 'download'
            ? `${s.filename} from ${s.from}`
            : `from ${s.source ? describeSource(s.source) : s.from} by ${describeBuilder(s.builder)}`;
      ctx.stdout.write(`  ${verb} ${what}  ${detail}\n`);
    }
    for (const f of t.failures) {
      ctx.stdout.write(
        `  FAILED ${f.package}${f.version ? ` ${f.version}` : ''}${f.exitCode !== null ? ` (exit ${f.exitCode})` : ''}\n`,
      );
      for (const line of f.summary.length > 0 ? f.summary : f.logTail.slice(-10))
        ctx.stdout.write(`    ${line}\n`);
    }
    const n = (a: string): number => t.steps.filter((s) => s.action === a).length;
    ctx.stdout.write(
      `[${t.target}] ${t.steps.length} distributions: ${n('reuse')} reused, ${n('download')} downloaded, ${n('build')} built${t.failures.length > 0 ? `, plan failed` : ''}\n`,
    );
  }
}

function relativeTo(ctx: CliContext, file: string): string {
  const rel = relative(ctx.cwd, file);
  return rel.startsWith('..') ? file : rel;
}

export async function runBuild(
  ctx: CliContext,
  recipeArg: string | undefined,
  opts: BuildCommandOptions,
): Promise<number> {
  const env = buildEnvironment(ctx, opts.envFile);
  const wheelhouse = resolve(ctx.cwd, opts.wheelhouse ?? env.WHEELHOUSE ?? 'wheelhouse');
  const recipesDir = resolve(ctx.cwd, opts.recipes ?? env.RECIPES ?? 'recipes');
  // BUILD_REQ=True: recipes/<RECIPE or requirements>.txt; BUILD_REQ=False: RECIPE unset or empty means every wheel.
  const given = recipeArg ?? (env.RECIPE?.trim() || undefined);
  const name = given ?? 'requirements';
  const buildReq = opts.fromWheel ? false : flag(env.BUILD_REQ, true);
  const prebuild =
    opts.cext === false
      ? []
      : opts.prebuild !== undefined
        ? list(opts.prebuild)
        : flag(env.CEXT, true)
          ? DEFAULT_PREBUILD
          : [];
  const pythons = list(opts.python ?? env.PY_VERSION ?? 'python3');
  const jobs = opts.jobs !== undefined ? Number(opts.jobs) : cpus().length;
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new UsageError(`--jobs must be a positive integer, not ${opts.jobs}`);
  if (opts.prebuild !== undefined && opts.cext === false)
    throw new UsageError('--prebuild and --no-cext exclude each other');
  if (opts.json && !opts.dryRun) throw new UsageError('--json prints the plan of --dry-run');
  const upgrade = (opts.upgrade ?? []).flatMap(list);
  if (upgrade.length > 0 && opts.refresh)
    throw new UsageError('--upgrade keeps the rest of the lock, --refresh ignores it: give one');

  // Loaded here, not at start-up: `--help` or another command never pays for them (and a local build never
  // loads dockerode).
  const [{ LocalExecutor, buildWheelhouse, cachedTarget }, { resolveRecipePath }, { FsWheelStore }] =
    await Promise.all([import('@dstack/engine'), import('@dstack/recipe'), import('@dstack/wheelhouse')]);
  const platforms = opts.platform === undefined ? null : list(opts.platform);
  if (platforms) {
    if ((opts.executor ?? 'local') !== 'docker')
      throw new UsageError("--platform builds in each platform's factory image: add --executor docker");
    if (opts.python !== undefined)
      throw new UsageError(
        "--platform builds with each platform's factory image interpreter: leave --python out",
      );
    if (opts.fromWheel || !buildReq)
      throw new UsageError(
        '--platform builds a recipe (BUILD_REQ=True); --from-wheel picks wheels for one target',
      );
    if (platforms.length === 0) throw new UsageError('--platform names no platform');
  }
  let executor: Executor;
  let targetOf: ((python: string) => Promise<Target>) | undefined;
  // One build per platform (its factory image, <tag>-<architecture>, where the engine runs it): each writes its own lock.
  const runs: { executor: Executor; targetOf?: (python: string) => Promise<Target>; pythons: string[] }[] =
    [];
  if ((opts.executor ?? 'local') === 'local') executor = new LocalExecutor();
  else {
    const { factoryExecutor } = await import('../images.js');
    for (const platform of platforms ?? [undefined]) {
      const { image, executor: docker } = await factoryExecutor(env, opts.factoryImage, ctx.logger, platform);
      runs.push({
        executor: docker,
        targetOf: () => docker.target(),
        pythons: opts.python === undefined ? [`docker:${image}`] : pythons,
      });
    }
    executor = runs[0]!.executor;
    targetOf = runs[0]!.targetOf;
    if (opts.python === undefined) pythons.splice(0, pythons.length, ...runs[0]!.pythons);
  }
  if (runs.length === 0) runs.push({ executor, pythons });

  const store = new FsWheelStore(wheelhouse);
  let recipe: string | null = null;
  const fromWheel: string | null = null;
  let selectDir: string | null = null;
  let lockDir = opts.lockDir ? resolve(ctx.cwd, opts.lockDir) : null;
  if (buildReq) {
    recipe = resolve(ctx.cwd, resolveRecipePath(name, recipesDir));
    if (!existsSync(recipe)) {
      throw new CliError('RECIPE_NOT_FOUND', `no recipe ${recipe}`, {
        hint: `write it, or set RECIPE / pass the recipe's name or path`,
      });
    }
  } else {
    // The choice is select_wheels.py's, the same the factory image makes (one implementation, both doors): a
    // recipe naming the chosen wheels, whose lock goes to recipes/locks/<RECIPE or wheelhouse>/.
    const target = targetOf ? await targetOf(pythons[0]!) : await cachedTarget(pythons[0]!);
    selectDir = await mkdtemp(join(tmpdir(), 'dstack-select-'));
    recipe = await selectWheels({
      python:
        target.interpreter && !target.interpreter.startsWith('docker:') ? target.interpreter : 'python3',
      wheelhouse,
      recipe: given ?? null,
      tags: target.tags,
      dir: selectDir,
    });
    lockDir ??= join(recipesDir, 'locks');
  }

  const options: BuildOptions = {
    recipe,
    fromWheel,
    wheelhouse,
    store,
    pythons,
    executor,
    ...(targetOf ? { targetOf } : {}),
    jobs,
    prebuild,
    rebuild: (opts.rebuild ?? []).flatMap(list),
    upgrade,
    refresh: opts.refresh === true,
    pylockDir: lockDir,
    // BUILD_REQ=False: the recipe naming the chosen wheels is a temp file; the lock does not point at it.
    lockNamesRecipe: buildReq,
    archive: (opts.archive ?? env.ARCHIVE) ? resolve(ctx.cwd, (opts.archive ?? env.ARCHIVE)!) : null,
    env,
    // The engine logs its events at info and pip's lines at debug: no logger (pino not even loaded) when neither shows.
    ...(logs(ctx, 'info') ? { logger: ctx.logger.child({ component: 'engine' }) } : {}),
  };
  if (opts.dryRun) {
    try {
      const { planWheelhouse } = await import('@dstack/engine');
      // One plan per platform (each its own factory image's interpreter).
      let ok = true;
      for (const one of runs) {
        const plan = await planWheelhouse({
          ...options,
          pythons: one.pythons,
          executor: one.executor,
          ...(one.targetOf ? { targetOf: one.targetOf } : {}),
        });
        if (opts.json) ctx.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
        else printPlan(ctx, plan);
        ok &&= plan.ok;
      }
      return ok ? EXIT_OK : EXIT_FAILURE;
    } finally {
      if (selectDir) await rm(selectDir, { recursive: true, force: true });
    }
  }
  const progress = new Progress(ctx);
  try {
    let ok = true;
    for (const one of runs) {
      const summary = await buildWheelhouse({
        ...options,
        pythons: one.pythons,
        executor: one.executor,
        ...(one.targetOf ? { targetOf: one.targetOf } : {}),
        onEvent: (e, target) => progress.event(e, target),
      });
      progress.finish();
      report(ctx, summary);
      if (summary.archived) {
        ctx.stderr.write(
          `archive: ${summary.archived.copied.length} copied, ${summary.archived.present.length} present\n`,
        );
      }
      ok &&= summary.ok;
    }
    return ok ? EXIT_OK : EXIT_FAILURE;
  } finally {
    if (selectDir) await rm(selectDir, { recursive: true, force: true });
  }
}

/**
 * BUILD_REQ=False: runs images/factory/select_wheels.py (the factory image's own choice) with `python` and the
 * target's tags; returns the recipe it wrote into `dir`, naming the chosen wheels.
 */
async function selectWheels(o: {
  python: string;
  wheelhouse: string;
  recipe: string | null;
  tags: string[];
  dir: string;
}): Promise<string> {
  const [{ FACTORY_SCRIPT }, { spawn }] = await Promise.all([
    import('@dstack/engine'),
    import('node:child_process'),
  ]);
  const script = join(dirname(FACTORY_SCRIPT), 'select_wheels.py');
  const args = [
    script,
    '--wheelhouse',
    o.wheelhouse,
    '--tags-json',
    '-',
    '--write-recipe',
    o.dir,
    ...(o.recipe ? ['--recipe', o.recipe] : []),
  ];
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (done, fail) => {
      const child = spawn(o.python, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.on('error', fail);
      child.on('close', (c) => done({ code: c, stdout: out, stderr: err }));
      child.stdin.end(JSON.stringify(o.tags));
    },
  ).catch((cause: unknown) => {
    throw new CliError(
      'WHEEL_NOT_FOUND',
      `BUILD_REQ=False: cannot run ${o.python} ${script}: ${(cause as Error).message}`,
      {
        hint: 'the choice of wheels runs on a local Python 3 (python3 on PATH, or --python)',
        cause,
      },
    );
  });
  if (code === 3) {
    throw new CliError('WHEEL_NOT_FOUND', stderr.trim(), {
      hint: 'add the app wheel first (dstack-factory wheelhouse add FILE)',
    });
  }
  if (code !== 0)
    throw new CliError(
      'WHEEL_NOT_FOUND',
      `BUILD_REQ=False: ${script} failed (exit ${code}): ${stderr.trim()}`,
    );
  return (JSON.parse(stdout) as { recipe: string }).recipe;
}

export function registerBuildCommands(program: Command, run: Runner): void {
  program
    .command('build')
    .description(
      'recipe -> wheels in the wheelhouse (CEXT, BUILD_REQ and RECIPE honoured, from the environment or .env)',
    )
    .argument('[recipe]', 'recipe name (recipes/<name>.txt) or path; default $RECIPE or "requirements"')
    .option('--recipes <dir>', 'folder of recipes (default $RECIPES or ./recipes)')
    .option('--wheelhouse <dir>', 'the wheelhouse (default $WHEELHOUSE or ./wheelhouse)')
    .addOption(
      new Option('--executor <kind>', 'where builds run').choices(['local', 'docker']).default('local'),
    )
    .option(
      '--factory-image <ref>',
      'the factory image of --executor docker (default $FACTORY_IMAGE or dstack-factory/factory:py$PY_VERSION, py3.11 without it)',
    )
    .option(
      '--python <versions>',
      'target interpreters: versions or paths, comma-separated (default python3)',
    )
    .option('--jobs <n>', 'parallel builds (default: the number of CPUs)')
    .option(
      '--prebuild <packages>',
      'CEXT: packages prebuilt and installed into the build venv (default cython,numpy)',
    )
    .option('--no-cext', 'no prebuild (CEXT=False)')
    .option('--from-wheel', 'build the dependencies of the wheel named by RECIPE (BUILD_REQ=False)')
    .option('--lock-dir <dir>', 'where locks go (default recipes/locks)')
    .option('--refresh', 'ignore an existing lock: plan again')
    .option(
      '--upgrade <name>',
      're-resolve this project (repeatable, or comma-separated) and keep every other version of the lock',
      (v: string, acc: string[] = []) => [...acc, v],
    )
    .option(
      '--dry-run',
      'print the plan and write nothing: each distribution reused, downloaded (from where) or built (from which source, by which builder); a current lock runs nothing, else pip resolves read-only',
    )
    .option('--json', 'with --dry-run: the plan as JSON')
    .option(
      '--rebuild <name>',
      'rebuild this project from source (repeatable)',
      (v: string, acc: string[] = []) => [...acc, v],
    )
    .option(
      '--archive <dir>',
      'the archive (default $ARCHIVE): extra find-links for the plan; every wheel it lacks is copied there after a successful build',
    )
    .option('--env-file <file>', 'read this file instead of ./.env')
    .option(
      '--platform <list>',
      "with --executor docker: build for each platform (linux/amd64,linux/arm64) in its factory image (--factory-image or the default, tagged <tag>-<architecture>: dstack-factory image factory --platform makes them), natively or under the engine's emulation; one lock per platform target",
    )
    .action(run((ctx, recipe: string | undefined, opts: BuildCommandOptions) => runBuild(ctx, recipe, opts)));
}

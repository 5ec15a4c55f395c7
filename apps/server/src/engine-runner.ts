/**
 * Builds submitted over HTTP, run by @dstack/engine: the recipe text goes to a temp file, the engine
 * builds into the server's store (so the index shows the wheels at once), and every engine event
 * becomes one line of the build's log.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildWheelhouse,
  DockerExecutor,
  LocalExecutor,
  type BuildEvent,
  type Executor,
} from '@dstack/engine';
import type { WheelStore } from '@dstack/wheelhouse';
import type { Logger } from 'pino';
import type { BuildOutcome, BuildRunner } from './builds.js';
import { buildEnvironment, recipeVariables } from './build-env.js';
import type { ServerConfig } from './config.js';
import { prepareRemoteRecipe } from './recipe-policy.js';

/** One log line for an engine event. */
export function formatEvent(event: BuildEvent): string | null {
  switch (event.type) {
    case 'started':
      return `started: ${event.executor} executor, ${event.interpreter.executable} (Python ${event.interpreter.pythonFullVersion}, pip ${event.interpreter.pipVersion})`;
    case 'planned':
      return `planned: ${event.packages.length} distributions (${event.packages.map((p) => `${p.name}==${p.version} ${p.action}`).join(', ')})`;
    case 'cached':
      return `cached: ${event.filename}`;
    case 'building':
      return `${event.action}: ${event.package}==${event.version}`;
    case 'built':
      return `built: ${event.filename}`;
    case 'ingested':
      return `stored: ${event.filename} (${event.status}, sha256 ${event.sha256})`;
    case 'failed':
      return [
        `FAILED: ${event.package}${event.version ? `==${event.version}` : ''} (exit code ${event.exitCode ?? 'none'})`,
        ...event.logTail.map((l) => `  | ${l}`),
      ].join('\n');
    case 'log':
      return event.package ? `[${event.package}] ${event.line}` : event.line;
    default:
      return null;
  }
}

/**
 * The executor a server's builds use by default. Decision 13: docker when an engine answers and a
 * factory image is configured (builds run code: better in a container); otherwise the local executor.
 */
export async function defaultExecutorKind(config: ServerConfig, logger: Logger): Promise<'local' | 'docker'> {
  if (config.builds.executor !== 'auto') return config.builds.executor;
  if (config.builds.factoryImage === null) {
    logger.warn('builds run with the local executor (no [builds] factory_image configured for docker)');
    return 'local';
  }
  try {
    await new DockerExecutor({ image: config.builds.factoryImage }).check();
    return 'docker';
  } catch (err) {
    logger.warn(
      { err: (err as Error).message },
      'no usable Docker engine: builds run with the local executor',
    );
    return 'local';
  }
}

export function engineRunner(options: {
  config: ServerConfig;
  store: WheelStore;
  /** The server's environment: builds get only its allow-listed part (buildEnvironment). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Executors by kind; default: local, and docker with [builds] factory_image. */
  executors?: Partial<Record<'local' | 'docker', Executor>>;
  /** The kind used when a request names none (see defaultExecutorKind). */
  defaultKind?: 'local' | 'docker';
}): BuildRunner {
  const { config, store, logger } = options;
  const env = buildEnvironment(options.env, config);
  const vars = recipeVariables(options.env, config);
  const executors: Partial<Record<'local' | 'docker', Executor>> = {
    local: new LocalExecutor(),
    ...(config.builds.factoryImage !== null
      ? { docker: new DockerExecutor({ image: config.builds.factoryImage, logger }) }
      : {}),
    ...options.executors,
  };
  return async ({ request, signal, log }) => {
    const kind = request.executor ?? options.defaultKind ?? 'local';
    const executor = executors[kind];
    if (executor === undefined) {
      throw new Error(
        `the ${kind} executor is not available on this server (set [builds] factory_image for docker)`,
      );
    }
    const dir = await mkdtemp(join(tmpdir(), 'dstack-serve-build-'));
    try {
      const recipe = join(dir, 'recipe.txt');
      // What the policy checked, rendered from the parse: the build reads nothing else (Decisions 13, 20).
      const prepared = await prepareRemoteRecipe(request.recipe, {
        allowLocalPaths: config.builds.allowLocalPaths,
        vars,
      });
      await writeFile(recipe, prepared.text);
      const python = request.python ?? config.builds.python ?? 'python3';
      log(
        `recipe: ${request.recipe.split('\n').filter((l) => l.trim() !== '').length} lines; target: ${python}`,
      );
      const summary = await buildWheelhouse({
        recipe,
        wheelhouse: config.wheelhouse,
        store,
        pythons: [python],
        executor,
        jobs: request.jobs ?? 1,
        prebuild: request.prebuild ?? [],
        rebuild: request.rebuild ?? [],
        refresh: true,
        pylockDir: join(dir, 'locks'),
        env,
        logger,
        onEvent: (event) => {
          const line = formatEvent(event);
          if (line !== null) log(line);
        },
        signal,
      });
      const target = summary.targets[0];
      const outcome: BuildOutcome = {
        ok: summary.ok,
        wheels: (target?.ingested ?? []).map((w) => ({
          filename: w.filename,
          sha256: w.sha256,
          status: w.status,
        })),
        failures: (target?.failures ?? []).map((f) => ({
          package: f.package,
          // The engine's summary (missing requirement, header, compiler error, pip's ERROR: lines), as the CLI shows it.
          message: f.summary.length > 0 ? f.summary.join('\n') : (f.logTail.at(-1) ?? `exit code ${f.exitCode ?? 'none'}`),
          summary: f.summary,
        })),
        lock: target?.lockFile ? await readFile(target.lockFile, 'utf8').catch(() => null) : null,
      };
      log(
        summary.ok
          ? `done: ${outcome.wheels.length} wheels stored, ${target?.cached ?? 0} already there`
          : `failed: ${outcome.failures.map((f) => f.package).join(', ')}`,
      );
      return outcome;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}

import type { Command } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { CliContext, Runner } from '../context.js';
import { execFileAsync as run } from '../exec.js';

/** One line of the report: what was looked at, whether it is usable, what it is, and how to fix it. */
export interface Check {
  area: 'interpreter' | 'tool' | 'engine' | 'registry' | 'wheelhouse';
  name: string;
  ok: boolean;
  /** Required for the default (local) build: the exit code is 1 when one of these fails. */
  required: boolean;
  detail: string;
  fix?: string;
}

/** Interpreters the local executor can use: python3 on PATH and every pyenv version. */
export function interpreterCandidates(env: NodeJS.ProcessEnv): string[] {
  const found = new Set<string>();
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    for (const name of ['python3']) {
      const p = path.join(dir, name);
      if (dir && existsSync(p)) {
        found.add(p);
        break;
      }
    }
    if (found.size > 0) break;
  }
  const pyenvRoot = env.PYENV_ROOT ?? path.join(env.HOME ?? homedir(), '.pyenv');
  const versions = path.join(pyenvRoot, 'versions');
  if (existsSync(versions)) {
    for (const v of readdirSync(versions).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))) {
      const p = path.join(versions, v, 'bin', 'python');
      if (/^3\./.test(v) && existsSync(p)) found.add(p);
    }
  }
  return [...found];
}

async function checkInterpreter(python: string): Promise<Check> {
  try {
    const { detectTarget } = await import('@dstack/wheelhouse');
    const target = await detectTarget(python);
    let pip = 'no pip';
    let pipOk = false;
    try {
      const { stdout } = await run(python, ['-m', 'pip', '--version'], {
        timeout: 30_000,
        env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' },
      });
      const version = /^pip (\S+)/.exec(stdout)?.[1] ?? '?';
      const [maj = 0, min = 0] = version.split('.').map(Number);
      pipOk = maj > 22 || (maj === 22 && min >= 2);
      pip = `pip ${version}`;
    } catch {
      // reported below
    }
    return {
      area: 'interpreter',
      name: python,
      ok: pipOk,
      required: false,
      detail: `Python ${target.pythonFullVersion}, target ${target.id}, best tag ${target.tags[0] ?? '?'}, ${pip}`,
      ...(pipOk ? {} : { fix: `${python} -m ensurepip --upgrade (pip >= 22.2 plans builds with --report)` }),
    };
  } catch (err) {
    return {
      area: 'interpreter',
      name: python,
      ok: false,
      required: false,
      detail: err instanceof Error ? err.message : String(err),
      fix: 'reinstall this interpreter, or ignore it and pass --python with a working one',
    };
  }
}

async function checkTool(name: string, args: string[], fix: string, required: boolean): Promise<Check> {
  try {
    const { stdout, stderr } = await run(name, args, { timeout: 15_000 });
    const first = (stdout || stderr).split('\n')[0]!.trim();
    return { area: 'tool', name, ok: true, required, detail: first };
  } catch {
    return { area: 'tool', name, ok: false, required, detail: 'not found', fix };
  }
}

async function checkEngine(env: NodeJS.ProcessEnv): Promise<Check> {
  const where = env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  try {
    // dockerode reads DOCKER_HOST from the environment it is given through its options.
    const { default: Docker } = await import('dockerode');
    const docker = env.DOCKER_HOST ? new Docker(dockerOptions(env.DOCKER_HOST)) : new Docker();
    const version = await docker.version();
    // The platforms it runs (Decision 24: building wheels or locking for a platform needs one that runs it).
    const { enginePlatforms } = await import('@dstack/engine');
    const platforms = await enginePlatforms(docker, { dockerHost: where });
    const runs =
      platforms.emulation === 'unknown'
        ? `runs ${platforms.native} (emulation on a remote engine's machine is not read)`
        : `runs ${[platforms.native, ...platforms.emulated.map((p) => `${p} (emulated)`)].join(', ')}`;
    return {
      area: 'engine',
      name: where,
      ok: true,
      required: false,
      detail: `Docker ${version.Version}, API ${version.ApiVersion}, ${version.Os}/${version.Arch}; ${runs}`,
      ...(platforms.emulated.length === 0 && platforms.emulation !== 'unknown'
        ? { fix: 'other platforms need emulation to build wheels or lock (qemu-user-static + binfmt_misc: sudo bash tools/system/setup.sh) or an engine of theirs; image app --platform needs neither' }
        : {}),
    };
  } catch (err) {
    return {
      area: 'engine',
      name: where,
      ok: false,
      required: false,
      detail: `no Docker engine answers (${err instanceof Error ? err.message : String(err)})`,
      fix: 'start one (sudo bash tools/system/engine.sh start, or your system Docker) and set DOCKER_HOST; only the docker executor and engine image builds need it',
    };
  }
}

function dockerOptions(host: string): Docker.DockerOptions {
  const url = new URL(host);
  if (url.protocol === 'unix:') return { socketPath: url.pathname };
  return { host: url.hostname, port: Number(url.port || 2375), protocol: url.protocol === 'https:' ? 'https' : 'http' };
}

async function checkRegistry(ref: string): Promise<Check> {
  const base = /^https?:\/\//.test(ref) ? ref.replace(/\/$/, '') : `${isLoopback(ref) ? 'http' : 'https'}://${ref}`;
  try {
    const res = await fetch(`${base}/v2/`, { signal: AbortSignal.timeout(10_000) });
    // 401 is a registry asking for credentials: reachable and speaking the distribution API.
    const ok = res.status === 200 || res.status === 401;
    return {
      area: 'registry',
      name: base,
      ok,
      required: false,
      detail: ok
        ? `answers /v2/ (${res.status}${res.status === 401 ? ', needs credentials' : ''})`
        : `answers /v2/ with ${res.status}`,
      ...(ok ? {} : { fix: 'check the registry address; it must speak the OCI distribution API' }),
    };
  } catch (err) {
    return {
      area: 'registry',
      name: base,
      ok: false,
      required: false,
      detail: `unreachable (${err instanceof Error ? err.message : String(err)})`,
      fix: 'start the registry (bash tools/system/registry.sh start) or fix the address',
    };
  }
}

const isLoopback = (hostPort: string): boolean => /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(hostPort);

async function checkWheelhouse(dir: string): Promise<Check> {
  if (!existsSync(dir)) {
    return {
      area: 'wheelhouse',
      name: dir,
      ok: true,
      required: true,
      detail: 'does not exist yet (the first build or `wheelhouse add` creates it)',
    };
  }
  const { openWheelhouse, wheelhouseStats } = await import('@dstack/wheelhouse');
  const store = openWheelhouse(dir);
  const report = await store.verify();
  const stats = wheelhouseStats(report.ok);
  const mb = (stats.bytes / 1e6).toFixed(1);
  if (report.corrupt.length > 0) {
    return {
      area: 'wheelhouse',
      name: dir,
      ok: false,
      required: true,
      detail: `${report.corrupt.length} corrupt: ${report.corrupt.map((c) => `${c.filename} (${c.reason})`).join(', ')}`,
      fix: 'remove them (dstack-factory wheelhouse remove) and build again',
    };
  }
  return {
    area: 'wheelhouse',
    name: dir,
    ok: true,
    required: true,
    detail: `${stats.wheels} wheels of ${stats.projects} projects, ${mb} MB, all hashes verified`,
  };
}

export async function doctor(
  ctx: CliContext,
  options: { wheelhouse: string; registry?: string },
): Promise<Check[]> {
  const interpreters = interpreterCandidates(ctx.env);
  const checks = await Promise.all([
    ...interpreters.map(checkInterpreter),
    checkTool('git', ['--version'], 'apt-get install git (for git+ requirements)', false),
    checkTool('cc', ['--version'], 'apt-get install build-essential (to compile C extensions locally)', false),
    checkEngine(ctx.env),
    ...(options.registry ? [checkRegistry(options.registry)] : []),
    checkWheelhouse(path.resolve(ctx.cwd, options.wheelhouse)),
  ]);
  if (interpreters.length === 0 || !checks.some((c) => c.area === 'interpreter' && c.ok)) {
    checks.unshift({
      area: 'interpreter',
      name: 'python3',
      ok: false,
      required: true,
      detail: 'no usable Python interpreter with pip >= 22.2',
      fix: 'apt-get install python3 python3-venv python3-pip (or install one with pyenv)',
    });
  }
  return checks;
}

export function registerDoctorCommand(program: Command, run: Runner): void {
  program
    .command('doctor')
    .description('show what is present and usable: interpreters and their tags, pip, git, compiler, Docker engine, registry, wheelhouse')
    .option('--wheelhouse <dir>', 'the wheelhouse to check (default: $WHEELHOUSE or ./wheelhouse)')
    .option('--registry <host:port|url>', 'also check that this registry answers (env DSTACK_REGISTRY)')
    .option('--json', 'print the checks as JSON')
    .action(
      run(async (ctx, opts: { wheelhouse?: string; registry?: string; json?: boolean }) => {
        const registry = opts.registry ?? ctx.env.DSTACK_REGISTRY;
        const checks = await doctor(ctx, {
          wheelhouse: opts.wheelhouse ?? ctx.env.WHEELHOUSE ?? 'wheelhouse',
          ...(registry ? { registry } : {}),
        });
        if (opts.json) {
          ctx.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
        } else {
          const mark = (c: Check) => (c.ok ? (ctx.color ? '\u001b[32mok\u001b[0m  ' : 'ok  ') : ctx.color ? '\u001b[31mFAIL\u001b[0m' : 'FAIL');
          for (const c of checks) {
            ctx.stdout.write(`${mark(c)} ${c.area.padEnd(11)} ${c.name}: ${c.detail}\n`);
            if (!c.ok && c.fix) ctx.stdout.write(`     ${' '.repeat(11)} fix: ${c.fix}\n`);
          }
        }
        return checks.some((c) => c.required && !c.ok) ? 1 : 0;
      }),
    );
}

import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { homedir, machine } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import type Docker from 'dockerode';
import type { AppImageResult, AppInput, AttachResult, BaseInfo, BytecodeCompiler, Image, ImageSpec, LayerReport, Platform, PushEvent, SinkResult, SourceOptions, WheelInput } from '@dstack/image';
import type { RegistryClient } from '@dstack/oci';
import type { Lock } from '@dstack/recipe';
import type { BuildOptions, BuildPlan, DockerExecutor, TargetSummary } from '@dstack/engine';
import type { Target, WheelStore } from '@dstack/wheelhouse';
import { DOCKER_HUB_AUTH_KEY, dockerConfigAuths, dockerConfigCredentials, parseReference } from '@dstack/oci';
import { lazyChild, type CliContext, type Runner } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { IMAGES_DIR, baseForPlatform, defaultImage, factoryExecutor, platformTag } from '../images.js';
import { LiveLine } from '../progress.js';
import { missingRuntime, onbuildBuild } from '../onbuild.js';
import { buildEnvironment } from '../dotenv.js';
import { enforce } from '../libcheck.js';
import { registerImageSelfCommand } from './image-self.js';
import { openStore } from './wheelhouse.js';
import { execFileAsync as exec } from '../exec.js';

// @dstack/image, @dstack/engine and dockerode are loaded by the actions that use them, not at start-up.
const imageLib = () => import('@dstack/image');

/**
 * How the image commands reach images: a registry client with docker config credentials, and the engine, loaded
 * only when one of `specs` is a docker: image (dockerode costs ~0.1 s of start-up).
 */
async function imageAccess(ctx: CliContext, specs: { kind: string }[], opts: { insecureRegistry?: string[] }, logger: CliContext['logger']) {
  const { RegistryClient } = await imageLib();
  const registry = new RegistryClient({ credentials: dockerConfigAuths(ctx.env), insecure: opts.insecureRegistry ?? [], logger });
  const engine = specs.some((x) => x.kind === 'docker') ? await dockerFrom(ctx.env) : null;
  const docker = (): Docker => {
    if (!engine) throw new Error('no docker: image here, yet the engine was asked for');
    return engine;
  };
  return { registry, engine, docker };
}

async function dockerFrom(env: NodeJS.ProcessEnv): Promise<Docker> {
  const { default: Docker } = await import('dockerode');
  const host = env.DOCKER_HOST;
  if (!host) return new Docker({ socketPath: '/var/run/docker.sock' });
  const url = new URL(host);
  if (url.protocol === 'unix:') return new Docker({ socketPath: url.pathname });
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: url.protocol === 'https:' ? 'https' : 'http' });
}

/**
 * The registry credentials `docker login` stored for the registry a tag names ($DOCKER_CONFIG/config.json or
 * ~/.docker/config.json, `auths.<host>.auth`), as the engine's push API wants them; anonymous without.
 * Credential helpers (credsStore) are not run: log in with a plain store, or push with docker itself.
 */
function registryAuth(env: NodeJS.ProcessEnv, tag: string): Record<string, string> {
  const first = tag.split('/')[0]!;
  const host = tag.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : DOCKER_HUB_AUTH_KEY;
  const creds = dockerConfigCredentials(host, env);
  return creds ? { ...creds, serveraddress: host } : {};
}

/**
 * `docker push TAG` through the engine, with the credentials of {@link registryAuth}. An `errorDetail` in the
 * stream (sent with HTTP 200) is a failure.
 */
async function pushTag(docker: Docker, tag: string, env: NodeJS.ProcessEnv, onLine: (line: string) => void): Promise<void> {
  let failure: string | null = null;
  try {
    const stream = (await docker.getImage(tag).push({ authconfig: registryAuth(env, tag) })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (err: Error | null) => (err ? reject(err) : resolve()),
        (event: { status?: string; id?: string; error?: string; errorDetail?: { message?: string } }) => {
          if (event.errorDetail || event.error) failure ??= event.errorDetail?.message ?? event.error ?? 'unknown error';
          if (event.status && !event.status.startsWith('Pushing')) onLine(`${event.id ? `${event.id}: ` : ''}${event.status}`);
        },
      );
    });
  } catch (err) {
    failure ??= (err as Error).message;
  }
  if (failure) {
    throw new CliError('IMAGE_PUSH_FAILED', `docker push ${tag} failed: ${failure}`, {
      hint: 'the tag names the registry (REGISTRY/NAME:TAG, --tag); log the engine in to it when it needs credentials',
    });
  }
}

function cacheDir(ctx: CliContext, opt: string | undefined): string {
  return path.resolve(ctx.cwd, opt ?? ctx.env.DSTACK_IMAGE_CACHE ?? path.join(ctx.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'dstack-factory', 'image'));
}

function parsePairs(pairs: string[] | undefined, option: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`${option} takes KEY=VALUE, not "${pair}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** An interpreter on this machine with exactly the base's full Python version (Decision 3), or null. */
async function localInterpreterFor(base: BaseInfo, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (!base.pythonFullVersion) return null;
  const candidates = [`/usr/bin/python${base.pythonVersion}`, `/usr/local/bin/python${base.pythonVersion}`];
  const versions = path.join(env.PYENV_ROOT ?? path.join(homedir(), '.pyenv'), 'versions');
  if (existsSync(versions)) for (const v of readdirSync(versions)) candidates.push(path.join(versions, v, 'bin', 'python'));
  for (const c of candidates) {
    if (existsSync(c) && (await pythonVersionOf(c)) === base.pythonFullVersion) return c;
  }
  return null;
}

/** The full version of the interpreter at `python` ("3.11.2"), or null when it does not run. */
async function pythonVersionOf(python: string): Promise<string | null> {
  try {
    return (await exec(python, ['-c', 'import platform; print(platform.python_version())'])).stdout.trim();
  } catch {
    return null;
  }
}

/**
 * Decision 3: a recipe is locked with the base's own interpreter before its wheels go into an image — `--python`,
 * else a local interpreter of the base's full version, else the factory image's (`--factory-image`,
 * $FACTORY_IMAGE or dstack-factory/factory:py$PY_VERSION) on the Docker engine when its Python is the base's. Returns the lock.
 */
async function lockForBase(
  ctx: CliContext,
  recipe: string,
  info: BaseInfo,
  options: { wheelhouse: string; python?: string; factoryImage?: string; allowIndex?: boolean; logger: CliContext['logger']; platform?: Platform | null; dryRun?: boolean },
): Promise<{ lockFile: string } | { plan: BuildPlan }> {
  const { buildWheelhouse, planWheelhouse } = await import('@dstack/engine');
  const wanted = info.pythonFullVersion ?? info.pythonVersion;
  // A local interpreter locks for its own machine only: a base of another architecture is locked in its factory image.
  const foreign = info.target.architecture !== machine();
  const platform = options.platform ? `${options.platform.os}/${options.platform.architecture}${options.platform.variant ? `/${options.platform.variant}` : ''}` : undefined;
  let python = options.python ? path.resolve(ctx.cwd, options.python) : options.factoryImage || foreign ? null : await localInterpreterFor(info, ctx.env);
  if (options.python) {
    const version = await pythonVersionOf(python!);
    if (version !== wanted) {
      throw new CliError(
        'LOCK_NO_INTERPRETER',
        version === null ? `--python ${python} does not run` : `--python ${python} is Python ${version}, the base's is ${wanted}: its lock would not fit the image`,
        { hint: `give an interpreter of Python ${wanted}, or leave --python out (a local one of that version, else the factory image on the engine)` },
      );
    }
  }
  let engine: { executor: DockerExecutor; target: Target } | null = null;
  if (!python) {
    let wantedPlatform = platform;
    if (!wantedPlatform && foreign) {
      const oci = (await import('@dstack/wheelhouse')).ociPlatformOfMachine(info.target.architecture);
      if (oci) wantedPlatform = `linux/${oci.architecture}${oci.variant ? `/${oci.variant}` : ''}`;
    }
    const { image, executor } = await factoryExecutor(ctx.env, options.factoryImage, options.logger, wantedPlatform);
    // Said first when the factory image was the fallback, not the choice.
    const noLocal = options.factoryImage ? '' : `no local interpreter of the base's Python ${wanted} to lock ${recipe} with, and `;
    let target: Target;
    try {
      target = await executor.target();
    } catch (err) {
      throw new CliError('LOCK_NO_INTERPRETER', `${noLocal}the factory image ${image} cannot be used: ${(err as Error).message}`, {
        hint: `pass --python <python${info.pythonVersion}> or --factory-image REF (built on the base: dstack-factory image factory), or lock elsewhere and pass --lock`,
        cause: err,
      });
    }
    if (target.pythonFullVersion !== wanted) {
      throw new CliError(
        'LOCK_NO_INTERPRETER',
        `${noLocal}the factory image ${image} has Python ${target.pythonFullVersion}, the base's is ${wanted}: its lock would not fit the image`,
        { hint: `build the factory image on the same base (dstack-factory image factory --base-image …), or pass --python / --lock` },
      );
    }
    engine = { executor, target };
    python = `docker:${image}`;
  }
  const buildOptions: BuildOptions = {
    recipe,
    wheelhouse: options.wheelhouse,
    pythons: [python],
    ...(engine ? { executor: engine.executor, targetOf: () => Promise.resolve(engine.target) } : {}),
    logger: options.logger.child({ component: 'engine' }),
    env: ctx.env,
    // Decision 19: the image installs what the wheelhouse holds, so the lock is made from it alone.
    wheelhouseOnly: options.allowIndex !== true,
  };
  if (options.dryRun) {
    // The same lock the build would use: when it is current, the image is planned from it; else the build's plan.
    const plan = await planWheelhouse(buildOptions);
    const planned = plan.targets[0];
    return planned?.lock === 'current' && planned.lockFile ? { lockFile: planned.lockFile } : { plan };
  }
  const summary = await buildWheelhouse(buildOptions);
  const t = summary.targets[0];
  if (!summary.ok || !t?.lockFile) {
    // pip found nothing for a requirement the wheelhouse has wheels of: say why each does not fit the base.
    const missing = t?.failures.find((f) => f.missing)?.missing;
    const unfit = missing ? await wheelsThatDoNotFit(options.wheelhouse, missing.requirement, info, recipe) : null;
    throw unfit ?? lockFailure(recipe, python, t);
  }
  return { lockFile: t.lockFile };
}

/** Why locking for the base failed, in the words a user acts on: what is missing and who needs it, or pip's verdict. */
function lockFailure(recipe: string, python: string, t: TargetSummary | undefined): CliError {
  const f = t?.failures[0];
  const log = f?.logFile ? `; full log: ${f.logFile}` : '';
  if (t && f?.missing) {
    const m = f.missing;
    const why =
      m.neededBy || m.marker
        ? ` (${m.neededBy ?? recipe} needs it${m.marker ? ` when ${m.marker}` : ''}, and the base's Python is ${t.pythonFullVersion})`
        : '';
    return new CliError(
      'BUILD_FAILED',
      t.noIndex
        ? `not in the wheelhouse: ${m.requirement}${why}; build it with \`dstack-factory build --executor docker\``
        : `no distribution found for ${m.requirement}${why}`,
      {
        hint: t.noIndex
          ? `the lock is made from the wheelhouse only (pip --no-index); --allow-index lets pip look at your indexes too${log}`
          : `check the recipe's index options${log}`,
      },
    );
  }
  const detail = f ? `: ${f.package}${f.version ? ` ${f.version}` : ''} failed${f.summary.length > 0 ? ` — ${f.summary.join('; ')}` : ''}` : '';
  return new CliError('BUILD_FAILED', `locking ${recipe} for ${python} failed${detail}`, {
    hint: f?.logFile ? `full log: ${f.logFile}` : 'run dstack-factory build for details',
  });
}

/**
 * pip found no distribution of a requirement while locking for the base: when the wheelhouse holds wheels of it,
 * say why each does not fit the base (its tag against the base's target, its Requires-Python); else null.
 */
async function wheelsThatDoNotFit(wheelhouse: string, requirement: string, info: BaseInfo, recipe: string): Promise<CliError | null> {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(.*)$/.exec(requirement.trim());
  if (!m) return null;
  const [, name, specifier] = m as unknown as [string, string, string];
  const { FsWheelStore, describeTargetText, whyNoWheel } = await import('@dstack/wheelhouse');
  const entries = await new FsWheelStore(wheelhouse).list().catch(() => []);
  const why = whyNoWheel(entries, { name, specifier }, info.target, { subject: 'the base' });
  if (why.length === 0) return null;
  const base = describeTargetText(info.target);
  return new CliError('LOCK_NO_MATCHING_WHEEL', `no distribution of ${name}${specifier} fits the base (${base}) while locking ${recipe}: ${why.map((w) => `${w.filename}: ${w.reason}`).join('; ')}`, {
    hint: 'build the wheel for the base (dstack-factory build --executor docker on a factory image made from it), or choose a base the wheels fit',
  });
}

/** An image spec with its file paths made absolute against the current folder. */
function specAt(ctx: CliContext, text: string, parseImageSpec: (text: string) => ImageSpec): ImageSpec {
  const spec = parseImageSpec(text);
  if (spec.kind === 'oci') return { ...spec, dir: path.resolve(ctx.cwd, spec.dir) };
  if (spec.kind === 'archive') return { ...spec, file: path.resolve(ctx.cwd, spec.file) };
  return spec;
}

interface AppOptions {
  base: string;
  requirements?: string;
  /** `FILE`, or `PLATFORM=FILE` once per platform. */
  lock?: string[];
  platform?: string;
  indexFormat?: string;
  source?: string;
  wheel?: string;
  wheelhouse?: string;
  uid?: string;
  cmd?: string[];
  entrypoint?: string[];
  label?: string[];
  output: string;
  tag?: string;
  cache?: string;
  insecureRegistry?: string[];
  json?: boolean;
  engine?: boolean;
  compression?: string;
  compressionLevel?: string;
  python?: string;
  factoryImage?: string;
  allowIndex?: boolean;
  checkLibs?: boolean;
  /** commander's --no-pip: false when given. */
  pip?: boolean;
  /** commander's --no-compile: false when given. */
  compile?: boolean;
  dryRun?: boolean;
  cacheFrom?: string;
  cacheTo?: string;
  cacheKeep?: string;
  /** --sbom FILE, or false for --no-sbom. */
  sbom?: string | boolean;
}

/** `registry:REF` of --cache-from / --cache-to: the reference, or a usage error. */
function cacheRef(value: string, option: string): string {
  const m = /^(?:docker-)?registry:(?:\/\/)?(.+)$/.exec(value);
  if (!m) throw new UsageError(`${option} takes registry:REF (a layer cache in a registry), not "${value}"`);
  return m[1]!;
}

/** The best pip wheel of the wheelhouse for the base (a venv gets pip from it before the base's own), or null. */
async function wheelhousePip(
  wheelhouse: Wheelhouse,
  info: BaseInfo,
): Promise<{ pipWheel: string; pipWheelSha256: string; pipWheelLocate?: () => Promise<string> } | null> {
  const { bestWheel } = await import('@dstack/wheelhouse');
  const entries = await wheelhouse.store.list('pip').catch(() => []);
  const best = bestWheel(entries, { name: 'pip', specifier: '' }, info.target);
  if (!best) return null;
  const { fetch } = wheelhouse;
  const at = path.join(wheelhouse.location, best.filename);
  if (!fetch) return { pipWheel: at, pipWheelSha256: best.sha256 };
  return {
    pipWheel: at,
    pipWheelSha256: best.sha256,
    pipWheelLocate: async () => (await fetch(best.filename, best.sha256)) ?? Promise.reject(new Error(`${best.filename} left ${wheelhouse.location} while the image was built`)),
  };
}

/** `--wheelhouse`: a folder, or a registry repository whose wheels are fetched one by one when read. */
interface Wheelhouse {
  /** The folder, or registry:HOST/REPO (as messages name it). */
  location: string;
  store: WheelStore;
  /** A registry's: the local file of a wheel (downloaded once, its sha256 checked), or null when it has not got it. */
  fetch?: (wheel: string, sha256: string) => Promise<string | null>;
}

/**
 * The wheelhouse of `image app`. A registry's wheels are fetched only when their bytes are read (a layer neither
 * cache has), each into the image cache under its sha256, checked against the lock's as it streams.
 */
async function openWheelhouse(ctx: CliContext, where: string, options: { insecure: string[]; dir: string; logger: CliContext['logger'] }): Promise<Wheelhouse> {
  if (!where.startsWith('registry:')) {
    const { FsWheelStore } = await import('@dstack/wheelhouse');
    const location = path.resolve(ctx.cwd, where);
    return { location, store: new FsWheelStore(location) };
  }
  const store = await openStore(ctx, { insecureRegistry: options.insecure }, where);
  const fetched = new Map<string, Promise<string | null>>();
  const download = async (wheel: string, sha256: string): Promise<string | null> => {
    const file = path.join(options.dir, sha256, wheel);
    if (existsSync(file)) return file;
    let src: NodeJS.ReadableStream;
    try {
      src = await store.openRead(wheel);
    } catch (err) {
      if ((err as { code?: string }).code === 'WHEEL_NOT_FOUND') return null;
      throw err;
    }
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        src,
        async function* (chunks: AsyncIterable<Buffer | string>) {
          for await (const c of chunks) {
            const b = typeof c === 'string' ? Buffer.from(c) : c;
            hash.update(b);
            size += b.length;
            yield b;
          }
        },
        createWriteStream(tmp),
      );
      const got = hash.digest('hex');
      if (got !== sha256) {
        const { ImageError } = await imageLib();
        throw new ImageError('WHEEL_HASH_MISMATCH', `${where}: ${wheel} has sha256 ${got}, the lock says ${sha256}`, {
          hint: 'the registry wheelhouse and the lock disagree; push the locked wheel again or lock again',
        });
      }
      await rename(tmp, file);
    } finally {
      await rm(tmp, { force: true });
    }
    options.logger.info({ wheel, size, from: where }, 'wheel fetched');
    return file;
  };
  return {
    location: where,
    store,
    fetch: (wheel, sha256) => {
      let p = fetched.get(wheel);
      if (!p) fetched.set(wheel, (p = download(wheel, sha256)));
      return p;
    },
  };
}

/** `--platform`: a comma-separated list (linux/amd64,linux/arm64), or `all` = every platform the base offers. */
async function platformsOf(text: string, baseSpec: ImageSpec, options: SourceOptions): Promise<Platform[]> {
  const { imagePlatforms, parsePlatform, platformMatches, formatPlatform } = await imageLib();
  if (text === 'all') return imagePlatforms(baseSpec, options);
  const out: Platform[] = [];
  for (const item of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    let p: Platform;
    try {
      p = parsePlatform(item);
    } catch {
      throw new UsageError(`--platform takes os/architecture[/variant] items separated by commas (linux/amd64,linux/arm64) or all, not "${item}"`);
    }
    if (out.some((q) => platformMatches(q, p) || platformMatches(p, q))) throw new UsageError(`--platform names ${formatPlatform(p)} twice`);
    out.push(p);
  }
  if (out.length === 0) throw new UsageError('--platform names no platform');
  return out;
}

/** `--platform` of the engine commands: platforms by name (no `all`: there is no index to take them from). */
async function platformList(text: string): Promise<string[]> {
  const { parsePlatform, formatPlatform } = await imageLib();
  return text.split(',').map((x) => x.trim()).filter(Boolean).map((item) => {
    try {
      return formatPlatform(parsePlatform(item));
    } catch {
      throw new UsageError(`--platform takes os/architecture[/variant] items separated by commas (linux/amd64,linux/arm64), not "${item}"`);
    }
  });
}

/** `--lock FILE` (any platform; one only) and `--lock PLATFORM=FILE` (one per platform). */
function parseLocks(values: string[], platforms: Platform[] | null): { platform: Platform | null; file: string }[] {
  const out: { platform: Platform | null; file: string }[] = [];
  for (const v of values) {
    const m = /^([a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?)=(.+)$/.exec(v);
    if (!m) {
      out.push({ platform: null, file: v });
      continue;
    }
    const [os, architecture, variant] = m[1]!.split('/') as [string, string, string | undefined];
    const platform: Platform = variant ? { os, architecture, variant } : { os, architecture };
    if (!platforms) throw new UsageError(`--lock ${v} names a platform: give --platform too (or --lock FILE for the base's only one)`);
    out.push({ platform, file: m[2]! });
  }
  const plain = out.filter((l) => l.platform === null);
  if (plain.length > 1 || (plain.length === 1 && out.length > 1)) {
    throw new UsageError('give one --lock FILE, or one --lock PLATFORM=FILE per platform (--lock linux/arm64=FILE)');
  }
  if (plain.length === 1 && platforms && platforms.length > 1) {
    throw new UsageError(`one lock is for one platform: give --lock PLATFORM=FILE for each of ${platforms.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`).join(', ')}`);
  }
  return out;
}

/**
 * The app image's CycloneDX SBOM (issue 23): written beside an oci: or archive: output as `<output>.cdx.json`
 * (outside the layout's index.json, which keeps one image), attached to a registry output as an OCI 1.1 referrer
 * (the `sha256-<hex>` tag when the registry has no referrers API), and to `--sbom FILE`. A docker: output gets
 * only the last. Returns where it went.
 */
async function writeSbom(
  ctx: CliContext,
  o: {
    result: AppImageResult;
    output: ImageSpec;
    /** The digest the image is known by where it went, and (registry) the manifest a referrer points at. */
    digest: string;
    subject: { mediaType: string; digest: string; size: number };
    /** One image of a --platform index: its platform names its file (`<output>.linux-arm64.cdx.json`). */
    platform: string | null;
    lockFile: string;
    lock: Lock;
    wheelhouse: Wheelhouse;
    registry: RegistryClient;
    file: string | null;
  },
): Promise<{ files: string[]; referrer?: AttachResult } | null> {
  const { CYCLONEDX_MEDIA_TYPE, LOCK_DIGEST_LABEL, attachReferrer, cycloneDxSbom, installedDistributions, sbomBytes } = await imageLib();
  const store = o.wheelhouse.store;
  const distributions = await installedDistributions({ result: o.result, lock: { lock: o.lock, file: o.lockFile }, record: (f) => store.get(f) });
  const labels = o.result.image.config.config.Labels ?? {};
  const name = o.output.kind === 'registry' ? o.output.ref : o.output.kind === 'docker' ? o.output.name : o.output.kind === 'oci' ? `oci:${o.output.dir}${o.output.ref ? `:${o.output.ref}` : ''}` : `archive:${o.output.file}`;
  const bytes = sbomBytes(
    cycloneDxSbom({
      digest: o.digest as `sha256:${string}`,
      name,
      ...(o.result.image.config.created ? { created: o.result.image.config.created } : {}),
      distributions,
      properties: {
        ...(labels[LOCK_DIGEST_LABEL] ? { [`dstack-factory:${LOCK_DIGEST_LABEL}`]: labels[LOCK_DIGEST_LABEL] } : {}),
        ...Object.fromEntries(o.result.layers.map((l) => [`dstack-factory:layer.${l.role}`, l.digest])),
      },
      toolVersion: await cliVersion(),
    }),
  );
  const files: string[] = [];
  const suffix = o.platform ? `.${o.platform.replaceAll('/', '-')}.cdx.json` : '.cdx.json';
  const beside = o.output.kind === 'oci' ? `${o.output.dir}${suffix}` : o.output.kind === 'archive' ? `${o.output.file}${suffix}` : null;
  for (const f of [beside, o.file]) {
    if (!f || files.includes(f)) continue;
    const tmp = `${f}.${process.pid}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, f);
    files.push(f);
  }
  if (o.output.kind !== 'registry') return { files };
  const referrer = await attachReferrer(o.registry, parseReference(o.output.ref), {
    subject: o.subject as { mediaType: string; digest: `sha256:${string}`; size: number },
    artifactType: CYCLONEDX_MEDIA_TYPE,
    content: bytes,
    ...(o.result.image.config.created ? { annotations: { 'org.opencontainers.image.created': o.result.image.config.created } } : {}),
  });
  ctx.logger.info({ digest: referrer.digest, via: referrer.via }, 'sbom attached');
  return { files, referrer };
}

function printImage(ctx: CliContext, b: { image: Image; layers: LayerReport[] }, out: SinkResult): void {
  for (const l of b.layers) ctx.stdout.write(`${l.role.padEnd(12)} ${l.digest}  ${l.size} B${l.cached ? '  (cached)' : ''}\n`);
  ctx.stdout.write(`image ${b.image.digest()} -> ${out.where}  ${out.digest}\n`);
}

/**
 * Who compiles the image's bytecode: an interpreter of the base's Python version here (its exact full version
 * first), else the base's own interpreter in a container on the engine (a docker: base is there already).
 */
async function bytecodeCompiler(
  info: BaseInfo,
  baseSpec: ImageSpec,
  docker: () => Docker | Promise<Docker>,
  logger: CliContext['logger'],
): Promise<BytecodeCompiler> {
  const { ImageError, engineBytecodeCompiler, findHostBytecodeCompiler } = await imageLib();
  const host = await findHostBytecodeCompiler(info.pythonVersion, info.pythonFullVersion);
  const tag = `cpython-${info.pythonVersion.replace('.', '')}`;
  const compiler = host ?? (baseSpec.kind === 'docker' ? engineBytecodeCompiler(await docker(), baseSpec.name, info.python, tag) : null);
  if (!compiler) {
    throw new ImageError('IMAGE_BYTECODE_NO_PYTHON', `no Python ${info.pythonVersion} on this machine to compile the image's bytecode with, and the base (${info.python}) is not on an engine`, {
      hint: `install Python ${info.pythonVersion} (pyenv install ${info.pythonFullVersion}), give the base as docker:NAME on the engine, or build with --no-compile`,
    });
  }
  logger.info({ compiler: compiler.description }, 'compiling bytecode');
  return compiler;
}

/** A layer as a dry run reports it: reused from the cache, or built (the dependencies: wheels installed and reused). */
function plannedLayer(l: LayerReport): string {
  const how = l.cached ? 'reused (cache hit)' : l.segments ? `built (${l.segments.built} wheels installed, ${l.segments.reused} reused)` : 'built';
  return `${l.role.padEnd(12)} ${l.digest}  ${l.size} B  ${how}`;
}

/**
 * `image app --dry-run`: what the assembly made (nothing of it kept) and the digest the output will have — the
 * one image's, as `writeImage` would return it, or the index's over several platforms (one platform only for
 * docker: and archive:, as the real run writes).
 */
function dryRunReport(
  ctx: CliContext,
  o: {
    built: { platform: Platform | null; image: Image; layers: LayerReport[] }[];
    output: ImageSpec;
    spec: string;
    indexFormat: 'oci' | 'docker';
    locks: { file: string; digest: string }[];
    ImageIndex: typeof import('@dstack/image').ImageIndex;
    destinationDigest: typeof import('@dstack/image').destinationDigest;
    formatPlatform: (p: Platform) => string;
    json: boolean;
  },
): number {
  const several = o.built.some((b) => b.platform !== null);
  const asIndex = several && o.output.kind !== 'docker' && o.output.kind !== 'archive';
  const digest = asIndex ? new o.ImageIndex(o.built.map((b) => b.image)).index(o.indexFormat).digest : o.destinationDigest(o.built[0]!.image, o.output);
  const out = { spec: o.spec, kind: o.output.kind, digest };
  if (o.json) {
    const one = o.built[0]!;
    const body = several
      ? { dryRun: true, digest, output: out, images: o.built.map((b) => ({ platform: o.formatPlatform(b.platform!), digest: b.image.manifest(o.indexFormat).digest, layers: b.layers })), locks: o.locks }
      : { dryRun: true, digest: one.image.digest(), output: out, lock: o.locks[0], layers: one.layers };
    ctx.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  for (const b of o.built) {
    if (several) ctx.stdout.write(`${o.formatPlatform(b.platform!)}\n`);
    for (const l of b.layers) ctx.stdout.write(`${several ? '  ' : ''}${plannedLayer(l)}\n`);
    if (several) ctx.stdout.write(`  image ${b.image.manifest(o.indexFormat).digest}\n`);
  }
  const what = asIndex ? 'index' : `image ${o.built[0]!.image.digest()}`;
  ctx.stdout.write(`${what} -> ${o.spec} would be ${digest} (dry run: nothing written)\n`);
  return 0;
}

export function registerImageCommands(program: Command, run: Runner): void {
  const image = program.command('image').description('build images: the factory and runtime on a Docker engine, app images daemonless');

  image
    .command('app')
    .description('an app image from a lock or requirements (+ a source folder or an app wheel), without a Docker engine')
    .requiredOption('--base <ref>', 'base image: docker:NAME | oci:DIR[:REF] | archive:FILE | registry:REF (or a bare REF)')
    .option('--requirements <file>', 'a recipe: locked first with an interpreter of the base\'s Python version (local, else the factory image\'s on the engine)')
    .option('--python <path>', 'with --requirements: the interpreter to lock with (it must be the base\'s full Python version)')
    .option('--factory-image <ref>', 'with --requirements: lock through this factory image on the Docker engine (default when no local interpreter fits: $FACTORY_IMAGE or dstack-factory/factory:py$PY_VERSION); its dpkg lists name the Debian packages of missing libraries')
    .option('--allow-index', 'with --requirements: let pip use indexes while locking (default: the wheelhouse only, unless the recipe names an index)')
    .option('--lock <[platform=]file>', 'a PEP 751 lock (pylock.<target>.toml) made for the base\'s interpreter; with --platform, one per platform: --lock linux/arm64=FILE (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--platform <list>', 'platforms to build, one image each from the same recipe (linux/amd64,linux/arm64, or all = the base\'s): an image index for oci: and registry:, one platform for docker: and archive:; nothing is run, no emulation is needed')
    .option('--index-format <oci|docker>', 'with several platforms: an OCI image index over OCI manifests (default), or a Docker manifest list over Docker v2 manifests')
    .option('--source <dir>', 'the app source, copied to /app (owned by --uid), .dockerignore honoured')
    .option('--wheel <file>', 'the app as a wheel, installed into /env')
    .option('--wheelhouse <dir|registry:HOST/REPO>', 'where the locked wheels are (default: $WHEELHOUSE or ./wheelhouse); a registry\'s (dstack-factory wheelhouse push) are fetched only when read, i.e. for a layer no cache has; none is needed when the cache has every layer')
    .option('--uid <n>', 'owner of /app and the user the container runs as', '4801')
    .option('--cmd <args...>', 'the image Cmd')
    .option('--entrypoint <args...>', 'the image Entrypoint')
    .option('--label <key=value...>', 'extra labels')
    .option('--output <dest>', 'docker:TAG | oci:DIR[:REF] | archive:FILE | registry:REF (required, but with --dry-run: then oci: is assumed)')
    .option('--tag <name>', 'the tag recorded in an archive: output')
    .option('--compression <gzip|none>', 'how new layers are stored (default: none for docker:, which keeps layers uncompressed; gzip otherwise)')
    .option('--compression-level <1-9>', "gzip level of new layers (default 6, gzip's own): 1 compresses about twice as fast into layers ~13% larger (part of the layers' cache keys)")
    .option('--cache <dir>', 'layer and blob cache (default: $DSTACK_IMAGE_CACHE or ~/.cache/dstack-factory/image)')
    .option('--insecure-registry <host...>', 'registries reached over plain HTTP (loopback ones always are)')
    .option('--no-pip', 'no pip in the venv (a minimal image); by default pip is installed from the wheelhouse, else the base\'s own pip wheel, unless the lock has it')
    .option('--no-compile', 'no .pyc files; by default every installed module is compiled as pip install does (PEP 552 checked hash-based, reproducible), by a local interpreter of the base\'s Python version, else by the base itself on the Docker engine (docker: bases)')
    .option('--json', 'print the result as JSON')
    .option('--engine', 'build the same through the Dockerfiles of images/app on the Docker engine (DOCKER_HOST); --base docker:NAME, --output docker:TAG')
    .option('--no-check-libs', 'skip the shared-library check (every ELF file the wheels install must load on the base)')
    .option('--dry-run', "the plan, writing nothing: each layer reused or built and the digest the output will have (with --requirements and no current lock: the build's plan)")
    .option('--cache-from <ref>', 'a layer cache in a registry to build from (registry:REF): its layers are mounted or downloaded, not rebuilt')
    .option('--cache-to <ref>', 'write the layer cache to a registry after the build (registry:REF; its own tag, never an image\'s)')
    .option('--cache-keep <n>', 'with --cache-to: records kept per family (dependency layers, each project\'s segments, bases)', '3')
    .option('--sbom <file>', 'also write the CycloneDX SBOM here (by default it goes beside oci: and archive: outputs as <output>.cdx.json — with --platform one per platform, <output>.linux-arm64.cdx.json — and to a registry as a referrer of each image)')
    .option('--no-sbom', 'write no SBOM')
    .action(
      run(async (ctx, opts: AppOptions) => {
        const {
          BlobCache,
          DryRunCache,
          ImageIndex,
          RegistryClient,
          RegistryLayerCache,
          buildAppImage,
          buildAppImageOnDaemon,
          checkWheelLibraries,
          destinationDigest,
          exportLayerCache,
          fetchRegistryLayers,
          formatPlatform,
          lockedWheelsBeforeBase,
          findHostBytecodeCompiler,
          mountFromCache,
          openImage,
          parseImageSpec,
          platformMatches,
          platformOf,
          readBase,
          recordUse,
          sourceDateEpoch,
          wheelFiles,
          wheelsFromLock,
          writeDependenciesLayer,
          writeImage,
          writeImageIndex,
        } = await imageLib();
        if (opts.output === undefined) {
          if (!opts.dryRun) throw new UsageError('--output is required (docker:TAG | oci:DIR[:REF] | archive:FILE | registry:REF)');
          // The plan of an OCI layout with gzip: no destination is needed to know the image.
          opts.output = 'oci:app';
        }
        if (opts.dryRun && opts.engine) throw new UsageError('--dry-run plans the daemonless assembly; an --engine build is the engine\'s');
        if (opts.dryRun && opts.cacheTo) throw new UsageError('--dry-run writes nothing, --cache-to writes the layer cache: give one');
        if (!opts.requirements === !opts.lock?.length) throw new UsageError('give exactly one of --requirements FILE or --lock FILE');
        if (typeof opts.sbom === 'string' && opts.engine) throw new UsageError('--sbom is for daemonless builds; --engine writes none');
        if (typeof opts.sbom === 'string' && opts.platform) throw new UsageError('--sbom FILE is for one image; with --platform the SBOMs go beside the output, one per platform (<output>.linux-arm64.cdx.json) or to the registry');
        if (opts.source && opts.wheel) throw new UsageError('give at most one of --source DIR or --wheel FILE');
        if (opts.python && !opts.requirements) throw new UsageError('--python locks --requirements; a --lock is used as it is');
        if (opts.allowIndex && !opts.requirements) throw new UsageError('--allow-index is for locking --requirements; a --lock is used as it is');
        if (opts.python && opts.factoryImage) throw new UsageError('give at most one of --python PATH or --factory-image REF');
        if (opts.engine) {
          if (opts.compile === false) throw new UsageError('--no-compile is not supported with --engine (the Dockerfiles of images/app run pip install, which compiles)');
          const out = parseImageSpec(opts.output);
          if (out.kind !== 'docker') throw new UsageError(`--engine builds on the engine: --output docker:TAG, not "${opts.output}"`);
          if (parseImageSpec(opts.base).kind !== 'docker') throw new UsageError(`--engine builds FROM an engine image: --base docker:NAME, not "${opts.base}"`);
          if (opts.cmd || opts.entrypoint) throw new UsageError('--cmd and --entrypoint are not supported with --engine (the Dockerfiles of images/app set none)');
        }
        const output = specAt(ctx, opts.output, parseImageSpec);
        const compression = opts.compression ?? (output.kind === 'docker' ? 'none' : 'gzip');
        if (compression !== 'gzip' && compression !== 'none') throw new UsageError(`--compression is gzip or none, not "${compression}"`);
        const level = opts.compressionLevel === undefined ? 6 : Number(opts.compressionLevel);
        if (!Number.isInteger(level) || level < 1 || level > 9) throw new UsageError(`--compression-level is a whole number from 1 to 9, not "${opts.compressionLevel}"`);
        if (opts.compressionLevel !== undefined && compression !== 'gzip') throw new UsageError('--compression-level is for gzip layers; --compression none stores them uncompressed');
        const uid = Number(opts.uid);
        if (!Number.isInteger(uid) || uid < 0) throw new UsageError(`--uid must be a number, not "${opts.uid}"`);
        const cacheFrom = opts.cacheFrom === undefined ? null : cacheRef(opts.cacheFrom, '--cache-from');
        const cacheTo = opts.cacheTo === undefined ? null : cacheRef(opts.cacheTo, '--cache-to');
        const keep = Number(opts.cacheKeep ?? '3');
        if (!Number.isInteger(keep) || keep < 1) throw new UsageError(`--cache-keep must be a whole number above 0, not "${opts.cacheKeep}"`);
        if ((cacheFrom || cacheTo) && opts.engine) throw new UsageError('--cache-from and --cache-to are for daemonless builds; --engine uses the engine\'s own cache');
        const logger = lazyChild(ctx, { component: 'image' });
        const realCache = new BlobCache(cacheDir(ctx, opts.cache));
        // A dry run assembles through the same code with a cache that keeps nothing (bases are read through the real one).
        const dryCache = opts.dryRun ? new DryRunCache(realCache) : null;
        const cache = dryCache ?? realCache;
        try {
          const registry = new RegistryClient({ credentials: dockerConfigAuths(ctx.env), insecure: opts.insecureRegistry ?? [], logger });
          // The registry layer cache, read while the base is: it answers the records the disk lacks from the first
          // inspection on; a layer it names is mounted when the image goes to the same registry, else downloaded
          // (beside the base's layers). An unreadable cache is a warning: the build goes on without it.
          if (cacheFrom && opts.dryRun) logger.warn({ cache: cacheFrom }, 'a dry run plans without --cache-from: a layer only the registry has counts as built');
          const cacheReading = Promise.all([
            cacheFrom && !opts.dryRun
              ? RegistryLayerCache.open(cacheFrom, { client: registry, logger }).catch((err: { code?: string; message: string }) => {
                  if (err.code === 'IMAGE_LAYER_CACHE_INVALID') throw err;
                  logger.warn({ cache: cacheFrom, err: err.message }, 'layer cache not readable: building without it');
                  return null;
                })
              : null,
            cacheTo && cacheTo !== cacheFrom ? RegistryLayerCache.open(cacheTo, { client: registry, logger }) : null,
          ]).then(([remote, target]) => {
            if (remote) {
              remote.mode = output.kind === 'registry' && remote.sameRegistry(output.ref) ? 'mount' : 'download';
              logger.info({ cache: cacheFrom, records: remote.attachTo(cache), blobs: remote.blobs.size, mode: remote.mode }, 'layer cache');
            }
            return { remote, target };
          });
          cacheReading.catch(() => undefined); // awaited with the base
          const used = cacheTo ? recordUse(cache) : null;
          const wheelhouse = await openWheelhouse(ctx, opts.wheelhouse ?? ctx.env.WHEELHOUSE ?? 'wheelhouse', { insecure: opts.insecureRegistry ?? [], dir: realCache.filesDir('wheels'), logger });
          const lockedOptions = wheelhouse.fetch ? { fetch: wheelhouse.fetch } : {};
          if (wheelhouse.fetch && opts.requirements) throw new UsageError(`--requirements locks with pip from a wheelhouse folder, not ${wheelhouse.location}: give --lock, or pull the wheels into a folder first (dstack-factory wheelhouse pull)`);
          if (wheelhouse.fetch && opts.engine) throw new UsageError(`--engine copies a wheelhouse folder into the build, not ${wheelhouse.location}: pull the wheels into a folder first (dstack-factory wheelhouse pull)`);
          const resolve = (p: string): string => path.resolve(ctx.cwd, p);

          const baseSpec = specAt(ctx, opts.base, parseImageSpec);
          // dockerode is loaded only when a docker: image is read or written (it costs ~0.1 s of start-up).
          const engineClient = baseSpec.kind === 'docker' || output.kind === 'docker' ? await dockerFrom(ctx.env) : null;
          const docker = (): Docker => {
            if (!engineClient) throw new Error('no docker: image in this build, yet the engine was asked for');
            return engineClient;
          };
          const platforms = opts.platform ? await platformsOf(opts.platform, baseSpec, { cache: realCache, docker, registry }) : null;
          if (platforms && platforms.length > 1 && opts.engine) throw new UsageError('--engine builds one platform on the engine: give one --platform, or leave --engine out');
          const locks = parseLocks(opts.lock ?? [], platforms);
          const extraLabels = parsePairs(opts.label, '--label');
          let app: AppInput | undefined;
          if (opts.source) app = { kind: 'source', dir: resolve(opts.source) };
          else if (opts.wheel) app = { kind: 'wheel', path: resolve(opts.wheel) };
          // The source's git commit, asked while the base is read (git is a process of its own: ~5 ms).
          const sourceDir = app?.kind === 'source' ? app.dir : null;
          const labelsReady = (async (): Promise<Record<string, string>> => {
            const labels: Record<string, string> = { 'org.opencontainers.image.base.name': opts.base };
            if (sourceDir && (await inGitCheckout(sourceDir, ctx.env))) {
              try {
                const { stdout } = await exec('git', ['-C', sourceDir, 'rev-parse', 'HEAD']);
                labels['org.opencontainers.image.revision'] = stdout.trim();
              } catch {
                // not a git checkout
              }
            }
            return Object.assign(labels, extraLabels);
          })();

          // One live line on a terminal while bases are read and layers written, and while pushing; events in the log.
          const live = new LiveLine(ctx.stderr, ctx.interactive);
          const onWheel = (wheel: string, done: number, total: number): void => live.update({ label: 'installing', done, total, item: wheel });
          const epoch = sourceDateEpoch(ctx.env);
          /**
           * The dependencies layer of a --lock, written with the Python the lock names while the base is read (its
           * layers inflate on libuv's pool; this thread mostly waits): buildAppImage finds it when the base agrees.
           * Its digest when it was written here, else null (nothing to guess, a cache hit, or a failure the build
           * itself will report).
           */
          const dependenciesBeforeBase = async (lock: string): Promise<string | null> => {
            try {
              const guess = await lockedWheelsBeforeBase(lock, wheelhouse.location, lockedOptions);
              if (!guess) return null;
              // Compiled by the interpreter buildAppImage would choose (the lock's full version first): one segment per key.
              const bytecode =
                opts.compile === false
                  ? {}
                  : {
                      bytecode: {
                        cacheTag: `cpython-${guess.pythonVersion.replace('.', '')}`,
                        pythonFullVersion: guess.pythonFullVersion,
                        compiler: async () => {
                          const found = await findHostBytecodeCompiler(guess.pythonVersion, guess.pythonFullVersion);
                          if (!found) throw new Error(`no local Python ${guess.pythonVersion}: compiled once the base is read`);
                          return found;
                        },
                      },
                    };
              const written = await writeDependenciesLayer(guess.wheels, { cache, scheme: { prefix: '/env', pythonVersion: guess.pythonVersion }, epoch, compression: compression as 'gzip' | 'none', level, onWheel, ...bytecode });
              return written.cached ? null : written.layer.digest;
            } catch (err) {
              logger.debug({ err: (err as Error).message }, 'dependencies layer not started before the base (the build says why if it matters)');
              return null;
            }
          };
          /** One platform's image (or the base's only one without --platform): its base, lock, check and layers. */
          const assemble = async (platform: Platform | null) => {
            const where = platform ? ` (${formatPlatform(platform)})` : '';
            const given = locks.find((l) => l.platform === null || (platform !== null && platformMatches(platform, l.platform)));
            // The base is opened while the registry layer cache is read (whose records answer the base's facts).
            const [opened] = await Promise.all([openImage(baseSpec, { cache: realCache, docker, registry, ...(platform ? { platform } : {}) }), cacheReading]);
            const early = given && !opts.engine && !opts.dryRun ? dependenciesBeforeBase(resolve(given.file)) : null;
            // One read of the base for its facts and (for the library check) its files, from its base index when it has
            // one; a registry's layers are stored in the cache as they are read (one download), for oci: and archive: to
            // write from disk (with an index, downloaded beside the build; not at all for registry: or a dry run).
            const [read] = await Promise.allSettled([
              // (The line shows the wheels when they are being installed meanwhile, else the base's layers.)
              readBase(opened, { cache, files: opts.checkLibs !== false && !opts.dryRun, blobs: output.kind !== 'registry' && !opts.dryRun, onIndex: (used, why) => logger.debug({ used, why }, 'base index'), ...(early ? {} : { onLayer: (i, n, l) => live.update({ label: `reading the base${where}`, done: i, total: n, item: l.digest.slice(7, 19) }) }) }),
              early,
            ]).finally(() => live.finish());
            if (read.status === 'rejected') throw read.reason;
            const { image: base, info, files: baseFiles } = read.value;
            const builtEarly = await early;
            logger.info({ platform: platform ? formatPlatform(platform) : undefined, python: info.python, version: info.pythonFullVersion ?? info.pythonVersion, venv: Boolean(info.venv) }, 'base');
            if (!given && !opts.requirements) {
              throw new UsageError(`no lock for ${formatPlatform(platform!)}: give --lock ${formatPlatform(platform!)}=FILE, or --requirements to lock for each platform`);
            }
            const lockOrPlan = given
              ? { lockFile: resolve(given.file) }
              : await lockForBase(ctx, resolve(opts.requirements!), info, { wheelhouse: wheelhouse.location, python: opts.python, factoryImage: opts.factoryImage, allowIndex: opts.allowIndex, logger, platform, dryRun: opts.dryRun === true });
            // A dry run without a current lock: which wheels go in is not known before the build, nor then the digest.
            if ('plan' in lockOrPlan) return { plan: lockOrPlan.plan };
            const lockFile = lockOrPlan.lockFile;
            const locked = await wheelsFromLock(lockFile, wheelhouse.location, info, lockedOptions);
            const wheels: WheelInput[] = locked.wheels;
            if (opts.checkLibs !== false && !opts.dryRun) {
              // Before the image is written: every ELF file the wheels install must load on this base.
              const checked = [...wheels, ...(app?.kind === 'wheel' ? [{ path: app.path }] : [])];
              const report = await checkWheelLibraries({ base, wheels: checked, scheme: { prefix: '/env', pythonVersion: info.pythonVersion }, cache, ...(baseFiles ? { baseFiles } : {}) });
              await enforce(ctx, report, base, `${opts.base}${where}`, { factoryImage: opts.factoryImage, pythonVersion: info.pythonVersion, cache, docker: async () => engineClient ?? (await dockerFrom(ctx.env)), registry, logger });
            }
            // The order of the labels as before --platform (the config's bytes, hence the digest, stay the same).
            const platformLabels = { 'org.dstack-factory.lock.digest': locked.digest, ...(await labelsReady) };
            if (opts.engine) return { base, info, wheels, labels: platformLabels, result: null, lockFile, lock: locked.lock };
            const result = await buildAppImage({
              base,
              baseInfo: info,
              cache,
              wheels,
              ...(app ? { app } : {}),
              uid,
              ...(opts.cmd ? { cmd: opts.cmd } : {}),
              ...(opts.entrypoint ? { entrypoint: opts.entrypoint } : {}),
              labels: platformLabels,
              sourceDateEpoch: epoch,
              compression,
              level,
              logger,
              onWheel,
              pip: opts.pip !== false,
              ...(opts.pip !== false ? ((await wheelhousePip(wheelhouse, info)) ?? {}) : {}),
              compile: opts.compile !== false,
              compiler: () => bytecodeCompiler(info, baseSpec, () => engineClient ?? dockerFrom(ctx.env), logger),
            });
            live.finish();
            // Written in this run before the base was read, then found by buildAppImage: not a cache hit to the user.
            for (const l of result.layers) if (l.role === 'dependencies' && l.digest === builtEarly) l.cached = false;
            return { base, info, wheels, labels: platformLabels, result, lockFile, lock: locked.lock };
          };

          if (opts.engine) {
            const one = await assemble(platforms?.[0] ?? null);
            if (one.plan) throw new Error('unreachable: an --engine build is not a dry run');
            const baseName = (baseSpec as { name: string }).name;
            const tag = (parseImageSpec(opts.output) as { name: string }).name;
            const built = await buildAppImageOnDaemon(await dockerFrom(ctx.env), {
              dockerfiles: path.join(IMAGES_DIR, 'app'),
              base: baseName,
              // The engine's build reads every wheel: one missing from the wheelhouse is an error here.
              wheels: await wheelFiles(one.wheels),
              ...(app ? { app } : {}),
              uid,
              tag,
              labels: one.labels,
              onProgress: (line) => {
                if (ctx.interactive) ctx.stderr.write(`${line}\n`);
                else logger.info(line);
              },
            });
            if (opts.json) ctx.stdout.write(`${JSON.stringify({ id: built.id, tags: built.tags }, null, 2)}\n`);
            else ctx.stdout.write(`${built.tags.join(' ')} ${built.id}\n`);
            return 0;
          }
          // The platforms one after the other: their wheels differ, their layers are cached apart by content.
          const built: { platform: Platform | null; image: Image; layers: LayerReport[]; wheels: WheelInput[]; result: AppImageResult; lockFile: string; lock: Lock }[] = [];
          const locksUsed: { file: string; digest: string }[] = [];
          const { remote, target } = await cacheReading;
          for (const platform of platforms ?? [null]) {
            const assembled = await assemble(platform);
            if (assembled.plan) {
              if (opts.json) ctx.stdout.write(`${JSON.stringify({ dryRun: true, digest: null, plan: assembled.plan }, null, 2)}\n`);
              else {
                const { printPlan } = await import('./build.js');
                printPlan(ctx, assembled.plan);
                ctx.stdout.write('image: its digest is known once these wheels are built and locked (dstack-factory build, or image app without --dry-run)\n');
              }
              return assembled.plan.ok ? 0 : 1;
            }
            const { result, wheels, lockFile, lock } = assembled;
            locksUsed.push({ file: lockFile, digest: assembled.labels['org.dstack-factory.lock.digest']! });
            let image = result!.image;
            // oci: and archive: write every layer from disk: what is left in the registry (nothing, unless readBase
            // found the base's facts cached and read no layer, or a layer came from the registry cache) is downloaded.
            if (!opts.dryRun && (output.kind === 'oci' || output.kind === 'archive')) image = await fetchRegistryLayers(image, cache);
            else if (remote && output.kind === 'registry') image = mountFromCache(image, remote, output.ref);
            // `image` has the same digest as result.image: only where its layers are read from differs.
            built.push({ platform: platform ? platformOf(image) : null, image, layers: result!.layers, wheels, result: result!, lockFile, lock });
          }
          const indexFormat = opts.indexFormat ?? 'oci';
          if (indexFormat !== 'oci' && indexFormat !== 'docker') throw new UsageError(`--index-format is oci or docker, not "${indexFormat}"`);
          if (opts.dryRun) return dryRunReport(ctx, { built, output, spec: opts.output, indexFormat, locks: locksUsed, ImageIndex, destinationDigest, formatPlatform, json: opts.json === true });
          // A push to a registry: the live line says blobs done of layers + config.
          let blobs = 0;
          const total = built.reduce((n, b) => n + b.layers.length + 1, 0);
          const sinkOptions = {
            docker,
            registry,
            ...(opts.tag ? { tag: opts.tag } : {}),
            ...(baseSpec.kind === 'docker' ? { reuseFrom: [baseSpec.name] } : {}),
            onPush: (e: PushEvent) => {
              logger.info({ digest: e.digest, size: e.size }, e.type);
              if (e.type !== 'manifest') blobs += 1;
              live.update({ label: 'pushing', done: blobs, total, item: `${e.type} ${e.digest.slice(7, 19)} ${e.size} B` });
            },
          };
          const index = platforms ? new ImageIndex(built.map((b) => b.image)) : null;
          // Reported in the index's order (by platform), whatever order --platform named them in.
          if (index) built.sort((a, b) => index.entries.findIndex((e) => e.image === a.image) - index.entries.findIndex((e) => e.image === b.image));
          // The image and the layer cache are written together (a blob the cache lacks waits for the push, then is
          // mounted from the image's repository).
          const pushing = (index ? writeImageIndex(index, output, { ...sinkOptions, format: indexFormat }) : writeImage(built[0]!.image, output, sinkOptions)).finally(() => live.finish());
          const runtimes = new Set(built.flatMap((b) => b.layers.filter((l) => l.role === 'runtime').map((l) => l.digest)));
          const exporting =
            cacheTo && used
              ? exportLayerCache(cacheTo, {
                  client: registry,
                  cache,
                  used,
                  previous: cacheTo === cacheFrom ? remote : target,
                  keep,
                  wheelNames: new Map(built.flatMap((b) => b.wheels).filter((w) => w.sha256).map((w) => [w.sha256!, path.basename(w.path)])),
                  layers: built.flatMap((b) => b.image.layers.filter((l) => runtimes.has(l.digest))),
                  mountFrom: [...(cacheFrom ? [cacheFrom] : []), ...(output.kind === 'registry' ? [output.ref] : [])],
                  pushing,
                  logger,
                })
              : null;
          exporting?.catch(() => undefined); // a failed push is the error reported; the export waits on it
          const [out, exported] = await Promise.all([pushing, exporting]);
          if (exported) logger.info({ cache: cacheTo, ...exported }, 'layer cache written');
          // An SBOM per image: the one image, or each platform's of an index (in the index's manifest format).
          const inIndex = index !== null && output.kind !== 'docker' && output.kind !== 'archive';
          const sboms: ({ platform: string | null; digest: string; files: string[]; referrer?: AttachResult } | null)[] = [];
          // A docker: output has nowhere to keep one unless --sbom FILE names a place.
          const wanted = opts.sbom !== false && (output.kind !== 'docker' || typeof opts.sbom === 'string');
          for (const b of !wanted ? [] : inIndex ? built : built.slice(0, 1)) {
            const format = inIndex ? indexFormat : output.kind === 'oci' ? 'oci' : 'docker';
            const m = b.image.manifest(format);
            const digest = inIndex || output.kind !== 'docker' ? m.digest : out.digest;
            const platform = inIndex ? formatPlatform(b.platform!) : null;
            const file = typeof opts.sbom === 'string' ? resolve(opts.sbom) : null;
            const written = await writeSbom(ctx, { result: b.result, output, digest, subject: { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length }, platform, lockFile: b.lockFile, lock: b.lock, wheelhouse, registry, file });
            sboms.push(written ? { platform, digest, ...written } : null);
          }
          const sbom = inIndex ? null : (sboms[0] ?? null);
          const printSbom = (x: (typeof sboms)[number]): void => {
            for (const f of x?.files ?? []) ctx.stdout.write(`sbom ${f}\n`);
            if (x?.referrer) ctx.stdout.write(`sbom ${x.referrer.digest} -> ${output.kind === 'registry' ? output.ref : ''} (referrer of ${x.digest}${x.referrer.tag ? `, tag ${x.referrer.tag}` : ''})\n`);
          };
          const cacheJson = exported ? { cacheTo: { ref: cacheTo, ...exported } } : {};
          const printCache = (): void => {
            if (!exported) return;
            const b = exported.blobs;
            ctx.stdout.write(`cache ${cacheTo}  ${exported.records} records${exported.dropped ? ` (${exported.dropped} dropped)` : ''}, blobs ${b.present} present, ${b.mounted} mounted, ${b.uploaded} uploaded\n`);
          };
          if (index && (output.kind === 'docker' || output.kind === 'archive')) {
            // One platform went there as a plain image: say it as one.
            const only = built[0]!;
            if (opts.json) ctx.stdout.write(`${JSON.stringify({ digest: only.image.digest(), platform: formatPlatform(only.platform!), output: out, layers: only.layers, ...cacheJson, ...(sbom ? { sbom } : {}) }, null, 2)}\n`);
            else {
              printImage(ctx, only, out);
              printSbom(sbom);
            }
          } else if (index) {
            const digest = index.index(indexFormat).digest;
            if (opts.json) {
              const images = built.map((b, i) => ({ platform: formatPlatform(b.platform!), digest: b.image.manifest(indexFormat).digest, layers: b.layers, ...(sboms[i] ? { sbom: { files: sboms[i]!.files, ...(sboms[i]!.referrer ? { referrer: sboms[i]!.referrer } : {}) } } : {}) }));
              ctx.stdout.write(`${JSON.stringify({ digest, output: out, images, ...cacheJson }, null, 2)}\n`);
            } else {
              for (const b of built) {
                ctx.stdout.write(`${formatPlatform(b.platform!)}\n`);
                for (const l of b.layers) ctx.stdout.write(`  ${l.role.padEnd(12)} ${l.digest}  ${l.size} B${l.cached ? '  (cached)' : ''}\n`);
                ctx.stdout.write(`  image ${b.image.manifest(indexFormat).digest}\n`);
              }
              for (const x of sboms) printSbom(x);
              ctx.stdout.write(`index ${digest} -> ${out.where}  ${out.digest}\n`);
            }
          } else if (opts.json) {
            ctx.stdout.write(`${JSON.stringify({ digest: built[0]!.image.digest(), output: out, layers: built[0]!.layers, ...cacheJson, ...(sbom ? { sbom } : {}) }, null, 2)}\n`);
          } else {
            printImage(ctx, built[0]!, out);
            printSbom(sbom);
          }
          if (!opts.json) printCache();
          return 0;
        } finally {
          await dryCache?.dispose();
        }
      }),
    );

  registerImageSelfCommand(image, run, { cacheDir, dockerFrom });

  image
    .command('rebase')
    .description("put an app image's dependency and app layers, unchanged, on a new base of the same target (platform, Python, glibc); nothing is reinstalled")
    .argument('<ref>', 'the app image (built by image app): docker:NAME | oci:DIR[:REF] | archive:FILE | registry:REF')
    .requiredOption('--base <ref>', 'the new base image')
    .requiredOption('--output <dest>', 'docker:TAG | oci:DIR[:REF] | archive:FILE | registry:REF')
    .option('--tag <name>', 'the tag recorded in an archive: output')
    .option('--compression <gzip|none>', 'how the new runtime layer is stored (default: none for docker:, gzip otherwise)')
    .option('--no-check-libs', 'skip the shared-library check on the result')
    .option('--factory-image <ref>', 'where missing libraries are looked up for their Debian package')
    .option('--cache <dir>', 'the image cache (default: $DSTACK_IMAGE_CACHE or ~/.cache/dstack-factory/image)')
    .option('--insecure-registry <host...>', 'registries reached over plain HTTP (loopback ones always are)')
    .option('--json', 'print the result as JSON')
    .action(
      run(async (ctx, ref: string, opts: { base: string; output: string; tag?: string; compression?: string; checkLibs?: boolean; factoryImage?: string; cache?: string; insecureRegistry?: string[]; json?: boolean }) => {
        const { BlobCache, openImage, parseImageSpec, rebaseAppImage, sourceDateEpoch, writeImage } = await imageLib();
        const logger = lazyChild(ctx, { component: 'image' });
        const cache = new BlobCache(cacheDir(ctx, opts.cache));
        const output = specAt(ctx, opts.output, parseImageSpec);
        const compression = opts.compression ?? (output.kind === 'docker' ? 'none' : 'gzip');
        if (compression !== 'gzip' && compression !== 'none') throw new UsageError(`--compression is gzip or none, not "${compression}"`);
        const baseSpec = specAt(ctx, opts.base, parseImageSpec);
        const appSpec = specAt(ctx, ref, parseImageSpec);
        const { registry, engine, docker } = await imageAccess(ctx, [baseSpec, appSpec, output], opts, logger);
        const [app, newBase] = await Promise.all([openImage(appSpec, { cache, docker, registry }), openImage(baseSpec, { cache, docker, registry })]);
        const result = await rebaseAppImage({ image: app, newBase, cache, compression, checkLibraries: opts.checkLibs !== false, sourceDateEpoch: sourceDateEpoch(ctx.env), logger });
        if (result.libraries) {
          const pythonVersion = result.to.python.split('.').slice(0, 2).join('.');
          await enforce(ctx, result.libraries, newBase, opts.base, { factoryImage: opts.factoryImage, pythonVersion, cache, docker: async () => engine ?? (await dockerFrom(ctx.env)), registry, logger });
        }
        const out = await writeImage(result.image, output, {
          docker,
          registry,
          ...(opts.tag ? { tag: opts.tag } : {}),
          ...(baseSpec.kind === 'docker' ? { reuseFrom: [baseSpec.name] } : {}),
        });
        if (opts.json) ctx.stdout.write(`${JSON.stringify({ digest: result.image.digest(), output: out, target: result.to, layers: result.layers }, null, 2)}\n`);
        else {
          for (const l of result.layers) ctx.stdout.write(`${l.role.padEnd(12)} ${l.digest}  ${l.size} B${l.cached ? '  (kept)' : ''}\n`);
          ctx.stdout.write(`image ${result.image.digest()} -> ${out.where}  ${out.digest}\n`);
        }
        return 0;
      }),
    );

  image
    .command('check')
    .description('the shared-library check on an existing image: every ELF file under its venv must load (daemonless, nothing is run)')
    .argument('<ref>', 'docker:NAME | oci:DIR[:REF] | archive:FILE | registry:REF (or a bare REF)')
    .option('--prefix <dir>', "the venv whose ELF files are checked (default: the image's VIRTUAL_ENV, else /env)")
    .option('--factory-image <ref>', 'where missing libraries are looked up for their Debian package (default: $FACTORY_IMAGE or dstack-factory/factory:py$PY_VERSION, else this machine\'s dpkg)')
    .option('--cache <dir>', 'the image cache (default: $DSTACK_IMAGE_CACHE or ~/.cache/dstack-factory/image)')
    .option('--insecure-registry <host...>', 'registries reached over plain HTTP (loopback ones always are)')
    .option('--json', 'print the report as JSON')
    .action(
      run(async (ctx, ref: string, opts: { prefix?: string; factoryImage?: string; cache?: string; insecureRegistry?: string[]; json?: boolean }) => {
        const { BlobCache, checkImageLibraries, inspectBase, openImage, parseImageSpec } = await imageLib();
        const logger = lazyChild(ctx, { component: 'image' });
        const cache = new BlobCache(cacheDir(ctx, opts.cache));
        const spec = specAt(ctx, ref, parseImageSpec);
        const { registry, engine, docker } = await imageAccess(ctx, [spec], opts, logger);
        const image = await openImage(spec, { cache, docker, registry });
        const report = await checkImageLibraries(image, { cache, ...(opts.prefix ? { prefix: opts.prefix } : {}) });
        const info = await inspectBase(image, { cache }).catch(() => null);
        await enforce(ctx, report, image, ref, { factoryImage: opts.factoryImage, pythonVersion: info?.pythonVersion ?? '3.11', cache, docker: async () => engine ?? (await dockerFrom(ctx.env)), registry, logger });
        if (opts.json) ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else ctx.stdout.write(`${ref}: ${report.checked} ELF ${report.checked === 1 ? 'file' : 'files'} checked, every library found\n`);
        return 0;
      }),
    );

  image
    .command('verify')
    .description("the chain from an app image back to its lock: the lock digest label, each locked wheel's sha256 (lock and wheelhouse records), every file each wheel installed (its RECORD) in the dependencies layer, and nothing else there; exit 0 only when unbroken")
    .argument('<ref>', 'the app image (built by image app): docker:NAME | oci:DIR[:REF] | archive:FILE | registry:REF (or a bare REF)')
    .requiredOption('--lock <file>', 'the PEP 751 lock the image was made from')
    .option('--wheelhouse <dir>', 'where the locked wheels are (default: $WHEELHOUSE or ./wheelhouse)')
    .option('--cache <dir>', 'the image cache (default: $DSTACK_IMAGE_CACHE or ~/.cache/dstack-factory/image)')
    .option('--insecure-registry <host...>', 'registries reached over plain HTTP (loopback ones always are)')
    .option('--json', 'print the report as JSON')
    .action(
      run(async (ctx, ref: string, opts: { lock: string; wheelhouse?: string; cache?: string; insecureRegistry?: string[]; json?: boolean }) => {
        const { BlobCache, openImage, parseImageSpec, verifyAppImage } = await imageLib();
        const { FsWheelStore } = await import('@dstack/wheelhouse');
        const logger = lazyChild(ctx, { component: 'image' });
        const cache = new BlobCache(cacheDir(ctx, opts.cache));
        const spec = specAt(ctx, ref, parseImageSpec);
        const { registry, docker } = await imageAccess(ctx, [spec], opts, logger);
        const wheelhouse = path.resolve(ctx.cwd, opts.wheelhouse ?? ctx.env.WHEELHOUSE ?? 'wheelhouse');
        const store = new FsWheelStore(wheelhouse);
        const report = await verifyAppImage({
          image: await openImage(spec, { cache, docker, registry }),
          lockFile: path.resolve(ctx.cwd, opts.lock),
          wheelhouse,
          cache,
          record: (f) => store.get(f),
        });
        if (opts.json) ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else {
          for (const d of report.distributions) ctx.stdout.write(`${d.name} ${d.version}  ${d.wheel}  sha256:${d.sha256}  ${d.files} files${d.from === 'pip' ? '  (the venv\'s pip)' : ''}\n`);
          for (const p of report.problems) ctx.stdout.write(`BROKEN ${p.file}: ${p.message}\n`);
        }
        if (!report.ok) {
          const first = report.problems[0]!;
          throw new CliError('IMAGE_VERIFY_FAILED', `${ref}: ${first.file}: ${first.message}${report.problems.length > 1 ? ` (and ${report.problems.length - 1} more)` : ''}`, {
            hint: 'rebuild the image from the lock (image app --lock), or find out who changed the file named',
          });
        }
        if (!opts.json) ctx.stdout.write(`${ref}: unbroken — ${report.distributions.length} distributions, ${report.files} files in ${report.layer}, lock ${path.basename(opts.lock)}\n`);
        return 0;
      }),
    );

  image
    .command('prune')
    .description('remove from the image cache what no build used lately (layers, segments, base exports, records)')
    .option('--cache <dir>', 'the cache (default: $DSTACK_IMAGE_CACHE or ~/.cache/dstack-factory/image)')
    .option('--older-than <age>', 'unused for this long: a number of days, or with a unit (30d, 12h, 90m, 0)', '14d')
    .option('--json', 'print the result as JSON')
    .action(
      run(async (ctx, opts: { cache?: string; olderThan: string; json?: boolean }) => {
        const m = /^(\d+)([dhms]?)$/.exec(opts.olderThan);
        if (!m) throw new UsageError(`--older-than takes a number of days or NUMBER[d|h|m|s], not "${opts.olderThan}"`);
        const unit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[(m[2] || 'd') as 'd' | 'h' | 'm' | 's'];
        const dir = cacheDir(ctx, opts.cache);
        const { BlobCache, pruneCache } = await imageLib();
        const r = await pruneCache(new BlobCache(dir), { olderThanMs: Number(m[1]) * unit });
        if (opts.json) ctx.stdout.write(`${JSON.stringify({ cache: dir, ...r }, null, 2)}\n`);
        else {
          const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;
          ctx.stdout.write(`${dir}: removed ${r.blobs} blobs (${mb(r.bytes)}) and ${r.records} records; kept ${r.keptBlobs} blobs (${mb(r.keptBytes)})\n`);
        }
        return 0;
      }),
    );

  for (const which of ['factory', 'runtime'] as const) {
    const command = image.command(which);
    if (which === 'runtime') {
      command.option('--onbuild [flavour]', 'an onbuild runtime on the runtime image, as the original\'s: requirements (default), source or wheel; tag <runtime tag>-onbuild[-source|-wheel]');
    }
    command
      .description(`build the ${which} image (images/${which}) on a Docker engine (DOCKER_HOST); build arguments from the flags, else the environment, else .env, as docker-compose passes them`)
      .option('--tag <name>', `the image tag (default: dstack-factory/${which}:py<--py-version, $PY_VERSION or 3.11>, as docker-compose.yml names it)`)
      .option('--base-image <ref>', 'BASE_IMAGE build argument (default $BASE_IMAGE)')
      .option('--py-version <x.y>', 'PY_VERSION build argument and tag (default $PY_VERSION)')
      .option('--extra-packages <list>', 'EXTRA_PACKAGES build argument: more Debian packages (default $EXTRA_PACKAGES)');
    if (which === 'runtime') {
      command
        .option('--uid <n>', 'UID build argument: the user webapp (default $UID)')
        .option('--no-base-index', `leave out the base index: a last layer (/var/lib/dstack-factory/base-index.json, ~130 kB) holding the image's facts and file index, which app builds on it read instead of all its layers (the image is read once for it, into $DSTACK_IMAGE_CACHE or ~/.cache/dstack-factory/image)`);
    }
    command
      .option('--build-arg <key=value...>', 'more build arguments')
      .option('--platform <list>', `build for these platforms (linux/amd64,linux/arm64), one image each tagged <tag>-<architecture> (Docker 20.10 keeps one platform per tag); a foreign one runs its RUN steps under the engine's emulation. BASE_IMAGE per platform: <base>-<architecture> when the engine has it, else the base itself`)
      .option('--context <dir>', `the build context (default: images/${which} of dstack-factory)`)
      .option('--no-cache', 'do not use the engine\'s build cache')
      .option('--push', 'push the built tag to its registry through the engine (as the original\'s docker push)')
      .option('--env-file <file>', 'read this file instead of ./.env')
      .action(
        run(async (ctx, opts: { tag?: string; baseImage?: string; pyVersion?: string; extraPackages?: string; uid?: string; buildArg?: string[]; platform?: string; context?: string; cache: boolean; push?: boolean; envFile?: string; onbuild?: string | true; baseIndex?: boolean }) => {
          // What docker-compose.yml passes (`${PY_VERSION:-3.11}`, …): empty values count as unset.
          const env = buildEnvironment(ctx, opts.envFile);
          const from = (flag: string | undefined, name: string): string | undefined => flag ?? (env[name] || undefined);
          const pyVersion = from(opts.pyVersion, 'PY_VERSION');
          const context = opts.context ? path.resolve(ctx.cwd, opts.context) : path.join(IMAGES_DIR, which);
          const logger = lazyChild(ctx, { component: 'image', image: which });
          const runtimeTag = defaultImage(which, env, pyVersion);
          // An onbuild flavour stands on the plain runtime (Decision 22): its own Dockerfile and tag suffix, and
          // only BASE_IMAGE (the runtime, unless --base-image), as docker-compose.yml's onbuild services.
          const onbuild = opts.onbuild === undefined ? undefined : onbuildBuild(opts.onbuild, runtimeTag);
          const buildArgs: Record<string, string> = {};
          if (!onbuild) {
            // docker-compose.yml's defaults too: the same arguments give the engine's build cache the same keys.
            Object.assign(buildArgs, {
              BASE_IMAGE: from(opts.baseImage, 'BASE_IMAGE') ?? 'debian:bookworm-slim',
              PY_VERSION: pyVersion ?? '3.11',
              ...(which === 'runtime' ? { UID: from(opts.uid, 'UID') ?? '4801' } : {}),
              EXTRA_PACKAGES: opts.extraPackages ?? env.EXTRA_PACKAGES ?? '',
            });
          } else if (opts.baseImage) buildArgs.BASE_IMAGE = opts.baseImage;
          Object.assign(buildArgs, parsePairs(opts.buildArg, '--build-arg'));
          const docker = await dockerFrom(ctx.env);
          const { buildDockerfile, indexDaemonImage, BlobCache, sourceDateEpoch } = await imageLib();
          // The plain runtime carries its base index (an onbuild flavour adds no layer: the runtime's stays on top).
          const baseIndex = which === 'runtime' && !onbuild && opts.baseIndex !== false;
          if (onbuild) {
            buildArgs.BASE_IMAGE ??= runtimeTag;
            await docker.getImage(buildArgs.BASE_IMAGE).inspect().catch((err: unknown) => {
              throw missingRuntime(buildArgs.BASE_IMAGE!, err);
            });
          }
          const tag = opts.tag ?? onbuild?.tag ?? runtimeTag;
          const onProgress = (line: string): void => {
            if (ctx.interactive) ctx.stderr.write(`${line}\n`);
            else logger.info(line);
          };
          // One build per platform, one after the other (each is its own tag: Docker 20.10 keeps one platform per tag).
          const platforms = opts.platform === undefined ? [null] : await platformList(opts.platform);
          for (const platform of platforms) {
            const platformTagged = platform ? platformTag(tag, platform) : tag;
            const args = { ...buildArgs };
            if (platform && args.BASE_IMAGE) args.BASE_IMAGE = await baseForPlatform(docker, args.BASE_IMAGE, platform);
            let id = await buildDockerfile(docker, {
              context,
              tag: platformTagged,
              ...(onbuild ? { dockerfile: onbuild.dockerfile } : {}),
              buildArgs: args,
              noCache: !opts.cache,
              ...(platform ? { platform } : {}),
              onProgress,
            });
            if (baseIndex) {
              const cache = new BlobCache(cacheDir(ctx, undefined));
              try {
                id = await indexDaemonImage(docker, id, platformTagged, { cache, mtime: sourceDateEpoch(ctx.env) });
              } catch (err) {
                throw new CliError('IMAGE_BASE_INDEX_FAILED', `${platformTagged} is built (${id}), but writing its base index failed: ${(err as Error).message}`, {
                  hint: 'run it again, or leave the index out with --no-base-index (app builds on it then read its layers)',
                  cause: err,
                });
              }
              logger.info({ tag: platformTagged, id }, 'base index added');
            }
            if (opts.push) await pushTag(docker, platformTagged, ctx.env, onProgress);
            ctx.stdout.write(`${platformTagged} ${id}${platform ? ` ${platform}` : ''}\n`);
          }
          return 0;
        }),
      );
  }
}

/** The CLI's version from its package.json: one folder up from the bundle (dist/), two from src/commands/. */
async function cliVersion(): Promise<string> {
  for (const rel of ['../package.json', '../../package.json']) {
    const pkg = (await readFile(new URL(rel, import.meta.url), 'utf8').then(JSON.parse, () => null)) as { name?: string; version?: string } | null;
    if (pkg?.name === 'dstack-factory' && pkg.version) return pkg.version;
  }
  throw new Error(`no package.json of dstack-factory above ${import.meta.url}`);
}

/** Whether `dir` is inside a git work tree, by a `.git` in it or above it (no git process for a folder that is not). */
async function inGitCheckout(dir: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (env.GIT_DIR) return true;
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (await stat(path.join(d, '.git')).then(() => true, () => false)) return true;
    if (path.dirname(d) === d) return false;
  }
}

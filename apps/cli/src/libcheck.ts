// The shared-library check as the CLI runs it (image app, image check, image rebase): the report from
// @dstack/image, and — only when something is missing — Debian package names from the factory image's dpkg
// lists (read from its layers, cached), else this machine's dpkg database, else none.
import type Docker from 'dockerode';
import type { BlobCache, Image, LibraryReport, PackageFinder, RegistryClient } from '@dstack/image';
import type { CliContext } from './context.js';
import { defaultImage } from './images.js';

export interface FinderOptions {
  /** --factory-image, else $FACTORY_IMAGE, else dstack-factory/factory:py<python>. */
  factoryImage?: string | undefined;
  pythonVersion: string;
  cache: BlobCache;
  /** The engine, connected only when the factory image is looked for there. */
  docker: () => Promise<Docker>;
  registry: RegistryClient;
  logger: CliContext['logger'];
}

/** Names packages from the factory image when it can be opened (a bare name is an engine image), else the host's dpkg. */
export async function packageFinder(ctx: CliContext, options: FinderOptions): Promise<PackageFinder | null> {
  // @dstack/image is loaded on use, as the commands do (start-up time).
  const { cachedImageFiles, hostPackageFinder, imagePackageFinder, openImage, parseImageSpec, readImageFiles } = await import('@dstack/image');
  const name = options.factoryImage ?? ctx.env.FACTORY_IMAGE ?? defaultImage('factory', ctx.env, options.pythonVersion);
  const spec = parseImageSpec(/^(docker|docker-daemon|oci|archive|docker-archive|registry|docker-registry):/.test(name) ? name : `docker:${name}`);
  try {
    if (spec.kind === 'docker') {
      // An engine image whose files were read before: its layers' diffIDs find them without an export.
      const layers = (await (await options.docker()).getImage(spec.name).inspect()).RootFS?.Layers ?? [];
      const known = layers.length ? await cachedImageFiles(layers, options.cache) : null;
      if (known) return imagePackageFinder(known, `the factory image ${name}`);
    }
    const engine = spec.kind === 'docker' ? await options.docker() : null;
    const docker = (): Docker => {
      if (!engine) throw new Error('no docker: image here, yet the engine was asked for');
      return engine;
    };
    const image = await openImage(spec, { cache: options.cache, docker, registry: options.registry });
    return imagePackageFinder(await readImageFiles(image, { cache: options.cache }), `the factory image ${name}`);
  } catch (error) {
    options.logger.debug({ image: name, err: (error as Error).message }, 'factory image not readable; package names from the host');
    return hostPackageFinder();
  }
}

/** Throws IMAGE_LIBRARY_MISSING (with package names) when the report has problems. */
export async function enforce(ctx: CliContext, report: LibraryReport, image: Image, baseName: string, options: FinderOptions): Promise<void> {
  options.logger.info({ checked: report.checked, problems: report.problems.length }, 'shared-library check');
  if (report.problems.length === 0) return;
  const { libraryCheckError, withPackages } = await import('@dstack/image');
  const named = report.problems.some((p) => p.kind === 'missing') ? withPackages(report, await packageFinder(ctx, options)) : report;
  throw libraryCheckError(named, { name: baseName, architecture: image.config.architecture });
}

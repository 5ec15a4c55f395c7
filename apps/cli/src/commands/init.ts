import type { Command } from 'commander';
import { constants } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Runner } from '../context.js';
import { UsageError } from '../errors.js';
import { IMAGES_DIR } from '../images.js';

/** The repository's images/ folder: the app entry-point Dockerfiles that `init` copies (Decision 10). */

const RECIPE = `# A recipe: a pip requirements file. \`dstack-factory build\` turns it into wheels in ./wheelhouse,
# for every requirement and every dependency below it. Anything pip accepts works here:
#   django==4.2.16
#   psycopg2==2.9.10                         (compiled in the factory, not in your app image)
#   mylib @ git+https://github.com/me/mylib@v1.2
`;

const REQUIREMENTS = `# What the app image installs, by name, from ./wheelhouse with no index (\`docker build .\` runs
# \`pip install --no-index -f /wheelhouse -r requirements.txt\`): the projects your recipe builds, e.g.
#   django==4.2.16
#   psycopg2==2.9.10
# The recipe (recipes/requirements.txt) says where they come from; this file only names them.
`;

const ENV = `# Read by \`dstack-factory build\` and docker-compose from this folder.
RECIPE=requirements
BUILD_REQ=True
CEXT=True
PY_VERSION=3.11
UID=4801
`;

const COMPOSE = `# Your app on the dstack-factory runtime image (build it with \`dstack-factory image runtime\` or the
# factory repository's \`docker-compose build runtime\`). The wheelhouse comes from \`dstack-factory build\`.
#   docker-compose build deps app   # dependencies from recipes/requirements.txt, installed from ./wheelhouse
#                                   # with no index; then your code from src/ into /app, owned by UID
#   docker-compose run --rm app python -c 'import sys; print(sys.version)'
version: "2.4"

services:
  deps:
    build:
      context: .
      dockerfile: Dockerfile
      args:
        BASE_IMAGE: dstack-factory/runtime:py\${PY_VERSION:-3.11}
        REQUIREMENTS: recipes/requirements.txt
    image: \${COMPOSE_PROJECT_NAME:-app}-deps
  app:
    build:
      context: .
      dockerfile: Dockerfile-source
      args:
        BASE_IMAGE: \${COMPOSE_PROJECT_NAME:-app}-deps
        UID: \${UID:-4801}
        SRC_DIR: src
    image: \${COMPOSE_PROJECT_NAME:-app}
    depends_on:
      - deps
    user: webapp
`;

const DOCKERIGNORE = `# Keep the build context small: the wheelhouse is copied only by the dependency stage.
.git
.env
**/__pycache__
`;

export interface InitResult {
  created: string[];
  kept: string[];
}

/** Creates a project folder for an app built with dstack-factory; never overwrites unless `force`. */
export async function initProject(dir: string, options: { force?: boolean } = {}): Promise<InitResult> {
  const result: InitResult = { created: [], kept: [] };
  const write = async (rel: string, content: string | { copyFrom: string }) => {
    const target = path.join(dir, rel);
    await mkdir(path.dirname(target), { recursive: true });
    try {
      if (typeof content === 'string') {
        await writeFile(target, content, { flag: options.force ? 'w' : 'wx' });
      } else {
        await copyFile(content.copyFrom, target, options.force ? 0 : constants.COPYFILE_EXCL);
      }
      result.created.push(rel);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      result.kept.push(rel);
    }
  };
  await write('recipes/requirements.txt', RECIPE);
  await write('requirements.txt', REQUIREMENTS);
  await write('.env', ENV);
  await write('docker-compose.yml', COMPOSE);
  await write('.dockerignore', DOCKERIGNORE);
  await write('src/.gitkeep', '');
  await write('wheelhouse/.gitkeep', '');
  for (const f of ['Dockerfile', 'Dockerfile-source', 'Dockerfile-wheel']) {
    await write(f, { copyFrom: path.join(IMAGES_DIR, 'app', f) });
  }
  return result;
}

export function registerInitCommand(program: Command, run: Runner): void {
  program
    .command('init')
    .description('create a project folder where `docker build .` works: Dockerfile, requirements.txt, recipes/, wheelhouse/, .env, a starter docker-compose.yml')
    .argument('[dir]', 'the folder to create or fill', '.')
    .option('--force', 'overwrite files that exist')
    .action(
      run(async (ctx, dir: string, opts: { force?: boolean }) => {
        const target = path.resolve(ctx.cwd, dir);
        try {
          await readFile(path.join(IMAGES_DIR, 'app', 'Dockerfile'));
        } catch {
          throw new UsageError(`the app Dockerfiles are missing from this installation (${path.join(IMAGES_DIR, 'app')})`);
        }
        const r = await initProject(target, { force: opts.force ?? false });
        for (const f of r.created) ctx.stdout.write(`created ${path.join(dir, f)}\n`);
        for (const f of r.kept) ctx.stdout.write(`kept    ${path.join(dir, f)} (exists; --force overwrites)\n`);
        ctx.stdout.write(
          `\nNext: put your recipe in ${path.join(dir, 'recipes/requirements.txt')} and the names it builds in ` +
            `${path.join(dir, 'requirements.txt')}, then\n` +
            `  dstack-factory build --recipes ${path.join(dir, 'recipes')} --wheelhouse ${path.join(dir, 'wheelhouse')}\n` +
            `  dstack-factory image runtime                     # once: dstack-factory/runtime:py3.11\n` +
            `  docker build -t myapp ${dir}\n`,
        );
        return 0;
      }),
    );
}

// The runtime image matches the factory (issue 14 point 4): the seed's own examples, lxml 4.9.2 and Pillow 9.4.0,
// built from Debian bookworm's source packages (their .orig.tar.* are the upstream sdists; no PyPI here) by
// `dstack-factory build --executor docker` in the factory image, then installed by `image app` on the runtime
// image, where they import and work, and `image check` passes; on the bare base the check refuses them, naming
// each missing library and the Debian package that ships it.
//
// lxml's orig tarball is the upstream sdist (PKG-INFO, and the C files Cython generated): no Cython at build time. Both have only a
// setup.py and build under pip's build isolation, seeded offline with the interpreter's ensurepip setuptools and
// Debian's wheel (Decision 8), as any recipe's sdist does; Debian's own patches (debian/patches) are not applied:
// the test stands for `lxml==4.9.2` and `pillow==9.4.0` in a user's recipe.
//
// Compiling takes ~78 CPU-seconds for lxml (one compiler at a time) and ~19 for Pillow: 1.5-2 min on two idle cores,
// 4-12 min on a machine loaded 8-10 times over. So the built wheelhouse is kept in the machine's cache
// ($DSTACK_CACHE_DIR/wheels), keyed by the factory's Dockerfile and base image, the sources' bytes and the recipe,
// so only a fresh machine or a changed toolchain compiles again; a warm run still plans in the factory image
// (every wheel cached) and writes the lock.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bootstrapWheelhouse,
  debianSources,
  expectValidImage,
  imagesDir,
  isolatedPipEnv,
  machineCacheDir,
  runInContainer,
  sdistsFromDebianSources,
  sharedBaseImage,
  sharedEngine,
  sharedFactoryImage,
  sharedRuntimeImage,
  testPython,
  type DebianSource,
} from '@dstack/testing';
import { runCli } from '../run-cli.test-support.js';

const LOCK = 'pylock.cp3_11_2-manylinux_2_36_x86_64.toml';
const LXML = 'lxml-4.9.2-cp311-cp311-linux_x86_64.whl';
const PILLOW = 'pillow-9.4.0-cp311-cp311-linux_x86_64.whl';
/** The image cache image-libcheck.int.test.ts uses too: the runtime's and factory's layers are read once per machine. */
const imageCache = path.join(process.env.DSTACK_RUN_DIR ?? '/tmp/dstack', 'cache', 'libcheck-image');

let dir: string;
let env: NodeJS.ProcessEnv;
let sources: DebianSource[];
let factory: string;
let wheelhouse: string;
let lock: string;
/** The build: whether the wheels came from the machine's cache, its output, its wall time. */
let build: { warm: boolean; code: number; stderr: string; seconds: number };
const tags: string[] = [];

const sha256 = async (f: string): Promise<string> => createHash('sha256').update(await readFile(f)).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dstack-lxml-pillow-'));
  const engine = await sharedEngine();
  env = isolatedPipEnv({ NO_COLOR: '1', DOCKER_HOST: engine.dockerHost, DSTACK_IMAGE_CACHE: imageCache, HOME: dir });
  [sources, factory] = await Promise.all([debianSources(['lxml', 'pillow']), sharedFactoryImage()]);
  const links = path.join(dir, 'links');
  await sdistsFromDebianSources(sources, links);
  const recipes = path.join(dir, 'recipes');
  await mkdir(recipes);
  const recipe = `--no-index\n--find-links ${links}\nlxml==4.9.2\npillow==9.4.0\n`;
  await writeFile(path.join(recipes, 'seed.txt'), recipe);
  lock = path.join(recipes, 'locks', 'seed', LOCK);

  wheelhouse = path.join(dir, 'wheelhouse');
  // What the wheels are made of: the factory's toolchain and libraries (its Dockerfile on this base image), the
  // sources, the recipe. Not the build script beside the Dockerfile, which changes often and runs anyway (the plan).
  const base = await engine.docker.getImage(await sharedBaseImage()).inspect();
  const key = createHash('sha256')
    .update(await readFile(path.join(imagesDir, 'factory', 'Dockerfile')))
    .update(JSON.stringify([base.Id, recipe.replace(links, 'LINKS')]))
    .update(JSON.stringify(await Promise.all(sources.map(async (s) => [s.package, s.debianVersion, await sha256(s.orig)]))))
    .digest('hex');
  const cached = path.join(machineCacheDir, 'wheels', `lxml-pillow-${key.slice(0, 16)}`);
  const warm = existsSync(cached);
  if (warm) await cp(cached, wheelhouse, { recursive: true });
  // setuptools and wheel for pip's build isolation, offline (Decision 8): lxml and Pillow have only a setup.py.
  else await bootstrapWheelhouse(testPython('3.11'), wheelhouse);

  const t0 = Date.now();
  const r = await runCli(
    ['build', 'seed', '--recipes', recipes, '--wheelhouse', wheelhouse, '--executor', 'docker', '--factory-image', factory, '--no-cext', '--jobs', '2'],
    { env, cwd: dir },
  );
  build = { warm, code: r.code, stderr: r.stderr, seconds: (Date.now() - t0) / 1000 };
  console.info(`[lxml-pillow] build in the factory (${warm ? 'warm: wheels from the machine cache' : 'cold'}): ${build.seconds.toFixed(1)} s`);
  if (!warm && r.code === 0) {
    // Published whole or not at all; a run that lost the race to another keeps the other's copy. The cache only
    // saves time: a machine cache this user cannot write costs the next run its compile, not its result.
    const tmp = `${cached}.tmp-${process.pid}`;
    try {
      await mkdir(path.dirname(cached), { recursive: true });
      await cp(wheelhouse, tmp, { recursive: true });
      await rename(tmp, cached).catch(() => rm(tmp, { recursive: true, force: true }));
    } catch (error) {
      console.warn(`[lxml-pillow] the built wheels are not cached in ${cached}: ${(error as Error).message}`);
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}, 1_200_000);

afterAll(async () => {
  const { docker } = await sharedEngine();
  for (const tag of tags) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the seed's examples from Debian's sources: built in the factory, loaded in the runtime", () => {
  it("builds lxml 4.9.2 and Pillow 9.4.0 from bookworm's source packages in the factory image", async () => {
    expect(sources.map((s) => [s.package, s.version, path.basename(s.orig)])).toEqual([
      ['lxml', '4.9.2', 'lxml_4.9.2.orig.tar.gz'],
      ['pillow', '9.4.0', 'pillow_9.4.0.orig.tar.xz'],
    ]);
    expect(build.code, build.stderr).toBe(0);
    const progress = build.stderr.split('\n').filter((l) => l.startsWith('['));
    expect(progress).toContain(
      build.warm ? `[cp311-linux_x86_64] cached lxml 4.9.2 (${LXML})` : `[cp311-linux_x86_64] added ${LXML}`,
    );
    expect(progress).toContain(
      build.warm ? `[cp311-linux_x86_64] cached pillow 9.4.0 (${PILLOW})` : `[cp311-linux_x86_64] added ${PILLOW}`,
    );
    expect(progress.at(-1)).toBe(
      `[cp311-linux_x86_64] done: 2 distributions, ${build.warm ? '2 cached, 0 added' : '0 cached, 2 added'}; lock ${lock}`,
    );
    // The wheelhouse says who built them (kept with the wheels in the machine's cache).
    const list = await runCli(['wheelhouse', 'list', '--wheelhouse', wheelhouse, '--json'], { env, cwd: dir });
    const entries = JSON.parse(list.stdout) as { filename: string; builtBy?: Record<string, string> }[];
    // (setuptools and wheel beside them are the build isolation's seeds, copied in, built by no one here.)
    const built = entries.filter((e) => e.builtBy);
    expect(built.map((e) => e.filename)).toEqual([LXML, PILLOW]);
    for (const e of built) expect(e.builtBy).toMatchObject({ executor: 'docker', interpreter: '/env/bin/python (cp 3.11.2)', target: 'cp311-linux_x86_64' });
    const needs = await runCli(['wheelhouse', 'list', '--needs', '--wheelhouse', wheelhouse], { env, cwd: dir });
    expect([needs.code, needs.stderr, needs.stdout]).toEqual([
      0,
      '',
      'wheel                                      needs\n' +
        'lxml-4.9.2-cp311-cp311-linux_x86_64.whl    libc.so.6 libexslt.so.0 libxml2.so.2 libxslt.so.1\n' +
        'pillow-9.4.0-cp311-cp311-linux_x86_64.whl  libc.so.6 libfreetype.so.6 libjpeg.so.62 libwebp.so.7 libwebpdemux.so.2 libwebpmux.so.3 libxcb.so.1 libz.so.1\n' +
        'setuptools-65.5.0-py3-none-any.whl         -\n' +
        'wheel-0.38.4-py3-none-any.whl              -\n',
    ]);
  });

  it('installs them into an app image on the runtime image, where they import and work; image check passes', async () => {
    const runtime = await sharedRuntimeImage();
    const tag = `dstack-test/lxml-pillow:${randomBytes(4).toString('hex')}`;
    tags.push(tag);
    const app = ['image', 'app', '--base', `docker:${runtime}`, '--lock', lock, '--wheelhouse', wheelhouse, '--compression', 'none', '--json'];
    const built = await runCli([...app, '--output', `docker:${tag}`], { env, cwd: dir });
    expect([built.code, built.stderr]).toEqual([0, '']);
    const code = [
      'import io, lxml.etree as E, PIL, PIL.Image as I, PIL.features as F',
      'x = E.XSLT(E.XML(\'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/"><n><xsl:value-of select="count(//i)"/></n></xsl:template></xsl:stylesheet>\'))',
      'print(E.__version__, E.LIBXML_VERSION, E.LIBXSLT_VERSION, x(E.XML("<r><i/><i/></r>")).getroot().text)',
      'b = io.BytesIO(); I.new("RGB", (8, 8), "red").save(b, "JPEG"); b.seek(0)',
      'print(PIL.__version__, I.open(b).format, F.check("jpg"), F.check("zlib"), F.check("freetype2"), F.check("webp"), F.check("xcb"))',
    ].join('\n');
    const r = await runInContainer(tag, ['python', '-c', code]);
    expect([r.exitCode, r.stderr, r.stdout]).toEqual([0, '', '4.9.2 (2, 9, 14) (1, 1, 35) 2\n9.4.0 JPEG True True True True True\n']);
    // image check on the same image written daemonlessly (the same digest): 0.1 s, where reading it back from the
    // engine exports all of it (~35-55 s here); image-libcheck.int.test.ts checks a docker: image.
    const layout = path.join(dir, 'app-oci');
    const same = await runCli([...app, '--output', `oci:${layout}:app`], { env, cwd: dir });
    expect([same.code, same.stderr]).toEqual([0, '']);
    expect((JSON.parse(same.stdout) as { digest: string }).digest).toBe((JSON.parse(built.stdout) as { digest: string }).digest);
    const checked = await runCli(['image', 'check', `oci:${layout}:app`], { env, cwd: dir });
    expect([checked.code, checked.stderr, checked.stdout]).toEqual([0, '', `oci:${layout}:app: 13 ELF files checked, every library found\n`]);
    await expectValidImage(`oci:${layout}:app`);
  }, 900_000);

  it('refuses them on the bare base, naming each missing library and the Debian package that ships it', async () => {
    const base = await sharedBaseImage();
    const out = path.join(dir, 'never');
    const refused = await runCli(['image', 'app', '--base', `docker:${base}`, '--lock', lock, '--wheelhouse', wheelhouse, '--factory-image', factory, '--output', `oci:${out}:app`], { env, cwd: dir });
    expect(refused.code).toBe(1);
    // Everything lxml's and Pillow's extensions link beyond glibc and zlib (which the base has); the packages are
    // read from the factory image's dpkg lists, so the hint is the EXTRA_PACKAGES line that fixes it.
    expect(refused.stderr).toBe(
      `error[IMAGE_LIBRARY_MISSING]: docker:${base} would not load what the wheels install (10 problems):\n` +
        `  ${LXML}\n` +
        '    lxml/etree.cpython-311-x86_64-linux-gnu.so: libexslt.so.0 not found (Debian package libxslt1.1)\n' +
        '    lxml/etree.cpython-311-x86_64-linux-gnu.so: libxml2.so.2 not found (Debian package libxml2)\n' +
        '    lxml/etree.cpython-311-x86_64-linux-gnu.so: libxslt.so.1 not found (Debian package libxslt1.1)\n' +
        '    lxml/objectify.cpython-311-x86_64-linux-gnu.so: libxml2.so.2 not found (Debian package libxml2)\n' +
        `  ${PILLOW}\n` +
        '    PIL/_imaging.cpython-311-x86_64-linux-gnu.so: libjpeg.so.62 not found (Debian package libjpeg62-turbo)\n' +
        '    PIL/_imaging.cpython-311-x86_64-linux-gnu.so: libxcb.so.1 not found (Debian package libxcb1)\n' +
        '    PIL/_imagingft.cpython-311-x86_64-linux-gnu.so: libfreetype.so.6 not found (Debian package libfreetype6)\n' +
        '    PIL/_webp.cpython-311-x86_64-linux-gnu.so: libwebp.so.7 not found (Debian package libwebp7)\n' +
        '    PIL/_webp.cpython-311-x86_64-linux-gnu.so: libwebpdemux.so.2 not found (Debian package libwebpdemux2)\n' +
        '    PIL/_webp.cpython-311-x86_64-linux-gnu.so: libwebpmux.so.3 not found (Debian package libwebpmux3)\n' +
        `hint: add the packages to the runtime image (EXTRA_PACKAGES="libfreetype6 libjpeg62-turbo libwebp7 libwebpdemux2 libwebpmux3 libxcb1 libxml2 libxslt1.1"; packages from the factory image ${factory}), or use wheels that bundle them (auditwheel repair); --no-check-libs skips this check\n`,
    );
    expect(existsSync(out)).toBe(false);
  }, 900_000);
});

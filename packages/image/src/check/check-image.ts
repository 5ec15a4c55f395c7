// The shared-library check on an existing image (`dstack-factory image check`): every ELF file under its venv,
// read from its layers (headers and dynamic segments only), checked against the image's own filesystem.
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { readElf, streamSource, type ElfInfo } from '@dstack/wheelhouse';
import type { BlobCache } from '../cache/blob-cache.js';
import { sha256Digest } from '../core/digest.js';
import type { Image } from '../core/image.js';
import { checkObjects, loaderContext, type CheckedObject, type LibraryReport, type PackageFinder } from './check-libraries.js';
import { readImageFiles } from './image-files.js';

const MAY_BE_ELF = (base: string): boolean => /\.so(\.[0-9]+)*$/.test(base) || !base.includes('.');
/** A tar entry cannot be read twice: up to this much of one file is kept while its headers are read. */
const RETAIN_BYTES = 512 << 20;

interface ImageElf {
  /** Path (no leading slash) -> ELF facts, the last layer's version of each. */
  elf: Record<string, ElfInfo>;
  /** site-packages-relative RECORD paths -> "name-version" of the distribution that installed them. */
  owners: Record<string, string>;
}

/** The venv an image runs: its config's VIRTUAL_ENV, else /env. */
export function imageVenv(image: Image): string {
  return (image.config.config?.Env ?? []).find((e) => e.startsWith('VIRTUAL_ENV='))?.slice(12).replace(/\/+$/, '') || '/env';
}

async function readVenvElf(image: Image, prefix: string, cache?: BlobCache): Promise<ImageElf> {
  const key = sha256Digest(JSON.stringify({ v: 1, prefix, layers: image.config.rootfs.diff_ids })).slice(7);
  const hit = cache ? await cache.readKey<ImageElf>('image-elf', key) : null;
  if (hit) return hit;
  const root = prefix.replace(/^\/+/, '') + '/';
  const out: ImageElf = { elf: {}, owners: {} };
  for (const layer of image.layers) {
    const extract = tar.extract();
    const src = await layer.uncompressed();
    src.on('error', (e) => extract.destroy(e));
    src.pipe(extract as unknown as NodeJS.WritableStream);
    for await (const entry of extract) {
      const name = entry.header.name.replace(/^\.?\/+/, '');
      const base = name.slice(name.lastIndexOf('/') + 1);
      const isFile = entry.header.type === 'file' || entry.header.type === 'contiguous-file';
      if (isFile && name.startsWith(root) && /\.dist-info\/RECORD$/.test(name)) {
        const chunks: Buffer[] = [];
        for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
        const dist = name.split('/').at(-2)!.replace(/\.dist-info$/, '');
        const site = name.slice(0, name.lastIndexOf('/', name.lastIndexOf('/') - 1) + 1);
        for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
          const file = line.startsWith('"') ? line.slice(1, line.indexOf('"', 1)) : line.split(',')[0]!;
          if (!file) continue;
          const abs = normalisePath(site + file);
          if (abs) out.owners[abs] = dist;
        }
        continue;
      }
      if (!isFile || !name.startsWith(root) || !MAY_BE_ELF(base) || (entry.header.size ?? 0) < 52) {
        entry.resume();
        continue;
      }
      const source = streamSource(entry as unknown as Readable, { retain: RETAIN_BYTES, label: `/${name}` });
      const elf = await readElf(source, `/${name}`);
      await source.drain?.();
      if (elf) out.elf[name] = elf;
      else delete out.elf[name];
    }
  }
  if (cache) await cache.writeKey('image-elf', key, out);
  return out;
}

function normalisePath(p: string): string | null {
  const parts: string[] = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (!parts.pop()) return null;
    } else parts.push(s);
  }
  return parts.join('/');
}

/**
 * Checks every ELF file under an image's venv (VIRTUAL_ENV, default /env) as `image app` checks wheels: its
 * machine, its program interpreter, and each library it needs as ld.so would find it in the image.
 */
export async function checkImageLibraries(
  image: Image,
  options: { cache?: BlobCache; prefix?: string; packages?: PackageFinder | null } = {},
): Promise<LibraryReport> {
  const prefix = options.prefix ?? imageVenv(image);
  const files = await readImageFiles(image, options.cache ? { cache: options.cache } : {});
  const found = await readVenvElf(image, prefix, options.cache);
  const objects: CheckedObject[] = [];
  for (const [name, elf] of Object.entries(found.elf)) {
    const r = files.resolve(name);
    if (!r || r.path !== '/' + name) continue; // deleted by a later layer
    const owner = found.owners[name] ?? '(no wheel RECORD lists it)';
    objects.push({ wheel: owner, file: '/' + name, path: '/' + name, elf });
  }
  const byPath = new Map(objects.map((o) => [o.path, o.elf]));
  return checkObjects(objects, loaderContext(image, files, (p) => byPath.get(p) ?? null), options.packages ?? null);
}

// A base image that carries what reading it would find: its last layer holds one file, the facts of the layers
// below it (`BaseFacts`: interpreters, C library, pip wheels, passwd, dpkg's status…) and their file index (the
// library check's), naming those layers by diffID. An app image built on it then reads that small layer instead of
// inflating and parsing every layer of the base (what a cold build on a new machine does); a registry sink then
// needs none of the base's blobs at all. `image runtime` adds it; an index that does not name exactly the layers
// below it (a child image added layers, a tool rewrote them) or that is not well formed is ignored: the layers are
// read then, as for any base.
import type { Readable } from 'node:stream';
import {
  ImageFiles,
  imageFilesReader,
  isImageFilesData,
  type FileNode,
  type ImageFilesData,
} from '../check/image-files.js';
import { isRecord, isStrings } from '../core/shapes.js';
import type { Image } from '../core/image.js';
import type { Layer } from '../core/layer.js';
import { appendLayers } from '../core/mutate.js';
import { openUncompressed, walkLayers, type LayerVisitor } from '../core/walk-layers.js';
import { baseFactsProblem, baseInfoReader, type BaseFacts } from '../layers/base-info.js';
import { writeLayer, type WriteLayerOptions } from '../layers/write-layer.js';

/** Where the index lives in the image (no leading slash): state kept about the system, as dpkg's status is. */
export const BASE_INDEX_PATH = 'var/lib/dstack-factory/base-index.json';
const KIND = 'dstack-factory base index';
/** An index layer is small (~130 kB gzip for the Debian runtime): a larger last layer is not read for one. */
const MAX_INDEX_LAYER_BYTES = 16 << 20;
const MAX_INDEX_BYTES = 64 << 20;

export interface BaseIndex {
  kind: typeof KIND;
  v: 1;
  /** The layers it describes: every layer of the image below the index's own, bottom first. */
  diffIds: string[];
  facts: BaseFacts;
  files: ImageFilesData;
}

/** One walk over the image's layers for its facts and file index (nothing of the config is applied). */
export async function baseIndexOf(image: Image): Promise<BaseIndex> {
  const facts = baseInfoReader(image);
  const files = imageFilesReader();
  await walkLayers(image.layers, [facts.visitor, files.visitor]);
  return {
    kind: KIND,
    v: 1,
    diffIds: [...image.config.rootfs.diff_ids],
    facts: facts.facts(),
    files: files.result().toJSON(),
  };
}

/**
 * The image with its index as a new last layer (one file, mode 0644, owner root, mtime `options.mtime`): the same
 * layers give the same layer bytes. The history says what it is.
 */
export async function withBaseIndex(
  image: Image,
  options: WriteLayerOptions,
): Promise<{ image: Image; index: BaseIndex }> {
  const index = await baseIndexOf(image);
  const layer = await writeLayer(
    [{ path: BASE_INDEX_PATH, type: 'file', data: Buffer.from(JSON.stringify(index)) }],
    options,
  );
  const created = new Date((options.mtime ?? 0) * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const history = {
    created,
    created_by: `dstack-factory: base index (/${BASE_INDEX_PATH}: facts and file index of the ${index.diffIds.length} layers below)`,
  };
  return { image: appendLayers(image, [{ layer, history }]), index };
}

/** What a valid index gives: the facts of the whole image and (its own layer laid over) its file index. */
export interface IndexedBase {
  facts: BaseFacts;
  files: ImageFiles;
}

/**
 * Reads the image's last layer for an index of the layers below it: null when that layer is not an index layer
 * (larger than one, or holding anything but the index and its directories) or the index is not valid for this
 * image (`why` says which, for a debug line). `open` gives the layer's tar (default: its blob, inflated).
 */
export async function readBaseIndex(
  image: Image,
  open: (layer: Layer) => Promise<Readable> = (layer) => openUncompressed(layer),
  why?: (reason: string) => void,
): Promise<IndexedBase | null> {
  const no = (reason: string): null => {
    why?.(reason);
    return null;
  };
  const top = image.layers.at(-1);
  if (!top || image.layers.length < 2) return no('a single layer');
  if (top.size > MAX_INDEX_LAYER_BYTES) return no('the last layer is larger than an index layer');
  const found: { content: Buffer | null; foreign: string | null; dirs: string[] } = {
    content: null,
    foreign: null,
    dirs: [],
  };
  const visitor: LayerVisitor = {
    entry({ name, header }) {
      if (name === BASE_INDEX_PATH && header.type === 'file' && (header.size ?? 0) <= MAX_INDEX_BYTES)
        return { bytes: Infinity, use: (b) => (found.content = b) };
      if (header.type === 'directory' && BASE_INDEX_PATH.startsWith(`${name}/`)) found.dirs.push(name);
      else if (name === BASE_INDEX_PATH)
        found.foreign ??= `${name} as a ${header.type} of ${header.size ?? 0} bytes (a file of at most 64 MiB is an index)`;
      else found.foreign ??= name;
      return null;
    },
  };
  await walkLayers([top], [visitor], (layer) => open(layer));
  if (found.foreign !== null) return no(`the last layer has /${found.foreign}`);
  if (found.content === null) return no(`the last layer has no /${BASE_INDEX_PATH}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(found.content.toString('utf8'));
  } catch {
    return no(`/${BASE_INDEX_PATH} is not JSON`);
  }
  const below = image.config.rootfs.diff_ids.slice(0, -1);
  const problem = indexProblem(parsed, below);
  if (problem) return no(`/${BASE_INDEX_PATH}: ${problem}`);
  const index = parsed as BaseIndex;
  const own: [string, FileNode][] = [
    ...found.dirs.map((d): [string, FileNode] => [d, { t: 'd' }]),
    [BASE_INDEX_PATH, { t: 'f' }],
  ];
  return { facts: index.facts, files: new ImageFiles(index.files).overlay(own) };
}

/** What is wrong with a parsed index for an image whose layers below it are `below`, or null. */
function indexProblem(x: unknown, below: string[]): string | null {
  if (!isRecord(x) || x.kind !== KIND) return 'not a base index';
  if (x.v !== 1) return `version ${JSON.stringify(x.v)} is not known (1 is)`;
  if (
    !isStrings(x.diffIds) ||
    x.diffIds.length !== below.length ||
    x.diffIds.some((d, i) => d !== below[i])
  ) {
    return 'it describes other layers than the ones below it';
  }
  const facts = baseFactsProblem(x.facts);
  if (facts) return `its facts are not well formed (${facts})`;
  if (!isImageFilesData(x.files)) return 'its file index is not well formed';
  return null;
}

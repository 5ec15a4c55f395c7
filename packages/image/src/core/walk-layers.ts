// One pass over an image's layers for several readers at once (the base's facts, its file index): each layer is
// decompressed and its tar parsed once, whatever number of readers look at its entries.
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { isGzipMediaType, type Layer } from './layer.js';

/** One tar entry as readers see it: the path without a leading `./` or `/` nor a trailing `/`, and its header. */
export interface WalkedEntry {
  name: string;
  header: tar.Header;
  /** The layer's index in the image (bottom first). */
  layer: number;
}

/**
 * A reader of layers. `entry` says, for each entry, whether it wants the contents: null (no), or how many bytes
 * from the start (Infinity: all) and what to call with them.
 */
export interface LayerVisitor {
  entry(e: WalkedEntry): { bytes: number; use: (content: Buffer) => void } | null;
  /** After the last entry of a layer (whiteouts in it are then known). */
  endLayer?(layer: number): void;
}

/** zlib's default 16 KiB output chunks cost a callback, a buffer and a tar parse step each: 256 KiB do not. */
export const INFLATE_CHUNK = 256 << 10;

/** A layer's tar bytes: its blob inflated (in large chunks) when it is gzip. */
export async function openUncompressed(layer: Layer, compressed?: Readable): Promise<Readable> {
  const src = compressed ?? (await layer.compressed());
  if (!isGzipMediaType(layer.mediaType)) return src;
  const gunzip = createGunzip({ chunkSize: INFLATE_CHUNK });
  src.on('error', (e) => gunzip.destroy(e));
  return src.pipe(gunzip);
}

/**
 * Reads `layers` in order, bottom first, each once, showing every entry to every visitor. `open` gives a layer's
 * tar stream (default: its blob, inflated); a visitor that throws stops the walk.
 */
export async function walkLayers(
  layers: readonly Layer[],
  visitors: LayerVisitor[],
  open: (layer: Layer, index: number) => Promise<Readable> = (layer) => openUncompressed(layer),
): Promise<void> {
  for (let i = 0; i < layers.length; i++) {
    const extract = tar.extract();
    const src = await open(layers[i]!, i);
    src.on('error', (e) => extract.destroy(e));
    src.pipe(extract as unknown as NodeJS.WritableStream);
    for await (const entry of extract) {
      const e: WalkedEntry = { name: entry.header.name.replace(/^\.?\/+/, '').replace(/\/+$/, ''), header: entry.header, layer: i };
      let bytes = 0;
      const uses: { bytes: number; use: (content: Buffer) => void }[] = [];
      for (const v of visitors) {
        const want = v.entry(e);
        if (want && want.bytes > 0) {
          uses.push(want);
          bytes = Math.max(bytes, want.bytes);
        }
      }
      if (uses.length === 0) {
        entry.resume();
        continue;
      }
      const chunks: Buffer[] = [];
      let got = 0;
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        if (got < bytes) chunks.push(chunk);
        got += chunk.length;
      }
      const content = Buffer.concat(chunks);
      for (const u of uses) u.use(u.bytes >= content.length ? content : content.subarray(0, u.bytes));
    }
    for (const v of visitors) v.endLayer?.(i);
  }
}

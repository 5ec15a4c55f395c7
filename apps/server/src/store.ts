/** The server serves any `WheelStore` (@dstack/wheelhouse's contract); FsWheelStore is the default. */
import type { WheelEntry, WheelStore } from '@dstack/wheelhouse';

export type ServerWheelStore = WheelStore;
export type ServerWheelEntry = WheelEntry;

/** METADATA's exact bytes (PEP 658 hashes them): FsWheelStore has them; other stores give text. */
export async function metadataBytes(store: WheelStore, filename: string): Promise<Buffer> {
  const withBytes = store as WheelStore & { metadataBytes?: (f: string) => Promise<Buffer> };
  if (typeof withBytes.metadataBytes === 'function') return withBytes.metadataBytes(filename);
  return Buffer.from(await store.metadata(filename), 'utf8');
}

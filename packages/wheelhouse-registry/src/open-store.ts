// A store named by a string: `registry:HOST/REPO` (an OCI registry) or a folder.
import { FsWheelStore, type WheelLimits, type WheelStore } from '@dstack/wheelhouse';
import type { Logger } from 'pino';
import { RegistryWheelStore, type RegistryWheelStoreOptions } from './registry-store.js';

/** Whether a store location names a registry (`registry:HOST/REPO`). */
export const isRegistryLocation = (location: string): boolean => location.startsWith('registry:');

/**
 * The store at `location`: a RegistryWheelStore for `registry:HOST/REPO`, else the folder store of that folder
 * (resolved from the current directory).
 */
export function openWheelStore(
  location: string,
  options: RegistryWheelStoreOptions & { logger?: Logger; limits?: WheelLimits } = {},
): WheelStore {
  if (isRegistryLocation(location)) return new RegistryWheelStore(location, options);
  return new FsWheelStore(location, { ...(options.logger ? { logger: options.logger } : {}), ...(options.limits ? { limits: options.limits } : {}) });
}

/** How messages name a store: `registry:HOST/REPO`, or the folder. */
export function storeLocation(store: WheelStore): string {
  if (store instanceof RegistryWheelStore) return store.location;
  if (store instanceof FsWheelStore) return store.dir;
  return 'the store';
}

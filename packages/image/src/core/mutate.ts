// Mutations: each returns a new Image (append layers with their history, change the container config).
import { Image, type ContainerConfig, type HistoryEntry, type ImageConfigFile } from './image.js';
import type { Layer } from './layer.js';

export interface Addendum {
  layer: Layer;
  history?: HistoryEntry;
}

/** Appends layers (with their history entries) to an image. */
export function appendLayers(image: Image, additions: Addendum[]): Image {
  const config: ImageConfigFile = structuredClone(image.config);
  config.rootfs = { type: 'layers', diff_ids: [...image.config.rootfs.diff_ids, ...additions.map((a) => a.layer.diffId)] };
  const history = [...(image.config.history ?? [])];
  for (const a of additions) history.push({ ...(a.history ?? {}), empty_layer: undefined });
  config.history = history.map(stripUndefined);
  return new Image(config, [...image.layers, ...additions.map((a) => a.layer)]);
}

/** Changes the container config (env, user, cmd, labels, …) and optionally appends an empty-layer history entry. */
export function mutateConfig(
  image: Image,
  change: (config: ContainerConfig) => ContainerConfig,
  options: { created?: string; history?: HistoryEntry } = {},
): Image {
  const config: ImageConfigFile = structuredClone(image.config);
  config.config = change(structuredClone(image.config.config ?? {}));
  if (options.created !== undefined) config.created = options.created;
  if (options.history) config.history = [...(config.history ?? []), stripUndefined({ ...options.history, empty_layer: true })];
  return new Image(config, image.layers);
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** An image with no layers: the start of an image "FROM scratch". */
export function emptyImage(options: { architecture?: string; os?: string; created?: string } = {}): Image {
  return new Image(
    {
      ...(options.created !== undefined ? { created: options.created } : {}),
      architecture: options.architecture ?? 'amd64',
      os: options.os ?? 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    },
    [],
  );
}


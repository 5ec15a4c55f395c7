// A wheel to install is known by its file name and sha256 (a lock's); its bytes are needed only where a layer,
// a segment or a check is not cached. A runner that finds everything in the layer cache reads no wheel and needs
// no wheelhouse: a wheel that is nowhere is an error only once it must be read, and then it names every such wheel.
import { ImageError } from '../../errors.js';
import { forEachLimit } from './for-each-limit.js';

export interface WheelFile {
  /** The wheel's file (its name is the wheel's): where it is, or would be in the wheelhouse. */
  path: string;
  sha256?: string;
  /**
   * Set when the bytes are not at `path` yet: called once they must be read, it returns the local file (a registry
   * wheelhouse downloads it) or throws a {@link WheelMissingError}.
   */
  locate?: () => Promise<string>;
}

/** A locked wheel that is in no wheelhouse, when its bytes must be read (its layer or check is not cached). */
export class WheelMissingError extends ImageError<'LOCK_WHEEL_MISSING'> {
  readonly wheels: string[];
  readonly lockFile: string;
  readonly wheelhouse: string;

  constructor(wheels: string[], lockFile: string, wheelhouse: string) {
    const names = [...wheels].sort();
    super(
      'LOCK_WHEEL_MISSING',
      names.length === 1
        ? `${names[0]} (locked in ${lockFile}) is not in the wheelhouse ${wheelhouse}, and the layer cache has not got what it installs`
        : `${names.length} wheels locked in ${lockFile} are not in the wheelhouse ${wheelhouse}, and the layer cache has not got what they install: ${names.join(', ')}`,
      {
        hint: 'fill the wheelhouse (dstack-factory wheelhouse pull registry:HOST/REPO, or dstack-factory build for this recipe), or point --wheelhouse at the right folder or at a registry wheelhouse (registry:HOST/REPO)',
      },
    );
    this.wheels = names;
    this.lockFile = lockFile;
    this.wheelhouse = wheelhouse;
  }

  /** One error naming every missing wheel (those of one lock and wheelhouse; else the first error). */
  static combine(errors: WheelMissingError[]): WheelMissingError {
    const first = errors[0]!;
    if (errors.length === 1 || errors.some((e) => e.lockFile !== first.lockFile || e.wheelhouse !== first.wheelhouse)) return first;
    return new WheelMissingError([...new Set(errors.flatMap((e) => e.wheels))], first.lockFile, first.wheelhouse);
  }
}

/** The local file of a wheel: where it is, else located (fetched) now. */
export async function wheelFile(w: WheelFile): Promise<string> {
  return w.locate ? w.locate() : w.path;
}

/**
 * `fn` over the wheels, `limit` at a time, as forEachLimit; a wheel that is nowhere does not stop the others, and
 * all such are named in one error after (so the message does not depend on which finished first).
 */
export async function forEachWheel<W>(wheels: W[], limit: number, fn: (w: W, index: number) => Promise<void>): Promise<void> {
  const missing: WheelMissingError[] = [];
  await forEachLimit(wheels, limit, async (w, i) => {
    try {
      await fn(w, i);
    } catch (err) {
      if (err instanceof WheelMissingError) missing.push(err);
      else throw err;
    }
  });
  if (missing.length) throw WheelMissingError.combine(missing);
}

/** The local files of these wheels (located in parallel), or one error naming every missing one. */
export async function wheelFiles(wheels: WheelFile[]): Promise<string[]> {
  const out: string[] = new Array(wheels.length);
  await forEachWheel(wheels, 8, async (w, i) => {
    out[i] = await wheelFile(w);
  });
  return out;
}

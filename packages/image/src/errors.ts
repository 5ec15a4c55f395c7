// Errors of @dstack/image. Every one carries a stable `code`.
import { DstackError, type DstackErrorOptions, type ImageErrorCode } from '@dstack/errors';

export class ImageError<C extends ImageErrorCode = ImageErrorCode> extends DstackError<C> {
  constructor(code: C, message: string, options?: DstackErrorOptions) {
    super(code, message, options);
    this.name = 'ImageError';
  }
}

// A registry's answers are @dstack/oci's RegistryError (re-exported: `import { RegistryError } from '@dstack/image'` keeps working).
export { RegistryError } from '@dstack/oci';

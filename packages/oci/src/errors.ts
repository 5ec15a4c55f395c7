// Errors of @dstack/oci. Every one carries a stable `code`; registry errors also say whether a retry may help.
import { DstackError, type DstackErrorOptions, type OciErrorCode, type RegistryErrorCode } from '@dstack/errors';

/** A bad image reference (`IMAGE_REFERENCE_INVALID`); the base class of {@link RegistryError}. */
export class OciError<C extends OciErrorCode = OciErrorCode> extends DstackError<C> {
  constructor(code: C, message: string, options?: DstackErrorOptions) {
    super(code, message, options);
    this.name = 'OciError';
  }
}

/**
 * An error answered by (or on the way to) a registry. `temporary` drives retries: 5xx answers, 429 and dropped
 * connections are temporary; a digest mismatch (DIGEST_INVALID, BLOB_UPLOAD_INVALID), 4xx and auth failures never are.
 */
export class RegistryError extends OciError<RegistryErrorCode> {
  readonly status: number | null;
  readonly temporary: boolean;
  readonly registryCode: string | null;
  constructor(
    code: RegistryErrorCode,
    message: string,
    options: { status?: number | null; temporary?: boolean; registryCode?: string | null; hint?: string; cause?: unknown } = {},
  ) {
    super(code, message, { hint: options.hint, cause: options.cause });
    this.name = 'RegistryError';
    this.status = options.status ?? null;
    this.temporary = options.temporary ?? false;
    this.registryCode = options.registryCode ?? null;
  }
}

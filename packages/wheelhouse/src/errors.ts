import { DstackError } from '@dstack/recipe';

/**
 * Every code a wheel can be refused or a store operation can fail with. Stable: tools match on them.
 */
export type WheelErrorCode =
  | 'WHEEL_NAME_INVALID'
  | 'WHEEL_NOT_ZIP'
  | 'WHEEL_ENCRYPTED'
  | 'WHEEL_DIST_INFO_MISSING'
  | 'WHEEL_DIST_INFO_DUPLICATE'
  | 'WHEEL_DIST_INFO_MISMATCH'
  | 'WHEEL_WHEEL_FILE_MISSING'
  | 'WHEEL_VERSION_UNSUPPORTED'
  | 'WHEEL_METADATA_MISSING'
  | 'WHEEL_METADATA_INVALID'
  | 'WHEEL_PATH_UNSAFE'
  | 'WHEEL_MEMBER_DUPLICATE'
  | 'WHEEL_SYMLINK'
  | 'WHEEL_WHITEOUT'
  | 'WHEEL_RECORD_MISSING'
  | 'WHEEL_RECORD_INVALID'
  | 'WHEEL_RECORD_MISMATCH'
  | 'WHEEL_BOMB'
  | 'WHEEL_HASH_MISMATCH'
  | 'WHEEL_CONFLICT'
  | 'WHEEL_NOT_FOUND'
  | 'TARGET_DETECT_FAILED'
  | 'TARGET_INVALID'
  | 'ELF_INVALID';

/** An error about one wheel (its file name in the message) or about the wheelhouse. */
export class WheelError extends DstackError {
  declare readonly code: WheelErrorCode;
  constructor(code: WheelErrorCode, message: string, options?: { hint?: string; cause?: unknown }) {
    super(code, message, options);
    this.name = 'WheelError';
  }
}

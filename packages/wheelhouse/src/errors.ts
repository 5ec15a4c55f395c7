import { DstackError, type DstackErrorOptions, type WheelErrorCode } from '@dstack/errors';

export type { WheelErrorCode };

/** An error about one wheel (its file name in the message) or about the wheelhouse. */
export class WheelError extends DstackError<WheelErrorCode> {
  constructor(code: WheelErrorCode, message: string, options?: DstackErrorOptions) {
    super(code, message, options);
    this.name = 'WheelError';
  }
}

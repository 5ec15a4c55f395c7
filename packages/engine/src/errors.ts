import { DstackError, type DstackErrorOptions, type EngineErrorCode } from '@dstack/errors';

/** An error of the build engine: an executor that cannot run, no Docker daemon, no interpreter, a lock it cannot use. */
export class EngineError extends DstackError<EngineErrorCode> {
  constructor(code: EngineErrorCode, message: string, options?: DstackErrorOptions) {
    super(code, message, options);
    this.name = 'EngineError';
  }
}

/**
 * The one place where error codes become HTTP statuses. Libraries throw errors with a stable `code`
 * (DstackError); the server answers with the status from this table and a JSON body
 * `{ error: { code, message, hint? } }`. Anything without a known code is a bug: 500, logged with its stack.
 */
import { DstackError, type DstackErrorOptions, type ServerErrorCode } from '@dstack/errors';

/** Errors raised by the server itself (auth, paths, uploads, builds). */
export class ServerError extends DstackError<ServerErrorCode> {
  constructor(code: ServerErrorCode, message: string, options?: DstackErrorOptions) {
    super(code, message, options);
    this.name = 'ServerError';
  }
}

export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  // auth
  AUTH_REQUIRED: 401,
  AUTH_INVALID: 401,
  AUTH_FORBIDDEN: 403,
  // paths and requests
  BAD_PATH: 400,
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  NOT_ACCEPTABLE: 406,
  RANGE_NOT_SATISFIABLE: 416,
  // uploads and the store
  UPLOAD_INVALID: 400,
  UPLOAD_ABORTED: 400,
  UPLOAD_NOT_A_WHEEL: 400,
  UPLOAD_DIGEST_MISMATCH: 400,
  UPLOAD_TOO_LARGE: 413,
  // @dstack/wheelhouse's WheelErrorCode: a refused wheel is the client's fault
  WHEEL_NAME_INVALID: 400,
  WHEEL_NOT_ZIP: 400,
  WHEEL_ENCRYPTED: 400,
  WHEEL_DIST_INFO_MISSING: 400,
  WHEEL_DIST_INFO_DUPLICATE: 400,
  WHEEL_DIST_INFO_MISMATCH: 400,
  WHEEL_WHEEL_FILE_MISSING: 400,
  WHEEL_VERSION_UNSUPPORTED: 400,
  WHEEL_METADATA_MISSING: 400,
  WHEEL_METADATA_INVALID: 400,
  WHEEL_PATH_UNSAFE: 400,
  WHEEL_MEMBER_DUPLICATE: 400,
  WHEEL_SYMLINK: 400,
  WHEEL_WHITEOUT: 400,
  WHEEL_RECORD_MISSING: 400,
  WHEEL_RECORD_INVALID: 400,
  WHEEL_RECORD_MISMATCH: 400,
  WHEEL_BOMB: 400,
  WHEEL_HASH_MISMATCH: 400,
  WHEEL_CONFLICT: 409,
  WHEEL_BUILD_TAG: 400,
  WHEEL_NOT_FOUND: 404,
  // recipes and builds
  RECIPE_SYNTAX: 400,
  RECIPE_INCLUDE: 400,
  RECIPE_INCLUDE_UNREADABLE: 400,
  RECIPE_INCLUDE_CYCLE: 400,
  VERSION_INVALID: 400,
  RECIPE_FORBIDDEN: 400,
  BUILD_INVALID: 400,
  BUILD_NOT_FOUND: 404,
  BUILD_QUEUE_FULL: 503,
  BUILDS_DISABLED: 503,
  SHUTTING_DOWN: 503,
  // fastify's own codes that reach the error handler
  FST_REQ_FILE_TOO_LARGE: 413,
  FST_ERR_CTP_BODY_TOO_LARGE: 413,
  FST_PARTS_LIMIT: 413,
  FST_FILES_LIMIT: 413,
  FST_FIELDS_LIMIT: 413,
  FST_INVALID_MULTIPART_CONTENT_TYPE: 400,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 415,
  FST_ERR_CTP_EMPTY_JSON_BODY: 400,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 400,
  FST_ERR_VALIDATION: 400,
};

export interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}

/** The status and body for any thrown value; `internal` is true when it is a bug (500). */
export function errorResponse(err: unknown): { status: number; body: ErrorBody; internal: boolean } {
  const e = err as { code?: unknown; message?: unknown; hint?: unknown; statusCode?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  let status = code !== undefined ? STATUS_BY_CODE[code] : undefined;
  // Other fastify errors carry their own 4xx status (e.g. a malformed body).
  if (
    status === undefined &&
    typeof e?.statusCode === 'number' &&
    e.statusCode >= 400 &&
    e.statusCode < 500
  ) {
    status = e.statusCode;
  }
  if (status === undefined) {
    return {
      status: 500,
      body: { error: { code: 'INTERNAL', message: 'internal server error' } },
      internal: true,
    };
  }
  const body: ErrorBody = { error: { code: code ?? 'BAD_REQUEST', message } };
  if (typeof e.hint === 'string') body.error.hint = e.hint;
  return { status, body, internal: false };
}

/** A reason phrase carrying the message (twine prints `response.reason`), safe for a status line. */
export function reasonPhrase(status: number, message: string): string {
  const clean = message.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
  return clean.length > 0 ? clean : String(status);
}

/**
 * The legacy upload API as twine speaks it: `POST /` (or /legacy/) with multipart fields `:action`
 * (file_upload), `name`, `version`, `sha256_digest`, … and the file in `content`. The file streams
 * straight into the store (which writes a temp file in the wheelhouse, hashes while copying, validates and
 * links it into place), so a 1 GB wheel never sits in memory. The store publishes only once the whole form
 * has been read and checked, so fields after the file (twine sends them first) count as much as those before.
 */
import { basename } from 'node:path';
import { Transform } from 'node:stream';
import { versionKey, type AddResult } from '@dstack/wheelhouse';
import type { MultipartFile } from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerContext } from './context.js';
import { errorResponse, ServerError } from './errors.js';
import { normalizeProjectName } from './paths.js';

const SDIST = /\.(tar\.gz|tgz|tar\.bz2|tar\.xz|zip|tar|egg)$/i;
/** Multipart framing and fields on top of the file: allowed beyond max_upload_bytes in Content-Length. */
export const MULTIPART_OVERHEAD = 16 * 1024 * 1024;

function checkUploadedName(filename: string, fields: Record<string, string>): void {
  if (filename === '' || filename !== basename(filename) || filename.startsWith('.')) {
    throw new ServerError(
      'UPLOAD_INVALID',
      `the uploaded file name ${JSON.stringify(filename)} is not a plain file name`,
    );
  }
  if (fields.filetype === 'sdist' || (!filename.endsWith('.whl') && SDIST.test(filename))) {
    throw new ServerError(
      'UPLOAD_NOT_A_WHEEL',
      `${filename} is a source distribution; this index accepts wheels (.whl) only`,
      { hint: 'build a wheel first (pip wheel --no-deps . or python -m build --wheel) and upload the .whl' },
    );
  }
  if (!filename.endsWith('.whl')) {
    throw new ServerError(
      'UPLOAD_NOT_A_WHEEL',
      `${filename} is not a wheel; this index accepts .whl files only`,
    );
  }
  const project = filename.split('-')[0] ?? '';
  if (fields.name !== undefined && normalizeProjectName(fields.name) !== normalizeProjectName(project)) {
    throw new ServerError(
      'UPLOAD_INVALID',
      `the form names project "${fields.name}" but the file ${filename} is of project "${project}"`,
    );
  }
  const version = filename.split('-')[1] ?? '';
  if (fields.version !== undefined && versionKey(fields.version.trim()) !== versionKey(version)) {
    throw new ServerError(
      'UPLOAD_INVALID',
      `the form names version "${fields.version}" but the file ${filename} is of version "${version}"`,
    );
  }
}

/**
 * Errors of the multipart parser itself (no boundary, a body that ends before its closing boundary) are the
 * client's: 400, not 500.
 */
function multipartError(err: unknown): unknown {
  if (typeof (err as { code?: unknown })?.code === 'string' || !(err instanceof Error)) return err;
  if (/multipart|boundary|unexpected end of form|malformed part header|part terminated/i.test(err.message)) {
    return new ServerError('UPLOAD_INVALID', `the multipart/form-data body is malformed: ${err.message}`, {
      cause: err,
    });
  }
  return err;
}

function expectedSha256(fields: Record<string, string>): string | undefined {
  const d = fields.sha256_digest?.trim().toLowerCase();
  if (d === undefined || d === '') return undefined;
  if (!/^[0-9a-f]{64}$/.test(d))
    throw new ServerError('UPLOAD_INVALID', `sha256_digest "${d}" is not a sha256 hex digest`);
  return d;
}

function checkAction(fields: Record<string, string>): void {
  const action = fields[':action'];
  if (action !== 'file_upload') {
    throw new ServerError(
      'UPLOAD_INVALID',
      action === undefined
        ? 'the form has no ":action" field'
        : `unsupported :action "${action}" (only file_upload)`,
    );
  }
}

const tooLarge = (max: number): ServerError =>
  new ServerError('UPLOAD_TOO_LARGE', `the file is larger than this server's limit of ${max} bytes`);

/** Passes `input` through, failing with UPLOAD_TOO_LARGE once more than `max` bytes went by. */
function limitBytes(input: NodeJS.ReadableStream, max: number): NodeJS.ReadableStream {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > max) cb(tooLarge(max));
      else cb(null, chunk);
    },
  });
  input.on('error', (err) => counter.destroy(err));
  // Whoever reads the stream gets the error; this keeps it from being "unhandled" when nobody does.
  counter.on('error', () => {});
  return input.pipe(counter);
}

export function registerUploadRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store, config, metrics } = ctx;
  const maxRequest = config.maxUploadBytes + MULTIPART_OVERHEAD;

  const upload = async (request: FastifyRequest): Promise<unknown> => {
    const principal = ctx.authorize(request, 'upload');
    if (!request.isMultipart()) {
      throw new ServerError(
        'UPLOAD_INVALID',
        'uploads are multipart/form-data (the legacy upload API, as twine sends)',
      );
    }
    const fields: Record<string, string> = {};
    const abort = new AbortController();
    let gone = false;
    // An error that would be a 500, from a client that is gone: it went away mid-upload (ECONNRESET, a part
    // cut short), which is no fault of the server.
    const wentAway = (err: unknown): boolean =>
      (gone || request.raw.socket?.destroyed === true) && errorResponse(err).internal;
    request.raw.once('close', () => {
      if (!request.raw.complete) {
        gone = true;
        abort.abort(new ServerError('UPLOAD_ABORTED', 'the client went away mid-upload'));
      }
    });
    // The store publishes only once the whole form is read and checked (fields after the file included):
    // a second file, a bad field or a cut-off body leaves nothing behind.
    let formRead!: () => void;
    let formRefused!: (err: unknown) => void;
    const form = new Promise<void>((resolve, reject) => {
      formRead = resolve;
      formRefused = reject;
    });
    form.catch(() => {}); // awaited by the store, or not at all when no file came
    let adding: Promise<AddResult> | undefined;
    let filename = '';

    try {
      for await (const part of request.parts()) {
        if (part.type === 'field') {
          fields[part.fieldname] = String(part.value);
          continue;
        }
        const file = part as MultipartFile;
        if (file.fieldname !== 'content') {
          file.file.resume(); // gpg_signature and the like: not kept
          continue;
        }
        if (adding !== undefined) {
          file.file.resume();
          throw new ServerError(
            'UPLOAD_INVALID',
            'one file per upload request (a second "content" file came)',
          );
        }
        filename = file.filename;
        checkUploadedName(filename, fields);
        // Streams into the store's temp area (swept at start-up after a kill -9) while the form goes on.
        adding = store.add(limitBytes(file.file, config.maxUploadBytes), {
          filename,
          builtBy: { uploadedBy: principal?.name ?? 'anonymous' },
          refuseBuildTag: !config.allowBuildTags,
          signal: abort.signal,
          beforePublish: async ({ sha256 }) => {
            await form;
            const expected = expectedSha256(fields);
            if (expected !== undefined && sha256 !== expected) {
              throw new ServerError(
                'UPLOAD_DIGEST_MISMATCH',
                `${filename}: sha256 is ${sha256}, the form says ${expected}`,
              );
            }
          },
        });
        adding.catch(() => {}); // awaited below; a refused form must not leave it unhandled meanwhile
      }
      if (adding === undefined) throw new ServerError('UPLOAD_INVALID', 'the form has no "content" file');
      checkAction(fields);
      checkUploadedName(filename, fields);
      expectedSha256(fields);
      formRead();
    } catch (err) {
      formRefused(err);
      await adding?.catch(() => {});
      if (wentAway(err)) {
        request.log.info({ filename }, 'the client went away mid-upload; nothing published');
        throw new ServerError('UPLOAD_ABORTED', 'the client went away mid-upload');
      }
      if ((err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge(config.maxUploadBytes);
      throw multipartError(err);
    }
    try {
      const added = await adding;
      ctx.index.invalidate();
      metrics.inc('dstack_uploads_total', { result: added.status });
      if (added.status === 'added') metrics.inc('dstack_upload_bytes_total', {}, added.entry.size);
      request.log.info(
        { filename: added.entry.filename, status: added.status, size: added.entry.size, by: principal?.name },
        'upload',
      );
      // The stored name: the PEP 427 escaped spelling, or the spelling already here for the same release.
      return {
        ok: true,
        status: added.status,
        filename: added.entry.filename,
        sha256: added.entry.sha256,
        size: added.entry.size,
      };
    } catch (err) {
      const code = (err as { code?: string }).code;
      metrics.inc('dstack_uploads_total', { result: code === 'WHEEL_CONFLICT' ? 'conflict' : 'rejected' });
      if (wentAway(err)) {
        request.log.info({ filename }, 'the client went away mid-upload; nothing published');
        throw new ServerError('UPLOAD_ABORTED', 'the client went away mid-upload');
      }
      throw multipartError(err);
    }
  };

  for (const url of ['/', '/legacy/', '/legacy']) {
    app.post(url, {
      // 413 before the body is read: the declared length is already too large.
      onRequest: async (request) => {
        const length = Number(request.headers['content-length'] ?? NaN);
        if (Number.isFinite(length) && length > maxRequest) {
          ctx.authorize(request, 'upload');
          throw new ServerError(
            'UPLOAD_TOO_LARGE',
            `the upload is ${length} bytes; this server takes wheels up to ${config.maxUploadBytes} bytes`,
          );
        }
      },
      handler: upload,
    });
  }
}

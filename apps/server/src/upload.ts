/**
 * The legacy upload API as twine speaks it: `POST /` (or /legacy/) with multipart fields `:action`
 * (file_upload), `name`, `version`, `sha256_digest`, … and the file in `content`. The file streams
 * straight into the store (which writes a temp file, hashes while copying, validates and renames), so a
 * 1 GB wheel never sits in memory. Fields that come after the file (twine sends them first) are handled by
 * spooling the file to a temp file first.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MultipartFile } from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerContext } from './context.js';
import { ServerError } from './errors.js';
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

/** Passes `input` through, failing with UPLOAD_TOO_LARGE once more than `max` bytes went by. */
function limitBytes(input: NodeJS.ReadableStream, max: number): NodeJS.ReadableStream {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > max)
        cb(
          new ServerError('UPLOAD_TOO_LARGE', `the file is larger than this server's limit of ${max} bytes`),
        );
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
    let result: { status: 'added' | 'present'; filename: string; sha256: string; size: number } | undefined;
    let spooled: { dir: string; path: string; filename: string } | undefined;
    const abort = new AbortController();
    request.raw.once('close', () => {
      if (!request.raw.complete)
        abort.abort(new ServerError('UPLOAD_INVALID', 'the client went away mid-upload'));
    });

    const ingest = async (source: string | NodeJS.ReadableStream, filename: string): Promise<void> => {
      checkAction(fields);
      checkUploadedName(filename, fields);
      const expected = expectedSha256(fields);
      try {
        const added = await store.add(source, {
          filename,
          ...(expected !== undefined ? { expectedSha256: expected } : {}),
          builtBy: { uploadedBy: principal?.name ?? 'anonymous' },
          refuseBuildTag: !config.allowBuildTags,
          signal: abort.signal,
        });
        if (expected !== undefined && added.entry.sha256 !== expected) {
          throw new ServerError(
            'UPLOAD_DIGEST_MISMATCH',
            `${filename}: sha256 is ${added.entry.sha256}, the form says ${expected}`,
          );
        }
        ctx.index.invalidate();
        // The stored name: the PEP 427 escaped spelling, or the spelling already here for the same release.
        result = {
          status: added.status,
          filename: added.entry.filename,
          sha256: added.entry.sha256,
          size: added.entry.size,
        };
        metrics.inc('dstack_uploads_total', { result: added.status });
        if (added.status === 'added') metrics.inc('dstack_upload_bytes_total', {}, added.entry.size);
        request.log.info(
          {
            filename: added.entry.filename,
            status: added.status,
            size: added.entry.size,
            by: principal?.name,
          },
          'upload',
        );
      } catch (err) {
        const code = (err as { code?: string }).code;
        metrics.inc('dstack_uploads_total', { result: code === 'WHEEL_CONFLICT' ? 'conflict' : 'rejected' });
        throw err;
      }
    };

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
        if (result !== undefined || spooled !== undefined) {
          file.file.resume();
          throw new ServerError('UPLOAD_INVALID', 'one file per upload request');
        }
        // Counted here, so an oversized file fails with 413 before the store sees a truncated stream.
        const limited = limitBytes(file.file, config.maxUploadBytes);
        if (fields[':action'] !== undefined) {
          try {
            await ingest(limited, file.filename);
          } catch (err) {
            file.file.resume();
            throw err;
          }
        } else {
          const dir = await mkdtemp(join(tmpdir(), 'dstack-upload-'));
          spooled = { dir, path: join(dir, 'upload.part'), filename: file.filename };
          await pipeline(limited, createWriteStream(spooled.path));
        }
      }
      if (spooled !== undefined) await ingest(spooled.path, spooled.filename);
    } finally {
      if (spooled !== undefined) await rm(spooled.dir, { recursive: true, force: true });
    }
    if (result === undefined) throw new ServerError('UPLOAD_INVALID', 'the form has no "content" file');
    return { ok: true, ...result };
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

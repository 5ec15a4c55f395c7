import type { CodeEntry } from './entry.js';

/** The codes apps/server throws (as ServerError); its HTTP status for each is in apps/server/src/errors.ts. */
export const SERVER_CODES = {
  AUTH_REQUIRED: {
    summary: 'The request needs a token with a scope it did not send.',
    hint: 'Send a token as HTTP Basic (user __token__, the token as password) or as Authorization: Bearer.',
  },
  AUTH_INVALID: {
    summary: "The token sent is not one of this server's.",
    hint: "Check the token; the server's tokens come from its config or DSTACK_SERVER_TOKENS.",
  },
  AUTH_FORBIDDEN: {
    summary: 'The token is valid but lacks the scope this request needs (read, upload, build).',
    hint: 'Use a token with that scope.',
  },
  BAD_PATH: {
    summary:
      'The URL path cannot be decoded, or holds "..", a backslash, NUL, or a bad file or project name.',
    hint: 'Ask for paths as the index links them.',
  },
  NOT_FOUND: {
    summary: 'No project, wheel, file or page at that path.',
    hint: 'The index page (/simple/) lists what the server holds.',
  },
  NOT_ACCEPTABLE: {
    summary: 'None of the media types in Accept (or ?format=) is served.',
    hint: 'Ask for application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html or text/html.',
  },
  RANGE_NOT_SATISFIABLE: {
    summary: 'The Range asked for lies outside the file.',
    hint: "Ask for a range within the file's size (HEAD gives Content-Length).",
  },
  UPLOAD_INVALID: {
    summary:
      'An upload is not a well-formed legacy-API multipart form with one "content" file and a matching name, version and digest.',
    hint: 'Upload with twine (twine upload --repository-url URL FILE.whl).',
  },
  UPLOAD_ABORTED: {
    summary: 'The client went away before its upload was complete; nothing was published.',
    hint: 'Upload again; a proxy cutting long requests short may need a longer timeout.',
  },
  UPLOAD_NOT_A_WHEEL: {
    summary: 'The uploaded file is not a wheel (a source distribution, or another file).',
    hint: 'Build a wheel first (pip wheel --no-deps . or python -m build --wheel) and upload that.',
  },
  UPLOAD_DIGEST_MISMATCH: {
    summary: 'The uploaded bytes have another sha256 than the form says.',
    hint: 'The upload was changed on the way: upload it again.',
  },
  UPLOAD_TOO_LARGE: {
    summary: "The upload is larger than the server's limit.",
    hint: 'Raise maxUploadBytes in the server config if the wheel is expected to be this large.',
  },
  RECIPE_FORBIDDEN: {
    summary:
      'A recipe sent over HTTP includes files, local paths or file: URLs, which the server does not allow.',
    hint: 'Name packages by index name or remote URL, or let the server config allow local paths.',
  },
  BUILD_INVALID: {
    summary: 'A build request is not a JSON object with a recipe and known, well-formed fields.',
    hint: 'Send {"recipe": "…"} with optional python, executor, jobs and lists of project names.',
  },
  BUILD_NOT_FOUND: {
    summary: 'No build with that id (builds are kept in memory and go with a restart).',
    hint: 'List the builds on the web page, or submit the build again.',
  },
  BUILD_QUEUE_FULL: {
    summary: 'Too many builds are already waiting.',
    hint: 'Try again when some have finished.',
  },
  BUILDS_DISABLED: {
    summary: 'This server runs no builds (it has no executor).',
    hint: 'Start it with an executor available (dstack-factory serve wires the engine in).',
  },
  SHUTTING_DOWN: {
    summary: 'The server is shutting down and takes no new builds.',
    hint: 'Submit the build again once the server is back.',
  },
  CONFIG_INVALID: {
    summary: 'The server config file or DSTACK_SERVER_TOKENS cannot be read or is not valid.',
    hint: 'The message names the file or entry; DSTACK_SERVER_TOKENS entries look like name:scope,scope:token.',
  },
} as const satisfies Record<string, CodeEntry>;

export type ServerErrorCode = keyof typeof SERVER_CODES;

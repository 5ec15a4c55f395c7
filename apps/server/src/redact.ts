/**
 * What anonymous readers of build records and logs see (issue 12, point 3): no absolute server paths
 * (interpreters, temp folders, the wheelhouse) and not the machine's pip configuration (the index and
 * find-links pip reports from it). A reader with a token sees the log as written.
 */
import type { BuildRecord } from './builds.js';

const HIDDEN = '…';
/** An absolute path after a start, space, quote, bracket, '=' or ':' (never the `//` of a URL). */
const ABS_PATH = /(^|[\s"'([=:,])\/(?![/\s])[^\s"'()<>,;]*/g;
const FILE_URL = /\bfile:\/\/[^\s"'()<>,;]*/gi;
const PIP_SOURCES = /^(.*?Looking in (?:indexes|links):).*$/;

export function redactLine(line: string): string {
  const sources = PIP_SOURCES.exec(line);
  if (sources !== null) return `${sources[1]} ${HIDDEN}`;
  return line.replace(FILE_URL, `file://${HIDDEN}`).replace(ABS_PATH, `$1${HIDDEN}`);
}

export function redactRecord(record: BuildRecord): BuildRecord {
  return {
    ...record,
    request:
      record.request.python === undefined
        ? record.request
        : { ...record.request, python: redactLine(record.request.python) },
    error: record.error === null ? null : redactLine(record.error),
    outcome:
      record.outcome === null
        ? null
        : {
            ...record.outcome,
            failures: record.outcome.failures.map((f) => ({ ...f, message: redactLine(f.message) })),
            lock:
              record.outcome.lock === null || record.outcome.lock === undefined
                ? null
                : redactLock(record.outcome.lock),
          },
  };
}

function redactLock(lock: string): string {
  return lock
    .split('\n')
    .map((l) => redactLine(l))
    .join('\n');
}

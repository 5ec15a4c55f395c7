// What a user needs from a failed build without -v: the requirement pip could not satisfy (and who needed it,
// under which marker), pip's last ERROR: lines, a compiler's first error: line and the Debian package of a
// missing header. Read line by line from the build's output as it streams (the full log goes to a file).

import type { BuildFailure } from './executor.js';

/** A requirement pip found nowhere it was allowed to look. */
export interface MissingRequirement {
  /** As pip printed it, without the marker: `async-timeout>=4.0.3`. */
  requirement: string;
  /** The marker under which it is needed: `python_full_version < "3.11.3"`, or null. */
  marker: string | null;
  /** The project that needs it (`redis`), or null when the recipe itself asked for it. */
  neededBy: string | null;
}

/** A failure with what explains it: the summary a user acts on without -v, and the full log on disk. */
export interface ExplainedFailure extends BuildFailure {
  /** The decisive lines: the missing requirement, a missing header's Debian package, the compiler's first error, pip's last ERROR: lines. */
  summary: string[];
  /** The requirement pip found nowhere it looked, when that is the failure. */
  missing: MissingRequirement | null;
  /** The full output of the failed step, kept on disk. */
  logFile: string | null;
}

/**
 * Debian (bookworm) packages of the headers compiled extensions most often miss. Where a header is not listed the
 * summary names the header alone.
 */
const HEADER_PACKAGES: Record<string, string> = {
  'Python.h': 'python3-dev',
  'libpq-fe.h': 'libpq-dev',
  'pg_config.h': 'libpq-dev',
  'zlib.h': 'zlib1g-dev',
  'ffi.h': 'libffi-dev',
  'openssl/ssl.h': 'libssl-dev',
  'openssl/opensslv.h': 'libssl-dev',
  'libxml/xmlversion.h': 'libxml2-dev',
  'libxml/parser.h': 'libxml2-dev',
  'libxslt/xslt.h': 'libxslt1-dev',
  'jpeglib.h': 'libjpeg-dev',
  'png.h': 'libpng-dev',
  'tiffio.h': 'libtiff-dev',
  'ft2build.h': 'libfreetype-dev',
  'webp/decode.h': 'libwebp-dev',
  'lcms2.h': 'liblcms2-dev',
  'openjpeg.h': 'libopenjp2-7-dev',
  'sqlite3.h': 'libsqlite3-dev',
  'bzlib.h': 'libbz2-dev',
  'lzma.h': 'liblzma-dev',
  'yaml.h': 'libyaml-dev',
  'mysql.h': 'default-libmysqlclient-dev',
  'mysql/mysql.h': 'default-libmysqlclient-dev',
  'ldap.h': 'libldap2-dev',
  'lber.h': 'libldap2-dev',
  'sasl/sasl.h': 'libsasl2-dev',
  'krb5.h': 'libkrb5-dev',
  'gssapi/gssapi.h': 'libkrb5-dev',
  'sql.h': 'unixodbc-dev',
  'cairo.h': 'libcairo2-dev',
  'magic.h': 'libmagic-dev',
  'pcre.h': 'libpcre3-dev',
  'curl/curl.h': 'libcurl4-openssl-dev',
  'gmp.h': 'libgmp-dev',
  'mpfr.h': 'libmpfr-dev',
  'hdf5.h': 'libhdf5-dev',
  'snappy-c.h': 'libsnappy-dev',
  'zstd.h': 'libzstd-dev',
  'lz4.h': 'liblz4-dev',
  'xmlsec/xmlsec.h': 'libxmlsec1-dev',
  'systemd/sd-daemon.h': 'libsystemd-dev',
  'dbus/dbus.h': 'libdbus-1-dev',
  'libusb.h': 'libusb-1.0-0-dev',
  'portaudio.h': 'portaudio19-dev',
  'geos_c.h': 'libgeos-dev',
  'gdal.h': 'libgdal-dev',
  'proj.h': 'libproj-dev',
};

/** The Debian package that provides a header (as written in `#include <…>`), when known. */
export function debianPackageForHeader(header: string): string | null {
  return HEADER_PACKAGES[header] ?? null;
}

// `file.c:2:10: fatal error: …` or `gcc: error: …`; not pip's or setuptools' own `error: …` lines.
const COMPILER_ERROR = /^(?:\S+?:\d+(?::\d+)?|[\w.+-]*(?:gcc|g\+\+|cc|clang|c\+\+|ld)): (?:fatal )?error: /;
const MISSING_HEADER = /^\S+?:\d+(?::\d+)?: fatal error: ([^:\s]+): No such file or directory/;
const NO_VERSION = /^ERROR: Could not find a version that satisfies the requirement (.+?)(?: \(from (?!versions: )([^)]+)\))?(?: \(from versions: [^)]*\))?$/;
const NO_MATCH = /^ERROR: No matching distribution found for (.+)$/;

/** Splits pip's `name>=1; marker` into the requirement and its marker. */
function splitMarker(text: string): { requirement: string; marker: string | null } {
  const semi = text.indexOf(';');
  return semi < 0
    ? { requirement: text.trim(), marker: null }
    : { requirement: text.slice(0, semi).trim(), marker: text.slice(semi + 1).trim() };
}

/** Reads a build's output line by line and keeps what explains a failure. */
export class FailureDigest {
  private errors: string[] = [];
  private inErrorBlock = false;
  private compilerError: string | null = null;
  private header: string | null = null;
  private missingReq: MissingRequirement | null = null;

  add(raw: string): void {
    const line = raw.replace(/\x1b\[[0-9;]*m/g, '').trimEnd();
    const text = line.trim();
    if (text.startsWith('ERROR: ')) {
      // pip's last block of ERROR: lines is its verdict; an earlier block was a step it recovered from.
      if (!this.inErrorBlock) this.errors = [];
      this.errors.push(text);
      this.inErrorBlock = true;
      const noVersion = NO_VERSION.exec(text);
      if (noVersion) {
        const { requirement, marker } = splitMarker(noVersion[1]!);
        const from = noVersion[2]?.trim() ?? null;
        this.missingReq = {
          requirement,
          marker,
          neededBy: from && !from.startsWith('-r ') ? from.split(/[=<>!~ [;]/)[0]! : null,
        };
      } else {
        const noMatch = NO_MATCH.exec(text);
        if (noMatch && !this.missingReq) this.missingReq = { ...splitMarker(noMatch[1]!), neededBy: null };
      }
      return;
    }
    if (text !== '') this.inErrorBlock = false;
    if (this.compilerError === null && COMPILER_ERROR.test(text)) {
      this.compilerError = text;
      const header = MISSING_HEADER.exec(text);
      if (header) this.header = header[1]!;
    }
  }

  /** The requirement pip could not find, if that is why it failed. */
  get missing(): MissingRequirement | null {
    return this.missingReq;
  }

  /**
   * The lines to show: the missing requirement (with `where` naming where pip looked), the missing header and its
   * Debian package, the compiler's first error, pip's last ERROR: lines.
   */
  summary(where: string): string[] {
    const out: string[] = [];
    const m = this.missingReq;
    if (m) {
      out.push(
        `not ${where}: ${m.requirement}` +
          (m.neededBy || m.marker
            ? ` (${m.neededBy ?? 'the recipe'} needs it${m.marker ? ` when ${m.marker}` : ''})`
            : ''),
      );
    }
    if (this.header) {
      const pkg = debianPackageForHeader(this.header);
      out.push(`missing header ${this.header}${pkg ? `: install ${pkg} where it builds` : ' (install the -dev package that provides it)'}`);
    }
    if (this.compilerError) out.push(`compiler: ${this.compilerError}`);
    out.push(...this.errors.slice(-5));
    return out;
  }
}

#!/usr/bin/env bash
# Debian's source packages of real projects, for the tests that build them from source in the factory image (no
# PyPI here): e.g. lxml and pillow of bookworm, whose .orig.tar.* are the upstream sdists.
#   debian-sources.sh lxml pillow    download each source package once per machine into
#                                    $CACHE_DIR/debian-sources/<package>/, then print one line per package:
#                                    <package> <Debian version> <orig tarball path>
# `apt-get source --download-only` with apt's own configuration pointed at a private folder (deb-src lines for
# $BASE_SUITE, -updates and -security on $DEBIAN_MIRROR, their own lists): the machine's apt sources and lists are
# left alone, and apt checks the Release signature and every file's hash as for any download. Fails (never skips)
# when apt or the mirror is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -gt 0 ] || die "usage: $0 PACKAGE... (Debian source package names, e.g. lxml pillow)"
command -v apt-get >/dev/null 2>&1 || die "apt-get is missing: Debian's source packages are fetched with apt (a Debian or Ubuntu machine)"
SOURCES_DIR=$CACHE_DIR/debian-sources

# The one line a fetched package prints; nothing when it is not here yet.
describe() {
  local dir=$SOURCES_DIR/$1 dsc orig
  [ -f "$dir/.complete" ] || return 1
  dsc=$(ls "$dir"/*.dsc)
  orig=$(ls "$dir"/*.orig.tar.*)
  echo "$1 $(sed -n 's/^Version: //p' "$dsc") $orig"
}

missing=()
for pkg in "$@"; do
  case $pkg in *[!a-z0-9.+-]*) die "not a Debian source package name: $pkg" ;; esac
  describe "$pkg" >/dev/null || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  # A package is published as a whole folder (.complete inside) by one rename: readers need no lock, writers take one.
  mkdir -p "$SOURCES_DIR" 2>/dev/null && [ -w "$SOURCES_DIR" ] ||
    die "cannot write $SOURCES_DIR: run it as root once (sudo bash $0 $*) or set DSTACK_CACHE_DIR"
  lock_on "$SOURCES_DIR/.lock"
  fetch=()
  for pkg in "${missing[@]}"; do describe "$pkg" >/dev/null || fetch+=("$pkg"); done
  missing=("${fetch[@]}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  work=$(mktemp -d "$SOURCES_DIR/.work.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/download"
  signed=
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] && signed=" [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
  cat >"$work/sources.list" <<SOURCES
deb-src$signed $DEBIAN_MIRROR $BASE_SUITE main
deb-src$signed $DEBIAN_MIRROR $BASE_SUITE-updates main
deb-src$signed ${DEBIAN_MIRROR%/debian}/debian-security $BASE_SUITE-security main
SOURCES
  apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
  )
  # apt downloads as its _apt user when it can: let it write here.
  [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1 && chown -R _apt "$work/lists" "$work/download"
  t0=$SECONDS
  if ! apt-get "${apt_opts[@]}" -q update >"$work/update.log" 2>&1; then
    cat "$work/update.log" >&2
    die "apt-get update of the deb-src lists on $DEBIAN_MIRROR failed"
  fi
  for pkg in "${missing[@]}"; do
    mkdir "$work/download/$pkg"
    [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1 && chown _apt "$work/download/$pkg"
    if ! (cd "$work/download/$pkg" && apt-get "${apt_opts[@]}" -q source --download-only "$pkg") >"$work/source.log" 2>&1; then
      cat "$work/source.log" >&2
      die "apt-get source --download-only $pkg failed"
    fi
    ls "$work/download/$pkg"/*.dsc "$work/download/$pkg"/*.orig.tar.* >/dev/null 2>&1 ||
      die "apt-get source $pkg gave no .dsc and .orig.tar.*: $(ls "$work/download/$pkg")"
    chown -R "$(id -u):$(id -g)" "$work/download/$pkg"
    touch "$work/download/$pkg/.complete"
    rm -rf "${SOURCES_DIR:?}/$pkg"
    mv "$work/download/$pkg" "$SOURCES_DIR/$pkg"
  done
  echo "downloaded ${missing[*]} from $DEBIAN_MIRROR in $((SECONDS - t0)) s" >&2
fi

for pkg in "$@"; do describe "$pkg"; done

#!/usr/bin/env bash
# The base image every container test stands on (no Docker Hub here): Debian with python3 and venv,
# debootstrapped once per machine and cached as a tarball, then imported into the private engine.
#   base-image.sh          make sure the engine holds $BASE_IMAGE (debootstrap only when no tarball is cached)
#   base-image.sh name     print the image name
# A new engine data root re-imports the cached tarball in seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

LABEL=org.dstack-factory.base.sha256

[ "${1:-}" = name ] && { echo "$BASE_IMAGE"; exit 0; }

engine_ping || die "the private engine is not running: bash tools/system/engine.sh start"
lock_on "$CACHE_DIR/base-$BASE_SUITE.lock"

build_tarball() {
  need_root "debootstrap" 
  command -v debootstrap >/dev/null || die "debootstrap is missing: install Debian's debootstrap (sudo bash tools/system/setup.sh)"
  local rootfs
  rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap $BASE_SUITE into $rootfs (about 90 s)"
  local t0=$SECONDS
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$BASE_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1; then
    tail -20 "$CACHE_DIR/debootstrap.log" >&2
    die "debootstrap failed (log: $CACHE_DIR/debootstrap.log)"
  fi
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $DEBIAN_MIRROR $BASE_SUITE main
deb $DEBIAN_MIRROR $BASE_SUITE-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security $BASE_SUITE-security main
SOURCES
  # Like Debian's official images: no recommends, no package cache kept in layers.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90dstack-no-recommends"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* "$rootfs"/var/log/*.log
  tar --numeric-owner -C "$rootfs" -cf "$BASE_TARBALL.tmp" .
  sha256sum "$BASE_TARBALL.tmp" | cut -d' ' -f1 >"$BASE_TARBALL.sha256"
  mv "$BASE_TARBALL.tmp" "$BASE_TARBALL"
  rm -rf "$rootfs"
  trap - EXIT
  echo "base rootfs cached: $BASE_TARBALL ($(du -h "$BASE_TARBALL" | cut -f1), $((SECONDS - t0)) s)"
}

mkdir -p "$CACHE_DIR"
[ -f "$BASE_TARBALL" ] && [ -f "$BASE_TARBALL.sha256" ] || build_tarball
sha=$(cat "$BASE_TARBALL.sha256")
have=$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$BASE_IMAGE" 2>/dev/null || true)
if [ "$have" = "$sha" ]; then
  echo "base image ready: $BASE_IMAGE"
  exit 0
fi
t0=$SECONDS
docker import \
  --change "LABEL $LABEL=$sha" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$BASE_TARBALL" "$BASE_IMAGE" >/dev/null
echo "base image imported: $BASE_IMAGE ($((SECONDS - t0)) s)"

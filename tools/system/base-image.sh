#!/usr/bin/env bash
# The base image every container test stands on (no Docker Hub here): Debian with python3 and venv,
# debootstrapped once per machine and cached as a tarball, then imported into the private engine.
#   base-image.sh                 make sure the engine holds $BASE_IMAGE (debootstrap only when no tarball is cached)
#   base-image.sh name            print the image name
#   base-image.sh --arch arm64 …  the same for a foreign architecture ($BASE_IMAGE-arm64), imported as linux/arm64.
#                                 By default its packages are only unpacked (debootstrap --foreign, then every .deb
#                                 extracted): ~30 s and no emulation, the same files (libc, python3.11, python-wheels)
#                                 but no maintainer script ran, so dpkg's database is empty (no apt-get on it); its
#                                 Python runs under emulation. DSTACK_FOREIGN_BASE=emulated runs debootstrap's second
#                                 stage under qemu-user-static (setup.sh enables binfmt_misc): a configured system,
#                                 ~15 min on 2 cores, cached apart.
# A new engine data root re-imports the cached tarball in seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

LABEL=org.dstack-factory.base.sha256

ARCH=
if [ "${1:-}" = --arch ]; then
  ARCH=${2:?--arch needs a Debian architecture (arm64)}
  shift 2
fi
FOREIGN_MODE=${DSTACK_FOREIGN_BASE:-unpacked}
case $FOREIGN_MODE in unpacked | emulated) ;; *) die "DSTACK_FOREIGN_BASE must be unpacked or emulated, not $FOREIGN_MODE" ;; esac
if [ -n "$ARCH" ] && [ "$ARCH" != "$(dpkg --print-architecture 2>/dev/null || echo amd64)" ]; then
  BASE_IMAGE=$BASE_IMAGE-$ARCH
  # "-pyc": the unpacked one carries the bytecode Debian's postinst would have compiled (see build_tarball).
  BASE_TARBALL=$CACHE_DIR/base-$BASE_SUITE-$ARCH-$FOREIGN_MODE$([ "$FOREIGN_MODE" = unpacked ] && echo -pyc).tar
else
  ARCH=
fi

[ "${1:-}" = name ] && { echo "$BASE_IMAGE"; exit 0; }

engine_ping || die "the private engine is not running: bash tools/system/engine.sh start"
lock_on "$CACHE_DIR/base-$BASE_SUITE${ARCH:+-$ARCH}.lock"

build_tarball() {
  need_root "debootstrap" 
  command -v debootstrap >/dev/null || die "debootstrap is missing: install Debian's debootstrap (sudo bash tools/system/setup.sh)"
  local rootfs
  rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  local arch_args=() log=$CACHE_DIR/debootstrap${ARCH:+-$ARCH}.log
  local unpack_only=
  if [ -n "$ARCH" ]; then
    arch_args=(--arch "$ARCH")
    if [ "$FOREIGN_MODE" = unpacked ]; then
      unpack_only=1
      arch_args+=(--foreign)
    else
      [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || [ "$ARCH" != arm64 ] ||
        die "no arm64 emulation (binfmt_misc qemu-aarch64): run sudo bash tools/system/setup.sh"
    fi
  fi
  local expect="about 90 s"
  [ -n "$ARCH" ] && expect=$([ -n "$unpack_only" ] && echo "about 30 s" || echo "~15 min emulated")
  echo "debootstrap $BASE_SUITE${ARCH:+ ($ARCH, $FOREIGN_MODE)} into $rootfs ($expect)"
  local t0=$SECONDS
  if ! debootstrap "${arch_args[@]}" --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$BASE_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$log" 2>&1; then
    tail -20 "$log" >&2
    die "debootstrap failed (log: $log)"
  fi
  if [ -n "$unpack_only" ]; then
    # The first stage downloaded every package (required, base and --include) and unpacked only the required
    # ones: unpack the rest the same way, keeping the merged-/usr links (/bin -> usr/bin) it made.
    # dpkg's status lists each package as unpacked (as `dpkg --unpack` leaves it): what is in the image and at
    # which version is readable (`dpkg --configure -a` under emulation would finish the job).
    local deb status=$rootfs/var/lib/dpkg/status
    : >"$status"
    for deb in "$rootfs"/var/cache/apt/archives/*.deb; do
      dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$rootfs" ||
        die "unpacking $(basename "$deb") failed"
      dpkg-deb -f "$deb" | sed '1a Status: install ok unpacked' >>"$status"
      echo >>"$status"
    done
    rm -rf "$rootfs/debootstrap"
    # No postinst ran, so no .pyc exists and every Python start under qemu compiles what it imports (pip: ~50 s).
    # Bytecode depends only on the Python minor version (its magic number is fixed within one): compile with this
    # machine's python3.X (py3compile does the same at install time; -s/-p record the image's own paths).
    local pyver hostpy
    pyver=$(ls "$rootfs"/var/cache/apt/archives/ 2>/dev/null | sed -n 's/^python\(3\.[0-9]*\)-minimal_.*/\1/p' | head -1)
    hostpy=
    [ -n "$pyver" ] && { [ -x "/usr/bin/python$pyver" ] && hostpy=/usr/bin/python$pyver || hostpy=$(command -v "python$pyver" || true); }
    if [ -n "$hostpy" ] && [ "$("$hostpy" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$pyver" ]; then
      "$hostpy" -m compileall -q -j 0 -s "$rootfs" -p / "$rootfs/usr/lib/python$pyver" "$rootfs/usr/lib/python3/dist-packages" >/dev/null || true
    fi
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
if [ -n "$ARCH" ]; then
  # dockerd 20.10's import ignores --platform: load a docker archive whose config names the architecture.
  archive=$(mktemp -d "$CACHE_DIR/archive.XXXXXX")
  trap 'rm -rf "$archive"' EXIT
  variant=
  [ "$ARCH" = arm64 ] && variant=',"variant":"v8"'
  mkdir "$archive/$sha"
  ln -s "$BASE_TARBALL" "$archive/$sha/layer.tar"
  printf '{"architecture":"%s"%s,"os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C.UTF-8"],"Cmd":["/bin/bash"],"Labels":{"%s":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"debootstrap --arch %s %s"}]}' \
    "$ARCH" "$variant" "$LABEL" "$sha" "$sha" "$ARCH" "$BASE_SUITE" >"$archive/config.json"
  config=$(sha256sum "$archive/config.json" | cut -d' ' -f1)
  mv "$archive/config.json" "$archive/$config.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config" "$BASE_IMAGE" "$sha" >"$archive/manifest.json"
  tar -C "$archive" -chf - . | docker load >/dev/null
  rm -rf "$archive"
  trap - EXIT
  echo "base image loaded: $BASE_IMAGE (linux/$ARCH, $((SECONDS - t0)) s)"
  exit 0
fi
docker import \
  --change "LABEL $LABEL=$sha" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$BASE_TARBALL" "$BASE_IMAGE" >/dev/null
echo "base image imported: $BASE_IMAGE ($((SECONDS - t0)) s)"

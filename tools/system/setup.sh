#!/usr/bin/env bash
# Installs (as root, with apt) and checks the system components the tests use. On a machine without
# root or apt it says exactly what to install. Idempotent: quick when everything is already there.
# The container components themselves (private dockerd, registry, base image) are started by
# engine.sh, registry.sh and base-image.sh in this folder; the vitest globalSetup runs them once per run.
set -euo pipefail

# Debian packages the test suite needs (DESIGN.md, "Real components").
PACKAGES=(
  docker.io          # dockerd 20.10 for the private engine, and its CLI
  docker-registry    # distribution 2.8: the registry the image tests push to
  debootstrap        # the Debian base image (no Docker Hub here)
  skopeo umoci       # checkers for the daemonless image output
  twine              # upload client for the server's tests
  chromium           # the server's web page, driven by playwright-core
  docker-compose     # the seed's docker-compose flows
  nginx wrk          # static-index serving and load figures
  iptables           # dockerd's NAT: containers reach Debian's mirror
  git build-essential libpq-dev zlib1g-dev  # building test packages with C extensions
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross  # a foreign-architecture .so for the shared-library check
  python3-wheel-whl python3-setuptools-whl python3-pip-whl  # offline bootstrap wheels
  python3-venv       # venvs of Debian's python3.11 (the base's exact version, for locks of app images)
  musl               # a real musl libc, whose version the base-image reader finds without running it
  qemu-user-static binfmt-support  # arm64 emulation: the arm64 debootstrapped base (Decision 24)
  libpython3.11-dev:arm64  # Python's arm64 headers: an aarch64 C extension cross-compiled with gcc-aarch64-linux-gnu
)

# The :arm64 package above needs dpkg to know the architecture (multiarch); apt then fetches its lists too.
if [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null 2>&1 && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
else
  # Not Debian: check the commands and files the tests use.
  for cmd in dockerd docker-registry debootstrap skopeo umoci twine chromium docker-compose nginx wrk iptables git gcc pg_config aarch64-linux-gnu-gcc; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  ls /usr/share/python-wheels/wheel-*.whl >/dev/null 2>&1 || missing+=(python3-wheel-whl)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Others may run apt at the same time: one apt at a time on this machine.
    flock /tmp/apt.lock apt-get update -qq
    unknown=()
    for pkg in "${missing[@]}"; do
      candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
      [ -n "$candidate" ] && [ "$candidate" != "(none)" ] || unknown+=("$pkg")
    done
    if [ ${#unknown[@]} -gt 0 ]; then
      echo "apt has no candidate for: ${unknown[*]} (check /etc/apt/sources.list: Debian bookworm main is needed)" >&2
      exit 1
    fi
    flock /tmp/apt.lock apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    echo "(or run this script as root: sudo bash tools/system/setup.sh)" >&2
    exit 1
  fi
fi

# Emulation of arm64 through binfmt_misc (Decision 24): arm64 containers on the private engine, and the configured
# arm64 base (DSTACK_FOREIGN_BASE=emulated; the default arm64 test base is only unpacked and needs none).
# Containers have no systemd to register the handler: mount binfmt_misc, enable it.
if [ "$(id -u)" = 0 ] && command -v update-binfmts >/dev/null 2>&1; then
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
      echo "warning: cannot mount binfmt_misc: no arm64 emulation here" >&2
  fi
  if [ -e /proc/sys/fs/binfmt_misc/status ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 ||
      echo "warning: update-binfmts --enable qemu-aarch64 failed: no arm64 emulation here" >&2
  fi
fi

# pip 23.2's parser drives the recipe parser's differential test.
python3 -c 'import pip, sys; v = tuple(int(x) for x in pip.__version__.split(".")[:2]); sys.exit(0 if v >= (22, 2) else 1)' || {
  echo "python3 -m pip >= 22.2 is required (python3 -m ensurepip --upgrade)" >&2
  exit 1
}

# The private engine needs root (dockerd), a bridge (ip link) and a storage driver; say early when it cannot work.
if [ "$(id -u)" != 0 ]; then
  echo "warning: not root: the private Docker engine cannot start here (tools/system/engine.sh needs root)" >&2
fi
echo "system components ready"

# Shared settings of the scripts that start the private test components (sourced, not run).
# One private Docker engine, one registry and one base image per machine (DESIGN.md, Decision 15):
# the scripts reuse what is already running, so every test run and every engineer share them.

# Short runtime paths: a unix socket path is limited to ~100 bytes.
DSTACK_RUN_DIR=${DSTACK_RUN_DIR:-/tmp/dstack}
ENGINE_DIR=$DSTACK_RUN_DIR/engine
ENGINE_SOCK=$ENGINE_DIR/docker.sock
ENGINE_PIDFILE=$ENGINE_DIR/dockerd.pid
ENGINE_LOG=$ENGINE_DIR/dockerd.log
# Images survive engine restarts: the data root is persistent.
ENGINE_DATA=${DSTACK_ENGINE_DATA:-/var/lib/dstack-factory/engine}
ENGINE_BRIDGE=${DSTACK_ENGINE_BRIDGE:-dstack0}
ENGINE_BRIDGE_CIDR=${DSTACK_ENGINE_BRIDGE_CIDR:-172.30.77.1/24}

REGISTRY_DIR=$DSTACK_RUN_DIR/registry
REGISTRY_PORT=${DSTACK_REGISTRY_PORT:-5077}
REGISTRY_PIDFILE=$REGISTRY_DIR/registry.pid
REGISTRY_LOG=$REGISTRY_DIR/registry.log

CACHE_DIR=${DSTACK_CACHE_DIR:-/var/cache/dstack-factory}
BASE_SUITE=${DSTACK_BASE_SUITE:-bookworm}
BASE_IMAGE=${DSTACK_BASE_IMAGE:-dstack-factory/base:$BASE_SUITE}
BASE_TARBALL=$CACHE_DIR/base-$BASE_SUITE.tar
DEBIAN_MIRROR=${DSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

export DOCKER_HOST=unix://$ENGINE_SOCK

die() {
  echo "$*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" = 0 ] || die "$1 needs root (sudo bash $0 ${*:2}); or run tools/system/setup.sh as root once and start it there"
}

pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

engine_ping() {
  [ -S "$ENGINE_SOCK" ] && [ "$(curl -s --max-time 2 --unix-socket "$ENGINE_SOCK" http://engine/_ping 2>/dev/null)" = OK ]
}

registry_ping() {
  curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null | grep -q '^200$'
}

# Takes an exclusive lock on FILE (fd 9) for the rest of the script, so two test runs starting at once
# start one component. Children that outlive the script must be started with 9>&-.
lock_on() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock 9
}

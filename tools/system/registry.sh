#!/usr/bin/env bash
# The OCI registry the tests push to: Debian's docker-registry (distribution 2.8) on 127.0.0.1, plain
# HTTP, storage in a fresh temp directory. One per machine, reused when already running.
#   registry.sh start | stop | status | url
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

status() {
  if registry_ping; then
    echo "registry running: http://127.0.0.1:$REGISTRY_PORT pid=$(cat "$REGISTRY_PIDFILE" 2>/dev/null || echo '?')"
    return 0
  fi
  echo "registry not running (127.0.0.1:$REGISTRY_PORT)"
  return 1
}

start() {
  registry_ping && { status; return 0; }
  command -v docker-registry >/dev/null || die "docker-registry is missing: install Debian's docker-registry (sudo bash tools/system/setup.sh)"
  pid_alive "$REGISTRY_PIDFILE" && kill "$(cat "$REGISTRY_PIDFILE")" 2>/dev/null || true
  mkdir -p "$REGISTRY_DIR"
  local data
  data=$(mktemp -d "${TMPDIR:-/tmp}/dstack-registry.XXXXXX")
  cat >"$REGISTRY_DIR/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
CONFIG
  echo "$data" >"$REGISTRY_DIR/data-dir"
  : >"$REGISTRY_LOG"
  setsid docker-registry serve "$REGISTRY_DIR/config.yml" </dev/null >>"$REGISTRY_LOG" 2>&1 9>&- &
  local pid=$!
  echo "$pid" >"$REGISTRY_PIDFILE"
  for _ in $(seq 1 60); do
    registry_ping && { status; return 0; }
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$REGISTRY_LOG" >&2
      die "docker-registry exited while starting (log: $REGISTRY_LOG)"
    fi
    sleep 0.25
  done
  tail -20 "$REGISTRY_LOG" >&2
  die "docker-registry did not answer on 127.0.0.1:$REGISTRY_PORT within 15 s"
}

stop() {
  if ! pid_alive "$REGISTRY_PIDFILE"; then
    echo "registry not running"
    return 0
  fi
  local pid
  pid=$(cat "$REGISTRY_PIDFILE")
  kill "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
  [ -f "$REGISTRY_DIR/data-dir" ] && rm -rf "$(cat "$REGISTRY_DIR/data-dir")" "$REGISTRY_DIR/data-dir"
  rm -f "$REGISTRY_PIDFILE"
  echo "registry stopped (pid $pid)"
}

case "${1:-status}" in
  start) lock_on "$DSTACK_RUN_DIR/registry.lock"; start ;;
  stop) lock_on "$DSTACK_RUN_DIR/registry.lock"; stop ;;
  status) status ;;
  url) echo "http://127.0.0.1:$REGISTRY_PORT" ;;
  *) die "usage: $0 start|stop|status|url" ;;
esac

#!/usr/bin/env bash
# The private Docker engine the tests share: one per machine, reused when already running.
#   engine.sh start    start it unless it answers already (idempotent; safe to run concurrently)
#   engine.sh stop     stop it by its pid
#   engine.sh status   exit 0 when it answers /_ping; prints the socket, driver and version
#   engine.sh env      prints "export DOCKER_HOST=unix://…" for eval
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

status() {
  if engine_ping; then
    local info
    info=$(curl -s --unix-socket "$ENGINE_SOCK" http://engine/info)
    echo "engine running: DOCKER_HOST=unix://$ENGINE_SOCK pid=$(cat "$ENGINE_PIDFILE" 2>/dev/null || echo '?')" \
      "$(python3 -c 'import json,sys; i=json.load(sys.stdin); print("driver=%s version=%s cgroup=v%s" % (i["Driver"], i["ServerVersion"], i.get("CgroupVersion","?")))' <<<"$info")"
    return 0
  fi
  echo "engine not running (socket $ENGINE_SOCK)"
  return 1
}

ensure_bridge() {
  # A second daemon on a machine needs its own bridge (the default docker0 may belong to another one).
  if ! ip link show "$ENGINE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$ENGINE_BRIDGE" type bridge
  fi
  if ! ip -4 addr show dev "$ENGINE_BRIDGE" | grep -q "inet ${ENGINE_BRIDGE_CIDR%/*}/"; then
    ip addr add "$ENGINE_BRIDGE_CIDR" dev "$ENGINE_BRIDGE"
  fi
  ip link set "$ENGINE_BRIDGE" up
}

start_locked() {
  if engine_ping; then
    status
    return 0
  fi
  need_root "starting dockerd" start
  command -v dockerd >/dev/null || die "dockerd is missing: install Debian's docker.io (sudo bash tools/system/setup.sh)"
  mkdir -p "$ENGINE_DIR" "$ENGINE_DATA"
  if pid_alive "$ENGINE_PIDFILE"; then
    # A daemon that does not answer: give it a moment (it may be starting), then replace it.
    for _ in $(seq 1 20); do engine_ping && { status; return 0; }; sleep 0.5; done
    echo "engine pid $(cat "$ENGINE_PIDFILE") does not answer: stopping it" >&2
    stop_engine
  fi
  rm -f "$ENGINE_SOCK" "$ENGINE_PIDFILE"
  ensure_bridge

  local args=(
    --host "unix://$ENGINE_SOCK"
    --data-root "$ENGINE_DATA"
    --exec-root "$ENGINE_DIR/exec"
    --pidfile "$ENGINE_PIDFILE"
    --bridge "$ENGINE_BRIDGE"
    --log-level warn
  )
  # Containers' packets leave through the default route: use its MTU (1500 on a bridge would break TLS
  # behind a smaller-MTU link).
  local dev mtu
  dev=$(ip route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}')
  if [ -n "$dev" ] && mtu=$(cat "/sys/class/net/$dev/mtu" 2>/dev/null) && [ "$mtu" -lt 1500 ]; then
    args+=(--mtu "$mtu")
  fi
  [ -n "${DSTACK_ENGINE_STORAGE_DRIVER:-}" ] && args+=(--storage-driver "$DSTACK_ENGINE_STORAGE_DRIVER")
  if ! command -v iptables >/dev/null || ! iptables -t nat -L -n >/dev/null 2>&1; then
    echo "warning: iptables is missing or has no nat table: containers will not reach the network" \
      "(install Debian's iptables)" >&2
    args+=(--iptables=false)
  fi

  : >"$ENGINE_LOG"
  setsid dockerd "${args[@]}" </dev/null >>"$ENGINE_LOG" 2>&1 9>&- &
  local pid=$!
  for _ in $(seq 1 120); do
    if engine_ping; then
      status
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dockerd exited while starting; its log ($ENGINE_LOG):" >&2
      tail -20 "$ENGINE_LOG" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "dockerd did not answer on $ENGINE_SOCK within 60 s; its log ($ENGINE_LOG):" >&2
  tail -20 "$ENGINE_LOG" >&2
  return 1
}

stop_engine() {
  if ! pid_alive "$ENGINE_PIDFILE"; then
    echo "engine not running"
    return 0
  fi
  local pid
  pid=$(cat "$ENGINE_PIDFILE")
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "dockerd $pid did not stop within 30 s: killing it" >&2
    kill -9 "$pid" || true
  fi
  rm -f "$ENGINE_PIDFILE" "$ENGINE_SOCK"
  echo "engine stopped (pid $pid)"
}

case "${1:-status}" in
  start)
    lock_on "$DSTACK_RUN_DIR/engine.lock"
    start_locked
    ;;
  stop)
    lock_on "$DSTACK_RUN_DIR/engine.lock"
    stop_engine
    ;;
  status) status ;;
  env) echo "export DOCKER_HOST=unix://$ENGINE_SOCK" ;;
  *) die "usage: $0 start|stop|status|env" ;;
esac

#!/usr/bin/env bash
# A throwaway Docker daemon for the benchmarks' docker baselines: an engine as cold as a fresh CI runner's
# (no image, no layer, no build cache), never the shared one of tools/system/engine.sh. Everything lives under
# DIR: data root, exec root (its containerd too), pidfile, socket (DOCKER_HOST=unix://DIR/docker.sock), log.
#   cold-dockerd.sh restart DIR [STORAGE_DRIVER]   stop the one in DIR, wipe its state, start it again (empty)
#   cold-dockerd.sh stop DIR                       stop it and remove its state (the log stays)
# No bridge and no iptables rules (nothing on the machine's network changes): builds use --network host, and the
# registry on 127.0.0.1 is reached as an insecure one (loopback, as dockerd treats it by default).
set -euo pipefail
cmd=${1:?usage: cold-dockerd.sh restart|stop DIR [STORAGE_DRIVER]}
dir=${2:?usage: cold-dockerd.sh restart|stop DIR [STORAGE_DRIVER]}
driver=${3:-}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid

stop() {
  if [ -f "$pidfile" ]; then
    local pid
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      # SIGTERM: dockerd unmounts its layers and stops its containerd; give it 30 s, then kill it.
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  # Whatever a killed daemon left mounted under DIR, then its state.
  { grep -o " $dir/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir/data" "$dir/exec" "$pidfile" "$sock"
}

case "$cmd" in
  restart)
    stop
    mkdir -p "$dir/data" "$dir/exec"
    args=(--host "unix://$sock" --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$pidfile"
      --bridge none --iptables=false --ip-masq=false --log-level warn)
    [ -n "$driver" ] && args+=(--storage-driver "$driver")
    setsid dockerd "${args[@]}" </dev/null >>"$dir/dockerd.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
      curl -sf --unix-socket "$sock" http://cold/_ping >/dev/null 2>&1 && exit 0
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    echo "the throwaway dockerd in $dir did not answer; its log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
    ;;
  stop) stop ;;
  *)
    echo "usage: cold-dockerd.sh restart|stop DIR [STORAGE_DRIVER]" >&2
    exit 2
    ;;
esac

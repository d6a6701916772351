#!/usr/bin/env bash
# Start or stop a Docker engine of the project's own (its own socket, data, exec root and pid
# file), for `make docker-test` on machines without a running one. Installs Debian's docker.io
# when dockerd is missing. `start` prints the DOCKER_HOST to use, `root` the folder of its data.
set -euo pipefail
ROOT=${DETECTOR_DOCKER_ROOT:-/var/lib/instance-detector-docker}
SOCK=unix://$ROOT/docker.sock
PID=$ROOT/dockerd.pid
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

case "${1:-}" in
start)
    if ! command -v dockerd >/dev/null && [ ! -x /usr/sbin/dockerd ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    fi
    $SUDO mkdir -p "$ROOT"
    if [ -f "$PID" ] && $SUDO kill -0 "$(cat "$PID")" 2>/dev/null; then
        echo "$SOCK"; exit 0
    fi
    $SUDO /usr/sbin/dockerd --host "$SOCK" --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
        --pidfile "$PID" --storage-driver overlay2 --bridge none --iptables=false --ip6tables=false \
        >"$ROOT/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        DOCKER_HOST=$SOCK docker version >/dev/null 2>&1 && { echo "$SOCK"; exit 0; }
        sleep 0.5
    done
    echo "dockerd did not start; see $ROOT/dockerd.log" >&2
    tail -20 "$ROOT/dockerd.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$PID" ]; then
        $SUDO kill "$(cat "$PID")" 2>/dev/null || true
        for _ in $(seq 1 40); do [ -f "$PID" ] || break; sleep 0.5; done
    fi
    ;;
root)
    echo "$ROOT"
    ;;
*)
    echo "usage: $0 start|stop|root" >&2; exit 2
    ;;
esac

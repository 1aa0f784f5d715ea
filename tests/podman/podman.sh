#!/usr/bin/env bash
# A Docker-API engine for the gateway's Docker launcher tests: podman's
# compatible service, on a socket of its own, with the agent image loaded.
#
#   podman.sh up     start the service in the background (in the network
#                    namespace this runs in) and load the agent image; a
#                    second `up` keeps a running service and reloads the image
#                    only if its archive changed
#   podman.sh down   remove every Huddle container, stop the service and
#                    remove every trace (no strays)
#   podman.sh env    print the environment the tests need (eval it)
#
# Run it inside the test cluster's network namespace, so container addresses
# (podman's bridge, 10.88.0.0/16) are reachable from the tests there and from
# nowhere else:
#   tests/cluster/cluster.sh exec -- bash tests/podman/podman.sh up
#
# Nothing global is configured: containers.conf and storage.conf live in
# $HUDDLE_PODMAN_DIR (default /tmp/huddle-podman), pointed to by
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF, and so do the image store, the
# service's runtime state and the bridge's address leases. The engine serves
# unix://$HUDDLE_PODMAN_DIR/podman.sock.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

STATE=${HUDDLE_PODMAN_DIR:-/tmp/huddle-podman}
SOCK=$STATE/podman.sock
ARCHIVE=$HUDDLE_CACHE/images/huddle-agent.tar
# The gateway's default --agent-image.
IMAGE=localhost/huddle-agent:dev
# Podman's usual bridge subnet; the test cluster's pods use 10.244.0.0/24.
SUBNET=10.88.0.0/16
BRIDGE=huddle-pm0
SESSION_LABEL=huddle.dev/session

export CONTAINERS_CONF=$STATE/containers.conf
export CONTAINERS_STORAGE_CONF=$STATE/storage.conf

# Every call after the service is up goes through its socket, so networking
# is set up and torn down by the service, in its network namespace.
remote() {
    podman --url "unix://$SOCK" "$@"
}

service_running() {
    [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null && remote version >/dev/null 2>&1
}

write_config() {
    mkdir -p "$STATE/logs" "$STATE/networks" "$STATE/cni"
    # runc and cgroupfs: no crun, no systemd here. Default ulimits within
    # this machine's hard limits (raising them needs CAP_SYS_RESOURCE).
    cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
network_config_dir = "$STATE/networks"
cni_plugin_dirs = ["/usr/lib/cni"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/logs/events.log"
tmp_dir = "$STATE/libpod"
# Locks in tmp_dir, not in /dev/shm where another podman on this machine has its own.
lock_type = "file"
volume_path = "$STATE/volumes"
EOF
    cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
runroot = "$STATE/storage-run"
graphroot = "$STATE/storage"
EOF
    # Podman's default network, defined here so its bridge, subnet and
    # address leases are ours. Containers need no way out: no masquerading.
    cat >"$STATE/networks/podman.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "podman",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "$SUBNET", "gateway": "${SUBNET%.0/*}.1"}]]
      }
    }
  ]
}
EOF
}

start_service() {
    # setsid: the service outlives this script and the test run's shell.
    setsid podman system service --time=0 "unix://$SOCK" >"$STATE/logs/podman.log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
    wait_for "podman service on $SOCK" 30 remote version || {
        echo "---- last lines of $STATE/logs/podman.log" >&2
        tail -n 40 "$STATE/logs/podman.log" >&2 || true
        exit 1
    }
}

load_image() {
    [ -f "$ARCHIVE" ] || die "$ARCHIVE missing: run tests/images/build-images.sh first"
    local sum
    sum=$(sha256sum "$ARCHIVE" | awk '{print $1}')
    if remote image exists "$IMAGE" && [ "$(cat "$STATE/image.sha256" 2>/dev/null)" = "$sum" ]; then
        echo "    $IMAGE present"
        return
    fi
    local loaded
    loaded=$(remote load -q -i "$ARCHIVE") || die "podman load -i $ARCHIVE failed"
    # "Loaded image: huddle.local/huddle-agent:dev" (the archive's own name).
    loaded=${loaded##*: }
    remote tag "$loaded" "$IMAGE"
    echo "$sum" >"$STATE/image.sha256"
    echo "    loaded $IMAGE from $(basename "$ARCHIVE")"
}

remove_containers() {
    local ids
    ids=$(remote ps -aq --filter "label=$SESSION_LABEL") || return 0
    [ -z "$ids" ] || remote rm -f -t 10 $ids >/dev/null || true
}

cmd_up() {
    [ -n "$(ip netns identify $$ 2>/dev/null)" ] ||
        die "run inside the test network namespace: tests/cluster/cluster.sh exec -- bash $0 up"
    command -v podman >/dev/null || die "podman missing: run scripts/install-deps.sh"
    stage "podman: Docker API service"
    # A service left in another network namespace (an earlier cluster's) serves
    # addresses the tests cannot reach: start afresh.
    if service_running && [ "$(readlink "/proc/$(cat "$STATE/pid")/ns/net")" = "$(readlink /proc/self/ns/net)" ]; then
        echo "    already running on $SOCK"
    else
        cmd_down
        mkdir -p "$STATE"
        ip netns list | awk '/^netns-/ {print $1}' | sort >"$STATE/netns-before"
        write_config
        start_service
        echo "    $(remote version --format 'podman {{.Server.Version}}') on $SOCK"
    fi
    stage "podman: agent image"
    load_image
    stage_end
    cmd_env
}

cmd_down() {
    [ -d "$STATE" ] || return 0
    if service_running; then
        remove_containers
    fi
    local pid
    pid=$(cat "$STATE/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Containers whose service died: their conmon and runc state live here.
    local stray
    stray=$(pgrep -f -- "$STATE/" || true)
    if [ -n "$stray" ]; then
        echo "    killing processes left under $STATE: $(echo $stray)"
        kill -KILL $stray 2>/dev/null || true
        sleep 0.2
    fi
    # The image store's own mount and any container's, deepest first.
    findmnt -rn -o TARGET | { grep -F "$STATE/" || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    # Network namespaces of containers that were not removed cleanly.
    if [ -f "$STATE/netns-before" ]; then
        ip netns list | awk '/^netns-/ {print $1}' | sort | comm -13 "$STATE/netns-before" - |
            while read -r ns; do ip netns delete "$ns" 2>/dev/null || true; done
    fi
    if [ -n "${HUDDLE_ARTIFACTS:-}" ] && [ -d "$STATE/logs" ]; then
        mkdir -p "$HUDDLE_ARTIFACTS/podman-logs"
        cp -r "$STATE/logs/." "$HUDDLE_ARTIFACTS/podman-logs/" 2>/dev/null || true
    fi
    rm -rf "$STATE"
}

cmd_env() {
    echo "export HUDDLE_TEST_DOCKER_HOST=unix://$SOCK"
    echo "export HUDDLE_TEST_DOCKER_IMAGE=$IMAGE"
}

case "${1:-}" in
up) cmd_up ;;
down)
    stage "podman: teardown"
    cmd_down
    stage_end
    ;;
env) cmd_env ;;
*)
    echo "usage: $0 up|down|env" >&2
    exit 2
    ;;
esac

# Shared helpers for Huddle's scripts: cache locations, pinned versions and
# one progress line per stage. Sourced, never run.

HUDDLE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HUDDLE_CACHE=${HUDDLE_CACHE:-$HOME/.cache/huddle}

# Everything a run builds or downloads lives under the cache so a second run
# on the same machine is fast and a fresh clone never rebuilds the world.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HUDDLE_CACHE/target}
# Incremental compilation keys its cache by the source path, and every CI run is a fresh
# clone at a new path: the caches would never be reused, only pile up (24 GB seen).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export GOMODCACHE=${GOMODCACHE:-$HUDDLE_CACHE/go/mod}
export GOCACHE=${GOCACHE:-$HUDDLE_CACHE/go/build}
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export GOTOOLCHAIN=local

# Pinned versions of the Go-built test binaries; each must match the go.mod
# beside it under tests/tools.
KUBERNETES_VERSION=v1.35.4
ETCD_VERSION=v3.6.6
HELM_VERSION=v4.3.1
COREDNS_VERSION=v1.15.0
HUDDLE_BIN=$HUDDLE_CACHE/bin

_stage_started=0
_stage_name=""

# stage NAME: ends the previous stage (printing its time) and starts a new one.
stage() {
    stage_end
    _stage_name=$1
    _stage_started=$(date +%s%3N)
    printf '==> %s\n' "$_stage_name"
}

stage_end() {
    if [ -n "$_stage_name" ]; then
        local ms=$(($(date +%s%3N) - _stage_started))
        printf '==> %s done in %d.%01ds\n' "$_stage_name" $((ms / 1000)) $((ms % 1000 / 100))
        _stage_name=""
    fi
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls COMMAND until it
# succeeds, failing with DESCRIPTION when the timeout passes.
wait_for() {
    local what=$1 timeout=$2
    shift 2
    local deadline=$(($(date +%s) + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            printf 'error: timed out after %ss waiting for %s\n' "$timeout" "$what" >&2
            return 1
        fi
        sleep 0.2
    done
}

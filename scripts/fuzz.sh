#!/usr/bin/env bash
# Fuzzes the OT core and the protocol parser (ot/fuzz) with cargo-fuzz and
# libFuzzer, on stable Rust: each target runs for SECONDS (default 20) and any crash, panic,
# timeout or out-of-memory fails the script.
#
#   scripts/fuzz.sh [SECONDS]      e.g. scripts/fuzz.sh 300 for a longer hunt
#
# Stable is enough because the targets are built without a sanitizer (`-s none`): the code
# under test forbids `unsafe`, so AddressSanitizer (which needs nightly's -Zsanitizer) would
# catch nothing that Rust's own checks do not; debug assertions and overflow checks stay on.
# libFuzzer itself is C++, compiled by the libfuzzer-sys crate with the system's c++ (g++ from
# build-essential).
#
# Everything is cached under ~/.cache/huddle: the cargo-fuzz binary, the instrumented build (its
# own target directory: the instrumentation flags differ from the main build's), and each
# target's growing corpus, so later runs start from what earlier ones found. Crash inputs go to
# ot/fuzz/artifacts/<target>/, as with `cargo fuzz run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_PER_TARGET=${1:-20}
[[ $SECONDS_PER_TARGET =~ ^[1-9][0-9]*$ ]] || die "usage: $0 [SECONDS per target]"

CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT=$HUDDLE_CACHE/cargo-bin
FUZZ_DIR=$HUDDLE_ROOT/ot/fuzz
TARGETS=(op_decode_apply transform_converges document_receive client_message_parse)
export CARGO_TARGET_DIR=${HUDDLE_FUZZ_TARGET_DIR:-$HUDDLE_CACHE/target-fuzz}
export PATH=$CARGO_FUZZ_ROOT/bin:$PATH
# The flags the targets are built with (`cargo fuzz run` with the same ones reuses the build).
# 16 codegen units instead of cargo-fuzz's 1: every dependency gets instrumented, and one unit
# per crate makes a cold build several times slower.
BUILD_FLAGS=(--sanitizer none --codegen-units 16 --fuzz-dir "$FUZZ_DIR")

stage "cargo-fuzz $CARGO_FUZZ_VERSION"
if [ "$(cargo-fuzz --version 2>/dev/null)" = "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "    present in $CARGO_FUZZ_ROOT"
else
    echo "    installing into $CARGO_FUZZ_ROOT"
    cargo install --quiet --root "$CARGO_FUZZ_ROOT" --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
command -v c++ >/dev/null || die "no C++ compiler for libFuzzer: apt-get install g++ (or build-essential)"

stage "build fuzz targets"
(cd "$HUDDLE_ROOT" && cargo fuzz build "${BUILD_FLAGS[@]}")
BIN_DIR=$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release

stage "fuzz ${#TARGETS[@]} targets for ${SECONDS_PER_TARGET}s each"
failed=()
for target in "${TARGETS[@]}"; do
    corpus=$HUDDLE_CACHE/fuzz/corpus/$target
    artifacts=$FUZZ_DIR/artifacts/$target
    log=$HUDDLE_CACHE/fuzz/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    # New inputs go to the cached corpus (the first directory); the checked-in seeds are read.
    status=0
    "$BIN_DIR/$target" "$corpus" "$FUZZ_DIR/seeds/$target" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -dict="$FUZZ_DIR/ot.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    units=$(find "$corpus" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
        printf '    %-22s ok     %9s runs  %6s/s  cov %-5s corpus %s\n' \
            "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$units"
    else
        crash=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
        printf '    %-22s FAILED (exit %s) %s runs; input: %s; log: %s\n' \
            "$target" "$status" "${runs:-?}" "${crash:-none}" "$log"
        grep -m1 -A3 "panicked at" "$log" | sed 's/^/        /' || true
        failed+=("$target")
    fi
done
stage_end

if [ ${#failed[@]} -gt 0 ]; then
    cat >&2 <<EOF
error: ${#failed[@]} fuzz target(s) failed: ${failed[*]}
  reproduce:  $BIN_DIR/<target> <input>
  minimize:   $BIN_DIR/<target> -minimize_crash=1 -runs=100000 -exact_artifact_path=<out> <input>
EOF
    exit 1
fi

#!/usr/bin/env bash
# Runs the workspace tests again and again under a CPU hog, to find flaky tests
# (not in CI: 20 runs take about half an hour here; figures in BENCHMARKS.md).
#
#   scripts/soak-tests.sh [RUNS] [cargo test args]     (default 20 runs)
#
# The hog is one `yes` pinned to the last core at nice 0, so the tests share the
# machine with a process as greedy as they are. Every run's log is kept under
# $SOAK_DIR (default /var/cache/safe-yolo/soak); a summary line per run and the
# failing tests' names are printed, and the exit code is 1 when any run failed.
# Builds first (scripts/build.sh) so that no run includes a compile.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
shift || true
out="${SOAK_DIR:-/var/cache/safe-yolo/soak}/$(date -u +%Y%m%dT%H%M%S)"
mkdir -p "$out"
scripts/fixtures.sh >/dev/null
scripts/demo-media.sh demo-media >/dev/null
# The one build (instrumented), without keeping its coverage profiles.
# shellcheck source=scripts/build-env.sh
source scripts/build-env.sh
export LLVM_PROFILE_FILE=/dev/null
cargo test --workspace --all-features --no-run "$@" >/dev/null 2>&1
ORT_DYLIB_PATH="$(scripts/ort-dylib.sh)"
export ORT_DYLIB_PATH

last_core=$(($(nproc) - 1))
taskset -c "$last_core" yes >/dev/null &
hog=$!
trap 'kill "$hog" 2>/dev/null || true' EXIT
echo "soak: $runs runs of cargo test --workspace --all-features $*, hog pid $hog on core $last_core, logs in $out"

failed=0
for i in $(seq 1 "$runs"); do
    start=$(date +%s)
    if cargo test --workspace --all-features "$@" >"$out/run-$i.log" 2>&1; then
        result=passed
    else
        result=FAILED
        failed=$((failed + 1))
    fi
    tests=$(grep -E '^test result:' "$out/run-$i.log" | awk '{p+=$4; f+=$6} END {printf "%d passed, %d failed", p, f}')
    echo "soak: run $i/$runs $result in $(($(date +%s) - start)) s ($tests)"
    grep -E '^test .* FAILED$|^    [a-z_:]+$' "$out/run-$i.log" | sed 's/^/soak:   /' || true
done
echo "soak: $((runs - failed)) of $runs runs passed"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# The fuzz smoke: installs cargo-fuzz when missing (tools
# cache), builds every fuzz target once (fuzz/, libFuzzer + AddressSanitizer on the
# stable toolchain), runs each for a bounded time on its committed seed corpus
# (fuzz/corpus/TARGET; new inputs go to a temporary directory, the committed corpus
# is never changed) and fails on any crash, leak, timeout or out-of-memory, naming
# the input left in fuzz/artifacts/TARGET/. Prints each target's executions.
# Runs as many targets at once as there are cores (FUZZ_JOBS).
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]     (default 20)
#   scripts/fuzz-smoke.sh --build-only             install and build, run nothing
# Not part of .ci/run (README, "CI": its own build is too long for a cold run).
# Long runs: scripts/fuzz-campaign.sh (README, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/fuzz-env.sh
source scripts/fuzz-env.sh
build_only=0
if [ "${1:-}" = --build-only ]; then
    build_only=1
    shift
fi
seconds=${1:-20}

# Every target of fuzz/Cargo.toml runs here, and nothing else.
declared=$(sed -n '/^\[\[bin\]\]/,/^path/s/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | sort | tr '\n' ' ')
listed=$(printf '%s\n' "${FUZZ_TARGETS[@]}" | sort | tr '\n' ' ')
if [ "$declared" != "$listed" ]; then
    echo "fuzz: fuzz/Cargo.toml declares [$declared] but FUZZ_TARGETS (scripts/fuzz-env.sh) lists [$listed]" >&2
    exit 1
fi

started=$(date +%s)
fuzz_install
fuzz_build
built=$(date +%s)
echo "fuzz: cargo-fuzz and the build of ${#FUZZ_TARGETS[@]} targets took $((built - started)) s"
[ "$build_only" = 0 ] || exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# libFuzzer runs one thread: as many targets at once as there are cores
# (FUZZ_JOBS), each its SECONDS on a core of its own; results in target order.
jobs=${FUZZ_JOBS:-$(nproc)}
running=()
for t in "${FUZZ_TARGETS[@]}"; do
    if [ "${#running[@]}" -ge "$jobs" ]; then
        wait "${running[0]}" || true
        running=("${running[@]:1}")
    fi
    (
        rc=0
        fuzz_run "$t" "$seconds" "$work/corpus-$t" "$work/$t.log" || rc=$?
        echo "$rc" >"$work/$t.rc"
    ) &
    running+=($!)
done
wait
failed=()
printf '%-16s %12s %10s %7s %7s  %s\n' target executions exec/s cov ft result
for t in "${FUZZ_TARGETS[@]}"; do
    log="$work/$t.log"
    if [ "$(cat "$work/$t.rc" 2>/dev/null)" = 0 ]; then
        result=ok
    else
        result="FAILED: $(grep -m1 -E '^==[0-9]+==ERROR|panicked at|^SUMMARY' "$log" || echo "exit status")"
        failed+=("$t")
    fi
    read -r execs rate cov ft <<<"$(fuzz_figures "$log")"
    printf '%-16s %12s %10s %7s %7s  %s\n' "$t" "$execs" "$rate" "$cov" "$ft" "$result"
    if [ "$result" != ok ]; then
        tail -40 "$log" >&2
        ls -1 "$FUZZ_DIR/artifacts/$t" >&2
    fi
done
echo "fuzz: smoke took $(($(date +%s) - started)) s in all ($((built - started)) s install and build)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; reproduce with" \
        "$FUZZ_BIN_DIR/TARGET fuzz/artifacts/TARGET/<file>" >&2
    exit 1
fi

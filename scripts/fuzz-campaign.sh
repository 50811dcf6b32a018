#!/usr/bin/env bash
# A long fuzzing campaign, outside CI: one target (or all, one after the other) for
# SECONDS each, at the lowest CPU priority, on a corpus kept between campaigns
# ($SAFEYOLO_CACHE/fuzz-corpus/TARGET, first filled from the committed seeds).
# Prints one BENCHMARKS.md row per target: duration, executions, exec/s, coverage
# (libFuzzer's cov and ft at the end), corpus size, crashes found (inputs left in
# fuzz/artifacts/TARGET/). libFuzzer stops at the first crash: fix it, add the input
# as a regression test in the owning crate, and run again.
# Each target runs from a copy of its binary taken when it starts, so the fuzz build
# may be rebuilt (a fix) while a campaign runs; later targets run the new build.
#   scripts/fuzz-campaign.sh TARGET[,TARGET...]|all SECONDS
# Logs: $SAFEYOLO_CACHE/fuzz-logs/TARGET-<time>.log
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/fuzz-env.sh
source scripts/fuzz-env.sh
if [ $# -ne 2 ]; then
    echo "usage: $0 TARGET[,TARGET...]|all SECONDS (targets: ${FUZZ_TARGETS[*]})" >&2
    exit 2
fi
if [ "$1" = all ]; then
    targets=("${FUZZ_TARGETS[@]}")
else
    IFS=, read -r -a targets <<<"$1"
fi
seconds=$2
fuzz_install
fuzz_build
logs="$SAFEYOLO_CACHE/fuzz-logs"
mkdir -p "$logs"
status=0
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
echo "| target | duration | executions | exec/s | cov | ft | corpus | crashes |"
echo "|---|---|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
    work="$SAFEYOLO_CACHE/fuzz-corpus/$t"
    log="$logs/$t-$(date -u +%Y%m%dT%H%M%S).log"
    mkdir -p "$FUZZ_DIR/artifacts/$t"
    before=$(find "$FUZZ_DIR/artifacts/$t" -type f | wc -l)
    start=$(date +%s)
    cp "$FUZZ_BIN_DIR/$t" "$bins/$t"
    FUZZ_NICE=19 FUZZ_RUN_BIN_DIR=$bins fuzz_run "$t" "$seconds" "$work" "$log" || status=1
    took=$(($(date +%s) - start))
    read -r execs rate cov ft <<<"$(fuzz_figures "$log")"
    crashes=$(($(find "$FUZZ_DIR/artifacts/$t" -type f | wc -l) - before))
    echo "| $t | ${took} s | $execs | $rate | $cov | $ft | $(find "$work" -type f | wc -l) files, $(du -sh "$work" | cut -f1) | $crashes |"
done
exit $status

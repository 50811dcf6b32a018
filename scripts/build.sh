#!/usr/bin/env bash
# Builds the workspace the one way CI does (scripts/build-env.sh): the dev
# profile (dependencies optimised), every feature on (they are additive: ONNX
# Runtime and RKNN are opened at run time, fault injection stays idle unless its
# variable is set), tests included, instrumented for coverage, so the demo, the
# browser and VM tests and `cargo test` share one build and nothing is compiled
# twice. Prints the daemon's path last.
#   scripts/build.sh [extra cargo args]
#   SAFEYOLO_COVERAGE=0 scripts/build.sh     a plain build (benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/build-env.sh
source scripts/build-env.sh
cargo test --workspace --all-features --no-run "$@" >&2
echo "$SAFEYOLO_BIN"

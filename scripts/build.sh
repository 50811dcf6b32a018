#!/usr/bin/env bash
# Builds the workspace the one way CI does: the dev profile (dependencies
# optimised), every feature on (they are additive: ONNX Runtime and RKNN are
# opened at run time, fault injection stays idle unless its variable is set),
# tests included, so the demo, the benchmarks, the browser and VM tests and
# `cargo test` share one build and nothing is compiled twice. Prints the
# daemon's path last.
#   scripts/build.sh [extra cargo args]
# Env: CARGO_TARGET_DIR (default /var/cache/safe-yolo/target, as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/safe-yolo/target}"
cargo test --workspace --all-features --no-run "$@" >&2
echo "$CARGO_TARGET_DIR/debug/safe-yolo"

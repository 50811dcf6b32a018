#!/usr/bin/env bash
# The test command (README): installs what the tests need (packages, the test
# fixtures, the demo footage), then runs every test of the workspace against
# the one build CI makes (scripts/build.sh: dev profile, dependencies
# optimised, every feature on). With every feature on, the detector's golden
# tests run against the ONNX Runtime library of the PyPI wheel (never skipped:
# ORT_DYLIB_PATH is set here) and the RKNN backend's no-NPU tests run too.
#   scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/safe-yolo/target}"
scripts/install-deps.sh
scripts/fixtures.sh
# The end-to-end alarm test runs on the real demo footage.
scripts/demo-media.sh demo-media
ORT_DYLIB_PATH="$(scripts/ort-dylib.sh)"
export ORT_DYLIB_PATH
exec cargo test --workspace --all-features "$@"

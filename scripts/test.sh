#!/usr/bin/env bash
# The test command (README): installs what the tests need (packages, the test
# fixtures, the demo footage), then runs every test of the workspace against
# the one build CI makes (scripts/build-env.sh: dev profile, dependencies
# optimised, every feature on, the workspace's crates linted by clippy and
# instrumented for coverage), and prints the line coverage of each crate. Every
# target is built first (benches and examples too: the build is the lint
# pass). With every feature on, the detector's golden tests run against the ONNX
# Runtime library of the PyPI wheel (never skipped: ORT_DYLIB_PATH is set here)
# and the RKNN backend's no-NPU tests run too.
#   scripts/test.sh [cargo test args]
#   SAFEYOLO_COVERAGE=0 scripts/test.sh     without coverage
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fixtures.sh
# The end-to-end alarm test runs on the real demo footage.
scripts/demo-media.sh demo-media
# The RTSP tests serve it as an IP camera does: H.264 and H.265.
scripts/rtsp-media.sh demo-media
# shellcheck source=scripts/build-env.sh
source scripts/build-env.sh
ORT_DYLIB_PATH="$(scripts/ort-dylib.sh)"
export ORT_DYLIB_PATH
cargo test --workspace --all-features --all-targets --no-run
if [ -z "${SAFEYOLO_COVERAGE_REPORT:-}" ]; then
    exec cargo test --workspace --all-features "$@"
fi
# Profiles of earlier runs would count twice.
find "$CARGO_TARGET_DIR" -maxdepth 1 -name '*.profraw' -delete
cargo test --workspace --all-features "$@"
scripts/coverage-report.sh

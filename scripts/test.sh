#!/usr/bin/env bash
# The test command (README): installs what the tests need (packages, the
# demo footage), then runs every
# test of the workspace against one build (the dev profile, dependencies
# optimised), with the test-only fault injection compiled in.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The end-to-end alarm test runs on the real demo footage.
scripts/demo-media.sh demo-media
exec cargo test --workspace --features safe-yolo/fault-injection "$@"

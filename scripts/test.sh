#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every
# test of the workspace against one build (the dev profile, dependencies
# optimised), with the test-only fault injection compiled in.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo test --workspace --features safe-yolo/fault-injection "$@"

#!/usr/bin/env bash
# cargo deny (deny.toml): licences, bans (duplicate versions, wildcards) and
# sources of every crate linked into the appliance. The advisories check needs
# the RustSec database from GitHub, which this workplace cannot reach; it is
# not run here (README, "CI").
#   scripts/deny.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SAFEYOLO_CACHE="${SAFEYOLO_CACHE:-/var/cache/safe-yolo}"
DENY_VERSION=0.20.2
deny="$SAFEYOLO_CACHE/tools/bin/cargo-deny"
if ! "$deny" --version 2>/dev/null | grep -q " $DENY_VERSION\$"; then
    echo "deny: cargo install cargo-deny $DENY_VERSION into $SAFEYOLO_CACHE/tools" >&2
    # In a target directory of its own (not CARGO_TARGET_DIR: CI's test build
    # holds that one's lock while this runs beside it).
    env -u CARGO_TARGET_DIR cargo install -q --locked cargo-deny --version "$DENY_VERSION" --root "$SAFEYOLO_CACHE/tools"
fi
# cargo deny reads the whole graph, every target's crates included (Windows,
# Android), which a build on this machine never downloads: fetch them first, then
# check offline (the advisory database is not fetched either).
cargo fetch --locked -q
exec "$deny" --offline check bans licenses sources

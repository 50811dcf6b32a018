#!/usr/bin/env bash
# Attack bench (#19): hostile clients on loopback against the 5-camera demo
# with intrusion rules that fire all the time. Each attack runs for a bounded
# window; for each one the table gives the daemon's RSS peak (daemon and its
# detector children), open file descriptors and threads, the detection rate
# against a quiet window run just before the attack, the glass-to-output
# latency of the alarms raised during the attack and whether each reached the
# output lines, and how long a legitimate admin login took.
#
#   scripts/bench-attack.sh [WINDOW_SECONDS]      default 20 (about 6 min in all)
#
# The attack clients run on the same 2 cores at nice 19 (ATTACK_NICE): on a
# plant network they would be other hosts and cost the box only the serving.
#
# Uses the plain build if there is one ($CARGO_TARGET_DIR-plain, see
# scripts/bench-glass-to-output.sh), else the CI build (coverage counters,
# written to /dev/null). Python 3 standard library only; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
window="${1:-20}"
base="${CARGO_TARGET_DIR:-/var/cache/safe-yolo/target}"
bin="$base-plain/debug/safe-yolo"
[ -x "$bin" ] || bin="$base/debug/safe-yolo"
[ -x "$bin" ] || { echo "no daemon build at $base(-plain)/debug/safe-yolo" >&2; exit 2; }
export LLVM_PROFILE_FILE=/dev/null
[ -f demo-media/vtest.mjpeg ] || scripts/demo-media.sh demo-media
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(scripts/ort-dylib.sh 2>/dev/null || true)"
    export ORT_DYLIB_PATH
fi
exec timeout 600 python3 scripts/attack.py "$bin" "$(pwd)" "$window"

#!/usr/bin/env bash
# Authenticated API reads under load while the 5-camera demo streams: does the
# detector keep its rate? Runs the real daemon (the build in
# $CARGO_TARGET_DIR) on config/demo.toml with a temporary state directory,
# creates the first admin and a viewer (the viewer scrapes /metrics, so the
# load's rate limit does not touch the measurement), measures the detect rate
# idle, then under `wrk` on GET /api/v1/events, same run.
#
#   scripts/bench-api-load.sh [BACKEND] [RATE_LIMIT_PER_S] [SECONDS]
#   defaults: auto 50 30
#
# wrk runs on the same 2 cores as the daemon. On a plant network the load
# comes from another host and costs the box only the serving; WRK_NICE=19
# stands in for that (wrk then gets only the CPU the daemon leaves); the
# default 0 makes wrk compete with inference as an equal (pessimistic).
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-auto}"
limit="${2:-50}"
secs="${3:-30}"
# A plain build (no coverage counters): SAFEYOLO_COVERAGE=0 scripts/build.sh
target="${CARGO_TARGET_DIR:-/var/cache/safe-yolo/target}-plain"
bin="$target/debug/safe-yolo"
[ -x "$bin" ] || { echo "no daemon at $bin: run SAFEYOLO_COVERAGE=0 scripts/build.sh first" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
[ -f demo-media/vtest.mjpeg ] || scripts/demo-media.sh demo-media
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(scripts/ort-dylib.sh 2>/dev/null || true)"
    export ORT_DYLIB_PATH
fi
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
repo="$(pwd)"
sed -e "s#model = \"../models/#model = \"$repo/models/#" \
    -e "s#state_dir = \"../state/demo\"#state_dir = \"$work/state\"#" \
    -e "s#media_dir = \"../demo-media\"#media_dir = \"$repo/demo-media\"#" \
    -e "s#sim_log = \"../state/demo/outputs.jsonl\"#sim_log = \"$work/state/outputs.jsonl\"#" \
    -e "s#bind = \"127.0.0.1:8443\"#bind = \"127.0.0.1:$port\"\nrate_limit_per_s = $limit\nrate_limit_burst = $((limit * 2))#" \
    -e "0,/backend = \"auto\"/s//backend = \"$backend\"/" \
    config/demo.toml > "$work/bench.toml"
mkdir -p "$work/state"
"$bin" --log-format text --log info run --config "$work/bench.toml" 2>"$work/daemon.log" &
pid=$!
base="https://127.0.0.1:$port"
for _ in $(seq 120); do
    grep -q "safe-yolo ready" "$work/daemon.log" && break
    sleep 1
done
grep -q "safe-yolo ready" "$work/daemon.log" || { tail -30 "$work/daemon.log" >&2; exit 1; }
token="$(grep -o 'setup_token=[^ ]*' "$work/daemon.log" | head -1 | cut -d= -f2 | tr -d '"')"
pw="load test password 1234"
j() { curl -sk --max-time 10 -H 'content-type: application/json' "$@"; }
j "$base/api/v1/setup" -d "{\"username\":\"admin\",\"password\":\"$pw\",\"setup_token\":\"$token\"}" >/dev/null
admin="$(j "$base/api/v1/auth/login" -d "{\"username\":\"admin\",\"password\":\"$pw\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
j "$base/api/v1/users" -H "authorization: Bearer $admin" -d "{\"username\":\"scraper\",\"password\":\"$pw\",\"role\":\"viewer\"}" >/dev/null
viewer="$(j "$base/api/v1/auth/login" -d "{\"username\":\"scraper\",\"password\":\"$pw\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
detected() {
    curl -sk --max-time 10 -H "authorization: Bearer $viewer" "$base/metrics" |
        awk '/^safeyolo_frames_detected_total\{/ {s += $2} END {print s + 0}'
}
sleep 10 # warm-up: every camera streaming, models warm
d0="$(detected)"; t0="$(date +%s.%N)"
sleep "$secs"
d1="$(detected)"; t1="$(date +%s.%N)"
nice -n "${WRK_NICE:-0}" wrk -t2 -c16 -d"${secs}s" --latency -H "authorization: Bearer $admin" "$base/api/v1/events?limit=50" >"$work/wrk.txt" &
wpid=$!
sleep 1
d2="$(detected)"; t2="$(date +%s.%N)"
wait "$wpid"
d3="$(detected)"; t3="$(date +%s.%N)"
python3 - "$d0" "$t0" "$d1" "$t1" "$d2" "$t2" "$d3" "$t3" "$work/wrk.txt" "$backend" "$limit" <<'PY'
import re, sys
d0, t0, d1, t1, d2, t2, d3, t3 = map(float, sys.argv[1:9])
wrk = open(sys.argv[9]).read()
backend, limit = sys.argv[10], sys.argv[11]
idle = (d1 - d0) / (t1 - t0)
loaded = (d3 - d2) / (t3 - t2)
rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
total = re.search(r"(\d+) requests in", wrk)
p50 = re.search(r"50%\s+([\d.]+\w+)", wrk)
p99 = re.search(r"99%\s+([\d.]+\w+)", wrk)
import os
print(f"backend={backend} rate_limit_per_s={limit} wrk nice={os.environ.get('WRK_NICE', '0')}")
print(f"API: {rps.group(1) if rps else '?'} req/s, p50 {p50.group(1) if p50 else '?'}, p99 {p99.group(1) if p99 else '?'}, "
      f"{non2xx.group(1) if non2xx else 0} of {total.group(1) if total else '?'} answered non-2xx (429 = rate limited)")
drop = (idle - loaded) / idle * 100 if idle else float("nan")
print(f"detect/s idle {idle:.1f}, under load {loaded:.1f}: drop {drop:.1f}% (target < 10%: {'met' if drop < 10 else 'NOT met'})")
PY

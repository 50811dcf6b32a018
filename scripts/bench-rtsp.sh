#!/usr/bin/env bash
# RTSP cameras against the MJPEG replay path, in one run (BENCHMARKS.md, "RTSP
# cameras"): the demo's five cameras (768x576, 10 fps) as replayed JPEG frames, as
# RTSP H.264 and as RTSP H.265 from tests/rtsp/rtsp-server.py (no re-encoding),
# each through `safe-yolo bench` (the real pipeline and detector), interleaved
# ROUNDS times; medians.
#   capture  detect_every = 100: what capture and decoding cost per frame
#   demo     detect_every = 2 (the demo's): detections/s, glass-to-detection
#            (capture time -> detections out: the RTP-mapped frame time for RTSP)
# Uses $CARGO_TARGET_DIR/debug/safe-yolo (scripts/build-env.sh's build).
#   scripts/bench-rtsp.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
seconds=${2:-30}
: "${CARGO_TARGET_DIR:=/var/cache/safe-yolo/target}"
bin="$CARGO_TARGET_DIR/debug/safe-yolo"
[ -x "$bin" ] || { echo "bench-rtsp: build the daemon first (cargo build --workspace --all-features)" >&2; exit 1; }
scripts/rtsp-media.sh demo-media >/dev/null
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 tests/rtsp/rtsp-server.py --port "$port" --media demo-media >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q ready "$work/server.log" 2>/dev/null && break; sleep 0.2; done

make_config() { # name source-template detect_every
    python3 - "$1" "$2" "$3" "$port" "$work" <<'PY'
import re, sys, pathlib
name, kind, every, port, work = sys.argv[1:]
text = pathlib.Path("config/demo.toml").read_text()
text = text.replace('"../', '"' + str(pathlib.Path.cwd()) + '/')
text = re.sub(r'state_dir = "[^"]*"', f'state_dir = "{work}/state-{name}"', text)
def src(m):
    if kind == "mjpeg":
        # The folder of the same frames: an MJPEG file is indexed at open, which
        # takes the unoptimised build many seconds; a folder needs no index.
        return m.group(0).replace('"vtest.mjpeg"', '"vtest-frames"')
    return f'source = {{ kind = "rtsp", url = "rtsp://127.0.0.1:{port}/{kind}" }}'
text = re.sub(r'source = \{ kind = "replay"[^}]*\}', src, text)
text = re.sub(r'detect_every = \d+', f'detect_every = {every}', text)
out = pathlib.Path(work) / f"{name}.toml"
out.write_text(text)
print(out)
PY
}
results="$work/results.jsonl"
for round in $(seq "$rounds"); do
    for mode in capture demo; do
        every=$([ "$mode" = capture ] && echo 100 || echo 2)
        for kind in mjpeg h264 h265; do
            cfg=$(make_config "$mode-$kind" "$kind" "$every")
            echo "bench-rtsp: round $round $mode $kind" >&2
            "$bin" bench --config "$cfg" --seconds "$seconds" --warmup 8 --json --no-viewers \
                --bare-seconds 0 --log-format json 2>"$work/bench.log" \
                | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"mode":sys.argv[1],"kind":sys.argv[2],"d":d}))' "$mode" "$kind" >>"$results" \
                || { tail -20 "$work/bench.log" >&2; exit 1; }
        done
    done
done
python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    d = r["d"]
    print(r["mode"], r["kind"], "capture_fps", round(d["total"]["capture_fps"], 1), "cpu_s", round(d["cpu_s"]["daemon"], 2), file=sys.stderr)
def med(xs): return statistics.median(xs) if xs else float("nan")
out = {}
for mode in ["capture", "demo"]:
    for kind in ["mjpeg", "h264", "h265"]:
        rs = [r["d"] for r in rows if r["mode"] == mode and r["kind"] == kind]
        if not rs: continue
        cap = [d["total"]["capture_fps"] for d in rs]
        cpu_ms_per_frame = [1000 * d["cpu_s"]["daemon"] / (d["total"]["capture_fps"] * d["window_s"]) for d in rs if d["total"]["capture_fps"] > 0]
        out[f"{mode}/{kind}"] = {
            "capture_fps": med(cap),
            "detect_fps": med([d["total"]["detect_fps"] for d in rs]),
            "daemon_cpu_pct": med([100 * d["cpu_s"]["daemon"] / d["window_s"] for d in rs]),
            "cpu_ms_per_captured_frame": med(cpu_ms_per_frame),
            "glass_to_detection_p50_ms": med([d["total"]["latency_p50_ms"] for d in rs]),
            "glass_to_detection_p99_ms": med([d["total"]["latency_p99_ms"] for d in rs]),
            "dropped": med([d["total"]["dropped_total"] for d in rs]),
            "rss_mib": med([d["rss_bytes"]["end"] / 2**20 for d in rs]),
        }
for mode in ["capture", "demo"]:
    base = out.get(f"{mode}/mjpeg", {}).get("cpu_ms_per_captured_frame")
    for kind in ["h264", "h265"]:
        r = out.get(f"{mode}/{kind}")
        if r and base:
            r["cpu_per_frame_ratio_of_mjpeg"] = r["cpu_ms_per_captured_frame"] / base
print(json.dumps(out, indent=2))
PY

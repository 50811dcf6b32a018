#!/usr/bin/env bash
# Encodes the demo footage for the RTSP tests and benchmarks: what an IP camera
# sends, made once and served without re-encoding by tests/rtsp/rtsp-server.py.
#
# Input: demo-media/vtest-frames (scripts/demo-media.sh; 768x576, 795 frames, 10 fps).
# Output (in OUT_DIR, default <repo root>/demo-media, git-ignored):
#   vtest.h264.mkv   H.264 High (libx264 veryfast, CRF 26), GOP 20 (2 s), no B-frames
#   vtest.h265.mkv   H.265 Main (libx265 ultrafast, CRF 28), GOP 20, no B-frames
# Each is the 79.5 s footage looped to 10 minutes (encoded once, then copied).
# Idempotent. Needs ffmpeg (scripts/install-deps.sh).
#
# Usage: scripts/rtsp-media.sh [OUT_DIR]
set -euo pipefail
readonly VERSION=1
readonly LOOPS=7 # 1 + 7 repeats: 636 s

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo_root/demo-media}"
stamp="$out/.rtsp-media-v$VERSION"
if [[ -f "$stamp" && -s "$out/vtest.h264.mkv" && -s "$out/vtest.h265.mkv" ]]; then
    echo "rtsp-media: up to date in $out" >&2
    exit 0
fi
[[ -d "$out/vtest-frames" ]] || "$repo_root/scripts/demo-media.sh" "$out"
work="$(mktemp -d "$out/.rtsp-work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
enc() { # codec-args... -> $work/once.mkv
    ffmpeg -hide_banner -loglevel error -y -framerate 10 -i "$out/vtest-frames/%04d.jpg" \
        -an -pix_fmt yuv420p "$@" "$work/once.mkv"
}
enc -c:v libx264 -preset veryfast -crf 26 -g 20 -bf 0
ffmpeg -hide_banner -loglevel error -y -stream_loop "$LOOPS" -i "$work/once.mkv" -c copy "$work/h264.mkv"
enc -c:v libx265 -preset ultrafast -crf 28 -x265-params "keyint=20:min-keyint=20:bframes=0:log-level=error"
ffmpeg -hide_banner -loglevel error -y -stream_loop "$LOOPS" -i "$work/once.mkv" -c copy "$work/h265.mkv"
mv "$work/h264.mkv" "$out/vtest.h264.mkv"
mv "$work/h265.mkv" "$out/vtest.h265.mkv"
rm -f "$out"/.rtsp-media-v*
touch "$stamp"
echo "rtsp-media: wrote $out/vtest.h264.mkv and vtest.h265.mkv" >&2

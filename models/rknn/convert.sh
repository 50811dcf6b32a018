#!/usr/bin/env bash
# Converts models/nanodet-m-416-coco (fp32 ONNX) into an int8 .rknn for a Rockchip NPU
# with rknn-toolkit2 from PyPI, and optionally checks it in the toolkit's x86 simulator
# against onnxruntime fp32 on real images (person recall, box IoU, score drift).
#
# Usage: models/rknn/convert.sh [--check] [--platform rk3588|rk3568|rk3566|rk3576|rk3562]
#            [--preprocess cpu|embed] [--out DIR] [--model NAME] [more options of convert.py]
#
#   default        writes models/<model>/model-<platform>-int8.rknn and
#                  model-<platform>-int8.rknn.provenance.toml (toolkit and library
#                  versions, config, calibration images with sha256, output sha256)
#   --check        also runs the simulator check; exits 1 when a gate fails.
#                  Gated by SAFEYOLO_RKNN=1: without it, --check prints a notice and
#                  exits 0, so CI can call it unconditionally (~3 GB venv, see README).
#
# Environment:
#   SAFEYOLO_RKNN_VENV     virtualenv (default /var/cache/safe-yolo/rknn-venv); created
#                          and filled from models/rknn/requirements.txt when missing or stale
#   SAFEYOLO_RKNN_PYTHON   CPython 3.8-3.12 to build it with (default: python3.11 found on PATH
#                          or under pyenv)
#   SAFEYOLO_FIXTURES      shared fixtures (default <repo>/../shared/fixtures)
#   SAFEYOLO_RKNN_WORK     scratch directory (default <repo>/target/rknn): calibration
#                          tensors, check report check-<platform>.json
#   SAFEYOLO_DEMO_MEDIA    vtest frames (default <repo>/demo-media, made by scripts/demo-media.sh
#                          when missing)
set -euo pipefail

readonly TOOLKIT_VERSION=2.3.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${SAFEYOLO_RKNN_VENV:-/var/cache/safe-yolo/rknn-venv}"
fixtures="${SAFEYOLO_FIXTURES:-$repo/../shared/fixtures}"
work="${SAFEYOLO_RKNN_WORK:-$repo/target/rknn}"
media="${SAFEYOLO_DEMO_MEDIA:-$repo/demo-media}"

log() { printf 'rknn: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check=0
for a in "$@"; do [[ "$a" == "--check" ]] && check=1; done
if (( check )) && [[ "${SAFEYOLO_RKNN:-0}" != 1 ]]; then
    log "--check skipped: set SAFEYOLO_RKNN=1 to install rknn-toolkit2 (~3 GB) and run it"
    exit 0
fi

find_python() {
    if [[ -n "${SAFEYOLO_RKNN_PYTHON:-}" ]]; then echo "$SAFEYOLO_RKNN_PYTHON"; return; fi
    local p
    for p in python3.11 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python3 python3; do
        if command -v "$p" >/dev/null 2>&1 \
            && "$p" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
            command -v "$p"; return
        fi
    done
    die "no CPython 3.8-3.12 found (rknn-toolkit2 $TOOLKIT_VERSION has no wheel for others); set SAFEYOLO_RKNN_PYTHON"
}

# (Re)builds the venv when the lock file or toolkit version changed.
ensure_venv() {
    local stamp="$venv/.safe-yolo-rknn" want
    want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1) rknn-toolkit2==$TOOLKIT_VERSION"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return
    fi
    local py t0=$SECONDS
    py="$(find_python)"
    log "creating $venv with $py ($("$py" --version 2>&1))"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "rknn-toolkit2==$TOOLKIT_VERSION"
    echo "$want" >"$stamp"
    log "venv ready in $((SECONDS - t0)) s"
}

[[ -d "$fixtures/media" ]] || die "fixtures not found at $fixtures (set SAFEYOLO_FIXTURES)"
if [[ "$(find "$media/vtest-frames" -name '*.jpg' 2>/dev/null | wc -l)" -lt 795 ]]; then
    log "vtest frames missing in $media: running scripts/demo-media.sh"
    "$repo/scripts/demo-media.sh" "$media"
fi

ensure_venv
mkdir -p "$work"
t0=$SECONDS
"$venv/bin/python" "$here/convert.py" --repo-root "$repo" --work "$work" \
    --frames "$media/vtest-frames" --fixtures "$fixtures" "$@"
log "done in $((SECONDS - t0)) s"

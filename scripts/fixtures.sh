#!/usr/bin/env bash
# Puts the test fixtures (photos and test-only models, listed with their
# SHA-256 in tests/fixtures/SHA256SUMS) into tests/fixtures/, where the tests
# look for them (appliance/fixtures; SAFEYOLO_FIXTURES points elsewhere).
# Idempotent: a file already there with the right checksum is kept.
#
# Each file comes from the first of these that has it with the right checksum:
#   1. $SAFEYOLO_FIXTURES_FROM, a folder with the same layout (a cache);
#   2. ../shared/fixtures beside the clone (the workplace's shared folder);
#   3. the registry package it was made from (tests/fixtures/README.md):
#        media/bus.jpg, media/zidane.jpg          PyPI ultralytics wheel, assets/
#        media/astronaut.png, media/camera.png    PyPI scikit-image wheel, skimage/data/
#        media/person-horse-dog.jpg, horses.jpg   Debian darknet, /usr/share/darknet/data/
#        models/nanodet-m-416-coco*.onnx          this repository's models/ (same files)
#      models/helmet-yolov12m-640.onnx has no registry route (tests/fixtures/README.md):
#      it comes from (1) or (2) only; the GitHub workflow checks the shared
#      repository out inside its workspace and names it in SAFEYOLO_FIXTURES_FROM.
# A file whose checksum does not match is never used; the script fails naming it.
#
# Usage: scripts/fixtures.sh [--no-registries]
#   --no-registries   only copy (1) and (2); fail naming what is missing
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest="$repo/tests/fixtures"
sums="$dest/SHA256SUMS"
cache=${SAFEYOLO_CACHE:-/var/cache/safe-yolo}/fixtures
registries=1
[ "${1:-}" = "--no-registries" ] && registries=0

# Pinned packages (their files' checksums are in SHA256SUMS).
ULTRALYTICS=8.4.190
SCIKIT_IMAGE=0.26.0

log() { echo "fixtures: $*"; }
die() { echo "fixtures: $*" >&2; exit 1; }

want() { awk -v f="$1" '$2 == f { print $1 }' "$sums"; }
ok() { [ -f "$2" ] && [ "$(sha256sum "$2" | cut -d' ' -f1)" = "$(want "$1")" ]; }

# install_checked <rel> <candidate>: copies the candidate in when its checksum matches.
install_checked() {
    local rel=$1 src=$2
    ok "$rel" "$src" || return 1
    mkdir -p "$(dirname "$dest/$rel")"
    cp "$src" "$dest/$rel.tmp" && mv "$dest/$rel.tmp" "$dest/$rel"
}

pip_wheel() { # <package==version> <platform args...>: downloads one wheel into the cache
    mkdir -p "$cache/wheels"
    python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
        -d "$cache/wheels" "$@" >/dev/null
}

from_registry() { # <rel>: rebuilds one file from the package it came from
    local rel=$1 tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    case "$rel" in
    media/bus.jpg | media/zidane.jpg)
        pip_wheel "ultralytics==$ULTRALYTICS"
        unzip -q -o "$cache/wheels/ultralytics-$ULTRALYTICS-py3-none-any.whl" \
            "ultralytics/assets/$(basename "$rel")" -d "$tmp"
        install_checked "$rel" "$tmp/ultralytics/assets/$(basename "$rel")"
        ;;
    media/astronaut.png | media/camera.png)
        pip_wheel "scikit-image==$SCIKIT_IMAGE" --python-version 3.11 \
            --platform manylinux_2_28_x86_64 --implementation cp --abi cp311
        unzip -q -o "$cache"/wheels/scikit_image-"$SCIKIT_IMAGE"-cp311-*.whl \
            "skimage/data/$(basename "$rel")" -d "$tmp"
        install_checked "$rel" "$tmp/skimage/data/$(basename "$rel")"
        ;;
    media/person-horse-dog.jpg | media/horses.jpg)
        (cd "$tmp" && apt-get download darknet >/dev/null 2>&1) ||
            die "apt-get download darknet failed (Debian's darknet package carries $rel)"
        dpkg -x "$tmp"/darknet_*.deb "$tmp/x"
        local name
        name=$(basename "$rel")
        [ "$name" = person-horse-dog.jpg ] && name=person.jpg
        install_checked "$rel" "$tmp/x/usr/share/darknet/data/$name"
        ;;
    models/nanodet-m-416-coco.onnx)
        install_checked "$rel" "$repo/models/nanodet-m-416-coco/model-fp32.onnx"
        ;;
    models/nanodet-m-416-coco-int8-qdq-conv.onnx)
        install_checked "$rel" "$repo/models/nanodet-m-416-coco/model-int8.onnx"
        ;;
    *) return 1 ;;
    esac
}

[ -f "$sums" ] || die "no list of fixtures at $sums"
missing=()
while read -r _ rel; do
    [ -n "$rel" ] || continue
    ok "$rel" "$dest/$rel" && continue
    for from in "${SAFEYOLO_FIXTURES_FROM:-}" "$repo/../shared/fixtures"; do
        [ -n "$from" ] && install_checked "$rel" "$from/$rel" && break
    done
    ok "$rel" "$dest/$rel" && continue
    if [ "$registries" = 1 ]; then
        log "$rel: rebuilding from its registry package"
        from_registry "$rel" || true
    fi
    ok "$rel" "$dest/$rel" || missing+=("$rel")
done <"$sums"

if [ "${#missing[@]}" -gt 0 ]; then
    die "missing or with the wrong checksum: ${missing[*]} (see tests/fixtures/README.md)"
fi
log "ok: $(wc -l <"$sums") files in $dest"

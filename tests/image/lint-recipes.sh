#!/usr/bin/env bash
# Lints every recipe, bbappend and configuration file of meta-safe-yolo with
# oelint-adv (release wrynose). The check is clean: any finding fails it.
#
# Rules switched off, and why:
#   oelint.vars.homepageping      fetches HOMEPAGE over the network (CI is offline)
#   oelint.var.bbclassextend      info only: these are target-only appliance recipes;
#                                 native/nativesdk variants would make no sense
# And for the generated safe-yolo-crates.inc only (its layout is the one
# oe-core's cargo-update-recipe-crates class writes): oelint.vars.inconspaces,
# oelint.vars.notneededspace.
# Machine/distro overrides and RAUC variables of other layers are declared in
# yocto/oelint-constants.json.
#
# Usage: tests/image/lint-recipes.sh [LAYER_DIR]   (default yocto/meta-safe-yolo)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
layer=$(cd "${1:-$repo/yocto/meta-safe-yolo}" && pwd)
constants="$repo/yocto/oelint-constants.json"

command -v oelint-adv >/dev/null || { echo "lint-recipes: oelint-adv is missing (pip install oelint-adv)" >&2; exit 2; }
mapfile -t files < <(cd "$layer" && find . \( -name '*.bb' -o -name '*.bbappend' \) | sort)
files+=(./conf/layer.conf)
[ -d "$layer/conf/distro" ] && mapfile -t -O "${#files[@]}" files < <(cd "$layer" && find ./conf/distro -name '*.conf' | sort)

# (--constantmods takes several values: keep another option after it.)
out=$(cd "$layer" && oelint-adv --constantmods "+$constants" --release wrynose --quiet --jobs 1 \
    --suppress oelint.vars.homepageping \
    --suppress oelint.var.bbclassextend \
    "${files[@]}" 2>&1 || true)
findings=$(printf '%s\n' "$out" | grep -v -E -e '-crates\.inc:[0-9]+:[a-z]+:oelint\.vars\.(inconspaces|notneededspace):' | grep -v '^$' || true)
if [ -n "$findings" ]; then
    printf '%s\n' "$findings" | sed "s|$layer/||" >&2
    echo "lint-recipes: FAIL: $(printf '%s\n' "$findings" | wc -l) finding(s) in ${#files[@]} files" >&2
    exit 1
fi
# Test-only cargo features never reach an image (ARCHITECTURE, "Fault injection is test-only").
if grep -rnw -e 'fault-injection' -e 'fuzzing' "$layer" >&2; then
    echo "lint-recipes: FAIL: the layer names a test-only feature (fault-injection, fuzzing)" >&2
    exit 1
fi
echo "lint-recipes: ok   oelint-adv clean on ${#files[@]} files (wrynose); no test-only feature"

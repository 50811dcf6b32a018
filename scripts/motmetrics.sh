#!/usr/bin/env bash
# Prints the path of a Python interpreter that has py-motmetrics (PyPI
# `motmetrics`, MIT), the reference scorer `appliance/rules/tests/mot_reference.rs`
# checks the Rust tracking metrics against. The first call makes a venv under
# $SAFEYOLO_CACHE (default /var/cache/safe-yolo) with pinned versions
# (needs PyPI); later calls reuse it. scripts/install-deps.sh calls it, so
# CI has it before the tests run.
set -euo pipefail

readonly PINS=(motmetrics==1.4.0 numpy==2.4.6 scipy==1.17.1 pandas==3.1.1 xmltodict==1.0.4)
cache="${SAFEYOLO_CACHE:-/var/cache/safe-yolo}"
venv="$cache/motmetrics-venv"
stamp="$venv/.pins"

if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "${PINS[*]}" ]]; then
    echo "motmetrics: making $venv (${PINS[*]})" >&2
    mkdir -p "$cache"
    python3 -m venv --clear "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}" >&2
    printf '%s\n' "${PINS[*]}" >"$stamp"
fi
"$venv/bin/python" -c "import motmetrics" >&2 || {
    echo "motmetrics: $venv has no working motmetrics; delete it and run again" >&2
    exit 1
}
echo "$venv/bin/python"

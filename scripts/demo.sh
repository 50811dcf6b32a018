#!/usr/bin/env bash
# Runs the appliance on the demo configuration: five replay cameras of real
# CCTV footage, the real detector on the CPU, simulated sirens and relays.
# Installs what it needs, converts the footage once, then runs until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/demo-media.sh demo-media
# "auto" takes ONNX Runtime when its library is present (here: the PyPI
# wheel installed by install-deps.sh), else tract.
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH="$(scripts/ort-dylib.sh 2>/dev/null || true)"
    export ORT_DYLIB_PATH
fi
bin="$(scripts/build.sh)"
# The one build is instrumented for coverage; the demo keeps no profile.
LLVM_PROFILE_FILE=/dev/null exec "$bin" run --config config/demo.toml "$@"

#!/usr/bin/env bash
# Prints the path of the ONNX Runtime library of the PyPI `onnxruntime` wheel
# (installed by scripts/install-deps.sh), for ORT_DYLIB_PATH; fails when the
# wheel or its library is missing.
set -euo pipefail
python3 -c 'import glob, onnxruntime, os; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[-1])'

# Sourced by the build and test scripts: the one build's environment.
#
# CI compiles the workspace once: this build (dev profile, dependencies
# optimised, every feature on, tests and benches included), which is also the
# lint pass. (The fuzz targets' build, scripts/fuzz-smoke.sh, is outside CI.)
# The workspace's own crates go through scripts/rustc-workspace-wrapper.sh:
# clippy-driver lints them as it compiles them (CLIPPY_ARGS; `-D warnings` with
# SAFEYOLO_STRICT=1, as .ci/run sets it), and they are instrumented for line
# coverage; the dependencies (tract, ONNX Runtime among them) are built by rustc
# as usual and run at full speed. The report (scripts/coverage-report.sh) uses
# Debian's llvm-19 tools, which read what rustc's newer LLVM writes.
# SAFEYOLO_COVERAGE=0 gives a plain build (benchmarks: no lints, no
# instrumentation), in its own target directory so the two never mix.
#
# Exports CARGO_TARGET_DIR, SAFEYOLO_BIN (the daemon this build makes) and, with
# coverage, RUSTC_WORKSPACE_WRAPPER, CLIPPY_ARGS, LLVM_PROFILE_FILE, LLVM_COV and
# LLVM_PROFDATA.
# shellcheck shell=bash
SAFEYOLO_CACHE="${SAFEYOLO_CACHE:-/var/cache/safe-yolo}"
if [ "${SAFEYOLO_COVERAGE:-1}" = 0 ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SAFEYOLO_CACHE/target}-plain"
    unset RUSTC_WORKSPACE_WRAPPER SAFEYOLO_COVERAGE_REPORT
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SAFEYOLO_CACHE/target}"
    if [ ! -x /usr/lib/llvm-19/bin/llvm-profdata ]; then
        echo "build-env: apt-get install llvm-19 (llvm-cov, llvm-profdata)" >&2
        sudo_=""
        [ "$(id -u)" -eq 0 ] || sudo_="sudo"
        $sudo_ apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends llvm-19 >/dev/null
    fi
    if ! "${SAFEYOLO_CLIPPY_DRIVER:-clippy-driver}" --version >/dev/null 2>&1; then
        echo "build-env: clippy-driver does not run (rustup component add clippy): the build lints with it" >&2
        return 1
    fi
    export RUSTC_WORKSPACE_WRAPPER
    RUSTC_WORKSPACE_WRAPPER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/rustc-workspace-wrapper.sh"
    # clippy-driver's lint flags, in cargo clippy's encoding.
    if [ "${SAFEYOLO_STRICT:-0}" = 1 ]; then
        export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
    else
        unset CLIPPY_ARGS
    fi
    # Each instrumented process writes its profile here when it ends.
    export LLVM_PROFILE_FILE="$CARGO_TARGET_DIR/safe-yolo-%p-%2m.profraw"
    export LLVM_COV=/usr/lib/llvm-19/bin/llvm-cov
    export LLVM_PROFDATA=/usr/lib/llvm-19/bin/llvm-profdata
    export SAFEYOLO_COVERAGE_REPORT=1
fi
export SAFEYOLO_BIN="$CARGO_TARGET_DIR/debug/safe-yolo"

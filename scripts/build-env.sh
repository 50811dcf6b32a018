# Sourced by the build and test scripts: the one build's environment.
#
# CI compiles the workspace once per profile: clippy (check) and this build (dev
# profile, dependencies optimised, every feature on, tests included). This build is
# instrumented for line coverage by cargo-llvm-cov's rustc wrapper, which
# instruments only this workspace's crates (the dependencies, tract and ONNX Runtime
# among them, are built as usual and run at full speed); the report uses Debian's
# llvm-19 tools, which read what rustc's newer LLVM writes. SAFEYOLO_COVERAGE=0 gives
# a plain build (benchmarks), in its own target directory so the two never mix.
#
# Exports CARGO_TARGET_DIR, SAFEYOLO_BIN (the daemon this build makes) and, with
# coverage, cargo-llvm-cov's environment (RUSTC_WRAPPER, LLVM_PROFILE_FILE, ...).
# shellcheck shell=bash
SAFEYOLO_CACHE="${SAFEYOLO_CACHE:-/var/cache/safe-yolo}"
LLVM_COV_VERSION=0.9.1
if [ "${SAFEYOLO_COVERAGE:-1}" = 0 ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SAFEYOLO_CACHE/target}-plain"
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SAFEYOLO_CACHE/target}"
    cov="$SAFEYOLO_CACHE/tools/bin/cargo-llvm-cov"
    if ! "$cov" llvm-cov --version 2>/dev/null | grep -q " $LLVM_COV_VERSION"; then
        echo "build-env: cargo install cargo-llvm-cov $LLVM_COV_VERSION into $SAFEYOLO_CACHE/tools" >&2
        cargo install -q --locked cargo-llvm-cov --version "$LLVM_COV_VERSION" \
            --root "$SAFEYOLO_CACHE/tools" >&2
    fi
    if [ ! -x /usr/lib/llvm-19/bin/llvm-profdata ]; then
        echo "build-env: apt-get install llvm-19 (llvm-cov, llvm-profdata)" >&2
        sudo_=""
        [ "$(id -u)" -eq 0 ] || sudo_="sudo"
        $sudo_ apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends llvm-19 >/dev/null
    fi
    # Sourced twice (test.sh, then coverage-report.sh from it): cargo-llvm-cov must
    # not run under its own wrapper's environment, or its `rustc --print cfg` fails.
    unset RUSTC_WRAPPER CARGO_LLVM_COV CARGO_LLVM_COV_SHOW_ENV CARGO_LLVM_COV_TARGET_DIR \
        CARGO_LLVM_COV_BUILD_DIR
    for v in $(compgen -e | grep '^__CARGO_LLVM_COV' || true); do unset "$v"; done
    export LLVM_COV=/usr/lib/llvm-19/bin/llvm-cov
    export LLVM_PROFDATA=/usr/lib/llvm-19/bin/llvm-profdata
    eval "$("$cov" llvm-cov show-env --sh 2>/dev/null)"
    export SAFEYOLO_COVERAGE_CMD="$cov llvm-cov"
fi
export SAFEYOLO_BIN="$CARGO_TARGET_DIR/debug/safe-yolo"

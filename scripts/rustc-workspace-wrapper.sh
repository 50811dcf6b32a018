#!/usr/bin/env bash
# RUSTC_WORKSPACE_WRAPPER of the one build (scripts/build-env.sh). Cargo runs
# it as `wrapper RUSTC ARGS...` for this workspace's own crates only; the
# dependencies (tract, ONNX Runtime's bindings, GStreamer's, ...) are compiled
# by rustc itself, uninstrumented, and run at full speed.
#
# The workspace's crates are compiled
#  - by clippy-driver (rustc with clippy's lints registered, codegen as usual):
#    the test build is the lint pass, and CI needs no `cargo clippy` check build
#    of every dependency besides it. CLIPPY_ARGS carries the lint flags
#    (`-D warnings` under SAFEYOLO_STRICT=1, set by .ci/run); clippy-driver
#    tracks it, so a change of the flags recompiles the crates it lints;
#  - instrumented for line coverage (-C instrument-coverage, cfg(coverage)).
# The plain build of the benchmarks (SAFEYOLO_COVERAGE=0) does not use it.
# bash, not sh: dash drops the variables whose names are not identifiers from
# the environment it passes on, and cargo names binaries' paths so
# (CARGO_BIN_EXE_store-crash-writer).
rustc=$1
shift
case " $* " in
    *" --crate-name "*) set -- "$@" -Cinstrument-coverage --cfg=coverage ;;
esac
exec "${SAFEYOLO_CLIPPY_DRIVER:-clippy-driver}" "$rustc" "$@"

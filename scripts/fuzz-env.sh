# Sourced by scripts/fuzz-smoke.sh and scripts/fuzz-campaign.sh: cargo-fuzz (installed
# once into the tools cache), the fuzz build's own target directory, the targets and
# their dictionaries, and one run of a target with its figures.
#
# The fuzz crate (fuzz/) is a workspace of its own, built with libFuzzer and
# AddressSanitizer on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass
# the sanitizer flags (`-Zsanitizer=address`) that stable rustc otherwise refuses.
# shellcheck shell=bash
SAFEYOLO_CACHE="${SAFEYOLO_CACHE:-/var/cache/safe-yolo}"
CARGO_FUZZ_VERSION=0.13.2
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$SAFEYOLO_CACHE/fuzz-target}"
FUZZ_BIN_DIR="$FUZZ_TARGET_DIR/x86_64-unknown-linux-gnu/release"
FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz" && pwd)"
# Every target, in the order the smoke runs them (fuzz/Cargo.toml lists the same).
FUZZ_TARGETS=(onnx_meta mjpeg_jpeg config_toml api_json ws_command refresh_token backup_manifest v4l2_negotiate)

fuzz_dict() {
    case "$1" in
        onnx_meta) echo "$FUZZ_DIR/dicts/onnx.dict" ;;
        mjpeg_jpeg) echo "$FUZZ_DIR/dicts/jpeg.dict" ;;
        config_toml) echo "$FUZZ_DIR/dicts/toml.dict" ;;
        api_json | ws_command | backup_manifest) echo "$FUZZ_DIR/dicts/json.dict" ;;
        refresh_token) echo "$FUZZ_DIR/dicts/token.dict" ;;
        *) ;;
    esac
}

# cargo-fuzz, pinned, into the tools cache (a warm CI does not reinstall it).
fuzz_install() {
    CARGO_FUZZ="$SAFEYOLO_CACHE/tools/bin/cargo-fuzz"
    if ! "$CARGO_FUZZ" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
        echo "fuzz: cargo install cargo-fuzz $CARGO_FUZZ_VERSION into $SAFEYOLO_CACHE/tools" >&2
        # In a target directory of its own (not CARGO_TARGET_DIR: CI's test build
        # holds that one's lock while this runs beside it).
        env -u CARGO_TARGET_DIR cargo install -q --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
            --root "$SAFEYOLO_CACHE/tools"
    fi
}

# Builds every target once (AddressSanitizer, debug assertions and overflow checks).
fuzz_build() {
    (cd "$FUZZ_DIR" && RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0 \
        "$CARGO_FUZZ" build --target-dir "$FUZZ_TARGET_DIR" "$@")
}

# fuzz_run TARGET SECONDS WORK_CORPUS LOG: runs TARGET for SECONDS on WORK_CORPUS (new
# inputs go there) and the committed seeds, libFuzzer's output in LOG; a crash, leak,
# timeout (10 s for one input) or out-of-memory (2 GiB) leaves its input in
# fuzz/artifacts/TARGET/ and the exit status non-zero. FUZZ_NICE: a nice value;
# FUZZ_RUN_BIN_DIR: where the binary is (default: the build's).
fuzz_run() {
    local target=$1 seconds=$2 work=$3 log=$4 dict
    dict=$(fuzz_dict "$target")
    mkdir -p "$work" "$FUZZ_DIR/artifacts/$target"
    ${FUZZ_NICE:+nice -n "$FUZZ_NICE"} "${FUZZ_RUN_BIN_DIR:-$FUZZ_BIN_DIR}/$target" "$work" "$FUZZ_DIR/corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$FUZZ_DIR/artifacts/$target/" -print_final_stats=1 \
        ${dict:+-dict="$dict"} >"$log" 2>&1
}

# fuzz_figures LOG: "executions exec/s cov ft" of a finished run.
fuzz_figures() {
    local log=$1 execs rate cov ft
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    echo "${execs:-?} ${rate:-?} ${cov:-?} ${ft:-?}"
}

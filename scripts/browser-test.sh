#!/usr/bin/env bash
# Browser tests of the web UI: real headless Debian Chromium (playwright-core, no browser
# download) against two running daemons, each with a temporary state directory and a free
# port: one on a copy of config/demo.toml, and one on a box as flashed (that config without
# cameras, zones, lines and rules) for the first-run wizard. Prints `N passed, N failed`
# last; exits non-zero on failure.
#
#   scripts/browser-test.sh             # screenshots land in tests/browser/screenshots/
#
# Env: CARGO_TARGET_DIR (default /var/cache/safe-yolo/target, as in CI), SAFEYOLO_BIN (default $CARGO_TARGET_DIR/debug/safe-yolo),
#      EVENT_TIMEOUT_MS (how long to wait for the first event, default 120000).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-/var/cache/safe-yolo/target}"
BIN="${SAFEYOLO_BIN:-$TARGET/debug/safe-yolo}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Tools: Debian chromium, node/npm, curl; the test's npm dependencies.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v curl >/dev/null || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
(cd "$ROOT/tests/browser" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

# 2. The daemon binary and the demo footage.
# Rebuild when the binary is missing or older than the UI assets it embeds.
if [ ! -x "$BIN" ] || [ -n "$(find "$ROOT/appliance/api/ui" "$ROOT/appliance/api/src" -newer "$BIN" -type f 2>/dev/null | head -n1)" ]; then
    CARGO_TARGET_DIR="$TARGET" "$ROOT/scripts/build.sh" >/dev/null
fi
[ -f "$ROOT/demo-media/vtest.mjpeg" ] || "$ROOT/scripts/demo-media.sh"

# 3. Two daemons, each with a temporary state dir and a free port: the demo config
#    (relative paths made absolute) for the pages, and a box as flashed (the same
#    config without its cameras, zones, lines and rules) for the first-run wizard.
TMP="$(mktemp -d -t safe-yolo-browser.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
sed -e "s#\"\.\./#\"$ROOT/#g" "$ROOT/config/demo.toml" > "$TMP/demo.toml"
awk '/^\[\[(cameras|zones|lines|rules)\]\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' \
    "$TMP/demo.toml" > "$TMP/factory.toml"
if grep -qE '^\[\[(cameras|zones|lines|rules)\]\]' "$TMP/factory.toml"; then
    echo "the factory config still has cameras or rules" >&2
    exit 1
fi
sed -i -e "s#^sim_log = .*#sim_log = \"$TMP/state/outputs.jsonl\"#" "$TMP/demo.toml"
sed -i -e "s#^sim_log = .*#sim_log = \"$TMP/factory/outputs.jsonl\"#" "$TMP/factory.toml"

# start NAME CONFIG: a daemon with state dir $TMP/NAME and log $TMP/NAME.log; sets PORT.
start() {
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$TMP/$1"
    SAFEYOLO_STORAGE__STATE_DIR="$TMP/$1" SAFEYOLO_API__BIND="127.0.0.1:$PORT" \
        LLVM_PROFILE_FILE=/dev/null "$BIN" run --config "$2" >"$TMP/$1.log" 2>&1 &
    PIDS+=($!)
    echo "$1 daemon pid $! on https://127.0.0.1:$PORT (log $TMP/$1.log)"
}
# up NAME PORT PID: waits for the daemon's health probe; prints its setup token.
up() {
    local pid="$3"
    for _ in $(seq 1 240); do
        if curl -ksf "https://127.0.0.1:$2/api/v1/health" >/dev/null 2>&1; then
            # The first-boot setup token is logged once at warn level.
            grep -o 'setup_token[=": ]*[A-Za-z0-9_-]*' "$TMP/$1.log" | head -n1 | sed -E 's/setup_token[=": ]*//'
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    echo "the $1 daemon did not come up; its log:" >&2
    tail -n 40 "$TMP/$1.log" >&2
    echo "0 passed, 1 failed" >&2
    exit 1
}
start state "$TMP/demo.toml"
DEMO_PORT=$PORT
# The factory box also holds an uploaded certificate pair whose key does not
# match (an interrupted upload): it must start, serve a fresh self-signed
# certificate and say so in a banner.
mkdir -p "$TMP/factory/api"
chmod 700 "$TMP/factory/api"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj /CN=box \
    -keyout "$TMP/uploaded.key" -out "$TMP/uploaded.crt" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/other.key" 2>/dev/null
cat "$TMP/other.key" "$TMP/uploaded.crt" > "$TMP/factory/api/tls.pem"
chmod 600 "$TMP/factory/api/tls.pem"
start factory "$TMP/factory.toml"
FACTORY_PORT=$PORT
TOKEN="$(up state "$DEMO_PORT" "${PIDS[0]}")"
FACTORY_TOKEN="$(up factory "$FACTORY_PORT" "${PIDS[1]}")"
[ -n "$FACTORY_TOKEN" ] || { echo "no setup token in the factory daemon's log" >&2; exit 1; }

set +e
t0=$SECONDS
(cd "$ROOT/tests/browser" && BASE_URL="https://127.0.0.1:$DEMO_PORT" SETUP_TOKEN="$TOKEN" \
    FACTORY_URL="https://127.0.0.1:$FACTORY_PORT" FACTORY_TOKEN="$FACTORY_TOKEN" node ui.test.mjs) | tee "$TMP/result.txt"
rc=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/result.txt" | tail -n1)"
echo "browser tests took $((SECONDS - t0)) s"
if [ "$rc" != 0 ]; then
    for name in state factory; do
        echo "--- last $name daemon log lines ---"
        tail -n 20 "$TMP/$name.log"
    done
fi
echo "${summary:-0 passed, 1 failed}"
exit "$rc"

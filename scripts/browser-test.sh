#!/usr/bin/env bash
# Browser tests of the web UI: real headless Debian Chromium (playwright-core, no browser
# download) against a running daemon on a copy of config/demo.toml with a temporary state
# directory and a free port. Prints `N passed, N failed` last; exits non-zero on failure.
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

# 3. A copy of the demo config (relative paths made absolute), a temp state dir, a free port.
TMP="$(mktemp -d -t safe-yolo-browser.XXXXXX)"
DAEMON_PID=""
cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$DAEMON_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
sed -e "s#\"\.\./#\"$ROOT/#g" "$ROOT/config/demo.toml" > "$TMP/demo.toml"
mkdir -p "$TMP/state"
sed -i -e "s#^sim_log = .*#sim_log = \"$TMP/state/outputs.jsonl\"#" "$TMP/demo.toml"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

SAFEYOLO_STORAGE__STATE_DIR="$TMP/state" SAFEYOLO_API__BIND="127.0.0.1:$PORT" \
    LLVM_PROFILE_FILE=/dev/null "$BIN" run --config "$TMP/demo.toml" >"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!

echo "daemon pid $DAEMON_PID on https://127.0.0.1:$PORT (log $TMP/daemon.log)"
ok=""
for _ in $(seq 1 240); do
    if curl -ksf "https://127.0.0.1:$PORT/api/v1/health" >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.5
done
if [ -z "$ok" ]; then
    echo "the daemon did not come up; its log:" >&2
    tail -n 40 "$TMP/daemon.log" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
# The first-boot setup token is logged once at warn level.
TOKEN="$(grep -o 'setup_token[=": ]*[A-Za-z0-9_-]*' "$TMP/daemon.log" | head -n1 | sed -E 's/setup_token[=": ]*//')"

set +e
(cd "$ROOT/tests/browser" && BASE_URL="https://127.0.0.1:$PORT" SETUP_TOKEN="$TOKEN" node ui.test.mjs) | tee "$TMP/result.txt"
rc=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/result.txt" | tail -n1)"
if [ "$rc" != 0 ]; then
    echo "--- last daemon log lines ---"
    tail -n 20 "$TMP/daemon.log"
fi
echo "${summary:-0 passed, 1 failed}"
exit "$rc"

#!/usr/bin/env bash
# Checks the appliance's systemd units (safe-yolo.service, safe-yolo-health.service,
# safe-yolo-data-init.service):
#  - `systemd-analyze verify` in a scratch root: no errors and no warnings;
#  - `systemd-analyze security --offline=true`: safe-yolo.service must score
#    an exposure of 2.0 or lower (--threshold=20; the scale is 0-100 there),
#    the health unit 4.0 or lower;
#  - the directives the appliance relies on are present (notify + watchdog,
#    fixed user, device policy, capabilities, system-call filter, resource
#    budgets (MemoryHigh, MemoryMax, TasksMax, LimitNOFILE), ExecStart).
# Usage: tests/image/check-units.sh [UNIT_FILES_DIR]
#   (default: yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo/files)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
files=${1:-$repo/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo/files}
DAEMON_THRESHOLD=20
HEALTH_THRESHOLD=40

command -v systemd-analyze >/dev/null || { echo "check-units: systemd-analyze is missing (apt-get install systemd)" >&2; exit 2; }
root=$(mktemp -d "${TMPDIR:-/tmp}/safe-yolo-units.XXXXXX")
trap 'rm -rf "$root"' EXIT
sys=$root/usr/lib/systemd/system
mkdir -p "$sys" "$root/usr/bin" "$root/usr/libexec/safe-yolo" "$root/etc"
cp "$files/safe-yolo.service" "$files/safe-yolo-health.service" "$files/safe-yolo-data-init.service" "$sys/"
install -m 0755 "$files/health-check" "$root/usr/libexec/safe-yolo/health-check"
install -m 0755 "$files/data-init" "$root/usr/libexec/safe-yolo/data-init"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/safe-yolo"
chmod 0755 "$root/usr/bin/safe-yolo"
# The units the appliance's units refer to, from the host's systemd.
for u in network-online.target multi-user.target boot-complete.target time-sync.target basic.target \
    sysinit.target local-fs.target local-fs-pre.target; do
    [ -f "/usr/lib/systemd/system/$u" ] && cp "/usr/lib/systemd/system/$u" "$sys/"
done

status=0
bad() { echo "check-units: FAIL: $*" >&2; status=1; }

out=$(systemd-analyze verify --root="$root" "$sys/safe-yolo.service" "$sys/safe-yolo-health.service" \
    "$sys/safe-yolo-data-init.service" 2>&1) ||
    bad "systemd-analyze verify failed"
if [ -n "$out" ]; then
    echo "$out" | sed 's/^/    /' >&2
    bad "systemd-analyze verify reported problems"
else
    echo "check-units: ok   systemd-analyze verify"
fi

score() { # score UNIT THRESHOLD
    local out rc=0
    out=$(systemd-analyze security --offline=true --root="$root" --threshold="$2" "$sys/$1" 2>&1) || rc=$?
    local level
    level=$(echo "$out" | grep -o 'Overall exposure level for [^:]*: [0-9.]*' | awk '{print $NF}')
    if [ "$rc" -ne 0 ] || [ -z "$level" ]; then
        echo "$out" | grep '✗' | sed 's/^/    /' >&2 || true
        bad "$1: exposure ${level:-?} is above $(awk "BEGIN{print $2/10}")"
    else
        echo "check-units: ok   $1 exposure $level (limit $(awk "BEGIN{print $2/10}"))"
    fi
}
score safe-yolo.service "$DAEMON_THRESHOLD"
score safe-yolo-health.service "$HEALTH_THRESHOLD"

# Board drop-ins (e.g. Jetson's device list) must load cleanly too.
if [ -f "$files/10-jetson-devices.conf" ]; then
    mkdir -p "$sys/safe-yolo.service.d"
    cp "$files/10-jetson-devices.conf" "$sys/safe-yolo.service.d/"
    out=$(systemd-analyze verify --root="$root" "$sys/safe-yolo.service" 2>&1) || bad "verify failed with the Jetson drop-in"
    if [ -n "$out" ]; then
        echo "$out" | sed 's/^/    /' >&2
        bad "systemd-analyze verify reported problems with the Jetson drop-in"
    else
        echo "check-units: ok   systemd-analyze verify with the Jetson drop-in"
    fi
    rm -r "$sys/safe-yolo.service.d"
fi

unit=$sys/safe-yolo.service
for want in \
    'Type=notify' 'WatchdogSec=' 'User=safe-yolo' 'SupplementaryGroups=video render gpio' \
    'StateDirectory=safe-yolo' 'ConfigurationDirectory=safe-yolo' 'ProtectSystem=strict' \
    'DevicePolicy=closed' 'DeviceAllow=char-video4linux rw' 'DeviceAllow=char-drm rw' \
    'DeviceAllow=char-gpiochip rw' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' \
    'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'NoNewPrivileges=yes' 'SystemCallFilter=@system-service' \
    'MemoryHigh=' 'MemoryMax=' 'TasksMax=' 'LimitNOFILE=' \
    'ExecStart=/usr/bin/safe-yolo run --config /etc/safe-yolo/safe-yolo.toml'; do
    case "$want" in
    *=) grep -q "^$want[^[:space:]]" "$unit" || bad "safe-yolo.service does not set $want" ;;
    *) grep -qxF "$want" "$unit" || bad "safe-yolo.service lacks the line '$want'" ;;
    esac
done
grep -qxF 'RequiredBy=boot-complete.target' "$sys/safe-yolo-health.service" ||
    bad "safe-yolo-health.service is not RequiredBy=boot-complete.target"
[ "$status" = 0 ] && echo "check-units: PASS"
exit "$status"

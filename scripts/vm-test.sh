#!/usr/bin/env bash
# Appliance-in-a-VM test (tests/vm): boots the real daemon in a qemu VM with a
# vivid camera and gpio-sim lines and checks capture, first-boot setup, zone
# and rule through the HTTPS API, alarm, siren, relay, acknowledgement through
# the API and the button, and the healthy line end to end. Installs what it needs
# (Debian bookworm, as root or with sudo); downloads are cached under
# /var/cache/safe-yolo/vm. Skip with SAFEYOLO_SKIP_VM=1.
# Reuses the daemon CI built ($CARGO_TARGET_DIR/debug/safe-yolo, default
# CARGO_TARGET_DIR=/var/cache/safe-yolo/target). More in tests/vm/README.md.
set -euo pipefail
if [ "${SAFEYOLO_SKIP_VM:-0}" = "1" ]; then
    echo "vm-test: skipped (SAFEYOLO_SKIP_VM=1)"
    exit 0
fi
exec "$(dirname "$0")/../tests/vm/run.sh" "$@"

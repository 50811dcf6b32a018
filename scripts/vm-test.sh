#!/usr/bin/env bash
# Appliance-in-a-VM test (tests/vm): boots the real daemon in a qemu VM with a
# vivid camera and gpio-sim lines, with the VM board's factory configuration
# (no camera), and checks through the HTTPS API only: first-boot setup, camera
# discovery and preview, the camera added, zone and rules, alarm, siren, relay,
# acknowledgement through the API and the button, the door contact, the camera
# unplugged (camera_offline), and the healthy line (low with no camera, high
# once it runs, dropped by SIGKILL) end to end. Installs what it needs
# (Debian bookworm, as root or with sudo); downloads are cached under
# /var/cache/safe-yolo/vm. Skip with SAFEYOLO_SKIP_VM=1.
# Reuses the daemon CI built ($CARGO_TARGET_DIR/debug/safe-yolo, default
# CARGO_TARGET_DIR=/var/cache/safe-yolo/target). More in tests/vm/README.md.
#
# --systemd: the second run instead, the appliance's own userspace: systemd
# as PID 1 on a Debian bookworm root file system with the image's units,
# udev rule, users and factory configuration (tests/vm/systemd.sh; skip it
# alone with SAFEYOLO_SKIP_VM_SYSTEMD=1).
set -euo pipefail
if [ "${SAFEYOLO_SKIP_VM:-0}" = "1" ]; then
    echo "vm-test: skipped (SAFEYOLO_SKIP_VM=1)"
    exit 0
fi
if [ "${1:-}" = "--systemd" ]; then
    shift
    exec "$(dirname "$0")/../tests/vm/systemd.sh" "$@"
fi
exec "$(dirname "$0")/../tests/vm/run.sh" "$@"

#!/usr/bin/env bash
# The appliance's own userspace in a VM: systemd as PID 1 on a Debian
# bookworm root file system (mmdebstrap), with the units, scripts, udev rule,
# users and groups the Yocto recipes install, unchanged, the daemon CI built,
# the VM board's profile and factory configuration, and the kernel modules of
# the initramfs test (vivid, gpio-sim). Boots it in qemu (TCG) from an ext4
# image (root) and a second one (/data), and checks under systemd: READY
# through Type=notify inside the unit's sandbox, the camera added through
# the HTTPS API captured from vivid, an alarm on a gpio-sim line, the boot
# health check, a stall injected with the test-only fault feature restarted
# by the watchdog, SIGKILL restarted, the health check's verdict following the
# daemon, no seccomp kill or permission error, and after a clean reboot the
# box guarding again with everything kept on /data. Entry point:
# scripts/vm-test.sh --systemd (or this file). See tests/vm/README.md,
# "systemd run".
#
# Environment (as tests/vm/run.sh, plus):
#   SAFEYOLO_SKIP_VM=1 / SAFEYOLO_SKIP_VM_SYSTEMD=1   skip (exit 0)
#   CARGO_TARGET_DIR, SAFEYOLO_VM_DAEMON, SAFEYOLO_VM_CACHE, SAFEYOLO_VM_PORT,
#   SAFEYOLO_VM_CPU           as for run.sh
#   SAFEYOLO_VM_SD_TIMEOUT_S  whole-VM timeout (default 900)
#   SAFEYOLO_VM_SD_BREAK      negative check, a planted defect in the image:
#       device-video   a drop-in takes /dev/video* out of DeviceAllow
#       watchdog-off   a drop-in sets WatchdogSec=0 (a stall is never restarted)
#       restart-no     a drop-in sets Restart=no (no restart after a kill)
#       health-lie     the health check always passes (ExecStart=/bin/true)
#     the test must then FAIL.
set -euo pipefail

if [ "${SAFEYOLO_SKIP_VM:-0}" = "1" ] || [ "${SAFEYOLO_SKIP_VM_SYSTEMD:-0}" = "1" ]; then
    echo "vm-test (systemd): skipped"
    exit 0
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SD_BREAK="${SAFEYOLO_VM_SD_BREAK:-}"
VM_TIMEOUT_S="${SAFEYOLO_VM_SD_TIMEOUT_S:-900}"
YOCTO_FILES="$REPO/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo/files"
RECIPE="$REPO/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo/safe-yolo_0.1.0.bb"
IMAGE_RECIPE="$REPO/yocto/meta-safe-yolo/recipes-core/images/safe-yolo-image.bb"

# shellcheck source-path=SCRIPTDIR
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR
. "$HERE/kernel.sh"
# shellcheck source-path=SCRIPTDIR
. "$HERE/api.sh"
# shellcheck source-path=SCRIPTDIR
. "$HERE/rootfs.sh"

# api.sh's switches of the initramfs test: not used here.
BREAK=""
SKIP_CAMERA_ADD=0
# The health check's settle time when the test reruns it (the image's 60 s
# at boot).
HEALTH_SETTLE_S=20

case "$SD_BREAK" in
    "" | device-video | watchdog-off | restart-no | health-lie) ;;
    *) die "SAFEYOLO_VM_SD_BREAK must be device-video, watchdog-off, restart-no or health-lie, not $SD_BREAK" ;;
esac

# --- host tools, kernel, busybox, footage, feeder, root file system (the shared cache)
vm_lock
prepare_shared
command -v mmdebstrap >/dev/null || {
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}
T0="$(now_ms)"
prepare_sd_rootfs
prepare_sd_modules
T_ROOTFS_MS=$(( $(now_ms) - T0 ))
vm_unlock

# --- the daemon, model, factory configuration (checked as run.sh does) ------------
find_daemon_and_model
grep -qa SAFEYOLO_FAULT_STALL_DETECT_AFTER "$DAEMON" \
    || die "$DAEMON has no fault-injection feature (the stall check needs it: build with --all-features)"

# --- the guest's root file system: the base tree + what the image installs ----------
T0="$(now_ms)"
WORK="$CACHE/work-sd"
R="$WORK/root"
rm -rf "$WORK"
mkdir -p "$WORK"
cp -a "$SD_BASE/root" "$R"

# Kernel modules, in their tree (modprobe, udev and systemd-modules-load use them).
cp -a "$SD_KMODS/lib/modules" "$R/usr/lib/"
depmod -b "$R/usr" "$KVER" 2>/dev/null || depmod -b "$R" "$KVER"

# safe-yolo recipe: the binary, units, scripts and udev rule at the paths of
# its do_install (merged /usr: ${systemd_system_unitdir} = /usr/lib/systemd/system).
objcopy --strip-debug "$DAEMON" "$R/usr/bin/safe-yolo"
chmod 0755 "$R/usr/bin/safe-yolo"
install -m 0644 "$YOCTO_FILES/safe-yolo.service" "$YOCTO_FILES/safe-yolo-health.service" \
    "$YOCTO_FILES/safe-yolo-data-init.service" "$R/usr/lib/systemd/system/"
install -d "$R/usr/libexec/safe-yolo"
install -m 0755 "$YOCTO_FILES/health-check" "$YOCTO_FILES/data-init" "$R/usr/libexec/safe-yolo/"
install -m 0644 "$YOCTO_FILES/90-safe-yolo-gpio.rules" "$R/usr/lib/udev/rules.d/"
# Its users and groups: GROUPADD_PARAM and USERADD_PARAM of the recipe, run
# as the useradd class runs them.
python3 - "$RECIPE" >"$WORK/useradd.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
for var, cmd in (("GROUPADD_PARAM", "groupadd"), ("USERADD_PARAM", "useradd")):
    m = re.search(var + r':\$\{PN\}\s*=\s*"([^"]*)"', text)
    if not m:
        sys.exit(f"no {var} in the recipe")
    for part in m.group(1).split(";"):
        part = " ".join(part.replace("${localstatedir}", "/var").split())
        if part:
            print(cmd, part)
PY
while read -r cmd args; do
    # shellcheck disable=SC2086 # the recipe's parameters, word-split as bitbake's useradd class does
    chroot "$R" "$cmd" $args || die "$cmd $args failed in the guest tree"
done <"$WORK/useradd.txt"
log "users and groups of the recipe: $(tr '\n' ';' <"$WORK/useradd.txt")"
# SYSTEMD_SERVICE with SYSTEMD_AUTO_ENABLE = "enable" (data-init is static:
# the fstab's x-systemd.requires pulls it in).
systemctl --root="$R" enable safe-yolo.service safe-yolo-health.service >/dev/null 2>&1 \
    || die "systemctl enable of the recipe's units failed"

# safe-yolo-data recipe: board profiles, model, factory configuration.
install -d "$R/usr/share/safe-yolo/board" "$R/usr/share/safe-yolo/models/nanodet-m-416-coco" \
    "$R/usr/share/safe-yolo/factory" "$R/etc/safe-yolo" "$R/var/lib/safe-yolo" "$R/data"
install -m 0644 "$REPO"/board/*.toml "$R/usr/share/safe-yolo/board/"
for f in model.toml model-fp32.onnx model-int8.onnx model-rk3588-int8.rknn; do
    [ -f "$MODEL_DIR/$f" ] && install -m 0644 "$MODEL_DIR/$f" "$R/usr/share/safe-yolo/models/nanodet-m-416-coco/"
done
install -m 0640 "$FACTORY_CONFIG" "$R/usr/share/safe-yolo/factory/safe-yolo.toml"

# The image recipe: the /data bind mounts (its safe_yolo_persistent_mounts,
# run as written) after the data partition's own line (wic: label data).
printf '# the data partition (wic: part /data --label data)\nLABEL=data /data ext4 defaults,noatime 0 2\n' >"$R/etc/fstab"
sed -n '/^safe_yolo_persistent_mounts() {$/,/^}$/p' "$IMAGE_RECIPE" >"$WORK/persistent-mounts.sh"
[ -s "$WORK/persistent-mounts.sh" ] || die "no safe_yolo_persistent_mounts in $IMAGE_RECIPE"
IMAGE_ROOTFS="$R" sysconfdir=/etc localstatedir=/var \
    bash -c '. "$1" && safe_yolo_persistent_mounts' _ "$WORK/persistent-mounts.sh"
grep -q ' /etc/safe-yolo none bind' "$R/etc/fstab" || die "the image's bind mounts did not land in fstab"

# Where the VM differs from the board the image is built for (as run.sh, but
# as the drop-in run.sh's comment speaks of): the stall timeout for TCG
# (one inference takes ~20 s) and 2 detector threads for 2 vCPUs. The daemon
# CI built is instrumented for coverage: its profile goes to the runtime
# folder (the root is read-only for it).
mkdir -p "$R/etc/systemd/system/safe-yolo.service.d"
cat >"$R/etc/systemd/system/safe-yolo.service.d/50-vm.conf" <<'DROPIN'
# VM test (tests/vm/systemd.sh): TCG and 2 vCPUs.
[Service]
Environment=SAFEYOLO_SYSTEM__STALL_TIMEOUT_S=90 SAFEYOLO_DETECTOR__THREADS=2
Environment=LLVM_PROFILE_FILE=/run/safe-yolo/coverage-%%p.profraw
DROPIN

# The planted defects.
case "$SD_BREAK" in
    device-video)
        printf '[Service]\nDeviceAllow=\nDeviceAllow=char-drm rw\nDeviceAllow=char-gpiochip rw\n' \
            >"$R/etc/systemd/system/safe-yolo.service.d/90-break.conf" ;;
    watchdog-off)
        printf '[Service]\nWatchdogSec=0\n' >"$R/etc/systemd/system/safe-yolo.service.d/90-break.conf" ;;
    restart-no)
        printf '[Service]\nRestart=no\n' >"$R/etc/systemd/system/safe-yolo.service.d/90-break.conf" ;;
    health-lie)
        mkdir -p "$R/etc/systemd/system/safe-yolo-health.service.d"
        printf '[Service]\nExecStart=\nExecStart=/bin/true\n' \
            >"$R/etc/systemd/system/safe-yolo-health.service.d/90-break.conf" ;;
esac
[ -n "$SD_BREAK" ] && log "SAFEYOLO_VM_SD_BREAK=$SD_BREAK: planted defect $(find "$R/etc/systemd/system" -name 90-break.conf)"

# The VM test harness: hardware setup, footage, the checks, the
# rauc-mark-good stand-in; network (systemd-networkd, static address on
# qemu's user network); vivid's options; no login prompt on the console.
install -d "$R/usr/libexec/vmtest" "$R/usr/share/vmtest"
install -m 0755 "$HERE/guest-sd/sd-test.sh" "$HERE/guest-sd/hw-setup" "$R/usr/libexec/vmtest/"
install -m 0755 "$FEEDER" "$R/usr/libexec/vmtest/feeder"
cp "$FRAMES_RAW" "$R/usr/share/vmtest/frames.raw"
install -m 0644 "$HERE"/guest-sd/vmtest*.service "$R/etc/systemd/system/"
systemctl --root="$R" enable vmtest-hw.service vmtest-feeder.service vmtest.service vmtest-mark-good.service \
    systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1
systemctl --root="$R" mask serial-getty@ttyS0.service serial-getty@ttyS1.service >/dev/null 2>&1
printf 'configfs\nvivid\ngpio-sim\n' >"$R/etc/modules-load.d/vmtest.conf"
# One vivid instance (capture and output, the footage loop). A second one
# (the initramfs run's multi-planar node) hangs off the same platform device
# vivid.0 with its own index 0: udev would give both capture nodes the one
# name platform-vivid.0-video-index0, and either may win.
printf 'options vivid n_devs=1 node_types=0x101\n' >"$R/etc/modprobe.d/vmtest.conf"
printf '[Match]\nName=eth0\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n' >"$R/etc/systemd/network/10-vmtest.network"
echo safe-yolo-vm >"$R/etc/hostname"
{
    vm_guest_env
    cat <<ENV
STALL_TIMEOUT_S=420
HEALTH_SETTLE_S=$HEALTH_SETTLE_S
DEADLINE_UPTIME_S=$(( VM_TIMEOUT_S - 40 ))
ENV
} >"$R/etc/vmtest.env"

# Every library the daemon links resolves inside the guest tree.
if chroot "$R" ldd /usr/bin/safe-yolo | grep -q 'not found'; then
    chroot "$R" ldd /usr/bin/safe-yolo | grep 'not found' >&2
    die "the guest root file system lacks libraries of the daemon (add their packages to SD_PACKAGES in rootfs.sh)"
fi

# The images: root (ext4 with the tree, no loop mount) and /data (empty: the
# first boot, data-init seeds it; 1 GiB as in the wic layout: the store keeps
# 256 MiB free, a smaller one refuses every snapshot).
ROOT_IMG="$WORK/root.img"
DATA_IMG="$WORK/data.img"
size_mb=$(( $(du -sm "$R" | cut -f1) + 256 ))
mkfs.ext4 -q -F -L rootfsA -d "$R" "$ROOT_IMG" "${size_mb}M" >/dev/null || die "mkfs.ext4 of the root image failed"
mkfs.ext4 -q -F -L data "$DATA_IMG" 1024M >/dev/null || die "mkfs.ext4 of the data image failed"

# A small initramfs: busybox and the modules that mount the root.
I="$WORK/initrd"
mkdir -p "$I/bin" "$I/lib/modules" "$I/proc" "$I/sys" "$I/dev"
cp "$BUSYBOX" "$I/bin/busybox"
install -m 0755 "$HERE/guest-sd/initrd-init" "$I/init"
: >"$I/lib/modules/initrd.order"
for m in "${SD_INITRD_MODS[@]}"; do
    cp "$SD_KMODS/lib/modules/$KVER/$m" "$I/lib/modules/"
    basename "$m" >>"$I/lib/modules/initrd.order"
done
(cd "$I" && find . -print0 | cpio --null -o -H newc --quiet >"$WORK/initramfs.cpio")
rm -rf "$R" "$I"
T_IMAGE_MS=$(( $(now_ms) - T0 ))
log "images: root $(( $(stat -c %s "$ROOT_IMG") / 1048576 )) MiB (ext4), data 1 GiB, initramfs $(( $(stat -c %s "$WORK/initramfs.cpio") / 1024 )) KiB; made in $(( T_IMAGE_MS / 1000 )) s"

# --- boot --------------------------------------------------------------------------------
vm_boot "$VM_TIMEOUT_S" 1536 "net.ifnames=0 systemd.show_status=error" \
    -drive "file=$ROOT_IMG,if=virtio,format=raw,cache=unsafe" \
    -drive "file=$DATA_IMG,if=virtio,format=raw,cache=unsafe"

# --- the host's API steps --------------------------------------------------------------
# After a restart of the daemon (stall or SIGKILL): the same certificate
# (the pinned one still verifies: its key is kept in the state folder on
# /data), a new login, the camera back online from the saved configuration,
# the door event still in the event store.
sd_after_restart() {
    local name="$1" status i state
    local step_name="$name-restarted"
    [ "$name" = reboot ] && step_name=rebooted
    wait_step "$step_name" >/dev/null || { api_fail "the guest did not report the $name restart"; return 1; }
    status="$(api POST /api/v1/auth/login "$(jq -nc --arg u "$API_USER" --arg p "$API_PASSWORD" '{username: $u, password: $p}')")"
    expect_status 200 "$status" "login after the $name restart (the pinned certificate and the users kept)" || return 1
    API_TOKEN="$(body .access_token)"
    for i in $(seq 1 60); do
        status="$(api GET /api/v1/cameras)"
        # shellcheck disable=SC2016 # $id is jq's
        state="$(body -r --arg id "$CAMERA_ID" '.health[]? | select(.id == $id) | .state')"
        [ "$status" = 200 ] && [ "$state" = online ] && break
        [ "$i" -eq 60 ] || sleep 1
    done
    [ "$state" = online ] || { api_fail "camera $CAMERA_ID not online after the $name restart: $(body -c .health)"; return 1; }
    api_pass "after the $name: same certificate, login, camera $CAMERA_ID online from the saved configuration"
    status="$(api GET "/api/v1/events?rule=$DOOR_RULE_ID")"
    expect_status 200 "$status" "events after the $name restart" || return 1
    [ "$(body '.events | length')" -ge 1 ] 2>/dev/null \
        || { api_fail "the door event is gone after the $name restart: $(body -c .)"; return 1; }
    api_pass "after the $name: the door event is still in the event store (event $(body '.events[0].id'))"
    host_say "$name-checked"
}
# After the guest's reboot: the pinned certificate, the admin, the camera
# online and the door event, all kept on /data.
sd_after_reboot() {
    sd_after_restart reboot
}
# (sd_after_restart NAME: "stall restart", "kill restart", "reboot".)
sd_camera_checked() {
    local line
    line="$(wait_step camera-checked)" || { api_fail "the guest did not report the camera check"; return 1; }
    case "$line" in
        *" opened=1 healthy=1 "*) api_pass "the guest saw the camera captured from vivid and the healthy line high" ;;
        *) api_fail "the guest saw no camera capturing from vivid with the healthy line high: $line"; return 1 ;;
    esac
}
sd_api_steps() {
    API_BODY="$WORK/api-body.json"
    API_LOG="$WORK/api.log"
    API_CERT="$WORK/api-cert.pem"
    : >"$API_LOG"
    api_setup_and_login && api_as_flashed && api_discover && api_add_camera && sd_camera_checked \
        && api_door && sd_after_restart stall && sd_after_restart kill && sd_after_reboot
}

vm_run_api_steps sd_api_steps

# --- results ------------------------------------------------------------------------------
vm_results VMTEST-JOURNAL "$WORK/journal.txt" 'PASS\|FAIL\|INFO\|READY\|BOOTED\|INITRD'
echo "vm-test (systemd) timings:"
echo "  downloads            $(secs "$T_DOWNLOAD_MS") s"
echo "  root file system     $(secs "${SD_ROOTFS_BUILD_MS:-0}") s mmdebstrap (0 when cached); $(secs "$T_ROOTFS_MS") s with the modules"
echo "  images               $(secs "$T_IMAGE_MS") s (tree copied and filled, mkfs.ext4 -d, initramfs)"
echo "  preparation (host)   $(secs "$T_PREP_MS") s in all"
echo "  initramfs to root    $(val INITRD uptime) s (guest uptime at switch_root)"
echo "  boot to test start   $(val BOOTED uptime) s (guest uptime when vmtest.service started)"
echo "  boot to READY        $(val READY uptime) s (guest uptime; daemon start->READY $(val READY start_to_ready_s) s)"
echo "  qemu start to READY  $(secs "${T_READY_HOST:-}") s (host clock)"
echo "  API steps (host)     $(secs "$T_API_MS") s (READY to the last API check, the stall and kill restarts included)"
echo "  VM run               $(secs "$T_VM_MS") s"
echo "  whole test           $(secs "$T_ALL_MS") s"

vm_verdict "vm-test (systemd)" "${SD_BREAK:+SAFEYOLO_VM_SD_BREAK=$SD_BREAK}" VMTEST-JOURNAL "$WORK/journal.txt"

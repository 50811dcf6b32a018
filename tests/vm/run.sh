#!/usr/bin/env bash
# Appliance-in-a-VM test: the real `safe-yolo` daemon inside a qemu (TCG) VM,
# started with the factory configuration of the VM board (no camera, zone or
# rule), capturing from vivid through its real V4L2 backend (real footage
# looped through vivid's output node) once the host added the camera, and
# driving gpio-sim lines through its real GPIO backend, while the host sets it
# up and drives it through its HTTPS API only (tests/vm/api.sh). Entry point: scripts/vm-test.sh. See tests/vm/README.md.
#
# Environment:
#   SAFEYOLO_SKIP_VM=1        skip the test (exit 0)
#   CARGO_TARGET_DIR          where CI built the daemon (default /var/cache/safe-yolo/target)
#   SAFEYOLO_VM_DAEMON        use this daemon binary instead of $CARGO_TARGET_DIR/debug/safe-yolo
#   SAFEYOLO_VM_CACHE         download/build cache (default /var/cache/safe-yolo/vm)
#   SAFEYOLO_VM_BREAK         negative check: "gpio-simulated" (outputs backend
#                             simulated), "replay" (replay source instead of
#                             V4L2) or "api-zone" (the zone PUT through the API
#                             is a corner nobody walks in); the test must then FAIL
#   SAFEYOLO_VM_SKIP_CAMERA_ADD=1  negative check: the host does not add the camera
#                             (no PUT /api/v1/cameras/{id}); the test must then FAIL
#   SAFEYOLO_VM_PORT          host port forwarded to the daemon's HTTPS port (default: a free one)
#   SAFEYOLO_VM_CPU           qemu CPU model (default qemu64)
#   SAFEYOLO_VM_TIMEOUT_S     whole-VM timeout (default 900)
set -euo pipefail

if [ "${SAFEYOLO_SKIP_VM:-0}" = "1" ]; then
    echo "vm-test: skipped (SAFEYOLO_SKIP_VM=1)"
    exit 0
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BREAK="${SAFEYOLO_VM_BREAK:-}"
VM_TIMEOUT_S="${SAFEYOLO_VM_TIMEOUT_S:-900}"

# shellcheck source-path=SCRIPTDIR
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR
. "$HERE/kernel.sh"
# shellcheck source-path=SCRIPTDIR
. "$HERE/api.sh"

# Previewed from the second, multi-planar vivid node (vivid multiplanar=2):
# true two-plane formats (vivid gives NV16M's Y plane a data_offset) and a
# single-buffer one of the multi-planar API.
MPLANE_FORMATS="nv12m nv16m nv24"
# Defined through the HTTPS API by tests/vm/api.sh: the guest boots the
# factory configuration, which has no cameras, zones or rules.
SKIP_CAMERA_ADD="${SAFEYOLO_VM_SKIP_CAMERA_ADD:-0}"
OFFLINE_RULE_ID="vm-walkway-offline"
ZONE_ID="walkway-area"
RULE_ID="vm-walkway-intrusion"
RULE2_ID="vm-walkway-button"

case "$BREAK" in
    "" | gpio-simulated | replay | api-zone) ;;
    *) die "SAFEYOLO_VM_BREAK must be gpio-simulated, replay or api-zone, not $BREAK" ;;
esac

# --- host tools, kernel, busybox, footage, feeder (the shared cache) ---------------
vm_lock
prepare_shared
vm_unlock
find_daemon_and_model

# --- the factory configuration of the VM board ---------------------------------------
# Used as the image installs it. It has no cameras, zones or rules: the host
# adds them through the API, as an installer does on site.
if grep -q '^\[\[\(cameras\|zones\|rules\)\]\]' "$FACTORY_CONFIG"; then
    die "$FACTORY_CONFIG defines cameras, zones or rules: the VM test adds them through the API"
fi
# Where the VM differs from the board the image is built for, as a systemd
# drop-in would set it (SAFEYOLO_<SECTION>__<KEY>, appliance/config/src/env.rs),
# the file itself unchanged:
#   stall_timeout_s  one inference takes ~20 s under TCG (floating point is
#                    emulated): a stage silent for 20 s is normal here, and
#                    the factory's 10 s would call the pipeline stalled;
#   threads          the VM has 2 vCPUs (the factory file says 4).
DAEMON_ENV="SAFEYOLO_SYSTEM__STALL_TIMEOUT_S=90 SAFEYOLO_DETECTOR__THREADS=2"
[ "$BREAK" = gpio-simulated ] && DAEMON_ENV="$DAEMON_ENV SAFEYOLO_OUTPUTS__BACKEND=simulated"

# --- initramfs ------------------------------------------------------------------------
WORK="$CACHE/work"
ROOT="$WORK/root"
rm -rf "$WORK"
mkdir -p "$ROOT"/{bin,usr/bin,lib/modules,etc/safe-yolo,proc,sys,dev,tmp,var/lib,usr/share/vmtest} \
    "$ROOT/usr/share/safe-yolo/models/nanodet-m-416-coco" "$ROOT/usr/share/safe-yolo/board" \
    "$ROOT/usr/share/safe-yolo/factory"

cp "$BUSYBOX" "$ROOT/bin/busybox"
cp "$FEEDER" "$ROOT/bin/feeder"
cp "$KDIR"/modules/*.ko "$KDIR/modules/modules.order" "$ROOT/lib/modules/"
install -m 0755 "$HERE/guest/init" "$ROOT/init"
install -m 0755 "$HERE/guest/test.sh" "$ROOT/test.sh"
cp "$FRAMES_RAW" "$ROOT/usr/share/vmtest/frames.raw"
# Every board profile, as the safe-yolo-data recipe installs them.
cp "$REPO"/board/*.toml "$ROOT/usr/share/safe-yolo/board/"

# The daemon as built (debug line tables stripped from the copy), with the
# shared libraries ldd lists and the dynamic loader, at their host paths.
objcopy --strip-debug "$DAEMON" "$ROOT/usr/bin/safe-yolo"
ldd "$DAEMON" | awk '/=> \// {print $3} /^[ \t]*\/[^ ]*ld-linux/ {print $1}' | sort -u | while read -r lib; do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
done
# /lib64 and /lib/x86_64-linux-gnu as on Debian (merged /usr is not needed).
[ -e "$ROOT/lib64/ld-linux-x86-64.so.2" ] || die "the dynamic loader was not packed"

# The model: the manifest and the fp32 weights (tract runs fp32).
for f in model.toml model-fp32.onnx model-int8.onnx; do
    [ -f "$MODEL_DIR/$f" ] && cp "$MODEL_DIR/$f" "$ROOT/usr/share/safe-yolo/models/nanodet-m-416-coco/"
done

# The daemon's configuration: the factory file, byte for byte (the recipe's
# factory copy, and /etc/safe-yolo/safe-yolo.toml as safe-yolo-data-init
# seeds it on the first boot).
install -m 0640 "$FACTORY_CONFIG" "$ROOT/usr/share/safe-yolo/factory/safe-yolo.toml"
install -m 0640 "$FACTORY_CONFIG" "$ROOT/etc/safe-yolo/safe-yolo.toml"
# The replay negative check: the same footage from a file, in the media
# folder (the guest copies it there: the state folder is a tmpfs).
[ "$BREAK" = replay ] && cat "$FRAMES_DIR"/00[0-5]?.jpg >"$ROOT/usr/share/vmtest/vtest.mjpeg"
# Checked on the host first (model path overridden to the host's copy): a
# configuration error is not worth a VM boot.
# (The daemon CI built is instrumented for coverage: its profile goes to the
# work folder, not to the current directory.)
# shellcheck disable=SC2086 # DAEMON_ENV is a list of NAME=value words
env $DAEMON_ENV LLVM_PROFILE_FILE="$WORK/check-config-%p.profraw" SAFEYOLO_DETECTOR__MODEL="$MODEL_DIR/model.toml" "$DAEMON" check-config "$ROOT/etc/safe-yolo/safe-yolo.toml" \
    >"$WORK/check-config.log" 2>&1 || { cat "$WORK/check-config.log" >&2; die "the factory configuration does not load"; }

# ALARM_TIMEOUT_S: one inference takes ~20 s on a quiet host, ~70 s when
# other jobs load it (and a person needs a detection or two to be tracked).
# The daemon logs at info: the capture crate's per-frame debug lines (~45 a
# second) cost the guest CPU and the log dump at the end time on the serial.
{
    vm_guest_env
    cat <<EOF
DAEMON_ENV="$DAEMON_ENV"
BREAK=$BREAK
OFFLINE_RULE_ID=$OFFLINE_RULE_ID
RULE_ID=$RULE_ID
RULE2_ID=$RULE2_ID
ALARM_TIMEOUT_S=360
DEADLINE_UPTIME_S=$(( VM_TIMEOUT_S - 30 ))
DAEMON_LOG_FILTER=info
EOF
} >"$ROOT/etc/vmtest.env"

INITRD="$WORK/initramfs.cpio"
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet >"$INITRD")
log "initramfs: $(( $(stat -c %s "$INITRD") / 1048576 )) MiB (uncompressed: faster to unpack under TCG)"

# --- boot, then the API steps over HTTPS through qemu's port forward (tests/vm/api.sh)
vm_boot "$VM_TIMEOUT_S" 1024 "" -no-reboot
vm_run_api_steps api_steps

# --- results ---------------------------------------------------------------------------
vm_results VMTEST-DAEMON-LOG "$WORK/daemon.log" 'PASS\|FAIL\|INFO\|FPS\|READY\|ALARM\|OFFLINE'
BOOTED="$(val BOOTED uptime)"
READY_UPTIME="$(val READY uptime)"
START_TO_READY="$(val READY start_to_ready_s)"
VIVID_FPS="$(val FPS vivid_loop)"
RULE_TO_ALARM="$(val ALARM rule_to_alarm_s)"
RULE2_TO_ALARM="$(val ALARM2 rule_to_alarm_s)"
FRAME_TO_OUTPUT_MS="$(val "ALARM rule_to_alarm_s" frame_to_output_ms)"
UNPLUG_TO_ALARM="$(val OFFLINE unplug_to_alarm_s)"
DAEMON_FPS="$(val "FPS daemon_capture=" daemon_capture)"
DETECTED="$(val "FPS daemon_capture=" detected)"
CAPTURED="$(val "FPS daemon_capture=" captured)"
echo "vm-test timings:"
echo   "  downloads            $(secs "$T_DOWNLOAD_MS") s"
echo   "  preparation (host)   $(secs "$T_PREP_MS") s (downloads, kernel, gpio-sim, initramfs; waits for the cache lock included)"
echo   "  kernel boot to /init ${BOOTED:-?} s (guest uptime)"
echo   "  qemu start to READY  $(secs "${T_READY_HOST:-}") s (host clock)"
echo   "  boot to READY        ${READY_UPTIME:-?} s (guest uptime at \"safe-yolo ready\")"
echo   "  daemon start->READY  ${START_TO_READY:-?} s"
echo   "  multi-planar check   $(secs "${T_MPLANE_MS:-}") s (host: discovery read, a preview in each of $MPLANE_FORMATS with its colour bars checked)"
echo   "  camera PUT to online $(secs "$T_CAMERA_ONLINE_MS") s (host: PUT /api/v1/cameras/$CAMERA_ID to its health \"online\", i.e. its first frame)"
echo   "  rule PUT to alarm    ${RULE_TO_ALARM:-?} s, second rule ${RULE2_TO_ALARM:-?} s (person frames loop all along; an inference takes ~20-70 s under TCG)"
echo   "  person frame to siren ${FRAME_TO_OUTPUT_MS:-?} ms (daemon: capture of the frame that raised the alarm to the siren line, glass_to_output_ms)"
echo   "  unplug to offline    ${UNPLUG_TO_ALARM:-?} s (guest: vivid unbound to \"alarm raised\" of $OFFLINE_RULE_ID); event in the API $(secs "$T_OFFLINE_EVENT_MS") s after the guest reported it"
echo   "  API steps (host)     $(secs "$T_API_MS") s (READY to the last API check)"
echo   "  capture fps          vivid loop ${VIVID_FPS:-?}; daemon ${DAEMON_FPS:-n/a}; ${DETECTED:-?} of ${CAPTURED:-?} frames detected (one inference at a time)"
echo   "  VM run               $(secs "$T_VM_MS") s"
echo   "  whole test           $(secs "$T_ALL_MS") s"

NEGATIVE="${BREAK:+SAFEYOLO_VM_BREAK=$BREAK}"
[ "$SKIP_CAMERA_ADD" = 1 ] && NEGATIVE="${NEGATIVE:+$NEGATIVE }SAFEYOLO_VM_SKIP_CAMERA_ADD=1"
vm_verdict vm-test "$NEGATIVE" VMTEST-DAEMON-LOG "$WORK/daemon.log"

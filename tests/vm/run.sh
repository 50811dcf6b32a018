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
CACHE="${SAFEYOLO_VM_CACHE:-/var/cache/safe-yolo/vm}"
DEBS="$CACHE/debs"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/safe-yolo/target}"
BREAK="${SAFEYOLO_VM_BREAK:-}"
PORT="${SAFEYOLO_VM_PORT:-}"
VM_TIMEOUT_S="${SAFEYOLO_VM_TIMEOUT_S:-900}"
# qemu64 (SSE2 only) runs inference ~1.5x faster than "max" under TCG: AVX/FMA
# are emulated with helpers. The daemon is built for baseline x86-64.
VM_CPU="${SAFEYOLO_VM_CPU:-qemu64}"

# What the camera delivers: vivid's HDMI input at 640x480p60 (DMT timings),
# NV12, looped from its output node. The footage (768x576, 10 fps) scales to
# 640x480 exactly, so the zone coordinates match the demo configuration's.
CAM_WIDTH=640
CAM_HEIGHT=480
CAM_FOURCC=NV12
CAM_FORMAT=nv12
CAM_FPS=60
SRC_FPS=10
# Previewed from the second, multi-planar vivid node (vivid multiplanar=2):
# true two-plane formats (vivid gives NV16M's Y plane a data_offset) and a
# single-buffer one of the multi-planar API.
MPLANE_FORMATS="nv12m nv16m nv24"
# Frames of vtest used: people walk through the zone all along.
FRAME_FIRST=1
FRAME_COUNT=60
# Defined through the HTTPS API by tests/vm/api.sh: the guest boots the
# factory configuration, which has no cameras, zones or rules.
CAMERA_ID="walkway"
SKIP_CAMERA_ADD="${SAFEYOLO_VM_SKIP_CAMERA_ADD:-0}"
OFFLINE_RULE_ID="vm-walkway-offline"
ZONE_ID="walkway-area"
RULE_ID="vm-walkway-intrusion"
RULE2_ID="vm-walkway-button"
DOOR_RULE_ID="vm-guard-door"

# shellcheck source-path=SCRIPTDIR
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR
. "$HERE/kernel.sh"
# shellcheck source-path=SCRIPTDIR
. "$HERE/api.sh"

T_BEGIN="$(now_ms)"
T_DOWNLOAD_MS=0
mkdir -p "$DEBS" "$CACHE/build"
# One run at a time per cache (the work directory and the downloads are shared).
exec 9>"$CACHE/.lock"
flock 9

case "$BREAK" in
    "" | gpio-simulated | replay | api-zone) ;;
    *) die "SAFEYOLO_VM_BREAK must be gpio-simulated, replay or api-zone, not $BREAK" ;;
esac

# --- host tools, kernel, busybox -----------------------------------------------
install_host_deps
resolve_kernel
prepare_kernel
prune_kernel_cache

prepare_busybox() {
    local ver deb
    ver="$(apt_candidate busybox-static)"
    [ -n "$ver" ] || { apt_update_once; ver="$(apt_candidate busybox-static)"; }
    [ -n "$ver" ] || die "busybox-static is not available from apt"
    BUSYBOX="$CACHE/busybox-${ver//:/_}/bin/busybox"
    if [ ! -x "$BUSYBOX" ]; then
        local t0; t0="$(now_ms)"
        deb="$(fetch_deb busybox-static "$ver")"
        T_DOWNLOAD_MS=$(( T_DOWNLOAD_MS + $(now_ms) - t0 ))
        rm -rf "$CACHE"/busybox-*
        dpkg -x "$deb" "$CACHE/busybox-${ver//:/_}"
    fi
}
prepare_busybox

# --- the daemon: the binary CI built (dev profile), reused ----------------------
DAEMON="${SAFEYOLO_VM_DAEMON:-$CARGO_TARGET_DIR/debug/safe-yolo}"
if [ ! -x "$DAEMON" ]; then
    log "no daemon at $DAEMON: building it (scripts/build.sh)"
    "$REPO/scripts/build.sh" >/dev/null
fi
[ -x "$DAEMON" ] || die "no daemon binary at $DAEMON"
log "daemon: $DAEMON ($(stat -c %y "$DAEMON" | cut -d. -f1))"

# --- the model ----------------------------------------------------------------------
# Installed where the image's safe-yolo-data recipe puts it (the factory
# configuration names /usr/share/safe-yolo/models/nanodet-m-416-coco/model.toml).
MODEL_DIR="$REPO/models/nanodet-m-416-coco"
[ -f "$MODEL_DIR/model.toml" ] || die "no model manifest $MODEL_DIR/model.toml (run models/fetch-models.sh)"

# --- the factory configuration of the VM board ---------------------------------------
# What the image installs for the qemu board: board/qemu-vm.toml and the
# configuration generated from it (tests/image/gen-default-configs.py), used
# as they are. It has no cameras, zones or rules: the host adds them through
# the API, as an installer does on site.
FACTORY_CONFIG="$REPO/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo-data/files/config/qemu-vm.toml"
python3 "$REPO/tests/image/gen-default-configs.py" >/dev/null \
    || die "the factory configurations are stale (python3 tests/image/gen-default-configs.py --write)"
grep -q '^board = "qemu-vm"$' "$FACTORY_CONFIG" || die "$FACTORY_CONFIG is not for the qemu-vm board"
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

# --- footage: demo JPEG frames -> raw frames for the feeder ---------------------
FRAMES_DIR="$REPO/demo-media/vtest-frames"
if [ ! -f "$FRAMES_DIR/0001.jpg" ]; then
    log "demo footage missing: running scripts/demo-media.sh"
    "$REPO/scripts/demo-media.sh"
fi
FRAMES_RAW="$CACHE/build/frames-${CAM_WIDTH}x${CAM_HEIGHT}-${CAM_FOURCC}-${FRAME_FIRST}-${FRAME_COUNT}.raw"
if [ ! -s "$FRAMES_RAW" ]; then
    log "converting $FRAME_COUNT demo frames to raw $CAM_FOURCC ${CAM_WIDTH}x${CAM_HEIGHT}"
    ffmpeg -nostdin -loglevel error -y -start_number "$FRAME_FIRST" -i "$FRAMES_DIR/%04d.jpg" \
        -frames:v "$FRAME_COUNT" -vf "scale=${CAM_WIDTH}:${CAM_HEIGHT}" \
        -pix_fmt "${CAM_FOURCC,,}" -f rawvideo "$FRAMES_RAW.tmp"
    mv "$FRAMES_RAW.tmp" "$FRAMES_RAW"
fi

# --- the feeder (static C, no dependencies) ---------------------------------------
FEEDER="$CACHE/build/feeder"
if [ ! -x "$FEEDER" ] || [ "$HERE/feeder/feeder.c" -nt "$FEEDER" ]; then
    log "building the feeder"
    gcc -static -O2 -Wall -Wextra -Werror -o "$FEEDER.tmp" "$HERE/feeder/feeder.c"
    mv "$FEEDER.tmp" "$FEEDER"
fi

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
cat >"$ROOT/etc/vmtest.env" <<EOF
DAEMON_ENV="$DAEMON_ENV"
BREAK=$BREAK
CAMERA_ID=$CAMERA_ID
OFFLINE_RULE_ID=$OFFLINE_RULE_ID
CAM_WIDTH=$CAM_WIDTH
CAM_HEIGHT=$CAM_HEIGHT
CAM_FOURCC=$CAM_FOURCC
SRC_FPS=$SRC_FPS
RULE_ID=$RULE_ID
RULE2_ID=$RULE2_ID
DOOR_RULE_ID=$DOOR_RULE_ID
LINE_SIREN=0
LINE_RELAY=1
LINE_HEALTHY=2
LINE_ACK=3
LINE_DOOR=4
READY_TIMEOUT_S=180
HOST_TIMEOUT_S=180
ALARM_TIMEOUT_S=360
DEADLINE_UPTIME_S=$(( VM_TIMEOUT_S - 30 ))
DAEMON_LOG_FILTER=info
EOF

INITRD="$WORK/initramfs.cpio"
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet >"$INITRD")
log "initramfs: $(( $(stat -c %s "$INITRD") / 1048576 )) MiB (uncompressed: faster to unpack under TCG)"

# --- boot ------------------------------------------------------------------------------
SERIAL="$WORK/serial.log"
if [ -z "$PORT" ]; then
    PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
# The host -> guest channel: the guest's second serial port (ttyS1) is a qemu
# pipe chardev on the FIFOs $CTL.in (host to guest) and $CTL.out (unused).
# The host holds $CTL.in open read-write on fd 8, so its writes never block.
CTL="$WORK/ctl"
mkfifo "$CTL.in" "$CTL.out"
exec 8<>"$CTL.in"
T_PREP_MS=$(( $(now_ms) - T_BEGIN ))
T_BOOT="$(now_ms)"
log "booting the VM (TCG, 2 vCPUs, 1 GiB); serial console in $SERIAL"
timeout "$VM_TIMEOUT_S" qemu-system-x86_64 \
    -accel tcg -cpu "$VM_CPU" -smp 2 -m 1024 \
    -kernel "$KDIR/vmlinux" -initrd "$INITRD" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:443" \
    -device virtio-net-pci,netdev=n0,romfile= \
    -chardev "pipe,id=ctl,path=$CTL" \
    -display none -monitor none -serial "file:$SERIAL" -serial chardev:ctl -no-reboot &
QEMU=$!
# shellcheck disable=SC2064
trap "kill $QEMU 2>/dev/null || true" EXIT

# Waits until the serial log has a line matching $1, or qemu exits.
wait_serial() {
    while kill -0 "$QEMU" 2>/dev/null; do
        grep -qa "$1" "$SERIAL" 2>/dev/null && return 0
        sleep 0.5
    done
    grep -qa "$1" "$SERIAL" 2>/dev/null
}

T_API_MS=""
API_DONE=0
if wait_serial "^VMTEST READY"; then
    T_READY_HOST=$(( $(now_ms) - T_BOOT ))
    log "daemon ready in the VM after $(( T_READY_HOST / 1000 )) s (host clock)"
    # --- API steps over HTTPS, through qemu's port forward (tests/vm/api.sh) ----
    T_API="$(now_ms)"
    api_steps && API_DONE=1
    T_API_MS=$(( $(now_ms) - T_API ))
fi
wait "$QEMU" || true
trap - EXIT
T_VM_MS=$(( $(now_ms) - T_BOOT ))
T_ALL_MS=$(( $(now_ms) - T_BEGIN ))

# --- results ---------------------------------------------------------------------------
tr -d '\r' <"$SERIAL" >"$WORK/serial.txt"
sed -n '/^VMTEST-DAEMON-LOG-BEGIN/,/^VMTEST-DAEMON-LOG-END/p' "$WORK/serial.txt" | sed '1d;$d' >"$WORK/daemon.log"
grep -a '^VMTEST \(PASS\|FAIL\|INFO\|FPS\|READY\|ALARM\|OFFLINE\)' "$WORK/serial.txt" | sed 's/^/  /' || true
echo "API steps (host, over HTTPS; requests and responses in $WORK/api.log):"
{ grep -a '^API \(PASS\|FAIL\)' "$WORK/api.log" 2>/dev/null || echo "API not reached"; } | sed 's/^/  /'

val() { { grep -a "^VMTEST $1" "$WORK/serial.txt" || true; } | head -n1 | sed -n "s/.*$2=\([^ ]*\).*/\1/p"; }
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
# Milliseconds as seconds with one decimal, "?" when not measured.
secs() { if [ -n "$1" ]; then awk -v m="$1" 'BEGIN{printf "%.1f", m/1000}'; else printf '?'; fi; }
echo "vm-test timings:"
printf '  downloads            %6.1f s\n' "$(awk -v m="$T_DOWNLOAD_MS" 'BEGIN{print m/1000}')"
printf '  preparation (host)   %6.1f s (downloads, kernel, gpio-sim, initramfs)\n' "$(awk -v m="$T_PREP_MS" 'BEGIN{print m/1000}')"
echo   "  kernel boot to /init ${BOOTED:-?} s (guest uptime)"
echo   "  qemu start to READY  $(awk -v m="${T_READY_HOST:-0}" 'BEGIN{printf "%.1f", m/1000}') s (host clock)"
echo   "  boot to READY        ${READY_UPTIME:-?} s (guest uptime at \"safe-yolo ready\")"
echo   "  daemon start->READY  ${START_TO_READY:-?} s"
echo   "  multi-planar check   $(secs "${T_MPLANE_MS:-}") s (host: discovery read, a preview in each of $MPLANE_FORMATS with its colour bars checked)"
echo   "  camera PUT to online $(secs "$T_CAMERA_ONLINE_MS") s (host: PUT /api/v1/cameras/$CAMERA_ID to its health \"online\", i.e. its first frame)"
echo   "  rule PUT to alarm    ${RULE_TO_ALARM:-?} s, second rule ${RULE2_TO_ALARM:-?} s (person frames loop all along; an inference takes ~20-70 s under TCG)"
echo   "  person frame to siren ${FRAME_TO_OUTPUT_MS:-?} ms (daemon: capture of the frame that raised the alarm to the siren line, glass_to_output_ms)"
echo   "  unplug to offline    ${UNPLUG_TO_ALARM:-?} s (guest: vivid unbound to \"alarm raised\" of $OFFLINE_RULE_ID); event in the API $(secs "$T_OFFLINE_EVENT_MS") s after the guest reported it"
echo   "  API steps (host)     $(awk -v m="${T_API_MS:-0}" 'BEGIN{printf "%.1f", m/1000}') s (READY to the last API check)"
echo   "  capture fps          vivid loop ${VIVID_FPS:-?}; daemon ${DAEMON_FPS:-n/a}; ${DETECTED:-?} of ${CAPTURED:-?} frames detected (one inference at a time)"
printf '  VM run               %6.1f s\n' "$(awk -v m="$T_VM_MS" 'BEGIN{print m/1000}')"
printf '  whole test           %6.1f s\n' "$(awk -v m="$T_ALL_MS" 'BEGIN{print m/1000}')"

NEGATIVE="${BREAK:+SAFEYOLO_VM_BREAK=$BREAK}"
[ "$SKIP_CAMERA_ADD" = 1 ] && NEGATIVE="${NEGATIVE:+$NEGATIVE }SAFEYOLO_VM_SKIP_CAMERA_ADD=1"
if grep -qa "^VMTEST RESULT PASS" "$WORK/serial.txt" && [ "$API_FAILS" -eq 0 ] && [ "$API_DONE" = 1 ]; then
    echo "vm-test: PASS${NEGATIVE:+ (with $NEGATIVE: the test did not notice!)}"
    exit 0
fi
echo "vm-test: FAIL${NEGATIVE:+ (expected: $NEGATIVE)}"
echo "===== VM serial log ($SERIAL) ====="
sed '/^VMTEST-DAEMON-LOG-BEGIN/,/^VMTEST-DAEMON-LOG-END/d' "$WORK/serial.txt"
echo "===== API log ($WORK/api.log) ====="
cat "$WORK/api.log" 2>/dev/null || true
echo "===== daemon log ====="
cat "$WORK/daemon.log"
exit 1

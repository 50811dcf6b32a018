# Shared harness of the two VM runs (sourced by tests/vm/run.sh, the
# initramfs run, and tests/vm/systemd.sh, the systemd run): host tools,
# the shared preparation under the cache lock, the camera and footage both
# runs loop through vivid, the qemu boot, the serial handshake and the report.
# Each run has a work folder of its own ($WORK) and a port of its own, so the
# two may overlap; only the preparation of the shared cache (downloads, kernel,
# busybox, frames, feeder, root file system) is one run at a time. (On 2 cores
# they are slower together than one after the other: .ci/run runs them in turn.)
# shellcheck shell=bash
# Variables set here are read by the runs and api.sh:
# shellcheck disable=SC2034

log() { printf 'vm-test: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Seconds since the epoch with milliseconds, for the timing report.
now_ms() { date +%s%3N; }

# Runs apt-get update once per run, and only when something must be fetched.
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        $SUDO apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
}

# Adds bookworm-backports to apt's sources when it is missing (qemu 10 lives there).
ensure_backports() {
    if grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return
    fi
    log "adding the bookworm-backports apt source"
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    APT_UPDATED=0
    apt_update_once
}

# Installs the host tools the test needs (idempotent).
#   qemu-system-x86 (bookworm-backports: bookworm's 7.2 breaks the
#       preinstalled qemu-utils 10 and boots slower), gcc/make/libc6-dev
#       (gpio-sim module, static feeder), kmod (module dependencies), cpio,
#       xz-utils, ffmpeg (footage to raw frames, ffprobe: the preview's size),
#       binutils (strip), curl/openssl/jq (api.sh), python3 (a free port;
#       the factory configuration checked against its generator).
install_host_deps() {
    local need=() pkg
    for pkg in gcc make libc6-dev kmod cpio xz-utils ffmpeg binutils curl openssl jq python3; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        apt_update_once
        log "apt-get install ${need[*]}"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    local qv
    qv="$(dpkg-query -W -f '${Version}' qemu-system-x86 2>/dev/null || true)"
    case "$qv" in
        *bpo12*) ;;
        *)
            ensure_backports
            apt_update_once
            log "apt-get install qemu-system-x86 from bookworm-backports (installed: ${qv:-none})"
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
                -t bookworm-backports qemu-system-x86 >/dev/null
            ;;
    esac
}

# The candidate version of a package ("" when apt does not know it).
apt_candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}' | sed 's/(none)//'
}

# Downloads package $1 at version $2 into $DEBS (kept across runs) and prints
# the path of the .deb.
fetch_deb() {
    local name="$1" version="$2" file
    file="$DEBS/${name}_${version//:/%3a}_$(dpkg --print-architecture).deb"
    [ -f "$file" ] || file="$DEBS/${name}_${version//:/%3a}_all.deb"
    if [ ! -s "$file" ]; then
        log "downloading $name $version"
        (cd "$DEBS" && apt-get download -qq "$name=$version" >/dev/null 2>&1) \
            || { apt_update_once; (cd "$DEBS" && apt-get download -qq "$name=$version" >/dev/null); } \
            || die "apt-get download $name=$version failed"
        file="$(find "$DEBS" -maxdepth 1 -name "${name}_${version//:/%3a}_*.deb" | head -n1)"
    fi
    printf '%s\n' "$file"
}

HERE="${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
REPO="${REPO:-$(cd "$HERE/../.." && pwd)}"
CACHE="${SAFEYOLO_VM_CACHE:-/var/cache/safe-yolo/vm}"
DEBS="$CACHE/debs"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/safe-yolo/target}"
PORT="${SAFEYOLO_VM_PORT:-}"
# qemu64 (SSE2 only) runs inference ~1.5x faster than "max" under TCG: AVX/FMA
# are emulated with helpers. The daemon is built for baseline x86-64.
VM_CPU="${SAFEYOLO_VM_CPU:-qemu64}"
MODEL_DIR="$REPO/models/nanodet-m-416-coco"
# What the image installs for the qemu board: board/qemu-vm.toml and the
# configuration generated from it (tests/image/gen-default-configs.py).
FACTORY_CONFIG="$REPO/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo-data/files/config/qemu-vm.toml"

# What the camera delivers in both runs: vivid's HDMI input at 640x480p60
# (DMT timings), NV12, looped from its output node. The footage (768x576,
# 10 fps) scales to 640x480 exactly, so the zone coordinates match the demo
# configuration's. Frames 1-60 of vtest: people walk through the zone all along.
CAM_WIDTH=640
CAM_HEIGHT=480
CAM_FOURCC=NV12
CAM_FORMAT=nv12
SRC_FPS=10
FRAME_FIRST=1
FRAME_COUNT=60
FRAMES_DIR="$REPO/demo-media/vtest-frames"
FRAMES_RAW="$CACHE/build/frames-${CAM_WIDTH}x${CAM_HEIGHT}-${CAM_FOURCC}-${FRAME_FIRST}-${FRAME_COUNT}.raw"
FEEDER="$CACHE/build/feeder"
# Defined through the HTTPS API by tests/vm/api.sh.
CAMERA_ID="walkway"
DOOR_RULE_ID="vm-guard-door"

T_BEGIN="$(now_ms)"
T_DOWNLOAD_MS=0

# The shared cache is prepared by one run at a time; the runs themselves
# (each in its own work folder, qemu on a port of its own) may overlap.
vm_lock() {
    mkdir -p "$DEBS" "$CACHE/build"
    exec 9>"$CACHE/.lock"
    flock 9
}
vm_unlock() { flock -u 9; exec 9>&-; }

# busybox-static from apt, unpacked into the cache: $BUSYBOX.
prepare_busybox() {
    local ver deb t0
    ver="$(apt_candidate busybox-static)"
    [ -n "$ver" ] || { apt_update_once; ver="$(apt_candidate busybox-static)"; }
    [ -n "$ver" ] || die "busybox-static is not available from apt"
    BUSYBOX="$CACHE/busybox-${ver//:/_}/bin/busybox"
    if [ ! -x "$BUSYBOX" ]; then
        t0="$(now_ms)"
        deb="$(fetch_deb busybox-static "$ver")"
        T_DOWNLOAD_MS=$(( T_DOWNLOAD_MS + $(now_ms) - t0 ))
        rm -rf "$CACHE"/busybox-*
        dpkg -x "$deb" "$CACHE/busybox-${ver//:/_}"
    fi
}

# The demo frames as raw frames for the feeder, and the feeder itself
# (static C, no dependencies): $FRAMES_RAW, $FEEDER.
prepare_footage_and_feeder() {
    if [ ! -f "$FRAMES_DIR/0001.jpg" ]; then
        log "demo footage missing: running scripts/demo-media.sh"
        "$REPO/scripts/demo-media.sh"
    fi
    if [ ! -s "$FRAMES_RAW" ]; then
        log "converting $FRAME_COUNT demo frames to raw $CAM_FOURCC ${CAM_WIDTH}x${CAM_HEIGHT}"
        ffmpeg -nostdin -loglevel error -y -start_number "$FRAME_FIRST" -i "$FRAMES_DIR/%04d.jpg" \
            -frames:v "$FRAME_COUNT" -vf "scale=${CAM_WIDTH}:${CAM_HEIGHT}" \
            -pix_fmt "${CAM_FOURCC,,}" -f rawvideo "$FRAMES_RAW.tmp"
        mv "$FRAMES_RAW.tmp" "$FRAMES_RAW"
    fi
    if [ ! -x "$FEEDER" ] || [ "$HERE/feeder/feeder.c" -nt "$FEEDER" ]; then
        log "building the feeder"
        gcc -static -O2 -Wall -Wextra -Werror -o "$FEEDER.tmp" "$HERE/feeder/feeder.c"
        mv "$FEEDER.tmp" "$FEEDER"
    fi
}

# What both runs prepare in the shared cache: host tools, the kernel and its
# modules, busybox, the footage and the feeder. Called under vm_lock.
prepare_shared() {
    install_host_deps
    resolve_kernel
    prepare_kernel
    prune_kernel_cache
    prepare_busybox
    prepare_footage_and_feeder
}

# The daemon CI built (dev profile), reused: $DAEMON. The model manifest and
# the factory configuration of the VM board, checked.
find_daemon_and_model() {
    DAEMON="${SAFEYOLO_VM_DAEMON:-$CARGO_TARGET_DIR/debug/safe-yolo}"
    if [ ! -x "$DAEMON" ]; then
        log "no daemon at $DAEMON: building it (scripts/build.sh)"
        "$REPO/scripts/build.sh" >/dev/null
    fi
    [ -x "$DAEMON" ] || die "no daemon binary at $DAEMON"
    log "daemon: $DAEMON ($(stat -c %y "$DAEMON" | cut -d. -f1))"
    [ -f "$MODEL_DIR/model.toml" ] || die "no model manifest $MODEL_DIR/model.toml (run models/fetch-models.sh)"
    python3 "$REPO/tests/image/gen-default-configs.py" >/dev/null \
        || die "the factory configurations are stale (python3 tests/image/gen-default-configs.py --write)"
    grep -q '^board = "qemu-vm"$' "$FACTORY_CONFIG" || die "$FACTORY_CONFIG is not for the qemu-vm board"
}

# The guest's /etc/vmtest.env lines both runs share: the camera, the
# gpio-sim lines (numbered as the qemu-vm board profile names them) and the
# handshake's timeouts. Each run appends its own.
vm_guest_env() {
    cat <<ENV
CAMERA_ID=$CAMERA_ID
DOOR_RULE_ID=$DOOR_RULE_ID
CAM_WIDTH=$CAM_WIDTH
CAM_HEIGHT=$CAM_HEIGHT
CAM_FOURCC=$CAM_FOURCC
SRC_FPS=$SRC_FPS
LINE_SIREN=0
LINE_RELAY=1
LINE_HEALTHY=2
LINE_ACK=3
LINE_DOOR=4
READY_TIMEOUT_S=180
HOST_TIMEOUT_S=180
ENV
}

# Boots qemu (TCG, 2 vCPUs) in the background: $QEMU is its pid, killed when
# the script exits. The guest's serial console goes to $SERIAL; its second
# serial port (ttyS1) is the host -> guest channel, a qemu pipe chardev on the
# FIFOs $CTL.in (host to guest) and $CTL.out (unused); the host holds $CTL.in
# open read-write on fd 8, so its writes never block. qemu's user network
# forwards 127.0.0.1:$PORT (a free port unless SAFEYOLO_VM_PORT) to the
# guest's 443.
#   vm_boot TIMEOUT_S MEMORY_MIB KERNEL_CMDLINE [qemu args...]
vm_boot() {
    local timeout_s="$1" mem="$2" append="$3"
    shift 3
    SERIAL="$WORK/serial.log"
    [ -n "$PORT" ] || PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    CTL="$WORK/ctl"
    mkfifo "$CTL.in" "$CTL.out"
    exec 8<>"$CTL.in"
    T_PREP_MS=$(( $(now_ms) - T_BEGIN ))
    T_BOOT="$(now_ms)"
    log "booting the VM (TCG, 2 vCPUs, $mem MiB); serial console in $SERIAL"
    timeout "$timeout_s" qemu-system-x86_64 \
        -accel tcg -cpu "$VM_CPU" -smp 2 -m "$mem" \
        -kernel "$KDIR/vmlinux" -initrd "$WORK/initramfs.cpio" \
        -append "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init $append" \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:443" \
        -device virtio-net-pci,netdev=n0,romfile= \
        -chardev "pipe,id=ctl,path=$CTL" \
        -display none -monitor none -serial "file:$SERIAL" -serial chardev:ctl "$@" &
    QEMU=$!
    # shellcheck disable=SC2064
    trap "kill $QEMU 2>/dev/null || true" EXIT
}

# Waits until the serial log has a line matching $1, or qemu exits.
wait_serial() {
    while kill -0 "$QEMU" 2>/dev/null; do
        grep -qa "$1" "$SERIAL" 2>/dev/null && return 0
        sleep 0.5
    done
    grep -qa "$1" "$SERIAL" 2>/dev/null
}

# Once the guest reports READY, runs the host's API steps (the function named
# $1), then waits for qemu to end: $API_DONE, $T_READY_HOST, $T_API_MS,
# $T_VM_MS, $T_ALL_MS.
vm_run_api_steps() {
    API_DONE=0
    T_API_MS=""
    if wait_serial "^VMTEST READY"; then
        T_READY_HOST=$(( $(now_ms) - T_BOOT ))
        log "daemon ready in the VM after $(( T_READY_HOST / 1000 )) s (host clock)"
        local t_api
        t_api="$(now_ms)"
        "$1" && API_DONE=1
        T_API_MS=$(( $(now_ms) - t_api ))
    fi
    wait "$QEMU" || true
    trap - EXIT
    T_VM_MS=$(( $(now_ms) - T_BOOT ))
    T_ALL_MS=$(( $(now_ms) - T_BEGIN ))
}

# The serial log without carriage returns ($WORK/serial.txt), the section
# between the markers $1-BEGIN and $1-END (the daemon's log or the guest's
# journal) in the file $2, and the guest's and the host's check lines (the
# guest's selected by the pattern $3).
vm_results() {
    tr -d '\r' <"$SERIAL" >"$WORK/serial.txt"
    sed -n "/^$1-BEGIN/,/^$1-END/p" "$WORK/serial.txt" | sed '1d;$d' >"$2"
    grep -a "^VMTEST \\($3\\)" "$WORK/serial.txt" | sed 's/^/  /' || true
    echo "API steps (host, over HTTPS; requests and responses in $WORK/api.log):"
    { grep -a '^API \(PASS\|FAIL\)' "$WORK/api.log" 2>/dev/null || echo "API not reached"; } | sed 's/^/  /'
}

# The value of KEY=value on the first guest line "VMTEST $1...".
val() { { grep -a "^VMTEST $1" "$WORK/serial.txt" || true; } | head -n1 | sed -n "s/.*$2=\([^ ]*\).*/\1/p"; }
# Milliseconds as seconds with one decimal, "?" when not measured.
secs() { if [ -n "$1" ]; then awk -v m="$1" 'BEGIN{printf "%.1f", m/1000}'; else printf '?'; fi; }

# The verdict: PASS when the guest said so, no API step failed and every step
# ran; a planted defect ($2, "" for none) must make it FAIL. On failure, the
# serial console without the section $3, the API log and that section ($4).
#   vm_verdict NAME NEGATIVE SECTION_MARKER SECTION_FILE
vm_verdict() {
    local name="$1" negative="$2" marker="$3" section="$4"
    if grep -qa "^VMTEST RESULT PASS" "$WORK/serial.txt" && [ "$API_FAILS" -eq 0 ] && [ "$API_DONE" = 1 ]; then
        echo "$name: PASS${negative:+ (with $negative: the test did not notice!)}"
        exit 0
    fi
    echo "$name: FAIL${negative:+ (expected: $negative)}"
    echo "===== VM serial console ($SERIAL) ====="
    sed "/^$marker-BEGIN/,/^$marker-END/d" "$WORK/serial.txt"
    echo "===== API log ($WORK/api.log) ====="
    cat "$WORK/api.log" 2>/dev/null || true
    echo "===== $marker ($section) ====="
    cat "$section"
    exit 1
}

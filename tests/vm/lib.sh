# Shared helpers of the VM test (sourced by tests/vm/run.sh).
# shellcheck shell=bash

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

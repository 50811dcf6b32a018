# Kernel side of the VM test (sourced by tests/vm/run.sh): resolves the
# current Debian bookworm kernel ABI from the linux-image-amd64 metapackage,
# downloads the image, headers, kbuild and sources, and prepares in
# $KDIR (cached per kernel version):
#   vmlinux        uncompressed kernel (qemu boots it through PVH, faster than bzImage under TCG)
#   modules/       the modules the guest loads, plus modules.order (insmod order)
#   gpio-sim.ko    gpio-sim built out of tree (Debian's 6.1 does not build it)
# shellcheck shell=bash

# Modules the guest needs, by name (dependencies are added by modprobe).
GUEST_MODULES=(vivid configfs virtio_pci virtio_net)

resolve_kernel() {
    local meta_dep
    if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then apt_update_once; fi
    # The metapackage's candidate (bookworm / bookworm-security; backports has a
    # lower priority) depends on linux-image-<abi>-amd64.
    meta_dep="$(apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: \(linux-image-[0-9.]*-[0-9]*-amd64\)$/\1/p' | head -n1)"
    [ -n "$meta_dep" ] || die "cannot resolve the kernel from linux-image-amd64"
    KPKG="$meta_dep"
    KVER="${KPKG#linux-image-}"              # 6.1.0-56-amd64
    KABI="${KVER%-amd64}"                    # 6.1.0-56
    KSERIES="${KVER%%.0-*}"                  # 6.1
    KVERSION="$(apt_candidate "$KPKG")"      # 6.1.192-2
    [ -n "$KVERSION" ] || die "no candidate version for $KPKG"
    KDIR="$CACHE/kernel-$KVER-$KVERSION"
    log "kernel: $KPKG $KVERSION"
}

# $KVERSION when apt offers package $1 at that version, else $1's candidate.
same_or_candidate() {
    if apt-cache show "$1=$KVERSION" >/dev/null 2>&1; then
        echo "$KVERSION"
    else
        apt_candidate "$1"
    fi
}

# Deletes other kernels, and the packages they were made from, from the cache.
prune_kernel_cache() {
    local d
    for d in "$CACHE"/kernel-*; do
        [ -d "$d" ] && [ "$d" != "$KDIR" ] && { log "pruning $d"; rm -rf "$d"; }
    done
    [ -f "$KDIR/debs.txt" ] || return 0
    find "$DEBS" -maxdepth 1 -name 'linux-*.deb' | while read -r d; do
        grep -qxF "$(basename "$d")" "$KDIR/debs.txt" || { log "pruning $d"; rm -f "$d"; }
    done
}

prepare_kernel() {
    if [ -f "$KDIR/ready" ]; then
        log "kernel cached in $KDIR"
        return
    fi
    local t0 img hdr common kbuild src tmp
    t0="$(now_ms)"
    img="$(fetch_deb "$KPKG" "$KVERSION")"
    hdr="$(fetch_deb "linux-headers-$KVER" "$KVERSION")"
    common="$(fetch_deb "linux-headers-$KABI-common" "$KVERSION")"
    # kbuild and the sources: the kernel's own version when the archive still
    # has it, else the current one (gpio-sim.c changes little within a series).
    kbuild="$(fetch_deb "linux-kbuild-$KSERIES" "$(same_or_candidate "linux-kbuild-$KSERIES")")"
    src="$(fetch_deb "linux-source-$KSERIES" "$(same_or_candidate "linux-source-$KSERIES")")"
    T_DOWNLOAD_MS=$(( T_DOWNLOAD_MS + $(now_ms) - t0 ))

    rm -rf "$KDIR.tmp"
    mkdir -p "$KDIR.tmp"
    tmp="$KDIR.tmp"
    log "unpacking the kernel packages"
    mkdir -p "$tmp/root"
    for deb in "$img" "$hdr" "$common" "$kbuild"; do dpkg -x "$deb" "$tmp/root"; done
    # Only four files of the sources are needed: stream them out of the tarball.
    mkdir -p "$tmp/src"
    dpkg-deb --fsys-tarfile "$src" \
        | tar -xO "./usr/src/linux-source-$KSERIES.tar.xz" \
        | tar -xJ -C "$tmp/src" --strip-components=1 \
            "linux-source-$KSERIES/drivers/gpio/gpio-sim.c" \
            "linux-source-$KSERIES/drivers/gpio/gpiolib.h" \
            "linux-source-$KSERIES/kernel/irq/irq_sim.c" \
            "linux-source-$KSERIES/scripts/extract-vmlinux"

    log "extracting vmlinux"
    sh "$tmp/src/scripts/extract-vmlinux" "$tmp/root/boot/vmlinuz-$KVER" >"$tmp/vmlinux" \
        || die "extract-vmlinux failed"

    log "resolving module dependencies"
    depmod -b "$tmp/root" "$KVER"
    mkdir -p "$tmp/modules"
    : >"$tmp/modules/modules.order"
    local m line path base
    for m in "${GUEST_MODULES[@]}"; do
        modprobe -d "$tmp/root" -S "$KVER" --show-depends "$m" | while read -r line; do
            case "$line" in
                insmod\ *)
                    path="${line#insmod }"; path="${path%% *}"
                    base="$(basename "$path")"
                    case "$base" in
                        *.ko.xz) xz -dc "$path" >"$tmp/modules/${base%.xz}"; base="${base%.xz}" ;;
                        *.ko.zst) zstd -qdc "$path" >"$tmp/modules/${base%.zst}"; base="${base%.zst}" ;;
                        *) cp "$path" "$tmp/modules/$base" ;;
                    esac
                    grep -qxF "$base" "$tmp/modules/modules.order" || echo "$base" >>"$tmp/modules/modules.order"
                    ;;
            esac
        done
    done

    build_gpio_sim "$tmp"
    cp "$tmp/gpio-sim.ko" "$tmp/modules/gpio-sim.ko"
    echo gpio-sim.ko >>"$tmp/modules/modules.order"

    for deb in "$img" "$hdr" "$common" "$kbuild" "$src"; do basename "$deb"; done >"$tmp/debs.txt"
    rm -rf "$tmp/root" "$tmp/src" "$tmp/build"
    touch "$tmp/ready"
    rm -rf "$KDIR"
    mv "$tmp" "$KDIR"
    log "kernel prepared in $(( ($(now_ms) - t0) / 1000 )) s (downloads included)"
}

# Builds gpio-sim out of tree against the unpacked headers ($1/root).
build_gpio_sim() {
    local tmp="$1" b="$1/build" hdrs
    hdrs="$tmp/root/usr/src/linux-headers-$KVER"
    # The headers' Makefile includes the -common tree by its absolute /usr/src path,
    # and the scripts/tools links point into /usr/lib/linux-kbuild-*: redirect both.
    sed -i "s|/usr/src/linux-headers-$KABI-common|$tmp/root/usr/src/linux-headers-$KABI-common|g" "$hdrs/Makefile"
    local l target
    for l in "$hdrs"/* "$tmp/root/usr/src/linux-headers-$KABI-common"/*; do
        [ -L "$l" ] || continue
        target="$(readlink "$l")"
        case "$target" in
            /*) ln -sfn "$tmp/root$target" "$l" ;;
        esac
    done
    mkdir -p "$b"
    cp "$tmp/src/drivers/gpio/gpio-sim.c" "$b/gpio-sim-main.c"
    cp "$tmp/src/drivers/gpio/gpiolib.h" "$b/gpiolib.h"
    cp "$tmp/src/kernel/irq/irq_sim.c" "$b/irq_sim.c"
    # irq_to_desc is not exported to modules.
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$b/irq_sim.c"
    grep -q 'generic_handle_irq(irqnum);' "$b/irq_sim.c" || die "irq_sim.c patch did not apply"
    cp "$HERE/gpio-sim/Kbuild" "$b/Kbuild"
    log "building gpio-sim.ko"
    make -s -C "$hdrs" M="$b" modules >"$b/build.log" 2>&1 || { cat "$b/build.log" >&2; die "gpio-sim build failed"; }
    cp "$b/gpio-sim.ko" "$tmp/gpio-sim.ko"
}

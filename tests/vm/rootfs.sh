# The guest root file system of the systemd VM test (sourced by
# tests/vm/systemd.sh): Debian bookworm made by mmdebstrap, with systemd and
# udev as the image has them, and the run-time libraries the daemon CI built
# links (checked with ldd inside the tree by systemd.sh). Cached in
# $CACHE/sd-rootfs-<hash>, the hash taken over the package list, the suite and
# this file: rebuilt only when one of them changes.
# shellcheck shell=bash

SD_SUITE=bookworm
SD_MIRROR=http://deb.debian.org/debian
# systemd, systemd-sysv, udev, dbus, kmod: PID 1, device management and
#     module loading as on the appliance (systemd-networkd is in systemd);
# libturbojpeg0, libgstreamer1.0-0, libgstreamer-plugins-base1.0-0: what the
#     daemon links (libunwind8, libdw1, liborc come as their dependencies);
# jq: the guest side of the test reads the daemon's structured journal
#     fields with it (test tooling, not part of the image).
SD_PACKAGES="systemd,systemd-sysv,udev,dbus,kmod,iproute2,libturbojpeg0,libgstreamer1.0-0,libgstreamer-plugins-base1.0-0,jq"

# Prints the cache key of the base tree.
sd_rootfs_key() {
    { echo "$SD_SUITE $SD_MIRROR $SD_PACKAGES"; cat "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16
}

# Sets SD_BASE to the cached base tree, building it when missing.
prepare_sd_rootfs() {
    local key t0
    key="$(sd_rootfs_key)"
    SD_BASE="$CACHE/sd-rootfs-$key"
    if [ -f "$SD_BASE/ready" ]; then
        log "guest root file system cached in $SD_BASE"
        SD_ROOTFS_BUILD_MS=0
        return
    fi
    command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (scripts/install-deps.sh installs it)"
    t0="$(now_ms)"
    rm -rf "$SD_BASE.tmp"
    mkdir -p "$SD_BASE.tmp"
    log "building the guest root file system with mmdebstrap ($SD_SUITE: $SD_PACKAGES)"
    # Documentation, manual pages and translations are left out: the image
    # ships none either, and they triple the tree.
    if ! timeout 900 mmdebstrap --variant=minbase --mode=root --include="$SD_PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        "$SD_SUITE" "$SD_BASE.tmp/root" "$SD_MIRROR" >"$SD_BASE.tmp/mmdebstrap.log" 2>&1; then
        tail -n 30 "$SD_BASE.tmp/mmdebstrap.log" >&2
        die "mmdebstrap failed (log: $SD_BASE.tmp/mmdebstrap.log)"
    fi
    # What a boot of the appliance does not run: timers of a desktop/server
    # (apt, fstrim, e2scrub, dpkg backups) and a login prompt on tty1.
    local u
    for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        fstrim.timer e2scrub_reap.service getty@tty1.service systemd-pstore.service; do
        systemctl --root="$SD_BASE.tmp/root" disable "$u" >/dev/null 2>&1 || true
    done
    rm -rf "$SD_BASE.tmp/root/var/cache/apt/archives"/*.deb "$SD_BASE.tmp/root/var/lib/apt/lists"/*_Packages
    touch "$SD_BASE.tmp/ready"
    local d
    for d in "$CACHE"/sd-rootfs-*; do
        [ -d "$d" ] && [ "$d" != "$SD_BASE.tmp" ] && { log "pruning $d"; rm -rf "$d"; }
    done
    mv "$SD_BASE.tmp" "$SD_BASE"
    SD_ROOTFS_BUILD_MS=$(( $(now_ms) - t0 ))
    log "guest root file system built in $(( SD_ROOTFS_BUILD_MS / 1000 )) s ($(du -sm "$SD_BASE/root" | cut -f1) MiB)"
}

# Kernel modules for the systemd guest, with their tree paths (kmod and udev
# load them by name and alias there, as on the appliance), from the kernel
# image package kernel.sh fetched: the VM test's modules plus the virtio
# block device and ext4 (the root file system). Sets SD_KMODS (cached per
# kernel; a lib/modules/<kver> tree) and SD_INITRD_MODS (the list the
# initramfs inserts, in order, to mount the root).
SD_EXTRA_MODULES=(virtio_pci virtio_blk ext4 crc32c_generic)
prepare_sd_modules() {
    SD_KMODS="$CACHE/sd-kmods-$KVER-$KVERSION-$(echo "${GUEST_MODULES[*]} ${SD_EXTRA_MODULES[*]}" | sha256sum | cut -c1-8)"
    if [ ! -f "$SD_KMODS/ready" ]; then
        local img tmp m line path rel
        img="$(fetch_deb "$KPKG" "$KVERSION")"
        tmp="$SD_KMODS.tmp"
        rm -rf "$tmp"
        mkdir -p "$tmp/x" "$tmp/lib/modules/$KVER"
        log "unpacking the kernel modules for the systemd guest"
        dpkg -x "$img" "$tmp/x"
        depmod -b "$tmp/x" "$KVER"
        : >"$tmp/initrd.order"
        for m in "${GUEST_MODULES[@]}" "${SD_EXTRA_MODULES[@]}"; do
            modprobe -d "$tmp/x" -S "$KVER" --show-depends "$m" | while read -r line; do
                case "$line" in
                    insmod\ *)
                        path="${line#insmod }"; path="${path%% *}"
                        rel="${path#"$tmp/x/lib/modules/$KVER/"}"
                        rel="${rel#"$tmp/x/usr/lib/modules/$KVER/"}"
                        mkdir -p "$tmp/lib/modules/$KVER/$(dirname "$rel")"
                        case "$rel" in
                            *.ko.xz) xz -dc "$path" >"$tmp/lib/modules/$KVER/${rel%.xz}"; rel="${rel%.xz}" ;;
                            *.ko.zst) zstd -qdc "$path" >"$tmp/lib/modules/$KVER/${rel%.zst}"; rel="${rel%.zst}" ;;
                            *) cp "$path" "$tmp/lib/modules/$KVER/$rel" ;;
                        esac
                        case " ${SD_EXTRA_MODULES[*]} " in
                            *" $m "*) grep -qxF "$rel" "$tmp/initrd.order" || echo "$rel" >>"$tmp/initrd.order" ;;
                        esac
                        ;;
                esac
            done
        done
        cp "$tmp/x/lib/modules/$KVER/modules.builtin" "$tmp/x/lib/modules/$KVER/modules.order" \
            "$tmp/lib/modules/$KVER/" 2>/dev/null || true
        cp "$tmp/x/lib/modules/$KVER/modules.builtin.modinfo" "$tmp/lib/modules/$KVER/" 2>/dev/null || true
        mkdir -p "$tmp/lib/modules/$KVER/extra"
        cp "$KDIR/gpio-sim.ko" "$tmp/lib/modules/$KVER/extra/gpio-sim.ko"
        rm -rf "$tmp/x"
        touch "$tmp/ready"
        rm -rf "$SD_KMODS"
        mv "$tmp" "$SD_KMODS"
    fi
    # shellcheck disable=SC2034 # read by systemd.sh
    mapfile -t SD_INITRD_MODS <"$SD_KMODS/initrd.order"
    local d
    for d in "$CACHE"/sd-kmods-*; do
        [ -d "$d" ] && [ "$d" != "$SD_KMODS" ] && rm -rf "$d"
    done
    return 0
}

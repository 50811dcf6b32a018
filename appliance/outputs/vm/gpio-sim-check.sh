#!/usr/bin/env bash
# Runs examples/gpio_sim_check.rs against the kernel's gpio-sim in a qemu VM, so the
# real GPIO character-device backend (uAPI v2) is exercised end to end.
#
# Needs (Debian bookworm): qemu-system-x86 (10.x from bookworm-backports), gcc, make,
# xz-utils, cpio, and the Debian archive for apt-get download (run apt-get update once).
# First run: ~1-2 min of downloads and builds plus the cargo build; cached runs ~11 s.
# Debian's 6.1 kernel does not ship gpio-sim, so it is built out of tree here from
# linux-source-6.1 (see shared notes: qemu-appliance-vm.md).
#
# Exit codes: 0 all checks passed, 1 a check failed or the VM misbehaved,
# 77 skipped because qemu-system-x86_64 is missing.
# Env: GPIO_VM_WORK (cache dir, default /var/cache/safe-yolo/gpio-sim-vm),
#      CARGO_TARGET_DIR (default <workspace>/target).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ws=$(cd "$here/../../.." && pwd)
work=${GPIO_VM_WORK:-/var/cache/safe-yolo/gpio-sim-vm}
target_dir=${CARGO_TARGET_DIR:-$ws/target}
triple=x86_64-unknown-linux-gnu

if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "SKIP: qemu-system-x86_64 is not installed" >&2
    exit 77
fi
mkdir -p "$work"
cd "$work"

# The running ABI of Debian's current 6.1 kernel, from the metapackage.
image_pkg=$(apt-cache depends linux-image-amd64 | grep -o 'linux-image-6\.1\.[0-9.-]*-amd64' | head -n1)
abi=${image_pkg#linux-image-}
[ -n "$abi" ] || { echo "cannot resolve the kernel ABI from linux-image-amd64" >&2; exit 1; }
kver=$abi
echo "kernel $kver"

# Everything the VM needs for this kernel ends up in keep-$abi; the rest is deleted.
keep="keep-$abi"
if [ ! -f "$keep/gpio-sim.ko" ]; then
    rm -rf debs x src "mod-$abi" "$keep"
    mkdir -p debs x src "mod-$abi"
    (cd debs && apt-get download "linux-image-$abi" "linux-headers-$abi" \
        "linux-headers-${abi%-amd64}-common" linux-kbuild-6.1 linux-source-6.1 busybox-static)
    for d in debs/*.deb; do dpkg -x "$d" x; done
    headers="$work/x/usr/src/linux-headers-$abi"
    # The headers' Makefile includes the -common tree by absolute path.
    sed -i "s|include /usr/src/|include $work/x/usr/src/|" "$headers/Makefile"
    tar -xJf x/usr/src/linux-source-6.1.tar.xz -C src \
        linux-source-6.1/drivers/gpio/gpio-sim.c linux-source-6.1/drivers/gpio/gpiolib.h \
        linux-source-6.1/kernel/irq/irq_sim.c
    s=src/linux-source-6.1
    cp "$s/drivers/gpio/gpio-sim.c" "mod-$abi/gpio-sim-main.c"
    cp "$s/drivers/gpio/gpiolib.h" "$s/kernel/irq/irq_sim.c" "mod-$abi/"
    # irq_to_desc is not exported to modules.
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "mod-$abi/irq_sim.c"
    printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' > "mod-$abi/Kbuild"
    make -s -C "$headers" M="$work/mod-$abi" modules
    mkdir -p "$keep.tmp"
    cp "x/boot/vmlinuz-$kver" x/bin/busybox "x/lib/modules/$kver/kernel/fs/configfs/configfs.ko" \
        "mod-$abi/gpio-sim.ko" "$keep.tmp/"
    mv "$keep.tmp" "$keep"
    rm -rf debs x src "mod-$abi"
fi

# The check program, statically linked so the initramfs needs no libc.
(cd "$ws" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
    cargo build -p safe-yolo-outputs --example gpio_sim_check --target "$triple")
check="$target_dir/$triple/debug/examples/gpio_sim_check"

rm -rf initrd && mkdir -p initrd/bin initrd/proc initrd/sys initrd/dev initrd/lib
cp "$keep/busybox" initrd/bin/
cp "$keep/configfs.ko" "$keep/gpio-sim.ko" initrd/lib/
cp "$check" initrd/check
cat > initrd/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev
insmod /lib/configfs.ko
mount -t configfs none /sys/kernel/config
insmod /lib/gpio-sim.ko
s=/sys/kernel/config/gpio-sim/sim0
mkdir $s $s/bank0
echo 8 > $s/bank0/num_lines
n=0
for name in SIREN RELAY HEALTHY ACK DOOR; do
    mkdir $s/bank0/line$n
    echo $name > $s/bank0/line$n/name
    n=$((n+1))
done
echo 1 > $s/live
/check
echo "gpio-sim-check exit $?"
poweroff -f
INIT
chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc --quiet | gzip -1 > ../initrd.gz)

timeout 300 qemu-system-x86_64 -accel tcg -cpu max -m 512 -nographic -no-reboot \
    -kernel "$keep/vmlinuz-$kver" -initrd initrd.gz \
    -append "console=ttyS0 quiet panic=-1" | tee vm.log | grep -E '^(PASS|FAIL|chip|gpio-sim-check|[0-9]+ passed)' || true
grep -q '^gpio-sim-check exit 0' vm.log

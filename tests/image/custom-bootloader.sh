#!/bin/sh
# A file-backed stand-in for U-Boot's A/B boot counting, used by RAUC's
# `bootloader=custom` backend in the CI test (tests/image/rauc-test.sh).
# It keeps the same variables the real boot script keeps in the U-Boot
# environment (see yocto/meta-safe-yolo/recipes-bsp/u-boot/files/boot.cmd.in):
#   BOOT_ORDER="A B"   slots in the order they are tried
#   BOOT_A_LEFT=3      boot attempts left for slot A (0: slot is bad)
# State file: $SAFEYOLO_BOOTENV (a shell fragment).
#
# RAUC calls:   get-primary | set-primary <bootname> | get-state <bootname>
#               | set-state <bootname> good|bad | get-current
# The test calls: boot   (what the boot script does at power-on: pick the
#               first slot in BOOT_ORDER with attempts left, spend one, and
#               print its name; exit 1 when no slot is bootable).
set -eu
env_file=${SAFEYOLO_BOOTENV:?SAFEYOLO_BOOTENV must name the boot environment file}
ATTEMPTS=3
BOOT_ORDER="A B"; BOOT_A_LEFT=$ATTEMPTS; BOOT_B_LEFT=$ATTEMPTS; BOOTED=""
# shellcheck disable=SC1090
[ -f "$env_file" ] && . "$env_file"

save() {
    tmp="$env_file.tmp"
    printf 'BOOT_ORDER="%s"\nBOOT_A_LEFT=%s\nBOOT_B_LEFT=%s\nBOOTED="%s"\n' \
        "$BOOT_ORDER" "$BOOT_A_LEFT" "$BOOT_B_LEFT" "$BOOTED" >"$tmp"
    mv "$tmp" "$env_file"
}
left() { eval "echo \$BOOT_${1}_LEFT"; }
set_left() { eval "BOOT_${1}_LEFT=$2"; }
check_name() { case "$1" in A|B) ;; *) echo "unknown slot '$1'" >&2; exit 2 ;; esac; }

cmd=${1:-}
case "$cmd" in
get-primary)
    for s in $BOOT_ORDER; do
        if [ "$(left "$s")" -gt 0 ]; then echo "$s"; exit 0; fi
    done
    exit 1 ;;
set-primary)
    check_name "$2"
    order="$2"
    for s in $BOOT_ORDER; do [ "$s" = "$2" ] || order="$order $s"; done
    BOOT_ORDER=$order
    set_left "$2" "$ATTEMPTS"
    save ;;
get-state)
    check_name "$2"
    if [ "$(left "$2")" -gt 0 ]; then echo good; else echo bad; fi ;;
set-state)
    check_name "$2"
    case "$3" in
    good) set_left "$2" "$ATTEMPTS" ;;
    bad) set_left "$2" 0 ;;
    *) echo "unknown state '$3'" >&2; exit 2 ;;
    esac
    save ;;
get-current)
    echo "$BOOTED" ;;
boot)
    for s in $BOOT_ORDER; do
        n=$(left "$s")
        if [ "$n" -gt 0 ]; then
            set_left "$s" $((n - 1))
            BOOTED=$s
            save
            echo "$s"
            exit 0
        fi
    done
    echo "no bootable slot" >&2
    exit 1 ;;
*)
    echo "usage: $0 get-primary|set-primary S|get-state S|set-state S good|bad|get-current|boot" >&2
    exit 2 ;;
esac

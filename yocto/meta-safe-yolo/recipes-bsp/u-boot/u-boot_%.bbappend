# U-Boot boards (RK3588): the A/B boot-counting script RAUC's uboot backend
# expects (BOOT_ORDER, BOOT_<slot>_LEFT) and fw_setenv for RAUC.
FILESEXTRAPATHS:prepend:safe-yolo := "${THISDIR}/files:"

DEPENDS:append:rk3588 = " u-boot-tools-native"

SRC_URI:append:rk3588 = " file://boot.cmd.in"

do_compile:append:rk3588() {
    sed -e 's#@KERNEL_IMAGETYPE@#${KERNEL_IMAGETYPE}#' \
        -e 's#@KERNEL_DEVICETREE@#${@os.path.basename(d.getVar('KERNEL_DEVICETREE').split()[0])}#' \
        ${UNPACKDIR}/boot.cmd.in > ${B}/boot.cmd
    mkimage -A arm64 -T script -C none -n "SAFE-YOLO A/B boot" -d ${B}/boot.cmd ${B}/boot.scr
}

do_deploy:append:rk3588() {
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
}

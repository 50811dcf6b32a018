# x86-64 and QEMU: GRUB with the A/B boot-counting menu RAUC's grub backend expects.
FILESEXTRAPATHS:prepend:safe-yolo := "${THISDIR}/files:"

SRC_URI:append:safe-yolo = " file://grub.cfg"

do_deploy:append:safe-yolo() {
    install -m 0644 ${UNPACKDIR}/grub.cfg ${DEPLOYDIR}/grub.cfg
}

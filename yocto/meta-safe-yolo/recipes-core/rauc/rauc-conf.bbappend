# SAFE-YOLO's RAUC system.conf and the CA that signs update bundles.
# RAUC_KEYRING_FILE names the plant's CA certificate (PEM, public part only);
# it is set by the build environment, never committed to the layer.
# Our files/system.conf replaces the placeholder of meta-rauc's recipe.
FILESEXTRAPATHS:prepend:safe-yolo := "${THISDIR}/files:"

RAUC_BOOTLOADER:safe-yolo ??= "uboot"
RAUC_BOOTLOADER:safe-yolo:x86-64 = "grub"

do_install:append:safe-yolo() {
    sed -i -e 's/@MACHINE@/${MACHINE}/' -e 's/@BOOTLOADER@/${RAUC_BOOTLOADER}/' \
        ${D}${sysconfdir}/rauc/system.conf
}

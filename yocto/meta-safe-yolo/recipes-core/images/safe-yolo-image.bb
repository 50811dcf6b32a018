SUMMARY = "SAFE-YOLO appliance image (one RAUC root file system slot)"
DESCRIPTION = "Read-only root file system with the SAFE-YOLO daemon, its \
               board profiles and models, RAUC with the boot health chain and \
               the hawkBit client. The wic image holds two such slots (A/B) \
               and a data partition."
HOMEPAGE = "https://example.invalid/safe-yolo"
BUGTRACKER = "https://example.invalid/safe-yolo/issues"
SECTION = "image"
CVE_PRODUCT = "safe-yolo"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"
IMAGE_INSTALL = "packagegroup-core-boot \
                 safe-yolo \
                 safe-yolo-data \
                 rauc \
                 rauc-mark-good \
                 rauc-hawkbit-updater \
                 e2fsprogs-mke2fs \
                 ${CORE_IMAGE_EXTRA_INSTALL} \
                 "

# Accelerator runtimes per machine (closed-source vendor packages).
IMAGE_INSTALL:append:rk3588 = " rockchip-librknnrt"
IMAGE_INSTALL:append:tegra = " onnxruntime cuda-cudart"

# A/B disk layout: boot, rootfs A, rootfs B, data (wic/safe-yolo-ab.wks.in).
WKS_FILE = "safe-yolo-ab.wks.in"
IMAGE_FSTYPES += "ext4 wic wic.bmap"
# The slots are fixed-size partitions: keep the root file system below them.
IMAGE_ROOTFS_MAXSIZE = "1572864"

# /etc/safe-yolo and /var/lib/safe-yolo live on /data (shared by both slots).
ROOTFS_POSTPROCESS_COMMAND += "safe_yolo_persistent_mounts"
safe_yolo_persistent_mounts[doc] = "Adds the /data bind mounts of the SAFE-YOLO configuration and state to fstab"
safe_yolo_persistent_mounts() {
    opts="bind,x-systemd.requires=safe-yolo-data-init.service"
    printf '%s %s none %s 0 0\n' \
        /data/safe-yolo/etc ${sysconfdir}/safe-yolo "$opts" \
        /data/safe-yolo/lib ${localstatedir}/lib/safe-yolo "$opts" \
        >> ${IMAGE_ROOTFS}${sysconfdir}/fstab
}

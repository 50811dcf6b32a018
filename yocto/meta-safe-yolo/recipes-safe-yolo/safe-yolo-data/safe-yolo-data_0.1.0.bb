SUMMARY = "SAFE-YOLO board profiles, factory configuration and detector models"
DESCRIPTION = "Board profiles (GPIO lines, camera nodes, accelerator, \
               thermal limits) for every supported board, the factory \
               configuration of the board this image is built for, and the \
               detector models with their manifests."
HOMEPAGE = "https://example.invalid/safe-yolo"
BUGTRACKER = "https://example.invalid/safe-yolo/issues"
SECTION = "misc"
CVE_PRODUCT = "safe-yolo"
LICENSE = "Apache-2.0"
# The repository's own licence text (checked against its md5 at every build).
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

PV = "0.1.0+git"

SRC_URI = "git://${SAFE_YOLO_GIT_URL};protocol=${SAFE_YOLO_GIT_PROTOCOL};branch=${SAFE_YOLO_GIT_BRANCH} \
           file://config/jetson-orin.toml \
           file://config/qemu-vm.toml \
           file://config/rk3588.toml \
           file://config/x86-64.toml \
           "
# The repository and commit come from the distro configuration
# (SAFE_YOLO_GIT_URL, SAFE_YOLO_SRCREV), as for the safe-yolo recipe.

# The factory configuration depends on the machine's board.
PACKAGE_ARCH = "${MACHINE_ARCH}"

# Which factory configuration is installed (set per machine by the distro).
SAFE_YOLO_BOARD ??= "x86-64"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${datadir}/safe-yolo/board
    install -m 0644 ${S}/board/*.toml ${D}${datadir}/safe-yolo/board/

    install -d ${D}${datadir}/safe-yolo/models/nanodet-m-416-coco
    install -m 0644 ${S}/models/nanodet-m-416-coco/model.toml \
        ${S}/models/nanodet-m-416-coco/model-fp32.onnx \
        ${S}/models/nanodet-m-416-coco/model-int8.onnx \
        ${D}${datadir}/safe-yolo/models/nanodet-m-416-coco/
    # The NPU build of the model (rknn-toolkit2, models/rknn/convert.sh).
    install -m 0644 ${S}/models/nanodet-m-416-coco/model-rk3588-int8.rknn \
        ${D}${datadir}/safe-yolo/models/nanodet-m-416-coco/

    # The factory configuration. /etc/safe-yolo is a bind mount of
    # /data/safe-yolo/etc (it survives updates); safe-yolo-data-init.service
    # seeds it from here on the first boot.
    install -d ${D}${datadir}/safe-yolo/factory
    install -m 0640 ${UNPACKDIR}/config/${SAFE_YOLO_BOARD}.toml ${D}${datadir}/safe-yolo/factory/safe-yolo.toml
    install -d ${D}${sysconfdir}/safe-yolo ${D}${localstatedir}/lib/safe-yolo

    install -d ${D}${docdir}/safe-yolo
    install -m 0644 ${S}/config/example-box.toml ${D}${docdir}/safe-yolo/
}

PACKAGES =+ "${PN}-models"
FILES:${PN}-models += "${datadir}/safe-yolo/models"
FILES:${PN} += "${datadir}/safe-yolo/board \
                ${datadir}/safe-yolo/factory \
                ${sysconfdir}/safe-yolo \
                ${localstatedir}/lib/safe-yolo"
RDEPENDS:${PN} = "${PN}-models"

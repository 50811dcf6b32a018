SUMMARY = "Signed RAUC update bundle of the SAFE-YOLO image"
DESCRIPTION = "A dm-verity RAUC bundle with the safe-yolo-image root file \
               system for one slot class. Signed with the plant's update \
               signing key; the appliance installs it into the inactive A/B slot."
HOMEPAGE = "https://example.invalid/safe-yolo"
BUGTRACKER = "https://example.invalid/safe-yolo/issues"
SECTION = "image"
CVE_PRODUCT = "safe-yolo"
LICENSE = "MIT"

# Nothing to fetch: the bundle is made from safe-yolo-image's output.
SRC_URI = ""

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "safe-yolo-${MACHINE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "SAFE-YOLO OS ${DISTRO_VERSION} for ${MACHINE}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "safe-yolo-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signing key and certificate: paths outside the layer, given by the build
# environment (kas local_conf_header or an HSM through PKCS#11 URIs).
RAUC_KEY_FILE ??= ""
RAUC_CERT_FILE ??= ""

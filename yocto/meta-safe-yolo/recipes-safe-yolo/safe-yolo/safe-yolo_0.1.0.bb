SUMMARY = "SAFE-YOLO industrial-safety CCTV daemon"
DESCRIPTION = "Watches V4L2 cameras with an on-box person detector, applies \
               zone safety rules and drives fail-safe sirens and relays over GPIO; \
               serves an HTTPS API and web UI. Runs as a hardened Type=notify \
               systemd service."
HOMEPAGE = "https://example.invalid/safe-yolo"
BUGTRACKER = "https://example.invalid/safe-yolo/issues"
SECTION = "console/utils"
CVE_PRODUCT = "safe-yolo"
LICENSE = "Apache-2.0"
# The repository's own licence text (checked against its md5 at every build).
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# bindgen (v4l crate) needs libclang at build time; JPEG uses libjpeg-turbo;
# RTSP cameras (the default `rtsp` feature) link GStreamer.
DEPENDS += "clang-native gstreamer1.0 gstreamer1.0-plugins-base libjpeg-turbo"

PV = "0.1.0+git"

# The repository and commit come from the distro configuration
# (SAFE_YOLO_GIT_URL, SAFE_YOLO_SRCREV): pinned, never floating.
SRC_URI = "git://${SAFE_YOLO_GIT_URL};protocol=${SAFE_YOLO_GIT_PROTOCOL};branch=${SAFE_YOLO_GIT_BRANCH} \
           file://safe-yolo.service \
           file://safe-yolo-health.service \
           file://health-check \
           file://safe-yolo-data-init.service \
           file://data-init \
           file://90-safe-yolo-gpio.rules \
           "
SRC_URI:append:tegra = " file://10-jetson-devices.conf"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd

# Cargo features per accelerator: tract is always built; the NPU and
# ONNX Runtime backends dlopen their runtime at run time.
SAFE_YOLO_CARGO_FEATURES ??= ""
SAFE_YOLO_CARGO_FEATURES:rk3588 = "--features rknn"
SAFE_YOLO_CARGO_FEATURES:tegra = "--features onnxruntime"

do_compile() {
    oe_cargo_build --package safe-yolo ${SAFE_YOLO_CARGO_FEATURES}
}

do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/safe-yolo ${D}${bindir}/safe-yolo

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/safe-yolo.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${UNPACKDIR}/safe-yolo-health.service ${D}${systemd_system_unitdir}/
    install -d ${D}${libexecdir}/safe-yolo
    install -m 0755 ${UNPACKDIR}/health-check ${D}${libexecdir}/safe-yolo/health-check
    install -m 0644 ${UNPACKDIR}/safe-yolo-data-init.service ${D}${systemd_system_unitdir}/
    install -m 0755 ${UNPACKDIR}/data-init ${D}${libexecdir}/safe-yolo/data-init

    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${UNPACKDIR}/90-safe-yolo-gpio.rules ${D}${nonarch_base_libdir}/udev/rules.d/

    if [ -f ${UNPACKDIR}/10-jetson-devices.conf ]; then
        install -d ${D}${systemd_system_unitdir}/safe-yolo.service.d
        install -m 0644 ${UNPACKDIR}/10-jetson-devices.conf ${D}${systemd_system_unitdir}/safe-yolo.service.d/
    fi
}

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system safe-yolo; --system gpio"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/safe-yolo --no-create-home \
                       --shell /sbin/nologin --gid safe-yolo \
                       --groups video,render,gpio safe-yolo"

SYSTEMD_SERVICE:${PN} = "safe-yolo.service safe-yolo-health.service safe-yolo-data-init.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

FILES:${PN} += "${nonarch_base_libdir}/udev/rules.d \
                ${systemd_system_unitdir}/safe-yolo.service.d"

RDEPENDS:${PN} = "gstreamer1.0-plugins-bad-videoparsersbad \
                  gstreamer1.0-plugins-base-app \
                  gstreamer1.0-plugins-base-playback \
                  gstreamer1.0-plugins-base-videoconvertscale \
                  gstreamer1.0-plugins-good-rtp \
                  gstreamer1.0-plugins-good-rtpmanager \
                  gstreamer1.0-plugins-good-rtsp \
                  gstreamer1.0-plugins-good-udp \
                  safe-yolo-data \
                  "
# The board's hardware decoders (board/<board>.toml `[video] decoders`); libav is
# the software fallback (LICENSE_FLAGS "commercial": accept it in the distro only
# where H.264/H.265 patents are licensed).
RRECOMMENDS:${PN}:append:rk3588 = " gstreamer1.0-rockchip"
RRECOMMENDS:${PN}:append:tegra = " gstreamer1.0-plugins-nvvideo4linux2"
RRECOMMENDS:${PN}:append:x86-64 = " gstreamer1.0-plugins-bad-va"
RRECOMMENDS:${PN} += "gstreamer1.0-libav"

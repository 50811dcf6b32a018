# The fleet client: SAFE-YOLO's hawkBit settings (server, token file on /data).
FILESEXTRAPATHS:prepend:safe-yolo := "${THISDIR}/files:"

do_install:append:safe-yolo() {
    sed -i -e 's/@MACHINE@/${MACHINE}/' ${D}${sysconfdir}/rauc-hawkbit-updater/config.conf
}

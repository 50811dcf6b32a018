#!/usr/bin/env bash
# Installs what building and testing SAFE-YOLO needs on a fresh Debian
# machine (bookworm). Idempotent; needs root (or sudo) for apt.
#   libclang-dev   bindgen, for the v4l crate (V4L2 ioctls)
#   pkg-config     -sys crates
#   libturbojpeg0-dev   JPEG encoding for snapshots and the live stream
#   ffmpeg         converts the demo footage (scripts/demo-media.sh)
#   curl, openssl  the end-to-end tests talk HTTPS to the daemon and check its TLS
#   mosquitto, mosquitto-clients   the MQTT integration's whole-daemon test starts
#                  a broker (no systemd: the test runs `mosquitto -c` on a free port)
#                  and subscribes with mosquitto_sub
#   g++            libFuzzer (C++), built by the fuzz targets (scripts/fuzz-smoke.sh)
#   python3 + onnxruntime   the ONNX Runtime library the detector's
#                  `onnxruntime` backend is tested against, and the
#                  reference scripts under appliance/detect/scripts
#   GStreamer      RTSP cameras (the `rtsp` feature): the development files to
#                  build gstreamer-rs, and at run time rtspsrc (plugins-good),
#                  the parsers (plugins-bad), libav's H.264/H.265 decoders
#                  (gstreamer1.0-libav), videoconvert (plugins-base)
#   gst-rtsp-server, python3-gi   the RTSP server the tests start
#                  (tests/rtsp/rtsp-server.py, run by Debian's /usr/bin/python3)
#   mmdebstrap     the Debian bookworm root file system of the systemd VM test
#                  (tests/vm/systemd.sh, cached under /var/cache/safe-yolo/vm)
#   py-motmetrics  the reference scorer of the tracking metrics, in a venv
#                  (scripts/motmetrics.sh; appliance/rules/tests/mot_reference.rs)
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
for pkg in libclang-dev pkg-config libturbojpeg0-dev ffmpeg curl openssl mosquitto mosquitto-clients g++ \
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav \
    gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi mmdebstrap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! python3 -c "import onnxruntime" >/dev/null 2>&1; then
    echo "install-deps: pip install onnxruntime numpy pillow"
    python3 -m pip install -q --disable-pip-version-check onnxruntime numpy pillow 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need_venv=1
if [ "${need_venv:-0}" = 1 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
"$(dirname "${BASH_SOURCE[0]}")/motmetrics.sh" >/dev/null
echo "install-deps: ok"

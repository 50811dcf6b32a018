#!/usr/bin/python3
"""A small RTSP server for the tests: Debian's gst-rtsp-server through its Python
bindings (python3-gi, gir1.2-gst-rtsp-server-1.0), run by Debian's own python3.

Serves pre-encoded footage (scripts/rtsp-media.sh) without re-encoding it:
  rtsp://127.0.0.1:PORT/h264   H.264 (x264, GOP 2 s)
  rtsp://127.0.0.1:PORT/h265   H.265 (x265, GOP 2 s)
Each client gets a stream of its own from the start of the footage (10 min; at
its end the client gets EOS and a camera reconnects, so the footage loops), paced
in real time. With --user and --password-file every mount asks for
HTTP Basic credentials (401 without them).

Prints "ready <port>" on stdout once it listens; SIGTERM or SIGINT stop it.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

STREAMS = {
    "h264": ("vtest.h264.mkv", "h264parse", "rtph264pay"),
    "h265": ("vtest.h265.mkv", "h265parse", "rtph265pay"),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--media", required=True, help="folder with vtest.h264.mkv and vtest.h265.mkv")
    ap.add_argument("--user")
    ap.add_argument("--password-file")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    role = None
    if args.user:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.readline().rstrip("\n")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "camera-user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, password), token)
        server.set_auth(auth)
        role = Gst.Structure.from_string(
            "camera-user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )[0]
    for mount, (name, parse, pay) in STREAMS.items():
        factory = GstRtspServer.RTSPMediaFactory()
        path = f"{args.media}/{name}"
        factory.set_launch(
            f'( filesrc location="{path}" ! matroskademux ! {parse} config-interval=-1 '
            f"! {pay} name=pay0 pt=96 config-interval=1 )"
        )
        factory.set_shared(False)
        if role is not None:
            factory.add_role_from_structure(role)
        mounts.add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

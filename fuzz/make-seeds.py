#!/usr/bin/env python3
"""Regenerates the committed seed corpus of the fuzz targets (fuzz/corpus/<target>/).

Seeds are small real examples: the shipped and fixture models' ONNX header and
metadata (the graph cut out), demo footage frames scaled down (ffmpeg), the demo and
example configurations, API bodies and WebSocket commands as the web UI sends them,
refresh tokens in the formats `api::auth` mints, and backup manifests as
`Store::backup` writes them. The V4L2 target's input is `arbitrary`-structured
bytes; its seeds come from a short run of the target itself (`cargo fuzz cmin`).

Needs python3 (with Pillow) and ffmpeg; reads ../shared/fixtures and the demo footage
(scripts/demo-media.sh; DEMO_MEDIA, default demo-media/) when present.
  [DEMO_MEDIA=DIR] fuzz/make-seeds.py
"""
import base64, hashlib, json, os, pathlib, shutil, subprocess, tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
SHARED = ROOT.parent / "shared" / "fixtures"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


# --- ONNX: the model's top-level fields without its graph (field 7) -------------
def varint(buf, pos):
    v = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, pos
        shift += 7


def enc_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def onnx_without_graph(data):
    out, pos = bytearray(), 0
    while pos < len(data):
        start = pos
        key, pos = varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = varint(data, pos)
            pos += n
        else:
            raise ValueError("wire type")
        if key >> 3 == 7:  # graph: keep a tiny stand-in (name only)
            g = b"\x12\x04main"
            out += enc_varint(key) + enc_varint(len(g)) + g
        else:
            out += data[start:pos]
    return bytes(out)


def onnx_seeds():
    models = [ROOT / "models/nanodet-m-416-coco/model-int8.onnx"]
    models += sorted((SHARED / "models").glob("*.onnx")) if (SHARED / "models").is_dir() else []
    seen = set()
    for m in models:
        if m.exists() and (data := onnx_without_graph(m.read_bytes())) not in seen:
            seen.add(data)
            put("onnx_meta", m.stem + ".onnx", data)
    put("onnx_meta", "names.txt", "{0: 'person', 1: \"bicycle\", 2: 'car'}")
    # metadata_props entry with an Ultralytics names map (as yolo exports write it)
    names = b"{0: 'With Helmet', 1: 'Without Helmet'}"
    entry = b"\x0a\x05names" + b"\x12" + enc_varint(len(names)) + names
    put("onnx_meta", "helmet-meta.onnx", b"\x08\x07" + b"\x72" + enc_varint(len(entry)) + entry)


# --- JPEG / MJPEG: demo frames cut small ----------------------------------------
def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def strip_dht(jpeg):
    """A UVC-style MJPEG frame: the Huffman tables (DHT) left out."""
    out, i = bytearray(jpeg[:2]), 2
    while i + 4 <= len(jpeg) and jpeg[i] == 0xFF:
        marker = jpeg[i + 1]
        n = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker == 0xDA:
            return bytes(out + jpeg[i:])
        if marker != 0xC4:
            out += jpeg[i : i + 2 + n]
        i += 2 + n
    return bytes(out)


def jpeg_seeds():
    frames = pathlib.Path(os.environ.get("DEMO_MEDIA", ROOT / "demo-media")) / "vtest-frames"
    with tempfile.TemporaryDirectory() as t:
        t = pathlib.Path(t)
        srcs = [frames / "0001.jpg", frames / "0400.jpg"]
        srcs += [SHARED / "media" / "bus.jpg", SHARED / "media" / "zidane.jpg"]
        srcs = [p for p in srcs if p.exists()]
        small = []
        for k, s in enumerate(srcs):
            out = t / f"{k}.jpg"
            ffmpeg("-i", str(s), "-vf", "scale=48:32", "-q:v", "8", str(out))
            small.append(out.read_bytes())
            put("mjpeg_jpeg", f"frame-{k}.jpg", small[-1])
        if small:
            put("mjpeg_jpeg", "uvc-no-dht.jpg", strip_dht(small[0]))
            gray = t / "gray.jpg"
            ffmpeg("-i", str(srcs[0]), "-vf", "scale=32:24,format=gray", str(gray))
            put("mjpeg_jpeg", "gray.jpg", gray.read_bytes())
            # three frames as `ffmpeg -f mjpeg` writes a replay file, padding between two
            put("mjpeg_jpeg", "stream.mjpeg", small[0] + small[1] + b"\0\0\0" + small[0][:-40])
        prog = t / "prog.jpg"
        if (SHARED / "media" / "zidane.jpg").exists():
            from PIL import Image

            Image.open(SHARED / "media" / "zidane.jpg").resize((40, 24)).save(
                prog, "JPEG", progressive=True, quality=60)
            put("mjpeg_jpeg", "progressive.jpg", prog.read_bytes())


# --- configuration ----------------------------------------------------------------
def config_seeds():
    for f in ["config/demo.toml", "config/example-box.toml"]:
        put("config_toml", pathlib.Path(f).name, (ROOT / f).read_bytes())
    demo = (ROOT / "config/demo.toml").read_bytes()
    put("config_toml", "demo-with-env.toml", demo + b"\0SAFEYOLO_API__BIND=0.0.0.0:443\n"
        b"SAFEYOLO_STORAGE__STATE_DIR=/data/safe-yolo\nSAFEYOLO_SYSTEM__DETECT_WORKERS=3\n")
    put("config_toml", "factory.toml", "[system]\nname = \"box\"\n")
    put("config_toml", "rtsp.toml", RTSP_CONFIG)


RTSP_CONFIG = """[detector]
model = "models/nanodet-m-416-coco/model.toml"

[[cameras]]
id = "gate"
source = { kind = "rtsp", url = "rtsp://10.0.0.21:554/Streaming/Channels/102?transportmode=unicast", username = "viewer", password_file = "/etc/safe-yolo/gate.password", transport = "tcp", latency_ms = 200 }

[[cameras]]
id = "yard"
source = { kind = "rtsp", url = "rtsps://[fe80::1]:322/h265" }
"""


# --- API bodies, in Body::ALL order (first byte) ------------------------------------
BODIES = [
    {"username": "admin", "password": "correct horse battery", "setup_token": "Xk3v9QmT2pLr8aZc"},
    {"username": "admin", "password": "correct horse battery"},
    {"refresh_token": "3f2a9c0d1e4b5a6c.QmFzZTY0dXJsU2VjcmV0T2ZUaGlydHlUd29CeXRlc1Rva2Vu"},
    {"current_password": "correct horse battery", "new_password": "another long passphrase"},
    {"username": "operator.1", "password": "twelve chars plus", "role": "operator"},
    {"role": "viewer", "disabled": True, "password": "a new long password"},
    {"label": "plc-gateway", "role": "viewer", "expires_in_days": 365},
    {"duration_ms": 1500},
    {"cert_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
     "key_pem": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"},
    {"kind": "v4l2", "device": "/dev/v4l/by-id/usb-cam-video-index0", "width": 1280, "height": 720, "fps": 15},
    {"doc": {"name": "Gate", "source": {"kind": "replay", "path": "vtest.mjpeg", "fps": 10, "start_frame": 0},
             "detect_every": 2}, "expected_version": 3},
    {"doc": {"name": "Dock", "camera": "gate", "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]}},
    {"doc": {"name": "Line at the lamp post", "camera": "gate", "from": [0.56, 0.25], "to": [0.56, 0.70]}},
    {"doc": {"name": "Dock intrusion", "kind": "intrusion", "zone": "dock", "min_frames": 3,
             "severity": "critical", "cooldown_s": 20, "outputs": ["siren"],
             "siren": {"pattern": "pulsed", "period_ms": 500, "duration_s": 30},
             "schedule": {"days": ["mon", "tue"], "from": "06:00", "to": "22:00"}}},
    {"doc": {"mqtt": {"url": "mqtts://broker.plant:8883", "topic_prefix": "plant/press-7/",
                      "username": "press-7", "password": "broker pass", "home_assistant": True},
             "webhooks": [{"id": "pager", "url": "https://hooks.plant:9443/safety",
                           "secret": "0123456789abcdef-secret", "severities": ["critical"]}],
             "modbus": {"bind": "0.0.0.0:502", "allow": ["10.0.5.0/24"], "unit_id": 1},
             "interlocks": [{"id": "conveyor-running", "source": "modbus", "coil": 7},
                            {"id": "press", "source": "mqtt", "topic": "plant/press/state",
                             "armed_value": "running", "stale_after_s": 30}]},
     "expected_version": 2},
]


# More documents of a body kind already seeded: (Body::ALL index, body).
MORE_BODIES = [
    (9, {"kind": "rtsp", "url": "rtsp://10.0.0.21/Streaming/Channels/102", "username": "viewer",
         "password": "camera pass"}),
    (10, {"doc": {"name": "Gate", "source": {"kind": "rtsp", "url": "rtsp://10.0.0.21:554/s",
                                             "username": "viewer", "password": "camera pass",
                                             "transport": "udp", "latency_ms": 100}}}),
]


def api_seeds():
    for i, b in enumerate(BODIES):
        put("api_json", f"body-{i:02}.json", bytes([i]) + json.dumps(b).encode())
    for n, (i, b) in enumerate(MORE_BODIES):
        put("api_json", f"body-more-{n:02}.json", bytes([i]) + json.dumps(b).encode())
    for i, c in enumerate([{"type": "subscribe", "camera": "gate"}, {"type": "unsubscribe"},
                           {"type": "set_quality", "quality": 70}, {"type": "set_fps", "fps": 5}]):
        put("ws_command", f"cmd-{i}.json", json.dumps(c))


# --- refresh tokens and credentials -------------------------------------------------
def b64(n):
    return base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()


def token_seeds():
    pwv = hashlib.sha256(b"$argon2id$v=19$m=19456,t=2,p=1$...").hexdigest()[:16]
    first = f"{pwv}.{b64(32)}"
    sid = f"{pwv}.{hashlib.sha256(first.split('.')[1].encode()).hexdigest()}"
    put("refresh_token", "first.txt", first)
    put("refresh_token", "rotated.txt", f"{sid}.{b64(32)}")
    put("refresh_token", "bearer.txt", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln")
    put("refresh_token", "cookie.txt", "theme=dark; sy_access=eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
    put("refresh_token", "api-key.txt", f"Bearer sy_{os.urandom(8).hex()}_{b64(32)}")


# --- backup manifests ---------------------------------------------------------------
def manifest_seeds():
    def f(path, n):
        return {"path": path, "bytes": n, "sha256": hashlib.sha256(path.encode()).hexdigest()}
    m = {"format": 1, "schema_version": 3, "created_at": 1765100000000, "event_seq": 42, "events": 40,
         "snapshots_missing": [7], "files": [f("store.redb", 1601536), f("snapshots/00000000000000000041.jpg", 52113),
                                              f("config.toml", 3012)]}
    put("backup_manifest", "full.json", json.dumps(m, indent=2))
    m2 = dict(m, snapshots_missing=[], files=[f("store.redb", 1601536)])
    put("backup_manifest", "db-only.json", json.dumps(m2, indent=2))


if __name__ == "__main__":
    onnx_seeds()
    jpeg_seeds()
    config_seeds()
    api_seeds()
    token_seeds()
    manifest_seeds()

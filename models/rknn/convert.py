#!/usr/bin/env python3
"""Converts a NanoDet ONNX model of models/ into an int8 .rknn with rknn-toolkit2 and,
with --check, runs it in the toolkit's x86 simulator against onnxruntime fp32.

Run through models/rknn/convert.sh, which prepares the pinned virtualenv. Everything the
conversion depends on is recorded in a provenance file next to the .rknn: toolkit and
library versions, the source ONNX sha256, the RKNN config, every calibration frame with
its sha256, and the output's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import struct
import sys
import time
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

PLATFORMS = ("rk3588", "rk3568", "rk3566", "rk3576", "rk3562")

# Evaluation images: the fixture pictures with people in them ...
EVAL_FIXTURES = ("bus.jpg", "zidane.jpg", "astronaut.png", "camera.png")
# ... plus 20 vtest frames: every 40th from frame 20 (20, 60, ..., 780).
EVAL_FRAMES = tuple(range(20, 796, 40))
# Calibration: 32 vtest frames, every 25th from frame 13 (13, 38, ..., 788), disjoint
# from the evaluation frames, plus the two permissively licensed fixture pictures that
# are not evaluation images. The AGPL test pictures (bus, zidane) are never calibration
# data, so nothing derived from them ships.
CALIB_FRAMES = tuple(range(13, 796, 25))
CALIB_FIXTURES = ("person-horse-dog.jpg", "horses.jpg")
# vtest's pedestrians are small (60-130 px of 576), so full frames never make the
# stride-32 head (large objects) fire: its score range was calibrated to 0.27 (0.54 with
# 2x/3x grid crops) and every close-up person saturated there (0.81 -> 0.54). Every 4th
# calibration frame therefore also gives square crops around its 3 most confident fp32
# persons, at 1.25x and 2.5x the person's height, so people fill the input the way a
# close camera sees them. Crops are integer pixel boxes from onnxruntime fp32 detections,
# written to the provenance file.
ZOOM_FRAMES = CALIB_FRAMES[::4]
ZOOM_PERSONS = 3
ZOOM_SCALES = (1.25, 2.5)

PERSON = 0


def log(msg: str) -> None:
    print(f"rknn-convert: {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Model:
    """The parts of a model.toml manifest the conversion needs."""

    name: str
    licence: str
    onnx: Path
    onnx_sha256: str
    width: int
    height: int
    channels: str
    mean: list[float]
    std: list[float]
    strides: list[int]
    reg_max: int
    score: float
    nms_iou: float
    max_detections: int
    classes: list[str]

    @staticmethod
    def load(model_dir: Path) -> "Model":
        path = model_dir / "model.toml"
        m = tomllib.loads(path.read_text())
        if m["decoder"]["family"] != "nanodet":
            raise SystemExit(f"{path}: decoder.family is {m['decoder']['family']!r}; only nanodet is supported")
        inp = m["input"]
        if inp.get("resize") != "stretch" or inp.get("layout") != "nchw":
            raise SystemExit(f"{path}: input must be resize = \"stretch\", layout = \"nchw\"")
        w = m["weights"]["fp32"]
        onnx = model_dir / w["file"]
        got = sha256(onnx)
        if got != w["sha256"]:
            raise SystemExit(f"{onnx}: sha256 {got} does not match weights.fp32.sha256 {w['sha256']} in {path}")
        return Model(
            name=m["name"],
            licence=m["licence"],
            onnx=onnx,
            onnx_sha256=got,
            width=int(inp["width"]),
            height=int(inp["height"]),
            channels=inp["channels"],
            mean=[float(v) for v in inp["mean"]],
            std=[float(v) for v in inp["std"]],
            strides=[int(s) for s in m["decoder"]["strides"]],
            reg_max=int(m["decoder"]["reg_max"]),
            score=float(m["thresholds"]["score"]),
            nms_iou=float(m["thresholds"]["nms_iou"]),
            max_detections=int(m["thresholds"]["max_detections"]),
            classes=list(m["classes"]["names"]),
        )

    def resized(self, path: Path, crop: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
        """Reads an image (or its `(x, y, w, h)` crop) and stretches it to the input size
        in the model's channel order: `(uint8 HxWx3, (frame width, frame height))`."""
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR; grey and RGBA become BGR.
        if img is None:
            raise SystemExit(f"{path}: cannot decode image")
        if crop is not None:
            x, y, w, h = crop
            img = img[y : y + h, x : x + w]
        h, w = img.shape[:2]
        shrink = w >= self.width and h >= self.height
        # INTER_AREA for downscaling is the closest OpenCV filter to the detector's
        # antialiased bilinear (fast_image_resize Convolution(Bilinear)).
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        img = cv2.resize(img, (self.width, self.height), interpolation=interp)
        if self.channels == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif self.channels != "bgr":
            raise SystemExit(f"input.channels {self.channels!r} is not rgb or bgr")
        return np.ascontiguousarray(img), (w, h)

    def normalised_nhwc(self, img: np.ndarray) -> np.ndarray:
        x = (img.astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)
        return x[None].astype(np.float32)

    def normalised_nchw(self, img: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.normalised_nhwc(img).transpose(0, 3, 1, 2))


def frame_path(frames_dir: Path, i: int) -> Path:
    return frames_dir / f"{i:04d}.jpg"


def existing(paths: list[Path]) -> list[Path]:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit("missing input images: " + ", ".join(missing))
    return paths


# ---------------------------------------------------------------------------- decoding


def decode(model: Model, outputs: list[np.ndarray], frame: tuple[int, int]) -> list[tuple[int, float, np.ndarray]]:
    """NanoDet decoding as in appliance/detect (tensors identified by shape), class-wise
    NMS, boxes mapped back to frame pixels: `[(class, score, [x1, y1, x2, y2])]`."""
    nc, bins = len(model.classes), model.reg_max + 1
    flat = [np.asarray(o, dtype=np.float32) for o in outputs]
    cands: list[tuple[int, float, np.ndarray]] = []
    for s in model.strides:
        gw, gh = model.width // s, model.height // s
        n = gw * gh
        scores = [o.reshape(n, nc) for o in flat if o.size == n * nc]
        boxes = [o.reshape(n, 4 * bins) for o in flat if o.size == n * 4 * bins]
        if len(scores) != 1 or len(boxes) != 1:
            raise SystemExit(f"stride {s}: expected one [1,{n},{nc}] and one [1,{n},{4 * bins}] output, got {[o.shape for o in flat]}")
        sc, bx = scores[0], boxes[0]
        cls = sc.argmax(axis=1)
        best = sc[np.arange(n), cls]
        keep = np.nonzero(best >= model.score)[0]
        if keep.size == 0:
            continue
        reg = bx[keep].reshape(-1, 4, bins)
        reg = np.exp(reg - reg.max(axis=2, keepdims=True))
        reg /= reg.sum(axis=2, keepdims=True)
        dist = (reg * np.arange(bins, dtype=np.float32)).sum(axis=2) * s
        cx = (keep % gw + 0.5) * s
        cy = (keep // gw + 0.5) * s
        xyxy = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
        for k in range(keep.size):
            cands.append((int(cls[keep[k]]), float(best[keep[k]]), xyxy[k]))
    fw, fh = frame
    sx, sy = fw / model.width, fh / model.height
    out = []
    for c in sorted({c for c, _, _ in cands}):
        mine = sorted((d for d in cands if d[0] == c), key=lambda d: -d[1])
        kept: list[tuple[int, float, np.ndarray]] = []
        for d in mine:
            if all(iou(d[2], k[2]) <= model.nms_iou for k in kept):
                kept.append(d)
        for c_, score, b in kept:
            fb = np.array([b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], dtype=np.float32)
            fb[[0, 2]] = fb[[0, 2]].clip(0, fw)
            fb[[1, 3]] = fb[[1, 3]].clip(0, fh)
            out.append((c_, score, fb))
    out.sort(key=lambda d: -d[1])
    return out[: model.max_detections]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match(ref: list, got: list, thr: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by descending IoU: `[(ref index, got index, iou)]`."""
    pairs = sorted(
        ((iou(r[2], g[2]), i, j) for i, r in enumerate(ref) for j, g in enumerate(got)),
        reverse=True,
    )
    used_r, used_g, out = set(), set(), []
    for v, i, j in pairs:
        if v < thr:
            break
        if i in used_r or j in used_g:
            continue
        used_r.add(i)
        used_g.add(j)
        out.append((i, j, v))
    return out


# ---------------------------------------------------------------------------- conversion


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("rknn-toolkit2", "torch", "onnx", "onnxruntime", "numpy", "opencv-python-headless", "protobuf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


Calib = list[tuple[Path, tuple[int, int, int, int] | None]]


def calibration_set(model: Model, frames: Path, fixtures: Path, no_crops: bool) -> Calib:
    items: Calib = [(frame_path(frames, i), None) for i in CALIB_FRAMES]
    items += [(fixtures / f, None) for f in CALIB_FIXTURES]
    existing([p for p, _ in items])
    if no_crops:
        return items
    ref = Reference(model)
    for i in ZOOM_FRAMES:
        p = frame_path(frames, i)
        img, (fw, fh) = model.resized(p)
        persons = [d for d in ref.detect(img, (fw, fh)) if d[0] == PERSON][:ZOOM_PERSONS]
        for _, _, b in persons:
            cx, cy, bh = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[3] - b[1]
            for k in ZOOM_SCALES:
                side = int(min(round(bh * k), fw, fh))
                x = int(min(max(round(cx - side / 2), 0), fw - side))
                y = int(min(max(round(cy - side / 2), 0), fh - side))
                items.append((p, (x, y, side, side)))
    return items


class Reference:
    """The fp32 ONNX model on onnxruntime (CPU), decoded like the detector."""

    def __init__(self, model: Model) -> None:
        import onnxruntime as ort

        self.model = model
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # bit-stable results, independent of the core count
        self.sess = ort.InferenceSession(str(model.onnx), opts, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name

    def detect(self, img: np.ndarray, frame: tuple[int, int]) -> list:
        outs = self.sess.run(None, {self.input: self.model.normalised_nchw(img)})
        return decode(self.model, outs, frame)


def write_calibration(model: Model, mode: str, images: Calib, work: Path) -> Path:
    """Writes each calibration image as the tensor the runtime will be fed, in the ONNX
    input layout (NCHW .npy, as rknn-toolkit2 2.x requires for .npy data; mean/std are
    applied by the toolkit in embed mode), and returns the dataset list file."""
    cdir = work / "calibration"
    cdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for old in cdir.glob("*.npy"):
        old.unlink()
    for i, (p, crop) in enumerate(images):
        img, _ = model.resized(p, crop)
        x = img[None].transpose(0, 3, 1, 2) if mode == "embed" else model.normalised_nchw(img)
        npy = cdir / f"{i:03d}.npy"
        np.save(npy, x)
        lines.append(str(npy))
    ds = work / "dataset.txt"
    ds.write_text("\n".join(lines) + "\n")
    return ds


def tensor_info(rknn, rknn_path: Path) -> list[dict]:
    """Input and output tensors of the built model: shape and layout from the model's
    own metadata, and int8 affine parameters (`real = (q - zero_point) * scale`) as
    stored in the .rknn file, cross-checked against the ranges the quantiser measured."""
    blob = rknn_path.read_bytes()
    meta = rknn.rknn_base.inputs_meta["attrs"]
    tab = rknn.rknn_base.quantizer.quant_tab
    layouts: dict[str, str] = {}
    dec = json.JSONDecoder()
    for name in meta:
        # The .rknn carries JSON maps {"<tensor>": {"dtype": ..., "layout": ...}, ...}.
        at = blob.find(b'{"' + name.encode() + b'": {"dtype"')
        if at != -1 and name not in layouts:
            obj, _ = dec.raw_decode(blob[at:].decode("latin-1"))
            layouts.update({k: f"{v.get('dtype')} {v.get('layout')}" for k, v in obj.items() if isinstance(v, dict)})
    out = []
    for name, a in sorted(meta.items(), key=lambda kv: (kv[1].get("is_output", False), kv[1]["idx"])):
        t = tab.get(name, {})
        lo, hi = min(t.get("min", [0.0])[0], 0.0), max(t.get("max", [0.0])[0], 0.0)
        scale = (hi - lo) / 255 if hi > lo else 0.0
        entry = {
            "name": name,
            "kind": "output" if a.get("is_output") else "input",
            "index": a["idx"],
            "onnx_shape": a["shape"],
            "rknn_dtype_layout": layouts.get(name),
            "calibrated_range": [lo, hi],
            "derived_scale": scale,
            "derived_zero_point": int(round(-128 - lo / scale)) if scale else None,
        }
        entry.update(stored_quant(blob, name))
        out.append(entry)
    return out


def stored_quant(blob: bytes, name: str) -> dict:
    """Reads `(zero_point, scale)` of tensor `name` from the .rknn flatbuffer: the
    tensor's record ends with the vectors zp, scale, max, min (one element each for
    per-layer quantisation), then the strings "int8", "layer" and the name."""
    tail = b"\x04\x00\x00\x00int8\x00\x00\x00\x00\x05\x00\x00\x00layer\x00\x00\x00"
    key = tail + struct.pack("<I", len(name)) + name.encode() + b"\x00"
    at = blob.find(key)
    if at < 32:
        return {"stored": None}
    vecs = struct.unpack("<IiIfIfIf", blob[at - 32 : at])
    if vecs[0::2] != (1, 1, 1, 1):
        return {"stored": None}
    return {"stored": {"zero_point": vecs[1], "scale": vecs[3], "max": vecs[5], "min": vecs[7]}}


def convert(args: argparse.Namespace, model: Model, work: Path):
    from rknn.api import RKNN

    calib = calibration_set(model, args.frames, args.fixtures, args.perturb == "no-crops")
    ds = write_calibration(model, args.preprocess, calib, work)
    rknn = RKNN(verbose=args.verbose)
    cfg = dict(
        target_platform=args.platform,
        quantized_dtype="w8a8",
        quantized_algorithm=args.algorithm,
        quantized_method="channel",
        optimization_level=3,
    )
    if args.preprocess == "embed":
        cfg["mean_values"] = [model.mean]
        cfg["std_values"] = [model.std]
    t0 = time.monotonic()
    rknn.config(**cfg)
    if rknn.load_onnx(model=str(model.onnx)) != 0:
        raise SystemExit(f"rknn-toolkit2 could not load {model.onnx}")
    if rknn.build(do_quantization=True, dataset=str(ds)) != 0:
        raise SystemExit("rknn-toolkit2 build failed (see the log above)")
    out = args.out / f"model-{args.platform}-int8.rknn"
    args.out.mkdir(parents=True, exist_ok=True)
    if rknn.export_rknn(str(out)) != 0:
        raise SystemExit(f"rknn-toolkit2 could not write {out}")
    seconds = time.monotonic() - t0
    digest = sha256(out)
    log(f"wrote {out} ({out.stat().st_size} bytes, sha256 {digest}) in {seconds:.1f} s")
    write_provenance(args, model, cfg, calib, out, digest, tensor_info(rknn, out))
    return rknn, out, seconds


def toml_str(s: str) -> str:
    return json.dumps(s)


def write_provenance(args, model: Model, cfg: dict, calib: Calib, out: Path, digest: str, tensors: list[dict]) -> None:
    v = versions()
    lines = [
        "# Generated by models/rknn/convert.sh; do not edit. Regenerate with:",
        f"#   bash models/rknn/convert.sh --platform {args.platform} --preprocess {args.preprocess}"
        + (f" --model {args.model}" if args.model != "nanodet-m-416-coco" else "")
        + (f" --algorithm {args.algorithm}" if args.algorithm != "normal" else "")
        + (f" --out {args.out}" if args.out_given else ""),
        f"file = {toml_str(out.name)}",
        f"sha256 = {toml_str(digest)}",
        f"bytes = {out.stat().st_size}",
        f"model = {toml_str(model.name)}",
        f"licence = {toml_str(model.licence)}",
        f"target_platform = {toml_str(args.platform)}",
        "precision = \"int8\"",
        f"source_onnx = {toml_str(model.onnx.name)}",
        f"source_onnx_sha256 = {toml_str(model.onnx_sha256)}",
        "",
        "# How the runtime must be fed. embed: mean/std are compiled in, feed the resized",
        "# uint8 image (NHWC, channel order below). cpu: no mean/std in the model, feed",
        "# (pixel - mean) / std as float32 NHWC.",
        "[input]",
        f"preprocess = {toml_str(args.preprocess)}",
        f"channels = {toml_str(model.channels)}",
        f"width = {model.width}",
        f"height = {model.height}",
        f"mean = {json.dumps(model.mean)}",
        f"std = {json.dumps(model.std)}",
        "",
        "[toolkit]",
    ]
    lines += [f"{toml_str(k)} = {toml_str(val)}" for k, val in v.items()]
    lines += ["", "[config]"]
    for k, val in cfg.items():
        lines.append(f"{k} = {json.dumps(val)}")
    lines += [
        "",
        "# Tensors as stored in the .rknn: int8, affine, real = (q - zero_point) * scale.",
        "# Outputs are 3-D [1, cells, channels] (no NC1HWC2); their order differs from the",
        "# ONNX file, so bind them by shape. Score outputs saturate at range_max.",
    ]
    for t in tensors:
        st = t.get("stored") or {}
        lines += [
            "[[tensor]]",
            f"name = {toml_str(t['name'])}",
            f"kind = {toml_str(t['kind'])}",
            f"index = {t['index']}",
            f"shape = {json.dumps(t['onnx_shape'])}",
            f"layout = {toml_str(t['rknn_dtype_layout'] or 'unknown')}",
            f"zero_point = {st.get('zero_point', t['derived_zero_point'])}",
            f"scale = {float(st.get('scale', t['derived_scale'])):.9g}",
            f"range = [{float(t['calibrated_range'][0]):.6g}, {float(t['calibrated_range'][1]):.6g}]",
        ]
    lines += [
        "",
        "# rknn-toolkit2 output is not byte-reproducible: the compiled command stream",
        "# embeds host heap addresses (~1.5 KB of the file changes from run to run), so a",
        "# regenerated file has a new sha256 with the same quantisation and results.",
        "",
        "# Calibration tensors are made from these images (or the given crop of them),",
        "# stretch-resized with OpenCV INTER_AREA to the input size, in",
        "# the model's channel order. vtest frames come from scripts/demo-media.sh (Debian",
        "# opencv-doc vtest.avi, Apache-2.0 AND BSD-3-Clause).",
    ]
    sums: dict[Path, str] = {}
    for p, crop in calib:
        shown = f"vtest-frames/{p.name}" if p.parent == args.frames else f"fixtures/media/{p.name}"
        digest_p = sums.setdefault(p, sha256(p))
        lines += ["[[calibration]]", f"image = {toml_str(shown)}", f"sha256 = {toml_str(digest_p)}"]
        if crop is not None:
            x, y, w, h = crop
            lines.append(f"crop = {{ x = {x}, y = {y}, width = {w}, height = {h} }}")
    prov = out.with_name(out.name + ".provenance.toml")
    prov.write_text("\n".join(lines) + "\n")
    log(f"wrote {prov}")


# ---------------------------------------------------------------------------- check


def check(args: argparse.Namespace, model: Model, rknn, out: Path, work: Path) -> int:
    import onnxruntime as ort

    images = existing(
        [args.fixtures / f for f in EVAL_FIXTURES] + [frame_path(args.frames, i) for i in EVAL_FRAMES]
    )
    t0 = time.monotonic()
    if rknn.init_runtime() != 0:  # no target: the x86 simulator
        raise SystemExit("rknn-toolkit2 simulator init_runtime failed (see the log above)")
    ref_model = Reference(model)
    outputs = [t for t in tensor_info(rknn, out) if t["kind"] == "output"]
    grid_dev = 0.0
    per_image = []
    totals = {"ref": 0, "got": 0, "m50": 0, "m80": 0, "ref_conf": 0, "m50_conf": 0}
    ious, sdiffs = [], []
    rk_shapes = None
    for p in images:
        img, frame = model.resized(p)
        ref = ref_model.detect(img, frame)
        if args.perturb == "swap-channels":
            img = np.ascontiguousarray(img[:, :, ::-1])
        feed = img[None] if args.preprocess == "embed" else model.normalised_nhwc(img)
        outs = rknn.inference(inputs=[feed], data_format="nhwc")
        if outs is None:
            raise SystemExit(f"simulator inference failed on {p}")
        if rk_shapes is None:
            rk_shapes = [(list(o.shape), str(o.dtype)) for o in outs]
        # The simulator returns dequantised floats: each must be (q - zero_point) * scale
        # for an integer q in [-128, 127] with the parameters stored in the file, which is
        # exactly what appliance/detect's RKNN backend computes from raw int8 outputs.
        for t, o in zip(outputs, outs):
            st = t.get("stored")
            if not st:
                grid_dev = float("inf")
                continue
            q = np.asarray(o, dtype=np.float64) / st["scale"] + st["zero_point"]
            grid_dev = max(grid_dev, float(np.abs(q - np.round(q)).max()))
            if q.min() < -128.5 or q.max() > 127.5:
                grid_dev = float("inf")
        got = decode(model, outs, frame)
        rp = [d for d in ref if d[0] == PERSON]
        gp = [d for d in got if d[0] == PERSON]
        m50 = match(rp, gp, 0.5)
        m80 = match(rp, gp, 0.8)
        conf = [i for i, d in enumerate(rp) if d[1] >= 0.5]
        m50_conf = [m for m in m50 if m[0] in conf]
        for i, j, v in m50:
            ious.append(v)
            sdiffs.append(abs(rp[i][1] - gp[j][1]))
        totals["ref"] += len(rp)
        totals["got"] += len(gp)
        totals["m50"] += len(m50)
        totals["m80"] += len(m80)
        totals["ref_conf"] += len(conf)
        totals["m50_conf"] += len(m50_conf)
        per_image.append(
            {
                "image": p.name if p.parent != args.frames else f"vtest/{p.name}",
                "fp32_ort_persons": [round(d[1], 3) for d in rp],
                "int8_rknn_persons": [round(d[1], 3) for d in gp],
                "matched_iou50": len(m50),
                "fp32_persons_missed": [round(d[1], 3) for i, d in enumerate(rp) if i not in {m[0] for m in m50}],
                "int8_persons_extra": [round(d[1], 3) for j, d in enumerate(gp) if j not in {m[1] for m in m50}],
                "matched_iou80": len(m80),
                "other_classes_fp32": sorted({model.classes[d[0]] for d in ref if d[0] != PERSON}),
                "other_classes_int8": sorted({model.classes[d[0]] for d in got if d[0] != PERSON}),
            }
        )
    seconds = time.monotonic() - t0
    ratio = lambda a, b: (a / b) if b else 1.0
    summary = {
        "images": len(images),
        "fp32_persons": totals["ref"],
        "int8_persons": totals["got"],
        "recall_iou50": round(ratio(totals["m50"], totals["ref"]), 4),
        "precision_iou50": round(ratio(totals["m50"], totals["got"]), 4),
        "recall_iou80": round(ratio(totals["m80"], totals["ref"]), 4),
        "recall_iou50_fp32_score_ge_0_5": round(ratio(totals["m50_conf"], totals["ref_conf"]), 4),
        "mean_iou_matched": round(float(np.mean(ious)), 4) if ious else None,
        "max_abs_score_diff_matched": round(float(np.max(sdiffs)), 4) if sdiffs else None,
        "mean_abs_score_diff_matched": round(float(np.mean(sdiffs)), 4) if sdiffs else None,
        "gates": {
            "recall_iou50": args.min_recall,
            "recall_iou50_fp32_score_ge_0_5": args.min_confident_recall,
            "max_abs_score_diff_matched": args.max_score_diff,
        },
        "simulator_output_shapes": rk_shapes,
        "int8_grid_max_deviation": grid_dev,
        "onnxruntime": ort.__version__,
        "check_seconds": round(seconds, 1),
    }
    report = {"summary": summary, "per_image": per_image, "tensors": tensor_info(rknn, out)}
    rpath = work / f"check-{args.platform}.json"
    rpath.write_text(json.dumps(report, indent=1) + "\n")
    log(f"check report: {rpath}")
    print(json.dumps(summary, indent=1))
    failures = []
    if summary["recall_iou50"] < args.min_recall:
        failures.append(f"person recall {summary['recall_iou50']} < {args.min_recall}")
    if summary["recall_iou50_fp32_score_ge_0_5"] < args.min_confident_recall:
        failures.append(
            f"recall of fp32 persons scoring >= 0.5 is {summary['recall_iou50_fp32_score_ge_0_5']} < {args.min_confident_recall}"
        )
    diff = summary["max_abs_score_diff_matched"]
    if diff is None or diff > args.max_score_diff:
        failures.append(f"max |score diff| of matched persons {diff} > {args.max_score_diff}")
    if not grid_dev <= 1e-3:
        failures.append(
            f"simulator outputs are not int8 affine values with the stored (scale, zero_point) "
            f"(max deviation {grid_dev} steps): appliance/detect's dequantisation would be wrong"
        )
    for f in failures:
        log(f"FAIL: {f}")
    if not failures:
        log(
            f"ok: person recall {summary['recall_iou50']} (>= {args.min_recall}), confident recall "
            f"{summary['recall_iou50_fp32_score_ge_0_5']}, max |score diff| {diff} (<= {args.max_score_diff})"
        )
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Convert a NanoDet ONNX model of models/ into an int8 .rknn (run through models/rknn/convert.sh)."
    )
    ap.add_argument("--repo-root", type=Path, required=True)
    ap.add_argument("--model", default="nanodet-m-416-coco", help="directory under models/")
    ap.add_argument("--platform", default="rk3588", choices=PLATFORMS)
    ap.add_argument(
        "--preprocess",
        default="cpu",
        choices=("cpu", "embed"),
        help="cpu: no mean/std in the model, the detector feeds normalised f32 (what appliance/detect's "
        "RKNN backend does); embed: mean/std compiled in, feed the resized uint8 image",
    )
    ap.add_argument("--algorithm", default="normal", choices=("normal", "mmse", "kl_divergence"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--frames", type=Path, required=True)
    ap.add_argument("--fixtures", type=Path, required=True)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--min-recall", type=float, default=0.9, help="person recall vs fp32 at IoU >= 0.5")
    ap.add_argument("--min-confident-recall", type=float, default=1.0, help="same, fp32 persons scoring >= 0.5")
    ap.add_argument("--max-score-diff", type=float, default=0.15, help="max |score diff| of matched persons")
    ap.add_argument(
        "--perturb",
        default="none",
        choices=("none", "no-crops", "swap-channels"),
        help="deliberately break the conversion (no-crops) or the check's input (swap-channels) to show the gates fail",
    )
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    model_dir = args.repo_root / "models" / args.model
    args.out_given = args.out is not None
    if args.out is None:
        args.out = model_dir if args.perturb == "none" else args.work / "perturbed"
    args.fixtures = args.fixtures / "media" if (args.fixtures / "media").is_dir() else args.fixtures
    model = Model.load(model_dir)
    args.work.mkdir(parents=True, exist_ok=True)
    rknn, out, seconds = convert(args, model, args.work)
    status = 0
    if args.check:
        status = check(args, model, rknn, out, args.work)
    rknn.release()
    log(f"conversion took {seconds:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Produces the golden reference detections the Rust tests compare against.

Runs each model with onnxruntime (CPU) on the fixture images, with the preprocessing,
decoding and class-wise NMS described by the model's manifest (the same TOML the Rust
crate reads), and writes one JSON file per model and precision under tests/golden/.

Usage (from the repository root):
    python3 appliance/detect/scripts/make_golden.py [--fixtures DIR]
Needs: onnxruntime, numpy, pillow.
"""
import argparse
import ast
import hashlib
import json
import os
import pathlib
import tomllib

import numpy as np
import onnxruntime as ort
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
CRATE = HERE.parent
REPO = CRATE.parent.parent
IMAGES = ["bus.jpg", "zidane.jpg", "astronaut.png", "camera.png", "person-horse-dog.jpg"]

# (manifest, directory holding the weights or None for the manifest's own directory, precisions, output stem)
MODELS = [
    (REPO / "models/nanodet-m-416-coco/model.toml", None, ["fp32", "int8"]),
    (CRATE / "tests/manifests/helmet-yolov12m-640.toml", "FIXTURE_MODELS", ["fp32"]),
]


def preprocess(img, inp):
    """Returns (tensor NCHW float32, sx, sy, dx, dy) mapping frame -> input: x_in = x * sx + dx."""
    w, h = img.size
    W, H = inp["width"], inp["height"]
    if inp["resize"] == "stretch":
        resized = img.resize((W, H), Image.BILINEAR)
        canvas = resized
        sx, sy, dx, dy = W / w, H / h, 0, 0
    else:
        s = min(W / w, H / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        resized = img.resize((nw, nh), Image.BILINEAR)
        fill = inp.get("letterbox_fill", 114)
        canvas = Image.new("RGB", (W, H), (fill, fill, fill))
        if inp.get("letterbox_align", "center") == "center":
            dx, dy = (W - nw) // 2, (H - nh) // 2
        else:
            dx, dy = 0, 0
        canvas.paste(resized, (dx, dy))
        sx, sy = nw / w, nh / h
    a = np.asarray(canvas, dtype=np.float32)
    if inp["channels"] == "bgr":
        a = a[:, :, ::-1]
    a = (a - np.array(inp["mean"], np.float32)) / np.array(inp["std"], np.float32)
    return a.transpose(2, 0, 1)[None].astype(np.float32), sx, sy, dx, dy


def decode_nanodet(outputs, dec, W, H, nc):
    bins = dec.get("reg_max", 10) + 1
    boxes, scores = [], []
    for stride in dec["strides"]:
        gw, gh = W // stride, H // stride
        n = gw * gh
        cls = next(o for o in outputs if o.shape == (1, n, nc))[0]
        reg = next(o for o in outputs if o.shape == (1, n, 4 * bins))[0]
        r = reg.reshape(n, 4, bins)
        r = np.exp(r - r.max(axis=2, keepdims=True))
        r /= r.sum(axis=2, keepdims=True)
        d = (r * np.arange(bins, dtype=np.float32)).sum(axis=2) * stride
        idx = np.arange(n)
        cx = (idx % gw + 0.5) * stride
        cy = (idx // gw + 0.5) * stride
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1))
        scores.append(cls)
    return np.concatenate(boxes), np.concatenate(scores)


def decode_yolov8(outputs, nc):
    o = outputs[0][0]  # [4 + nc, N]
    assert o.shape[0] == 4 + nc, o.shape
    cx, cy, w, h = o[0], o[1], o[2], o[3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes, o[4:].T


def nms(boxes, scores, iou_thr):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
        union = area(boxes[i]) + area(boxes[rest]) - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0)
        order = rest[iou <= iou_thr]
    return keep


def class_names(manifest, session):
    names = manifest.get("classes", {}).get("names")
    if names:
        return names
    meta = ast.literal_eval(session.get_modelmeta().custom_metadata_map["names"])
    return [meta[i] for i in range(len(meta))]


def run(manifest_path, model_dir, precision, fixtures):
    m = tomllib.loads(manifest_path.read_text())
    wdir = manifest_path.parent if model_dir is None else pathlib.Path(fixtures) / "models"
    weights = wdir / m["weights"][precision]["file"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert digest == m["weights"][precision]["sha256"], f"{weights}: checksum mismatch"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(weights), opts, providers=["CPUExecutionProvider"])
    names = class_names(m, sess)
    nc = len(names)
    inp, dec, thr = m["input"], m["decoder"], m["thresholds"]
    out = {
        "model": m["name"],
        "precision": precision,
        "sha256": digest,
        "onnxruntime": ort.__version__,
        "score_threshold": thr["score"],
        "nms_iou": thr["nms_iou"],
        "images": {},
    }
    for name in IMAGES:
        img = Image.open(pathlib.Path(fixtures) / "media" / name).convert("RGB")
        tensor, sx, sy, dx, dy = preprocess(img, inp)
        outputs = sess.run(None, {sess.get_inputs()[0].name: tensor})
        if dec["family"] == "nanodet":
            boxes, scores = decode_nanodet(outputs, dec, inp["width"], inp["height"], nc)
        elif dec["family"] == "yolov8":
            boxes, scores = decode_yolov8(outputs, nc)
        else:
            raise SystemExit(f"no reference decoder for {dec['family']}")
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(cls)), cls]
        keep_mask = best >= thr["score"]
        boxes, best, cls = boxes[keep_mask], best[keep_mask], cls[keep_mask]
        dets = []
        for c in np.unique(cls):
            sel = np.where(cls == c)[0]
            for k in nms(boxes[sel], best[sel], thr["nms_iou"]):
                i = sel[k]
                b = boxes[i]
                x1 = float(np.clip((b[0] - dx) / sx, 0, img.size[0]))
                y1 = float(np.clip((b[1] - dy) / sy, 0, img.size[1]))
                x2 = float(np.clip((b[2] - dx) / sx, 0, img.size[0]))
                y2 = float(np.clip((b[3] - dy) / sy, 0, img.size[1]))
                dets.append({"class_id": int(c), "class_name": names[c], "score": round(float(best[i]), 5),
                             "bbox": [round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)]})
        dets.sort(key=lambda d: -d["score"])
        out["images"][name] = dets[: thr["max_detections"]]
    dest = CRATE / "tests/golden" / f"{m['name']}-{precision}.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    summary = {k: [d["class_name"] for d in v] for k, v in out["images"].items()}
    print(dest.relative_to(REPO), summary)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", default=os.environ.get("SAFEYOLO_FIXTURES", str(REPO.parent / "shared/fixtures")))
    args = ap.parse_args()
    for manifest, model_dir, precisions in MODELS:
        for p in precisions:
            run(manifest, model_dir, p, args.fixtures)


if __name__ == "__main__":
    main()

"""Scores tracking sequences with py-motmetrics, the reference for
safe_yolo_rules::mot (appliance/rules/tests/mot_reference.rs).

Input CSV lines: seq,frame,kind,id,x1,y1,x2,y2 with kind `o` (ground-truth
object) or `h` (hypothesis); a line `seq,frame,-,,,,,` marks a frame with
nothing in it. Output: per sequence one line `seq key=value ...`.

Distances are motmetrics' iou_matrix(max_iou=0.5) (1 - IoU, NaN past 0.5),
computed here because motmetrics 1.4's iou_matrix calls np.asfarray,
which numpy 2 removed.
"""
import csv
import sys
from collections import defaultdict

import motmetrics as mm
import numpy as np

METRICS = ["idf1", "idtp", "idfp", "idfn", "num_switches", "num_matches",
           "num_misses", "num_false_positives", "num_objects", "num_predictions",
           "num_frames", "mota"]


def distances(objs, hyps):
    if not objs or not hyps:
        return np.empty((len(objs), len(hyps)))
    o = np.array([b for _, b in objs], dtype=float)[:, None, :]
    h = np.array([b for _, b in hyps], dtype=float)[None, :, :]
    iw = np.clip(np.minimum(o[..., 2], h[..., 2]) - np.maximum(o[..., 0], h[..., 0]), 0, None)
    ih = np.clip(np.minimum(o[..., 3], h[..., 3]) - np.maximum(o[..., 1], h[..., 1]), 0, None)
    inter = iw * ih
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area(o) + area(h) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    d = 1.0 - iou
    return np.where(d > 0.5, np.nan, d)


def main(path):
    seqs = defaultdict(lambda: defaultdict(lambda: ([], [])))
    with open(path, newline="") as f:
        for seq, frame, kind, tid, *box in csv.reader(f):
            slot = seqs[seq][int(frame)]
            if kind == "-":
                continue
            entry = (int(tid), [float(v) for v in box])
            (slot[0] if kind == "o" else slot[1]).append(entry)
    mh = mm.metrics.create()
    for seq, frames in seqs.items():
        acc = mm.MOTAccumulator(auto_id=False)
        for frame in sorted(frames):
            objs, hyps = frames[frame]
            acc.update([i for i, _ in objs], [i for i, _ in hyps], distances(objs, hyps), frameid=frame)
        s = mh.compute(acc, metrics=METRICS, name=seq)
        print(seq, " ".join(f"{k}={float(s[k].iloc[0])!r}" for k in METRICS))


if __name__ == "__main__":
    main(sys.argv[1])

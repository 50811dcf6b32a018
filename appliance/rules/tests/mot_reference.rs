//! The tracking metrics of `safe_yolo_rules::mot` against py-motmetrics 1.4
//! on the same sequences: every count (IDTP/IDFP/IDFN, switches, matches,
//! misses, false positives) equal, IDF1 and MOTA equal to 1e-9.
//!
//! The sequences are what `safe-yolo bench-tracking` scores: pedestrians on
//! straight and crossing paths, detected with jitter, misses, flicker and
//! false positives, followed by the real tracker at several rates; ground
//! truth is either the true identities or the tracker's own full-rate
//! output. py-motmetrics runs from the venv `scripts/motmetrics.sh` makes
//! (scripts/install-deps.sh makes it for CI).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly on broken fixtures"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use safe_yolo_domain::{BBox, Detection};
use safe_yolo_rules::mot::{MotAccumulator, MotSummary};
use safe_yolo_rules::{TrackState, Tracker, TrackerConfig};

#[path = "../benches/support/rng.rs"]
mod rng;
use rng::Rng;

type Frame = Vec<(u64, BBox)>;

/// True boxes per frame of `people` walkers at 10 fps for `frames` frames;
/// some cross each other's paths.
fn walkers(rng: &mut Rng, people: usize, frames: usize) -> Vec<Frame> {
    let mut paths = Vec::new();
    for id in 0..people as u64 {
        let start = (rng.next() * frames as f32 * 0.5) as usize;
        let len = 30 + (rng.next() * frames as f32 * 0.7) as usize;
        let h = 70.0 + rng.next() * 80.0;
        let (x0, y0) = (rng.next() * 700.0, 100.0 + rng.next() * 350.0);
        let (vx, vy) = ((rng.next() - 0.5) * 16.0, (rng.next() - 0.5) * 6.0);
        paths.push((id + 1, start, len, h, x0, y0, vx, vy));
    }
    (0..frames)
        .map(|f| {
            paths
                .iter()
                .filter(|p| f >= p.1 && f < p.1 + p.2)
                .map(|&(id, start, _, h, x0, y0, vx, vy)| {
                    let t = (f - start) as f32;
                    let (cx, cy) = (x0 + vx * t, y0 + vy * t);
                    let w = h * 0.4;
                    (
                        id,
                        BBox {
                            x1: cx - w / 2.0,
                            y1: cy - h / 2.0,
                            x2: cx + w / 2.0,
                            y2: cy + h / 2.0,
                        },
                    )
                })
                .collect()
        })
        .collect()
}

/// What a detector makes of the true boxes: jitter, misses, scores, and
/// false positives.
fn detect(rng: &mut Rng, truth: &[Frame]) -> Vec<Vec<Detection>> {
    truth
        .iter()
        .map(|boxes| {
            let mut out = Vec::new();
            for (_, b) in boxes {
                if rng.next() < 0.12 {
                    continue;
                }
                let j = |r: &mut Rng| (r.next() - 0.5) * 6.0;
                out.push(Detection {
                    class_id: 0,
                    class_name: Arc::from("person"),
                    score: 0.3 + rng.next() * 0.6,
                    bbox: BBox {
                        x1: b.x1 + j(rng),
                        y1: b.y1 + j(rng),
                        x2: b.x2 + j(rng),
                        y2: b.y2 + j(rng),
                    },
                });
            }
            if rng.next() < 0.2 {
                let (x, y) = (rng.next() * 700.0, rng.next() * 500.0);
                out.push(Detection {
                    class_id: 0,
                    class_name: Arc::from("person"),
                    score: 0.4 + rng.next() * 0.3,
                    bbox: BBox {
                        x1: x,
                        y1: y,
                        x2: x + 30.0,
                        y2: y + 80.0,
                    },
                });
            }
            out
        })
        .collect()
}

/// The tracker's confirmed tracks on every `step`-th frame (from `phase`),
/// `None` on the frames it did not see.
fn track(dets: &[Vec<Detection>], step: usize, phase: usize) -> Vec<Option<Frame>> {
    let mut t = Tracker::new(TrackerConfig::default()).unwrap();
    (0..dets.len())
        .map(|f| {
            if f < phase || !(f - phase).is_multiple_of(step) {
                return None;
            }
            let now = Duration::from_millis(f as u64 * 100);
            let tracks = t.update(&dets[f], 768.0, 576.0, now);
            Some(
                tracks
                    .iter()
                    .filter(|t| t.state == TrackState::Tracked)
                    .map(|t| (t.id, t.bbox))
                    .collect(),
            )
        })
        .collect()
}

struct Sequence {
    name: String,
    frames: Vec<(Frame, Frame)>,
}

fn sequences() -> Vec<Sequence> {
    let mut out = Vec::new();
    for seed in 1..=4u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let truth = walkers(&mut rng, 4 + seed as usize * 2, 300);
        let dets = detect(&mut rng, &truth);
        let reference = track(&dets, 1, 0);
        for step in [1usize, 3, 5, 10] {
            let hyp = track(&dets, step, step / 2);
            let mut vs_truth = Vec::new();
            let mut vs_ref = Vec::new();
            for (f, h) in hyp.iter().enumerate() {
                let Some(h) = h else { continue };
                vs_truth.push((truth[f].clone(), h.clone()));
                let r = reference[f].clone().unwrap_or_default();
                vs_ref.push((r, h.clone()));
            }
            out.push(Sequence {
                name: format!("s{seed}-k{step}-truth"),
                frames: vs_truth,
            });
            out.push(Sequence {
                name: format!("s{seed}-k{step}-reference"),
                frames: vs_ref,
            });
        }
    }
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// py-motmetrics' figures per sequence name.
fn reference_scores(seqs: &[Sequence]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut csv = String::new();
    for s in seqs {
        for (f, (objs, hyps)) in s.frames.iter().enumerate() {
            let _ = writeln!(csv, "{},{f},-,,,,,", s.name);
            for (kind, list) in [("o", objs), ("h", hyps)] {
                for (id, b) in list {
                    // The f32 widened to f64, printed in f64's round-trip
                    // form: Python reads exactly the value Rust scores.
                    let [x1, y1, x2, y2] = [b.x1, b.y1, b.x2, b.y2].map(f64::from);
                    let _ = writeln!(csv, "{},{f},{kind},{id},{x1},{y1},{x2},{y2}", s.name);
                }
            }
        }
    }
    // MOT_DUMP=FILE keeps the sequences for a look with other tools.
    if let Some(keep) = std::env::var_os("MOT_DUMP") {
        std::fs::write(keep, &csv).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sequences.csv");
    std::fs::write(&path, csv).unwrap();
    let venv = Command::new(repo().join("scripts/motmetrics.sh"))
        .output()
        .expect("scripts/motmetrics.sh runs");
    assert!(
        venv.status.success(),
        "scripts/motmetrics.sh failed (it needs PyPI once): {}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_owned();
    let out = Command::new(&python)
        .arg(repo().join("appliance/rules/tests/mot_reference.py"))
        .arg(&path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "py-motmetrics failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scores = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut parts = line.split(' ');
        let name = parts.next().unwrap().to_owned();
        let kv = parts
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_owned(), v.parse::<f64>().unwrap())
            })
            .collect();
        scores.insert(name, kv);
    }
    scores
}

#[test]
fn metrics_match_py_motmetrics() {
    let seqs = sequences();
    let reference = reference_scores(&seqs);
    assert_eq!(reference.len(), seqs.len());
    let mut switches = 0;
    let mut imperfect = 0;
    for s in &seqs {
        let mut acc = MotAccumulator::new();
        for (objs, hyps) in &s.frames {
            acc.update(objs, hyps);
        }
        let got: MotSummary = acc.summary();
        let want = &reference[&s.name];
        let n = |k: &str| want[k];
        let pairs = [
            ("idtp", got.idtp),
            ("idfp", got.idfp),
            ("idfn", got.idfn),
            ("num_switches", got.switches),
            ("num_matches", got.matches),
            ("num_misses", got.misses),
            ("num_false_positives", got.false_positives),
            ("num_objects", got.objects),
            ("num_predictions", got.hypotheses),
            ("num_frames", got.frames),
        ];
        for (k, v) in pairs {
            assert_eq!(v as f64, n(k), "{}: {k}", s.name);
        }
        assert!(
            (got.idf1 - n("idf1")).abs() < 1e-9,
            "{}: idf1 {} vs {}",
            s.name,
            got.idf1,
            n("idf1")
        );
        assert!(
            (got.mota - n("mota")).abs() < 1e-9,
            "{}: mota {} vs {}",
            s.name,
            got.mota,
            n("mota")
        );
        switches += got.switches;
        if got.idf1 < 0.99 {
            imperfect += 1;
        }
    }
    // The sequences exercise what matters: switches and imperfect identities.
    assert!(switches > 10, "only {switches} switches in all sequences");
    assert!(
        imperfect > seqs.len() / 2,
        "only {imperfect} imperfect sequences"
    );
}

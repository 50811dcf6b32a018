//! Multi-object tracking metrics: identity F1 (IDF1), ID switches and the
//! CLEAR MOT counts, computed the way py-motmetrics 1.4 computes them, so
//! tracking changes can be measured (`safe-yolo bench-tracking`).
//!
//! Feed one [`MotAccumulator::update`] per frame with the ground-truth
//! ("objects") and the tracker's output ("hypotheses"): an object and a
//! hypothesis may pair when their boxes overlap with IoU of at least
//! [`MIN_IOU`] (py-motmetrics' `iou_matrix(max_iou = 0.5)`). Per frame,
//! pairs of the previous frame are kept when they still overlap; the rest
//! are paired by least total distance (`1 - IoU`); a pairing that differs
//! from the object's last one is an ID switch. IDF1 pairs object ids with
//! hypothesis ids once for the whole sequence (most frames overlapping) and
//! counts the frames each identity is right. The test
//! `tests/mot_reference.rs` checks every figure against py-motmetrics.

use std::collections::HashMap;

use safe_yolo_domain::BBox;

use crate::assign::assign;

/// Least IoU for an object and a hypothesis to pair.
pub const MIN_IOU: f32 = 0.5;

/// Running counts of one sequence.
#[derive(Debug, Default, Clone)]
pub struct MotAccumulator {
    frames: u64,
    /// Object id -> the hypothesis it was last paired with.
    last: HashMap<u64, u64>,
    /// Frames in which each object id appears.
    object_frames: HashMap<u64, u64>,
    /// Frames in which each hypothesis id appears.
    hypothesis_frames: HashMap<u64, u64>,
    /// Frames in which an (object, hypothesis) pair overlaps enough.
    overlaps: HashMap<(u64, u64), u64>,
    matches: u64,
    switches: u64,
    misses: u64,
    false_positives: u64,
}

/// The figures of one or more sequences.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MotSummary {
    /// Frames seen.
    pub frames: u64,
    /// Object boxes (ground truth), over all frames.
    pub objects: u64,
    /// Hypothesis boxes (tracker output), over all frames.
    pub hypotheses: u64,
    /// Identity true positives (frames an identity is right).
    pub idtp: u64,
    /// Identity false positives.
    pub idfp: u64,
    /// Identity false negatives.
    pub idfn: u64,
    /// Identity F1: `2 IDTP / (objects + hypotheses)`; 1 when both are empty.
    pub idf1: f64,
    /// Per-frame pairings that keep the object's last hypothesis or start one.
    pub matches: u64,
    /// Per-frame pairings to another hypothesis than the object's last one.
    pub switches: u64,
    /// Object boxes not paired.
    pub misses: u64,
    /// Hypothesis boxes not paired.
    pub false_positives: u64,
    /// `1 - (misses + false positives + switches) / objects`.
    pub mota: f64,
}

impl MotSummary {
    /// Pools the counts of several sequences (as py-motmetrics' `OVERALL`).
    pub fn pooled(parts: &[MotSummary]) -> MotSummary {
        let mut s = MotSummary::default();
        for p in parts {
            s.frames += p.frames;
            s.objects += p.objects;
            s.hypotheses += p.hypotheses;
            s.idtp += p.idtp;
            s.idfp += p.idfp;
            s.idfn += p.idfn;
            s.matches += p.matches;
            s.switches += p.switches;
            s.misses += p.misses;
            s.false_positives += p.false_positives;
        }
        s.finish();
        s
    }

    fn finish(&mut self) {
        self.idf1 = if self.objects + self.hypotheses == 0 {
            1.0
        } else {
            2.0 * self.idtp as f64 / (self.objects + self.hypotheses) as f64
        };
        self.mota = if self.objects == 0 {
            0.0
        } else {
            1.0 - (self.misses + self.false_positives + self.switches) as f64 / self.objects as f64
        };
    }
}

/// `1 - IoU` in double precision (as py-motmetrics), or `None` past the gate.
fn distance(a: &BBox, b: &BBox) -> Option<f64> {
    let area = |b: &BBox| {
        (f64::from(b.x2) - f64::from(b.x1)).max(0.0) * (f64::from(b.y2) - f64::from(b.y1)).max(0.0)
    };
    let iw = (f64::from(a.x2.min(b.x2)) - f64::from(a.x1.max(b.x1))).max(0.0);
    let ih = (f64::from(a.y2.min(b.y2)) - f64::from(a.y1.max(b.y1))).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    let iou = if union > 0.0 { inter / union } else { 0.0 };
    let d = 1.0 - iou;
    (d <= 1.0 - f64::from(MIN_IOU)).then_some(d)
}

impl MotAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one frame: the ground-truth objects and the hypotheses as
    /// `(id, box)`; ids must be unique within each list.
    pub fn update(&mut self, objects: &[(u64, BBox)], hypotheses: &[(u64, BBox)]) {
        self.frames += 1;
        let dist: Vec<Option<f64>> = objects
            .iter()
            .flat_map(|(_, o)| hypotheses.iter().map(move |(_, h)| distance(o, h)))
            .collect();
        let nh = hypotheses.len();
        for (oi, (o, _)) in objects.iter().enumerate() {
            *self.object_frames.entry(*o).or_default() += 1;
            for (hi, (h, _)) in hypotheses.iter().enumerate() {
                if dist[oi * nh + hi].is_some() {
                    *self.overlaps.entry((*o, *h)).or_default() += 1;
                }
            }
        }
        for (h, _) in hypotheses {
            *self.hypothesis_frames.entry(*h).or_default() += 1;
        }
        let mut o_used = vec![false; objects.len()];
        let mut h_used = vec![false; nh];
        // 1. Keep last frame's pairs that still overlap.
        for (oi, (o, _)) in objects.iter().enumerate() {
            let Some(&hprev) = self.last.get(o) else {
                continue;
            };
            let Some(hi) = (0..nh).find(|&hi| !h_used[hi] && hypotheses[hi].0 == hprev) else {
                continue;
            };
            if dist[oi * nh + hi].is_some() {
                o_used[oi] = true;
                h_used[hi] = true;
                self.matches += 1;
            }
        }
        // 2. Pair the rest by least total distance.
        let pairs = assign(objects.len(), nh, |oi, hi| {
            if o_used[oi] || h_used[hi] {
                None
            } else {
                dist[oi * nh + hi]
            }
        });
        for (oi, hi) in pairs {
            let (o, h) = (objects[oi].0, hypotheses[hi].0);
            o_used[oi] = true;
            h_used[hi] = true;
            if self.last.get(&o).is_some_and(|&prev| prev != h) {
                self.switches += 1;
            } else {
                self.matches += 1;
            }
            self.last.insert(o, h);
        }
        self.misses += o_used.iter().filter(|u| !**u).count() as u64;
        self.false_positives += h_used.iter().filter(|u| !**u).count() as u64;
    }

    /// The figures so far.
    pub fn summary(&self) -> MotSummary {
        let objects: u64 = self.object_frames.values().sum();
        let hypotheses: u64 = self.hypothesis_frames.values().sum();
        // Global identity pairing: most frames overlapping in total. Every
        // pair is allowed (one without overlap gains nothing), so this is
        // the plain least-cost assignment py-motmetrics solves, not the
        // most-pairs-first one of a single frame.
        let mut oids: Vec<u64> = self.object_frames.keys().copied().collect();
        let mut hids: Vec<u64> = self.hypothesis_frames.keys().copied().collect();
        oids.sort_unstable();
        hids.sort_unstable();
        let idtp: u64 = assign(oids.len(), hids.len(), |r, c| {
            let n = self.overlaps.get(&(oids[r], hids[c])).copied().unwrap_or(0);
            Some(-(n as f64))
        })
        .into_iter()
        .filter_map(|(r, c)| self.overlaps.get(&(oids[r], hids[c])))
        .sum();
        let mut s = MotSummary {
            frames: self.frames,
            objects,
            hypotheses,
            idtp,
            idfp: hypotheses - idtp,
            idfn: objects - idtp,
            matches: self.matches,
            switches: self.switches,
            misses: self.misses,
            false_positives: self.false_positives,
            ..MotSummary::default()
        };
        s.finish();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> BBox {
        BBox {
            x1: x,
            y1: 0.0,
            x2: x + 10.0,
            y2: 20.0,
        }
    }

    #[test]
    fn perfect_tracking_scores_one() {
        let mut acc = MotAccumulator::new();
        for f in 0..10 {
            let x = f as f32;
            acc.update(
                &[(1, b(x)), (2, b(x + 50.0))],
                &[(7, b(x)), (9, b(x + 50.0))],
            );
        }
        let s = acc.summary();
        assert_eq!((s.idtp, s.switches, s.misses), (20, 0, 0));
        assert!((s.idf1 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_switch_halves_the_identity() {
        let mut acc = MotAccumulator::new();
        for f in 0..10 {
            let h = if f < 5 { 7 } else { 8 };
            acc.update(&[(1, b(0.0))], &[(h, b(0.0))]);
        }
        let s = acc.summary();
        assert_eq!((s.switches, s.matches, s.idtp), (1, 9, 5));
        assert!((s.idf1 - 0.5).abs() < 1e-12);
        // A box shifted by 5 of 10 pixels (IoU 1/3) does not pair.
        let mut acc = MotAccumulator::new();
        acc.update(&[(1, b(0.0))], &[(2, b(5.0))]);
        let s = acc.summary();
        assert_eq!((s.misses, s.false_positives, s.idtp), (1, 1, 0));
    }
}

//! Protective-equipment evidence: which person a head detection belongs to,
//! and a per-person sliding window of votes for the consensus.

use safe_yolo_domain::{BBox, Detection};

use crate::spec::PpeSpec;
use crate::track::{Track, TrackState};

/// What one frame says about one person's equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// A head with the equipment was found on the person.
    Present,
    /// A head without it was found on the person.
    Absent,
    /// No usable head detection on the person this frame.
    Unknown,
}

/// Whether the centre of `head` lies in the upper `fraction` of `person`.
pub fn head_in_person(head: &BBox, person: &BBox, fraction: f32) -> bool {
    let hx = (head.x1 + head.x2) / 2.0;
    let hy = (head.y1 + head.y2) / 2.0;
    let top_end = person.y1 + person.height() * fraction;
    hx >= person.x1 && hx <= person.x2 && hy >= person.y1 && hy <= top_end
}

/// Assigns each usable PPE detection to the tracked person whose head region
/// holds its centre (the nearest head region centre when several do), and
/// writes one `(track id, vote, score)` per person that got any, keeping the
/// highest-scoring detection per person. `out` is sorted by track id.
pub(crate) fn assign_votes(
    spec: &PpeSpec,
    person_class: &str,
    tracks: &[Track],
    ppe: &[Detection],
    out: &mut Vec<(u64, Vote, f32)>,
) {
    out.clear();
    for d in ppe {
        if d.score.is_nan() || d.score < spec.min_score {
            continue;
        }
        let vote = if spec.absent_classes.iter().any(|c| **c == *d.class_name) {
            Vote::Absent
        } else if spec.present_classes.iter().any(|c| **c == *d.class_name) {
            Vote::Present
        } else {
            continue;
        };
        let hx = (d.bbox.x1 + d.bbox.x2) / 2.0;
        let hy = (d.bbox.y1 + d.bbox.y2) / 2.0;
        let mut best: Option<(f32, u64)> = None;
        for t in tracks {
            if t.state != TrackState::Tracked
                || *t.class_name != *person_class
                || !head_in_person(&d.bbox, &t.bbox, spec.head_fraction)
            {
                continue;
            }
            let cx = (t.bbox.x1 + t.bbox.x2) / 2.0;
            let cy = t.bbox.y1 + t.bbox.height() * spec.head_fraction / 2.0;
            let dist = (hx - cx).powi(2) + (hy - cy).powi(2);
            let better = match best {
                None => true,
                Some((bd, bid)) => dist < bd || (dist == bd && t.id < bid),
            };
            if better {
                best = Some((dist, t.id));
            }
        }
        let Some((_, id)) = best else { continue };
        match out.iter_mut().find(|(tid, _, _)| *tid == id) {
            Some(slot) => {
                if d.score > slot.2 {
                    *slot = (id, vote, d.score);
                }
            }
            None => out.push((id, vote, d.score)),
        }
    }
    out.sort_unstable_by_key(|v| v.0);
}

/// The last `len` votes of one person as two bit masks (bit 0 is the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PpeWindow {
    present: u64,
    absent: u64,
}

impl PpeWindow {
    /// Adds the newest vote, dropping the oldest beyond `len` (1..=64).
    pub(crate) fn push(&mut self, vote: Vote, len: u32) {
        let mask = if len >= 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        self.present = (self.present << 1) & mask;
        self.absent = (self.absent << 1) & mask;
        match vote {
            Vote::Present => self.present |= 1,
            Vote::Absent => self.absent |= 1,
            Vote::Unknown => {}
        }
    }

    /// Whether the window shows the equipment missing: at least `min`
    /// "absent" votes and more of them than "present" votes.
    pub(crate) fn violated(&self, min: u32) -> bool {
        let (a, p) = (self.absent.count_ones(), self.present.count_ones());
        a >= min && a > p
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn b(x1: f32, y1: f32, x2: f32, y2: f32) -> BBox {
        BBox { x1, y1, x2, y2 }
    }

    fn spec() -> PpeSpec {
        PpeSpec {
            present_classes: vec![Arc::from("With Helmet")],
            absent_classes: vec![Arc::from("Without Helmet")],
            window_frames: 5,
            min_frames: 3,
            grace: Duration::ZERO,
            head_fraction: 0.3,
            min_score: 0.3,
        }
    }

    fn person(id: u64, bbox: BBox) -> Track {
        Track {
            id,
            bbox,
            class_id: 0,
            class_name: Arc::from("person"),
            score: 0.9,
            age: 5,
            hits: 5,
            frames_lost: 0,
            lost_for: std::time::Duration::ZERO,
            state: TrackState::Tracked,
        }
    }

    fn head(class: &str, bbox: BBox, score: f32) -> Detection {
        Detection {
            class_id: 0,
            class_name: Arc::from(class),
            score,
            bbox,
        }
    }

    #[test]
    fn head_must_be_in_the_upper_part() {
        let p = b(100.0, 100.0, 200.0, 400.0);
        assert!(head_in_person(&b(130.0, 100.0, 170.0, 140.0), &p, 0.3));
        // Centre at y = 300: the person's belly, not a head.
        assert!(!head_in_person(&b(130.0, 280.0, 170.0, 320.0), &p, 0.3));
        // Centre left of the box.
        assert!(!head_in_person(&b(60.0, 100.0, 90.0, 140.0), &p, 0.3));
        // Exactly on the boundary (y = 190) counts.
        assert!(head_in_person(&b(140.0, 180.0, 160.0, 200.0), &p, 0.3));
    }

    #[test]
    fn heads_go_to_the_nearest_person_and_the_best_score_wins() {
        let tracks = [
            person(1, b(100.0, 100.0, 200.0, 400.0)),
            person(2, b(150.0, 100.0, 250.0, 400.0)),
            person(3, b(600.0, 100.0, 700.0, 400.0)),
        ];
        let ppe = [
            head("Without Helmet", b(130.0, 110.0, 170.0, 150.0), 0.6),
            head("With Helmet", b(210.0, 110.0, 250.0, 150.0), 0.9),
            head("With Helmet", b(130.0, 110.0, 170.0, 150.0), 0.4),
            head("Without Helmet", b(630.0, 110.0, 670.0, 150.0), 0.2),
            head("Hat", b(630.0, 110.0, 670.0, 150.0), 0.9),
        ];
        let mut out = Vec::new();
        assert_eq!(out.len(), 0);
        assign_votes(&spec(), "person", &tracks, &ppe, &mut out);
        assert_eq!(out, vec![(1, Vote::Absent, 0.6), (2, Vote::Present, 0.9)]);
    }

    #[test]
    fn window_consensus() {
        let mut w = PpeWindow::default();
        for v in [Vote::Absent, Vote::Absent] {
            w.push(v, 5);
        }
        assert!(!w.violated(3));
        w.push(Vote::Absent, 5);
        assert!(w.violated(3), "exactly min_frames absent votes");
        // Old votes fall out of the window.
        for _ in 0..3 {
            w.push(Vote::Unknown, 5);
        }
        assert!(!w.violated(3));
        // Equal evidence both ways is no violation.
        let mut w = PpeWindow::default();
        for v in [Vote::Absent, Vote::Present, Vote::Absent, Vote::Present] {
            w.push(v, 4);
        }
        assert!(!w.violated(2));
        let mut w = PpeWindow::default();
        for _ in 0..64 {
            w.push(Vote::Absent, 64);
        }
        assert!(w.violated(64));
    }
}

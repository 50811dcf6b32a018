//! Multi-object tracking in the ByteTrack style: detections keep a stable
//! track id across frames so that rules reason about a person, not a box.
//!
//! Time-based, for the rates a real box runs at (1 to 10 detections per
//! second per camera, changing with load): every buffer is in seconds and
//! every update carries its time. Each update: predict every track with a
//! constant-velocity model (per second, extrapolated for at most
//! `max_predict`); pair high-score detections with confirmed (tracked and
//! lost) tracks; pair the remaining low-score detections with tracks that
//! were tracked at the last update (this keeps a partly occluded person
//! whose score dropped); pair tentative tracks; start tentative tracks from
//! unpaired confident detections; forget tentative tracks unseen for
//! `tentative_timeout` and lost ones unseen for `lost_timeout`.
//!
//! A detection may pair with a track when their boxes overlap enough
//! (IoU with the predicted box), or, since boxes of a walking person seen
//! a second apart need not overlap, when its centre lies within a gate
//! around the predicted centre (in box heights, growing with the time since
//! the track was last seen) and its height is within `max_height_ratio`.
//! Pairs are chosen by an optimal assignment on a cost that mixes the two
//! (`crate::assign`), only within one class, so the result is deterministic.
//! The thresholds come from the model manifest's `[tracking]` section
//! (calibrated on `safe-yolo bench-tracking`, see BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use safe_yolo_domain::{BBox, Detection};

use crate::assign::assign;

/// Why a tracker configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackerError {
    /// A threshold is outside its allowed range.
    #[error("`{field}` is {value}; {reason}")]
    BadValue {
        /// The configuration field.
        field: &'static str,
        /// The rejected value.
        value: f32,
        /// What is allowed.
        reason: &'static str,
    },
}

/// Tracker settings. [`TrackerConfig::default`] is calibrated for
/// NanoDet-m on the demo footage (BENCHMARKS.md, "Tracking").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// Detections at or above this score take part in the first association.
    pub high_score: f32,
    /// Detections below this score are ignored; those between it and
    /// `high_score` only extend already-tracked tracks.
    pub low_score: f32,
    /// An unmatched detection starts a new track at or above this score.
    pub new_track_score: f32,
    /// IoU with the predicted box at which a high-score detection pairs
    /// whatever the gate says.
    pub match_iou: f32,
    /// The same for the second (low-score) association.
    pub low_match_iou: f32,
    /// Matched updates (including the first) before a track is confirmed.
    pub min_hits: u32,
    /// How long a tentative track waits for its next match.
    pub tentative_timeout: Duration,
    /// How long a lost track is kept (and can be found again) before it is
    /// forgotten: the occlusion buffer.
    pub lost_timeout: Duration,
    /// Centre distance (in box heights) a detection may be from the
    /// predicted centre right after the track was seen.
    pub gate: f32,
    /// What the gate grows by per second since the track was last seen
    /// (for at most `max_predict`).
    pub gate_per_second: f32,
    /// Largest ratio between the heights of the predicted box and a
    /// detection paired by the gate.
    pub max_height_ratio: f32,
    /// Longest extrapolation of a track's motion; beyond it the box stays
    /// where it was, since a person behind an obstacle rarely keeps walking
    /// in a straight line.
    pub max_predict: Duration,
    /// Weight in `(0, 1]` of the newest measured velocity in the smoothed one.
    pub velocity_smoothing: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            min_hits: 2,
            tentative_timeout: Duration::from_millis(1100),
            lost_timeout: Duration::from_secs(1),
            gate: 0.5,
            gate_per_second: 0.3,
            max_height_ratio: 1.4,
            max_predict: Duration::from_secs(1),
            velocity_smoothing: 0.2,
        }
    }
}

impl TrackerConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), TrackerError> {
        let unit = |field, value: f32| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(TrackerError::BadValue {
                    field,
                    value,
                    reason: "it must be between 0 and 1",
                })
            }
        };
        let positive_unit = |field, value: f32| {
            if value > 0.0 && value <= 1.0 {
                Ok(())
            } else {
                Err(TrackerError::BadValue {
                    field,
                    value,
                    reason: "it must be above 0 and at most 1",
                })
            }
        };
        let seconds = |field, value: Duration, max: u64| {
            if value <= Duration::from_secs(max) {
                Ok(())
            } else {
                Err(TrackerError::BadValue {
                    field,
                    value: value.as_secs_f32(),
                    reason: "it must be at most 60 seconds",
                })
            }
        };
        unit("high_score", self.high_score)?;
        unit("low_score", self.low_score)?;
        unit("new_track_score", self.new_track_score)?;
        if self.low_score > self.high_score {
            return Err(TrackerError::BadValue {
                field: "low_score",
                value: self.low_score,
                reason: "it must not exceed high_score",
            });
        }
        positive_unit("match_iou", self.match_iou)?;
        positive_unit("low_match_iou", self.low_match_iou)?;
        positive_unit("velocity_smoothing", self.velocity_smoothing)?;
        if self.min_hits == 0 {
            return Err(TrackerError::BadValue {
                field: "min_hits",
                value: 0.0,
                reason: "it must be at least 1",
            });
        }
        seconds("tentative_timeout", self.tentative_timeout, 60)?;
        seconds("lost_timeout", self.lost_timeout, 60)?;
        seconds("max_predict", self.max_predict, 60)?;
        for (field, value, max) in [
            ("gate", self.gate, 10.0),
            ("gate_per_second", self.gate_per_second, 10.0),
        ] {
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err(TrackerError::BadValue {
                    field,
                    value,
                    reason: "it must be between 0 and 10 box heights",
                });
            }
        }
        if !(self.max_height_ratio.is_finite() && (1.0..=4.0).contains(&self.max_height_ratio)) {
            return Err(TrackerError::BadValue {
                field: "max_height_ratio",
                value: self.max_height_ratio,
                reason: "it must be between 1 and 4",
            });
        }
        Ok(())
    }
}

/// Life-cycle state of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackState {
    /// Seen fewer than `min_hits` times; rules ignore it.
    Tentative,
    /// Confirmed and matched in this update.
    Tracked,
    /// Confirmed but not matched in this update; the box is a prediction.
    Lost,
}

/// One tracked object as of the last update.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Stable id, unique for the life of the tracker (never reused).
    pub id: u64,
    /// The matched detection's box, or the predicted box while lost.
    pub bbox: BBox,
    /// Class index of the detections the track follows.
    pub class_id: u32,
    /// Class name of the detections the track follows.
    pub class_name: Arc<str>,
    /// Score of the last matched detection.
    pub score: f32,
    /// Updates since the track was started (0 on its first).
    pub age: u32,
    /// Updates in which the track was matched.
    pub hits: u32,
    /// Consecutive updates without a match (0 when tracked).
    pub frames_lost: u32,
    /// Time since the track was last matched (zero when tracked).
    pub lost_for: Duration,
    /// Life-cycle state.
    pub state: TrackState,
}

#[derive(Debug, Clone)]
struct TrackSlot {
    track: Track,
    /// Box of the last matched detection.
    last_box: BBox,
    /// When it was matched.
    last_seen: Duration,
    /// Smoothed velocity per second of centre x, centre y, width, height.
    velocity: [f32; 4],
    /// Predicted box for the current update.
    predicted: BBox,
    /// Seconds since `last_seen` at the current update.
    dt: f32,
}

fn boxc(b: &BBox) -> [f32; 4] {
    [
        (b.x1 + b.x2) / 2.0,
        (b.y1 + b.y2) / 2.0,
        b.width(),
        b.height(),
    ]
}

fn from_c(c: [f32; 4]) -> BBox {
    let (w, h) = (c[2].max(1.0), c[3].max(1.0));
    BBox {
        x1: c[0] - w / 2.0,
        y1: c[1] - h / 2.0,
        x2: c[0] + w / 2.0,
        y2: c[1] + h / 2.0,
    }
}

impl TrackSlot {
    fn predict(&mut self, now: Duration, cfg: &TrackerConfig) {
        let since = now.saturating_sub(self.last_seen);
        self.dt = since.as_secs_f32();
        let steps = since.min(cfg.max_predict).as_secs_f32();
        let c = boxc(&self.last_box);
        let v = self.velocity;
        self.predicted = from_c([
            c[0] + v[0] * steps,
            c[1] + v[1] * steps,
            c[2] + v[2] * steps,
            c[3] + v[3] * steps,
        ]);
    }

    fn update(&mut self, det: &Detection, now: Duration, cfg: &TrackerConfig) {
        let dt = now.saturating_sub(self.last_seen).as_secs_f32();
        if dt > 0.0 {
            let (old, new) = (boxc(&self.last_box), boxc(&det.bbox));
            let a = cfg.velocity_smoothing;
            for i in 0..4 {
                let measured = (new[i] - old[i]) / dt;
                self.velocity[i] = (1.0 - a) * self.velocity[i] + a * measured;
            }
        }
        self.last_box = det.bbox;
        self.last_seen = self.last_seen.max(now);
        self.track.bbox = det.bbox;
        self.track.score = det.score;
        self.track.hits = self.track.hits.saturating_add(1);
        self.track.frames_lost = 0;
        self.track.lost_for = Duration::ZERO;
    }

    /// The cost of pairing `det` with this track, or `None` outside the
    /// gate (and below `min_iou`).
    fn cost(&self, det: &BBox, min_iou: f32, gate_scale: f32, cfg: &TrackerConfig) -> Option<f64> {
        let iou = self.predicted.iou(det);
        let p = boxc(&self.predicted);
        let d = boxc(det);
        let h = p[3].max(d[3]).max(1.0);
        let dist = ((p[0] - d[0]).powi(2) + (p[1] - d[1]).powi(2)).sqrt() / h;
        let unseen = self.dt.min(cfg.max_predict.as_secs_f32());
        let gate = (cfg.gate + cfg.gate_per_second * unseen) * gate_scale;
        let ratio = p[3].max(d[3]) / p[3].min(d[3]).max(1.0);
        let gated = dist <= gate && ratio <= cfg.max_height_ratio;
        if !(iou >= min_iou || gated) {
            return None;
        }
        let closeness = if gate > 0.0 {
            (dist / gate).min(1.0)
        } else {
            1.0
        };
        Some(f64::from((1.0 - iou) + closeness))
    }
}

/// A ByteTrack-style multi-object tracker. Deterministic; time is an input;
/// cannot fail once built.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    slots: Vec<TrackSlot>,
    next_id: u64,
    // Scratch buffers reused across updates.
    det_used: Vec<bool>,
    slot_used: Vec<bool>,
    high: Vec<usize>,
    low: Vec<usize>,
    pool: Vec<usize>,
}

impl Tracker {
    /// A tracker with a validated configuration.
    pub fn new(cfg: TrackerConfig) -> Result<Self, TrackerError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            slots: Vec::new(),
            next_id: 1,
            det_used: Vec::new(),
            slot_used: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            pool: Vec::new(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Forgets every track (ids keep counting up).
    pub fn reset(&mut self) {
        self.slots.clear();
    }

    /// Feeds the detections of the frame taken at `now` (monotonic; pixels
    /// of a `frame_w x frame_h` frame) and returns every live track:
    /// tentative, tracked and lost, by id.
    pub fn update(
        &mut self,
        detections: &[Detection],
        frame_w: f32,
        frame_h: f32,
        now: Duration,
    ) -> Vec<Track> {
        let cfg = self.cfg;
        for s in &mut self.slots {
            s.predict(now, &cfg);
            if frame_w > 0.0 && frame_h > 0.0 {
                s.predicted = s.predicted.clamp_to(frame_w, frame_h);
            }
        }
        self.high.clear();
        self.low.clear();
        for (i, d) in detections.iter().enumerate() {
            if !(d.score.is_finite() && d.bbox.area() > 0.0 && d.bbox.area().is_finite()) {
                continue;
            }
            if d.score >= cfg.high_score {
                self.high.push(i);
            } else if d.score >= cfg.low_score {
                self.low.push(i);
            }
        }
        self.det_used.clear();
        self.det_used.resize(detections.len(), false);
        self.slot_used.clear();
        self.slot_used.resize(self.slots.len(), false);

        // 1. High-score detections against tracks tracked at the last update.
        self.pool.clear();
        self.pool.extend(
            (0..self.slots.len()).filter(|&i| self.slots[i].track.state == TrackState::Tracked),
        );
        let high = std::mem::take(&mut self.high);
        self.associate(detections, &high, cfg.match_iou, 1.0, now);
        // 2. Low-score detections against those still unpaired, with half
        // the gate.
        self.pool.retain(|&i| !self.slot_used[i]);
        let low = std::mem::take(&mut self.low);
        self.associate(detections, &low, cfg.low_match_iou, 0.5, now);
        self.low = low;
        // 3. Remaining high-score detections against lost tracks: a person
        // seen at the last update has the first claim on a detection.
        self.pool.clear();
        self.pool.extend(
            (0..self.slots.len()).filter(|&i| self.slots[i].track.state == TrackState::Lost),
        );
        self.associate(detections, &high, cfg.match_iou, 1.0, now);
        // 4. Remaining high-score detections against tentative tracks.
        self.pool.clear();
        self.pool.extend(
            (0..self.slots.len()).filter(|&i| self.slots[i].track.state == TrackState::Tentative),
        );
        self.associate(detections, &high, cfg.match_iou, 1.0, now);

        // Update states of every existing track.
        let slot_used = &self.slot_used;
        let mut idx = 0;
        self.slots.retain_mut(|s| {
            let used = slot_used[idx];
            idx += 1;
            s.track.age = s.track.age.saturating_add(1);
            if used {
                if s.track.hits >= cfg.min_hits {
                    s.track.state = TrackState::Tracked;
                }
                return true;
            }
            let unseen = now.saturating_sub(s.last_seen);
            s.track.frames_lost = s.track.frames_lost.saturating_add(1);
            s.track.lost_for = unseen;
            match s.track.state {
                TrackState::Tentative => unseen <= cfg.tentative_timeout,
                TrackState::Tracked | TrackState::Lost => {
                    s.track.state = TrackState::Lost;
                    s.track.bbox = s.predicted;
                    unseen <= cfg.lost_timeout
                }
            }
        });

        // 5. New tracks from confident unmatched detections.
        for &di in &high {
            if self.det_used[di] {
                continue;
            }
            let d = &detections[di];
            if d.score < cfg.new_track_score {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let state = if cfg.min_hits <= 1 {
                TrackState::Tracked
            } else {
                TrackState::Tentative
            };
            self.slots.push(TrackSlot {
                track: Track {
                    id,
                    bbox: d.bbox,
                    class_id: d.class_id,
                    class_name: Arc::clone(&d.class_name),
                    score: d.score,
                    age: 0,
                    hits: 1,
                    frames_lost: 0,
                    lost_for: Duration::ZERO,
                    state,
                },
                last_box: d.bbox,
                last_seen: now,
                velocity: [0.0; 4],
                predicted: d.bbox,
                dt: 0.0,
            });
        }
        self.high = high;
        // Tentative tracks that missed this update are not shown.
        self.slots
            .iter()
            .filter(|s| s.track.state != TrackState::Tentative || s.track.frames_lost == 0)
            .map(|s| s.track.clone())
            .collect()
    }

    /// Optimal pairing of `self.pool` (slot indices) with the unused
    /// detections among `dets`; marks and updates the matched pairs.
    fn associate(
        &mut self,
        detections: &[Detection],
        dets: &[usize],
        min_iou: f32,
        gate_scale: f32,
        now: Duration,
    ) {
        let free: Vec<usize> = dets
            .iter()
            .copied()
            .filter(|&d| !self.det_used[d])
            .collect();
        if free.is_empty() || self.pool.is_empty() {
            return;
        }
        let cfg = self.cfg;
        let pairs = assign(self.pool.len(), free.len(), |pi, fi| {
            let slot = &self.slots[self.pool[pi]];
            let det = &detections[free[fi]];
            if det.class_id != slot.track.class_id {
                return None;
            }
            slot.cost(&det.bbox, min_iou, gate_scale, &cfg)
        });
        for (pi, fi) in pairs {
            let (si, di) = (self.pool[pi], free[fi]);
            self.slot_used[si] = true;
            self.det_used[di] = true;
            self.slots[si].update(&detections[di], now, &cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, score: f32) -> Detection {
        Detection {
            class_id: 0,
            class_name: Arc::from("person"),
            score,
            bbox: BBox {
                x1: x,
                y1: y,
                x2: x + 40.0,
                y2: y + 100.0,
            },
        }
    }

    /// A tracker fed at 10 updates per second.
    struct Clock {
        t: Tracker,
        now: Duration,
    }

    impl Clock {
        fn new(cfg: TrackerConfig) -> Self {
            Self {
                t: Tracker::new(cfg).unwrap(),
                now: Duration::ZERO,
            }
        }

        fn update(&mut self, dets: &[Detection], w: f32, h: f32) -> Vec<Track> {
            self.now += Duration::from_millis(100);
            self.t.update(dets, w, h, self.now)
        }
    }

    fn tracker(min_hits: u32) -> Clock {
        Clock::new(TrackerConfig {
            min_hits,
            ..TrackerConfig::default()
        })
    }

    fn tracked(ts: &[Track]) -> Vec<&Track> {
        ts.iter()
            .filter(|t| t.state == TrackState::Tracked)
            .collect()
    }

    #[test]
    fn rejects_bad_config_naming_the_field() {
        let bad = TrackerConfig {
            low_score: 0.7,
            ..TrackerConfig::default()
        };
        let e = Tracker::new(bad).unwrap_err();
        assert!(e.to_string().contains("low_score"), "{e}");
        let bad = TrackerConfig {
            match_iou: 0.0,
            ..TrackerConfig::default()
        };
        assert!(matches!(
            Tracker::new(bad),
            Err(TrackerError::BadValue {
                field: "match_iou",
                ..
            })
        ));
        let bad = TrackerConfig {
            min_hits: 0,
            ..TrackerConfig::default()
        };
        assert!(Tracker::new(bad).is_err());
    }

    #[test]
    fn ids_are_stable_for_walking_people() {
        let mut t = tracker(2);
        let mut ids = Vec::new();
        for f in 0..40 {
            let x = f as f32 * 5.0;
            let ts = t.update(
                &[det(100.0 + x, 100.0, 0.9), det(600.0 - x, 300.0, 0.8)],
                1280.0,
                720.0,
            );
            if f == 0 {
                assert!(tracked(&ts).is_empty(), "tentative on the first frame");
                continue;
            }
            let tr = tracked(&ts);
            assert_eq!(tr.len(), 2, "frame {f}");
            let mut now: Vec<u64> = tr.iter().map(|t| t.id).collect();
            now.sort_unstable();
            if ids.is_empty() {
                ids = now;
            } else {
                assert_eq!(ids, now, "frame {f}");
            }
        }
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn new_track_needs_min_hits_and_a_confident_detection() {
        let mut t = tracker(3);
        assert_eq!(
            t.update(&[det(10.0, 10.0, 0.9)], 640.0, 480.0)[0].state,
            TrackState::Tentative
        );
        assert_eq!(
            t.update(&[det(12.0, 10.0, 0.9)], 640.0, 480.0)[0].state,
            TrackState::Tentative
        );
        let ts = t.update(&[det(14.0, 10.0, 0.9)], 640.0, 480.0);
        assert_eq!(
            (ts[0].id, ts[0].state, ts[0].hits),
            (1, TrackState::Tracked, 3)
        );
        // A detection between high_score and new_track_score starts nothing.
        let mut t = tracker(1);
        assert!(t.update(&[det(10.0, 10.0, 0.55)], 640.0, 480.0).is_empty());
        // A tentative track that misses an update is hidden, and found
        // again within tentative_timeout...
        let mut t = tracker(2);
        t.update(&[det(10.0, 10.0, 0.9)], 640.0, 480.0);
        assert!(t.update(&[], 640.0, 480.0).is_empty());
        let ts = t.update(&[det(10.0, 10.0, 0.9)], 640.0, 480.0);
        assert_eq!((ts[0].id, ts[0].state), (1, TrackState::Tracked));
        // ...but dropped after it (1.1 s: 12 updates later).
        let mut t = tracker(2);
        t.update(&[det(10.0, 10.0, 0.9)], 640.0, 480.0);
        for _ in 0..12 {
            assert!(t.update(&[], 640.0, 480.0).is_empty());
        }
        let ts = t.update(&[det(10.0, 10.0, 0.9)], 640.0, 480.0);
        assert_eq!(ts[0].id, 2, "ids are never reused");
    }

    #[test]
    fn occlusion_buffer_keeps_the_id_then_forgets() {
        let cfg = TrackerConfig {
            min_hits: 1,
            lost_timeout: Duration::from_millis(500),
            ..TrackerConfig::default()
        };
        let mut t = Clock::new(cfg);
        for f in 0..5 {
            t.update(&[det(100.0 + f as f32 * 4.0, 100.0, 0.9)], 1280.0, 720.0);
        }
        // Hidden for 5 frames: lost, box predicted forward, id kept.
        for k in 1..=5 {
            let ts = t.update(&[], 1280.0, 720.0);
            assert_eq!(ts.len(), 1);
            assert_eq!((ts[0].state, ts[0].frames_lost), (TrackState::Lost, k));
            assert_eq!(ts[0].lost_for, Duration::from_millis(100 * u64::from(k)));
        }
        let ts = t.update(&[det(140.0, 100.0, 0.9)], 1280.0, 720.0);
        assert_eq!((ts[0].id, ts[0].state), (1, TrackState::Tracked));
        // Hidden for 6 frames: forgotten, the person comes back as a new id.
        for _ in 0..6 {
            t.update(&[], 1280.0, 720.0);
        }
        assert!(t.update(&[], 1280.0, 720.0).is_empty());
        let ts = t.update(&[det(140.0, 100.0, 0.9)], 1280.0, 720.0);
        assert_eq!(ts[0].id, 2);
    }

    #[test]
    fn low_score_detection_extends_a_tracked_track_only() {
        let mut t = tracker(1);
        t.update(&[det(100.0, 100.0, 0.9)], 1280.0, 720.0);
        // Partly occluded: score drops to 0.3, the track is kept by the
        // second association instead of being lost.
        let ts = t.update(&[det(102.0, 100.0, 0.3)], 1280.0, 720.0);
        assert_eq!((ts[0].id, ts[0].state), (1, TrackState::Tracked));
        assert!((ts[0].score - 0.3).abs() < 1e-6);
        // A low-score detection far from any track starts nothing.
        let ts = t.update(
            &[det(104.0, 100.0, 0.9), det(900.0, 400.0, 0.3)],
            1280.0,
            720.0,
        );
        assert_eq!(ts.len(), 1);
        // A lost track is not revived by a low-score detection.
        t.update(&[], 1280.0, 720.0);
        let ts = t.update(&[det(104.0, 100.0, 0.3)], 1280.0, 720.0);
        assert_eq!(ts[0].state, TrackState::Lost);
    }

    #[test]
    fn classes_are_not_mixed() {
        let mut t = tracker(1);
        t.update(&[det(100.0, 100.0, 0.9)], 1280.0, 720.0);
        let mut other = det(100.0, 100.0, 0.9);
        other.class_id = 1;
        other.class_name = Arc::from("helmet");
        let ts = t.update(&[other], 1280.0, 720.0);
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].state, TrackState::Lost);
        assert_eq!((ts[1].id, &*ts[1].class_name), (2, "helmet"));
    }

    proptest::proptest! {
        /// Whatever the detections (including broken boxes and scores), the
        /// output is sorted by id without duplicates and the states agree
        /// with the counters.
        #[test]
        fn output_is_consistent(
            frames in proptest::collection::vec(
                proptest::collection::vec(
                    (-50.0f32..700.0, -50.0f32..500.0, -1.0f32..150.0, -0.2f32..1.2, 0u32..2),
                    0..8,
                ),
                1..30,
            ),
            min_hits in 1u32..4,
            lost_ms in 0u64..500,
            step_ms in 0u64..400,
        ) {
            let lost_timeout = Duration::from_millis(lost_ms);
            let cfg = TrackerConfig { min_hits, lost_timeout, ..TrackerConfig::default() };
            let mut t = Tracker::new(cfg).unwrap();
            let mut now = Duration::ZERO;
            for dets in frames {
                let dets: Vec<Detection> = dets
                    .into_iter()
                    .map(|(x, y, s, score, class_id)| Detection {
                        class_id,
                        class_name: Arc::from("c"),
                        score,
                        bbox: BBox { x1: x, y1: y, x2: x + s, y2: y + 2.0 * s },
                    })
                    .collect();
                now += Duration::from_millis(step_ms);
                let ts = t.update(&dets, 640.0, 480.0, now);
                proptest::prop_assert!(ts.windows(2).all(|w| w[0].id < w[1].id));
                for tr in &ts {
                    match tr.state {
                        TrackState::Tracked => proptest::prop_assert!(tr.frames_lost == 0 && tr.hits >= min_hits),
                        TrackState::Lost => proptest::prop_assert!(tr.frames_lost >= 1 && tr.lost_for <= lost_timeout),
                        TrackState::Tentative => proptest::prop_assert!(tr.hits < min_hits && tr.frames_lost == 0),
                    }
                }
            }
        }
    }

    #[test]
    fn crossing_paths_keep_their_ids_with_velocity() {
        // Two people walk towards each other on one row and pass; constant
        // velocity keeps each id on its own side of the crossing.
        let mut t = tracker(1);
        let mut last = Vec::new();
        for f in 0..30 {
            let a = det(100.0 + f as f32 * 20.0, 100.0, 0.9);
            let b = det(700.0 - f as f32 * 20.0, 100.0, 0.9);
            let dets = if (14..16).contains(&f) {
                vec![a]
            } else {
                vec![a, b]
            };
            let ts = t.update(&dets, 1280.0, 720.0);
            last = ts.iter().map(|t| (t.id, t.bbox.x1)).collect::<Vec<_>>();
        }
        // Track 1 (started left) is now on the right.
        let one = last.iter().find(|(id, _)| *id == 1).unwrap();
        assert!(one.1 > 600.0, "{last:?}");
    }
}

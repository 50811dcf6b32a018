//! Pure safety logic of the appliance: zones, multi-object tracking and the
//! rule engine.
//!
//! Architecture invariant: nothing here does I/O, reads a clock, spawns or
//! awaits. Time, local weekday/minute and the camera's health are inputs.
//! Everything that can be wrong is rejected at construction
//! ([`RuleEngine::new`], [`Tracker::new`]); evaluation cannot fail.
//!
//! Per frame of a camera the pipeline calls [`Tracker::update`] with the
//! person detections and the time, then [`RuleEngine::evaluate`] with the tracks, the PPE
//! detections and the time, and forwards the [`Decision`]s to the outputs and
//! the event store.
//!
//! ```
//! use std::time::Duration;
//! use safe_yolo_domain::{CameraId, Polygon, RuleId, ZoneId};
//! use safe_yolo_rules::{
//!     CameraHealth, FrameInput, InterlockStates, LocalTime, RuleEngine, RuleKind, RuleSpec, TamperSet, Tracker,
//!     TrackerConfig, Weekday, ZoneShape, ZoneSpec,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let camera = CameraId::new("dock-cam")?;
//! let zone = ZoneSpec {
//!     id: ZoneId::new("loading-bay")?,
//!     camera: camera.clone(),
//!     shape: ZoneShape::Area(Polygon::new(&[[0.2, 0.2], [0.8, 0.2], [0.8, 0.9], [0.2, 0.9]])?),
//! };
//! let rule = RuleSpec::new(
//!     RuleId::new("no-entry")?,
//!     camera.clone(),
//!     Some(zone.id.clone()),
//!     RuleKind::Intrusion { min_frames: 3 },
//! );
//! let mut engine = RuleEngine::new(vec![rule], vec![zone])?;
//! let mut tracker = Tracker::new(TrackerConfig::default())?;
//!
//! // Per frame: detections -> tracks -> decisions.
//! let tracks = tracker.update(&[], 1280.0, 720.0, Duration::from_millis(40));
//! let decisions = engine.evaluate(&FrameInput {
//!     camera: &camera,
//!     now: Duration::from_millis(40),
//!     local: LocalTime { weekday: Weekday::Mon, minute_of_day: 9 * 60 },
//!     frame_w: 1280.0,
//!     frame_h: 720.0,
//!     tracks: &tracks,
//!     ppe: &[],
//!     health: CameraHealth::Ok,
//!     door_open: false,
//!     detector_down: false,
//!     tamper: TamperSet::EMPTY,
//!     interlocks: &InterlockStates::EMPTY,
//! });
//! assert!(decisions.is_empty());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod assign;
pub mod engine;
pub mod interlock;
pub mod mot;
pub mod ppe;
pub mod schedule;
pub mod spec;
pub mod tamper;
pub mod track;
pub mod zone;

pub use engine::{
    Alarm, AlarmDetail, CameraHealth, Decision, FrameInput, RuleEngine, TamperSet, ZoneState,
};
pub use interlock::{InterlockLevel, InterlockStates};
pub use safe_yolo_domain::alarm::TamperReason;
pub use schedule::{LocalTime, Schedule, ScheduleError, Weekday, WeekdaySet};
pub use spec::{
    ClearAfter, Crossing, LineDirection, PpeSpec, RuleKind, RuleSpec, RulesError, Severity,
    ZoneNeed,
};
pub use tamper::{LUMA_H, LUMA_W, Luma, TamperCheck, TamperConfig, TamperMeasures};
pub use track::{Track, TrackState, Tracker, TrackerConfig, TrackerError};
pub use zone::{Anchor, ZoneShape, ZoneSpec};

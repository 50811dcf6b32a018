//! Rule specifications and their validation against the zones.

use std::sync::Arc;
use std::time::Duration;

use safe_yolo_domain::{CameraId, InterlockId, OutputId, RuleId, ZoneId};

use crate::schedule::Schedule;
use crate::zone::{Anchor, ZoneShape, ZoneSpec};

/// Largest consensus window of a missing-PPE rule, in frames.
pub const MAX_PPE_WINDOW: u32 = 64;

/// Why a set of rules and zones was rejected. Every variant names the rule
/// or zone at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulesError {
    /// Two rules share an id.
    #[error("rule `{rule}` is defined twice")]
    DuplicateRule {
        /// The repeated id.
        rule: RuleId,
    },
    /// Two zones share an id.
    #[error("zone `{zone}` is defined twice")]
    DuplicateZone {
        /// The repeated id.
        zone: ZoneId,
    },
    /// A rule that needs a zone has none.
    #[error("rule `{rule}` needs a zone")]
    MissingZone {
        /// The rule.
        rule: RuleId,
    },
    /// A rule names a zone that does not exist.
    #[error("rule `{rule}` refers to zone `{zone}`, which does not exist")]
    UnknownZone {
        /// The rule.
        rule: RuleId,
        /// The missing zone.
        zone: ZoneId,
    },
    /// A rule names a zone drawn on another camera.
    #[error(
        "rule `{rule}` is for camera `{rule_camera}` but zone `{zone}` is on camera `{zone_camera}`"
    )]
    ZoneOnOtherCamera {
        /// The rule.
        rule: RuleId,
        /// The zone.
        zone: ZoneId,
        /// The rule's camera.
        rule_camera: CameraId,
        /// The zone's camera.
        zone_camera: CameraId,
    },
    /// An area rule names a line, or a line rule names an area.
    #[error("rule `{rule}` needs {expected}, but zone `{zone}` is not one")]
    WrongZoneShape {
        /// The rule.
        rule: RuleId,
        /// The zone.
        zone: ZoneId,
        /// What the rule needs: "an area" or "a line".
        expected: &'static str,
    },
    /// A threshold is out of its range.
    #[error("rule `{rule}`: `{field}` {reason}")]
    BadThreshold {
        /// The rule.
        rule: RuleId,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// How serious an alarm is.
pub use safe_yolo_domain::Severity;

/// Which way across a counting line raises the rule. Side A is on the left
/// of the line walking from its first to its second point, side B on the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineDirection {
    /// From side A to side B.
    AToB,
    /// From side B to side A.
    BToA,
    /// Either way.
    Either,
}

pub use safe_yolo_domain::alarm::Crossing;

impl safe_yolo_domain::Named for LineDirection {
    const WHAT: &'static str = "crossing direction";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("a_to_b", LineDirection::AToB),
        ("b_to_a", LineDirection::BToA),
        ("either", LineDirection::Either),
    ];
}
safe_yolo_domain::named_vocabulary!(LineDirection);

impl LineDirection {
    /// Whether `c` matches this direction.
    pub fn matches(self, c: Crossing) -> bool {
        matches!(
            (self, c),
            (LineDirection::Either, _)
                | (LineDirection::AToB, Crossing::AToB)
                | (LineDirection::BToA, Crossing::BToA)
        )
    }
}

/// The missing-PPE rule's parameters. Heads are found by a second model
/// whose classes say whether the equipment is worn (e.g. `With Helmet`) or
/// not (`Without Helmet`); a head belongs to a person when its centre is in
/// the upper `head_fraction` of the person's box.
#[derive(Debug, Clone, PartialEq)]
pub struct PpeSpec {
    /// Class names that mean the equipment is worn.
    pub present_classes: Vec<Arc<str>>,
    /// Class names that mean it is missing.
    pub absent_classes: Vec<Arc<str>>,
    /// Consensus window: the last this many frames of the person (1..=64).
    pub window_frames: u32,
    /// Least frames in the window with "missing" evidence; the rule also
    /// needs more "missing" than "worn" frames in the window.
    pub min_frames: u32,
    /// Time after a person enters the zone before evidence counts.
    pub grace: Duration,
    /// Upper fraction of the person box where the head is looked for (0..=1).
    pub head_fraction: f32,
    /// Least score of a PPE detection to be used.
    pub min_score: f32,
}

/// What a rule watches for.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// A person inside a forbidden area for at least `min_frames` frames in
    /// which they were seen (inertia).
    Intrusion {
        /// Frames inside before the alarm (at least 1).
        min_frames: u32,
    },
    /// A person inside an area that requires PPE, without it.
    MissingPpe(PpeSpec),
    /// A person in an area for at least this long.
    Dwell {
        /// Time inside before the alarm.
        min_duration: Duration,
    },
    /// More than `max_persons` persons in an area for `min_frames` frames.
    Occupancy {
        /// Most persons allowed.
        max_persons: u32,
        /// Consecutive frames over the limit before the alarm (at least 1).
        min_frames: u32,
    },
    /// A person crossing a line in a direction. The crossing counts once
    /// the person has stayed `min_frames` frames on the new side.
    LineCrossing {
        /// Which way raises the rule.
        direction: LineDirection,
        /// Frames on the new side that confirm a crossing (at least 1).
        min_frames: u32,
    },
    /// The camera is offline (the pipeline's health signal) for at least
    /// `min_duration`. A camera that delivers frames but is tampered with is
    /// [`RuleKind::CameraTamper`]'s: one fact, one alarm.
    CameraOffline {
        /// How long the camera must be unhealthy before the alarm.
        min_duration: Duration,
    },
    /// The door contact (a guard door, a fence gate) open for at least
    /// `min_duration`; bound to the camera that watches the door, whose
    /// frame is the evidence.
    DoorOpen {
        /// How long the door may stay open before the alarm (zero: at once).
        min_duration: Duration,
    },
    /// A detector down (its process crashed, hung, or cannot load its model)
    /// for at least `min_duration`: the camera is blind. Bound to a camera,
    /// whose newest live frame is the evidence; cleared when detections flow
    /// again.
    DetectorFault {
        /// How long the detector may be down before the alarm (zero: at once).
        min_duration: Duration,
    },
    /// The camera delivers frames but one of `reasons` is reported by its
    /// tamper check (frozen, covered, blinded, defocused, moved) for at least
    /// `min_duration`; never while the camera is offline. The alarm names the
    /// first reason holding when it is raised; it clears when none holds.
    CameraTamper {
        /// The reasons the rule watches (at least one).
        reasons: safe_yolo_domain::alarm::TamperSet,
        /// How long a watched reason must be reported before the alarm (the
        /// camera's check has already waited its own `*_after_s`).
        min_duration: Duration,
    },
}

impl RuleKind {
    /// Every kind, by the name the configuration and the API write, with the zone it
    /// works on. [`RuleKind::name`] and [`RuleKind::needs`] read this table.
    pub const KINDS: &'static [(&'static str, ZoneNeed)] = &[
        ("intrusion", ZoneNeed::Area),
        ("missing_ppe", ZoneNeed::Area),
        ("dwell", ZoneNeed::Area),
        ("occupancy", ZoneNeed::Area),
        ("line_crossing", ZoneNeed::Line),
        ("camera_offline", ZoneNeed::Nothing),
        ("door_open", ZoneNeed::Nothing),
        ("detector_fault", ZoneNeed::Nothing),
        ("camera_tamper", ZoneNeed::Nothing),
    ];

    /// A short name for logs, events and the configuration.
    pub fn name(&self) -> &'static str {
        Self::KINDS[self.index()].0
    }

    /// The zone shape this kind needs.
    pub fn needs(&self) -> ZoneNeed {
        Self::KINDS[self.index()].1
    }

    /// The zone shape the kind called `name` needs; `None` for no kind of that name.
    pub fn need_of(name: &str) -> Option<ZoneNeed> {
        Self::KINDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, need)| *need)
    }

    /// Whether the kind watches a signal (the door contact, the detector's
    /// state) rather than what the camera sees: such rules are stepped when
    /// the signal changes and on the analysis' ticks, not only on frames.
    pub fn is_signal(&self) -> bool {
        matches!(
            self,
            RuleKind::DoorOpen { .. } | RuleKind::DetectorFault { .. }
        )
    }

    /// The kind's row in [`RuleKind::KINDS`].
    fn index(&self) -> usize {
        match self {
            RuleKind::Intrusion { .. } => 0,
            RuleKind::MissingPpe(_) => 1,
            RuleKind::Dwell { .. } => 2,
            RuleKind::Occupancy { .. } => 3,
            RuleKind::LineCrossing { .. } => 4,
            RuleKind::CameraOffline { .. } => 5,
            RuleKind::DoorOpen { .. } => 6,
            RuleKind::DetectorFault { .. } => 7,
            RuleKind::CameraTamper { .. } => 8,
        }
    }
}

/// The zone a rule kind works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneNeed {
    /// An area (`[[zones]]`).
    Area,
    /// A counting line (`[[lines]]`).
    Line,
    /// A camera-wide rule; a zone, if given, only has to exist on the camera.
    Nothing,
}

/// When a raised alarm clears after its condition ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearAfter {
    /// After this many consecutive frames without the condition (at least 1).
    Frames(u32),
    /// After the condition has been absent this long (zero: on the first
    /// frame without it).
    Time(Duration),
}

/// One safety rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// Unique id.
    pub id: RuleId,
    /// What to watch for.
    pub kind: RuleKind,
    /// The camera the rule watches.
    pub camera: CameraId,
    /// The area or line; `None` only for camera-wide rules.
    pub zone: Option<ZoneId>,
    /// Severity carried into the alarm.
    pub severity: Severity,
    /// Least time between two raises of this rule.
    pub cooldown: Duration,
    /// Debounce of clearing.
    pub clear_after: ClearAfter,
    /// Active hours; `None` means always.
    pub schedule: Option<Schedule>,
    /// The interlock that arms it; `None` means always armed
    /// ([`crate::interlock`]: only an explicit *disarmed* disarms).
    pub armed_by: Option<InterlockId>,
    /// Which point of a person's box is tested.
    pub anchor: Anchor,
    /// Class name of the tracks the rule is about (usually `person`).
    pub person_class: Arc<str>,
    /// Outputs to drive while the alarm is raised, carried into decisions.
    pub outputs: Vec<OutputId>,
}

impl RuleSpec {
    /// A rule with the usual defaults: warning severity, no cooldown,
    /// cleared after one frame without the condition, always active,
    /// feet anchor, class `person`, no outputs.
    pub fn new(id: RuleId, camera: CameraId, zone: Option<ZoneId>, kind: RuleKind) -> Self {
        Self {
            id,
            kind,
            camera,
            zone,
            severity: Severity::Warning,
            cooldown: Duration::ZERO,
            clear_after: ClearAfter::Frames(1),
            schedule: None,
            armed_by: None,
            anchor: Anchor::Feet,
            person_class: Arc::from("person"),
            outputs: Vec::new(),
        }
    }
}

fn bad(rule: &RuleId, field: &'static str, reason: &'static str) -> RulesError {
    RulesError::BadThreshold {
        rule: rule.clone(),
        field,
        reason,
    }
}

/// Checks one rule's thresholds and its zone reference; returns the index of
/// its zone in `zones`.
pub(crate) fn validate_rule(
    rule: &RuleSpec,
    zones: &[ZoneSpec],
) -> Result<Option<usize>, RulesError> {
    let id = &rule.id;
    match &rule.kind {
        RuleKind::Intrusion { min_frames } if *min_frames == 0 => {
            return Err(bad(id, "min_frames", "must be at least 1"));
        }
        RuleKind::Occupancy { min_frames, .. } if *min_frames == 0 => {
            return Err(bad(id, "min_frames", "must be at least 1"));
        }
        RuleKind::LineCrossing { min_frames, .. } if *min_frames == 0 => {
            return Err(bad(id, "min_frames", "must be at least 1"));
        }
        RuleKind::CameraTamper { reasons, .. } if reasons.is_empty() => {
            return Err(bad(id, "reasons", "must name at least one reason"));
        }
        RuleKind::MissingPpe(p) => {
            if p.absent_classes.is_empty() {
                return Err(bad(id, "absent_classes", "must name at least one class"));
            }
            if p.present_classes
                .iter()
                .any(|c| p.absent_classes.contains(c))
            {
                return Err(bad(
                    id,
                    "present_classes",
                    "must not share a class with absent_classes",
                ));
            }
            if p.window_frames == 0 || p.window_frames > MAX_PPE_WINDOW {
                return Err(bad(id, "window_frames", "must be between 1 and 64"));
            }
            if p.min_frames == 0 || p.min_frames > p.window_frames {
                return Err(bad(id, "min_frames", "must be between 1 and window_frames"));
            }
            if !(p.head_fraction > 0.0 && p.head_fraction <= 1.0) {
                return Err(bad(id, "head_fraction", "must be above 0 and at most 1"));
            }
            if !(0.0..=1.0).contains(&p.min_score) {
                return Err(bad(id, "min_score", "must be between 0 and 1"));
            }
        }
        _ => {}
    }
    if rule.clear_after == ClearAfter::Frames(0) {
        return Err(bad(id, "clear_after", "must be at least 1 frame"));
    }
    if rule.person_class.is_empty() {
        return Err(bad(id, "person_class", "must not be empty"));
    }
    let Some(zone) = &rule.zone else {
        return match rule.kind.needs() {
            ZoneNeed::Nothing => Ok(None),
            ZoneNeed::Area | ZoneNeed::Line => Err(RulesError::MissingZone { rule: id.clone() }),
        };
    };
    let Some(zi) = zones.iter().position(|z| &z.id == zone) else {
        return Err(RulesError::UnknownZone {
            rule: id.clone(),
            zone: zone.clone(),
        });
    };
    let z = &zones[zi];
    if z.camera != rule.camera {
        return Err(RulesError::ZoneOnOtherCamera {
            rule: id.clone(),
            zone: zone.clone(),
            rule_camera: rule.camera.clone(),
            zone_camera: z.camera.clone(),
        });
    }
    let expected = match (rule.kind.needs(), &z.shape) {
        (ZoneNeed::Area, ZoneShape::Line(_)) => Some("an area"),
        (ZoneNeed::Line, ZoneShape::Area(_)) => Some("a line"),
        _ => None,
    };
    if let Some(expected) = expected {
        return Err(RulesError::WrongZoneShape {
            rule: id.clone(),
            zone: zone.clone(),
            expected,
        });
    }
    Ok(Some(zi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has its own row in the table, found again by its name.
    #[test]
    fn kinds_table_rows_are_the_kinds() {
        let d = Duration::ZERO;
        let kinds = [
            RuleKind::Intrusion { min_frames: 1 },
            RuleKind::MissingPpe(PpeSpec {
                present_classes: Vec::new(),
                absent_classes: Vec::new(),
                window_frames: 1,
                min_frames: 1,
                grace: d,
                head_fraction: 0.5,
                min_score: 0.5,
            }),
            RuleKind::Dwell { min_duration: d },
            RuleKind::Occupancy {
                max_persons: 1,
                min_frames: 1,
            },
            RuleKind::LineCrossing {
                direction: LineDirection::Either,
                min_frames: 1,
            },
            RuleKind::CameraOffline { min_duration: d },
            RuleKind::DoorOpen { min_duration: d },
            RuleKind::DetectorFault { min_duration: d },
            RuleKind::CameraTamper {
                reasons: safe_yolo_domain::alarm::TamperSet::all(),
                min_duration: d,
            },
        ];
        assert_eq!(kinds.len(), RuleKind::KINDS.len());
        for (i, k) in kinds.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(RuleKind::need_of(k.name()), Some(k.needs()));
        }
        assert_eq!(RuleKind::need_of("loitering"), None);
        assert_eq!(RuleKind::need_of("line_crossing"), Some(ZoneNeed::Line));
    }
}

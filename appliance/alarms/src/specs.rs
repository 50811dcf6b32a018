//! The validated configuration, expressed as the rule engine's specs.

use std::sync::Arc;

use safe_yolo_config::{Config, RuleKind};
use safe_yolo_rules as rules;

/// Minimum frames for occupancy and line-crossing rules (not configurable:
/// it filters single-frame detector flicker).
const DEBOUNCE_FRAMES: u32 = 2;

/// A head-box (hard hat / no hard hat) belongs to a person when it lies in
/// the top third of the person's box.
const PPE_HEAD_FRACTION: f32 = 0.35;

/// PPE detections below this score are ignored.
const PPE_MIN_SCORE: f32 = 0.3;

/// Zones and lines of the configuration.
pub fn zone_specs(config: &Config) -> Vec<rules::ZoneSpec> {
    config
        .zones
        .iter()
        .map(|z| rules::ZoneSpec {
            id: z.id.clone(),
            camera: z.camera.clone(),
            shape: rules::ZoneShape::Area(z.polygon.clone()),
        })
        .chain(config.lines.iter().map(|l| rules::ZoneSpec {
            id: l.id.clone(),
            camera: l.camera.clone(),
            shape: rules::ZoneShape::Line(l.line),
        }))
        .collect()
}

/// Enabled rules of the configuration. Fails only if the config crate and
/// the rule engine disagree on what is valid (a bug, reported clearly).
pub fn rule_specs(config: &Config) -> Result<Vec<rules::RuleSpec>, rules::ScheduleError> {
    let mut out = Vec::new();
    for r in config.rules.iter().filter(|r| r.enabled) {
        let kind = match &r.kind {
            RuleKind::Intrusion { min_frames } => rules::RuleKind::Intrusion {
                min_frames: *min_frames,
            },
            RuleKind::MissingPpe {
                present_class,
                missing_class,
                min_frames,
                grace,
            } => rules::RuleKind::MissingPpe(rules::PpeSpec {
                present_classes: vec![Arc::from(present_class.as_str())],
                absent_classes: vec![Arc::from(missing_class.as_str())],
                window_frames: min_frames.saturating_mul(2).max(1),
                min_frames: *min_frames,
                grace: *grace,
                head_fraction: PPE_HEAD_FRACTION,
                min_score: PPE_MIN_SCORE,
            }),
            RuleKind::Dwell { limit } => rules::RuleKind::Dwell {
                min_duration: *limit,
            },
            RuleKind::Occupancy { max_persons } => rules::RuleKind::Occupancy {
                max_persons: *max_persons,
                min_frames: DEBOUNCE_FRAMES,
            },
            RuleKind::LineCrossing { direction } => rules::RuleKind::LineCrossing {
                direction: *direction,
                min_frames: DEBOUNCE_FRAMES,
            },
            RuleKind::DoorOpen { after } => rules::RuleKind::DoorOpen {
                min_duration: *after,
            },
            RuleKind::CameraOffline { after } => rules::RuleKind::CameraOffline {
                min_duration: *after,
            },
        };
        let schedule = match &r.schedule {
            None => None,
            Some(s) => Some(rules::Schedule::new(
                rules::WeekdaySet::of(&s.days),
                s.from_min,
                s.to_min,
            )?),
        };
        let mut spec = rules::RuleSpec::new(r.id.clone(), r.camera.clone(), r.zone.clone(), kind);
        spec.severity = r.severity;
        spec.cooldown = r.cooldown;
        spec.clear_after = rules::ClearAfter::Time(r.clear_after);
        spec.schedule = schedule;
        spec.anchor = r.anchor;
        spec.outputs = r.outputs.clone();
        out.push(spec);
    }
    Ok(out)
}

//! Rules: the file's `[[rules]]`, validated straight into the rule engine's
//! [`RuleSpec`] (kind and parameters included), plus what only the appliance needs
//! around it: a name, an on/off switch and the output actions.
//!
//! A rule kind and its parameters are declared once, in the rules crate
//! ([`RuleKind`]); this module only says how the file writes them (its keys and
//! defaults) and checks their ranges.

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use safe_yolo_domain::alarm::{TamperReason, TamperSet};
use safe_yolo_domain::{CameraId, InterlockId, Named, OutputId, RuleId, ZoneId};
use safe_yolo_rules::spec::MAX_PPE_WINDOW;
use safe_yolo_rules::{ClearAfter, PpeSpec, WeekdaySet, ZoneNeed};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::check::Ctx;
use crate::detector::DetectorConfig;
use crate::features::Features;
use crate::zones::Anchor;

pub use safe_yolo_rules::{RuleKind, RuleSpec, Schedule};

/// Event severity.
pub use safe_yolo_domain::Severity;

/// A day of the week, as schedules name it.
pub use safe_yolo_domain::Weekday;

/// Crossing direction for a line rule (the rule engine's word).
pub use safe_yolo_rules::LineDirection;

/// How a siren sounds (the outputs' word: steady, or pulsed with an on and an off time).
pub use safe_yolo_outputs::Pattern as SirenPattern;

/// Frames of occupancy and line-crossing rules before they count (not configurable:
/// it filters single-frame detector flicker).
const DEBOUNCE_FRAMES: u32 = 2;

/// A head box (hard hat / no hard hat) belongs to a person when it lies in the top
/// this fraction of the person's box.
const PPE_HEAD_FRACTION: f32 = 0.35;

/// PPE detections below this score are ignored.
const PPE_MIN_SCORE: f32 = 0.3;

/// A rule as written: a `[[rules]]` entry of the file without its `id`, and the
/// document the API takes and gives for a rule (its id is in the URL).
///
/// Values are loose here (numbers and words); their ranges, the kind-specific keys
/// and the references are checked by the configuration's validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RuleDoc")]
pub struct RawRule {
    /// Human name, 1-64 characters (default: the id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the rule watches for; the kind-specific keys below say which kinds take them.
    #[schemars(schema_with = "kind_schema")]
    pub kind: String,
    /// Disabled rules are not evaluated (default: enabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Set in the configuration file only: a locked rule may be edited through
    /// the API but never disabled, deleted or unlocked there (the file decides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    /// The zone or line watched; every kind but `camera_offline`, `camera_tamper`,
    /// `door_open` and `detector_fault`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The camera watched, for `camera_offline`, `camera_tamper`, `door_open` and
    /// `detector_fault` (others take the zone's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// Severity of the alarm (default: warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Severity>")]
    pub severity: Option<String>,
    /// Least time between two raises, 0-86400 s (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_s: Option<f64>,
    /// The condition must be gone this long before the alarm clears, 0-3600 s (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_after_s: Option<f64>,
    /// When the rule is armed; absent: always.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<RawSchedule>,
    /// The interlock (`[[integrations.interlocks]]` id) that arms the rule: it is
    /// evaluated only while the interlock is not explicitly disarmed (unknown or
    /// stale arms: fail-safe). Absent: always armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub armed_by: Option<String>,
    /// Output lines driven while the alarm is raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<String>>,
    /// Siren behaviour for siren outputs (default: steady until acknowledged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub siren: Option<RawSiren>,
    /// Relay outputs latch this long, 0.1-86400 s; absent: until acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_latch_s: Option<f64>,
    /// Point of a person's box tested against the zone (default: feet).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Anchor>")]
    pub anchor: Option<String>,
    /// `intrusion` (1-1000, default 3) and `missing_ppe` (1-32, default 5): frames of
    /// evidence before the alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_frames: Option<i64>,
    /// `dwell`: time in the zone before the alarm, 1-86400 s (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// `occupancy`: persons allowed in the zone, 0-1000 (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_persons: Option<i64>,
    /// `line_crossing`: which way counts (default: either).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<LineDirection>")]
    pub direction: Option<String>,
    /// `missing_ppe`: class name that shows the PPE is worn (default `With Helmet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppe_present_class: Option<String>,
    /// `missing_ppe`: class name that shows it is missing (default `Without Helmet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppe_missing_class: Option<String>,
    /// `missing_ppe`: time in the zone before PPE is required, 0-3600 s (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_s: Option<f64>,
    /// `camera_offline`: silence that counts as offline, 0.5-3600 s (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_after_s: Option<f64>,
    /// `door_open`: how long the door may stay open, 0-86400 s (default 0: at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_after_s: Option<f64>,
    /// `detector_fault`: how long a detector may be down, 0-3600 s (default 0: at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_after_s: Option<f64>,
    /// `camera_tamper`: the reasons watched (default: all of `frozen`, `covered`,
    /// `blinded`, `defocused`, `moved`). The measures and how long each must hold
    /// are the camera's (`[cameras.tamper]`): they depend on the scene and the
    /// lens, not on what the alarm drives.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<safe_yolo_domain::alarm::TamperReason>>")]
    pub reasons: Option<Vec<String>>,
    /// `camera_tamper`: how long a watched reason must be reported, on top of the
    /// camera's own `*_after_s`, 0-3600 s (default 0: at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tamper_after_s: Option<f64>,
}

/// When a rule is armed: on `days`, from `from` to `to` (local time, `HH:MM`; `to`
/// before `from` wraps midnight; `24:00` is the end of the day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ScheduleDoc")]
pub struct RawSchedule {
    /// Days the window opens (default: every day).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<Weekday>>")]
    pub days: Option<Vec<String>>,
    /// Opening time `HH:MM` (default `00:00`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Closing time `HH:MM` (default `24:00`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Siren behaviour of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SirenDoc")]
pub struct RawSiren {
    /// How the siren sounds.
    #[schemars(schema_with = "pattern_schema")]
    pub pattern: String,
    /// Full on+off period of `pulsed`, 100-10000 ms (default 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<i64>,
    /// Stops by itself after this long, 1-3600 s; absent: until acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

/// The schema of a rule's kind: one of the engine's kinds.
fn kind_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = RuleKind::KINDS.iter().map(|(n, _)| *n).collect();
    schemars::json_schema!({
        "description": "What the rule watches for.",
        "type": "string",
        "enum": names,
    })
}

/// The schema of a siren's pattern: one of the outputs' pattern kinds.
fn pattern_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "How a siren sounds.",
        "type": "string",
        "enum": SirenPattern::KINDS,
    })
}

impl RawRule {
    /// The rule's own problems, its references (zone, camera, outputs) and what the
    /// box offers (a PPE model, a door contact) unchecked, at key paths under `path`:
    /// what can be told of a document before it meets the configuration.
    pub fn problems(&self, id: &str, path: &str) -> Vec<Problem> {
        let rc = RuleContext {
            zones: HashMap::new(),
            cameras: HashSet::new(),
            outputs: HashSet::new(),
            no_ppe: None,
            has_door: true,
            interlocks: HashSet::new(),
            incomplete: true,
        };
        Ctx::standalone(|ctx| {
            validate_rule(ctx, path, id, self, &rc);
        })
    }
}

/// Which kind-specific keys each kind takes; any other kind-specific key is refused.
const KIND_KEYS: &[(&str, &[&str])] = &[
    ("intrusion", &["min_frames"]),
    (
        "missing_ppe",
        &[
            "min_frames",
            "ppe_present_class",
            "ppe_missing_class",
            "grace_s",
        ],
    ),
    ("dwell", &["seconds"]),
    ("occupancy", &["max_persons"]),
    ("line_crossing", &["direction"]),
    ("camera_offline", &["offline_after_s"]),
    ("door_open", &["open_after_s"]),
    ("detector_fault", &["down_after_s"]),
    ("camera_tamper", &["reasons", "tamper_after_s"]),
];

impl RawRule {
    /// The kind-specific keys, each with whether it is given.
    fn kind_keys(&self) -> [(&'static str, bool); 12] {
        [
            ("min_frames", self.min_frames.is_some()),
            ("seconds", self.seconds.is_some()),
            ("max_persons", self.max_persons.is_some()),
            ("direction", self.direction.is_some()),
            ("ppe_present_class", self.ppe_present_class.is_some()),
            ("ppe_missing_class", self.ppe_missing_class.is_some()),
            ("grace_s", self.grace_s.is_some()),
            ("offline_after_s", self.offline_after_s.is_some()),
            ("open_after_s", self.open_after_s.is_some()),
            ("down_after_s", self.down_after_s.is_some()),
            ("reasons", self.reasons.is_some()),
            ("tamper_after_s", self.tamper_after_s.is_some()),
        ]
    }
}

/// Siren behaviour of a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SirenAction {
    /// Pattern.
    pub pattern: SirenPattern,
    /// Stops by itself after this long; `None`: until acknowledged.
    pub duration: Option<Duration>,
}

/// One safety rule: the rule engine's spec, which it runs as is, with what the
/// appliance adds around it.
///
/// It dereferences to its [`RuleSpec`]: `rule.kind`, `rule.camera`, ... are the spec's.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// What the rule engine runs.
    pub spec: RuleSpec,
    /// Human name.
    pub name: String,
    /// Disabled rules are not evaluated.
    pub enabled: bool,
    /// Siren behaviour for siren outputs.
    pub siren: SirenAction,
    /// Relay outputs latch until acknowledged (`None`) or for this long.
    pub relay_latch: Option<Duration>,
}

impl Deref for RuleConfig {
    type Target = RuleSpec;

    fn deref(&self) -> &RuleSpec {
        &self.spec
    }
}

impl crate::Config {
    /// The enabled rules, as the rule engine runs them.
    pub fn rule_specs(&self) -> Vec<RuleSpec> {
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .map(|r| r.spec.clone())
            .collect()
    }
}

/// Minute of the day of a local time `HH:MM` (`H:MM` too; `24:00` is 1440,
/// the end of the day), as schedules write it; `None` when it is not one.
/// The configuration file and the API parse times with this one function.
pub fn minutes_of_day(s: &str) -> Option<u16> {
    if s == "24:00" {
        return Some(1440);
    }
    let (h, m) = s.split_once(':')?;
    let digits = |t: &str, max: usize| {
        !t.is_empty() && t.len() <= max && t.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// What a rule's checks look up in the rest of the configuration.
pub(crate) struct RuleContext<'a> {
    /// Zone and line ids -> (camera id, is a line).
    pub zones: HashMap<&'a str, (&'a str, bool)>,
    /// Camera ids.
    pub cameras: HashSet<&'a str>,
    /// Output line ids.
    pub outputs: HashSet<&'a str>,
    /// Why missing-PPE rules cannot run on this box, when they cannot.
    pub no_ppe: Option<&'static str>,
    /// Whether a door contact input is wired.
    pub has_door: bool,
    /// Interlock ids (`[[integrations.interlocks]]`).
    pub interlocks: HashSet<String>,
    /// Some list failed to parse: references are not checked (follow-on noise).
    pub incomplete: bool,
}

/// Why missing-PPE rules cannot run with these features and this detector, if so.
pub(crate) fn no_ppe(features: Features, detector: &DetectorConfig) -> Option<&'static str> {
    if !features.ppe {
        Some("missing_ppe rules need features.ppe = true")
    } else if detector.ppe_model.is_none() {
        Some("missing_ppe rules need detector.ppe_model (a PPE model manifest)")
    } else {
        None
    }
}

/// The kind and its parameters, as the engine runs them.
fn validate_kind(
    ctx: &mut Ctx<'_>,
    p: &str,
    r: &RawRule,
    rc: &RuleContext<'_>,
) -> Option<RuleKind> {
    let secs = |ctx: &mut Ctx<'_>, key: &str, v, default, lo, hi| {
        ctx.secs_in(&format!("{p}.{key}"), v, default, lo, hi)
    };
    match r.kind.as_str() {
        "intrusion" => ctx
            .int_in::<u32>(&format!("{p}.min_frames"), r.min_frames, 3, 1, 1000)
            .map(|min_frames| RuleKind::Intrusion { min_frames }),
        "missing_ppe" => {
            if let Some(why) = rc.no_ppe {
                ctx.bad(format!("{p}.kind"), why);
            }
            // The consensus window is twice the frames asked for, within the engine's.
            let most = i64::from(MAX_PPE_WINDOW / 2);
            let min_frames =
                ctx.int_in::<u32>(&format!("{p}.min_frames"), r.min_frames, 5, 1, most);
            let grace = secs(ctx, "grace_s", r.grace_s, 3.0, 0.0, 3600.0);
            let class = |v: &Option<String>, default: &str| {
                vec![Arc::from(v.as_deref().unwrap_or(default))]
            };
            Some(RuleKind::MissingPpe(PpeSpec {
                present_classes: class(&r.ppe_present_class, "With Helmet"),
                absent_classes: class(&r.ppe_missing_class, "Without Helmet"),
                window_frames: min_frames?.saturating_mul(2),
                min_frames: min_frames?,
                grace: grace?,
                head_fraction: PPE_HEAD_FRACTION,
                min_score: PPE_MIN_SCORE,
            }))
        }
        "dwell" => match r.seconds {
            None => {
                ctx.bad(format!("{p}.seconds"), "is required for a dwell rule");
                None
            }
            s => secs(ctx, "seconds", s, 0.0, 1.0, 86_400.0)
                .map(|min_duration| RuleKind::Dwell { min_duration }),
        },
        "occupancy" => match r.max_persons {
            None => {
                ctx.bad(
                    format!("{p}.max_persons"),
                    "is required for an occupancy rule",
                );
                None
            }
            m => ctx
                .int_in::<u32>(&format!("{p}.max_persons"), m, 0, 0, 1000)
                .map(|max_persons| RuleKind::Occupancy {
                    max_persons,
                    min_frames: DEBOUNCE_FRAMES,
                }),
        },
        "line_crossing" => ctx
            .named(
                &format!("{p}.direction"),
                r.direction.as_deref(),
                LineDirection::Either,
            )
            .map(|direction| RuleKind::LineCrossing {
                direction,
                min_frames: DEBOUNCE_FRAMES,
            }),
        "door_open" => {
            if !rc.has_door {
                ctx.bad(
                    format!("{p}.kind"),
                    "door_open rules need an [outputs.door_contact] input",
                );
            }
            secs(ctx, "open_after_s", r.open_after_s, 0.0, 0.0, 86_400.0)
                .map(|min_duration| RuleKind::DoorOpen { min_duration })
        }
        "camera_offline" => secs(ctx, "offline_after_s", r.offline_after_s, 2.0, 0.5, 3600.0)
            .map(|min_duration| RuleKind::CameraOffline { min_duration }),
        "detector_fault" => secs(ctx, "down_after_s", r.down_after_s, 0.0, 0.0, 3600.0)
            .map(|min_duration| RuleKind::DetectorFault { min_duration }),
        "camera_tamper" => {
            let mut reasons = TamperSet::EMPTY;
            let mut ok = true;
            for (i, n) in r.reasons.iter().flatten().enumerate() {
                match ctx.named(
                    &format!("{p}.reasons[{i}]"),
                    Some(n.as_str()),
                    TamperReason::Frozen,
                ) {
                    Some(reason) => reasons = reasons.with(reason),
                    None => ok = false,
                }
            }
            match &r.reasons {
                None => reasons = TamperSet::all(),
                Some(v) if v.is_empty() => {
                    ctx.bad(
                        format!("{p}.reasons"),
                        "must list at least one reason (frozen, covered, blinded, defocused, moved)",
                    );
                    ok = false;
                }
                Some(_) => {}
            }
            let min_duration = secs(ctx, "tamper_after_s", r.tamper_after_s, 0.0, 0.0, 3600.0);
            if !ok {
                return None;
            }
            min_duration.map(|min_duration| RuleKind::CameraTamper {
                reasons,
                min_duration,
            })
        }
        // Refused by the caller.
        _ => None,
    }
}

/// The rule's camera and zone, checked against the zones, lines and cameras.
fn validate_place(
    ctx: &mut Ctx<'_>,
    p: &str,
    r: &RawRule,
    need: ZoneNeed,
    rc: &RuleContext<'_>,
) -> (Option<CameraId>, Option<ZoneId>) {
    if need == ZoneNeed::Nothing {
        if r.zone.is_some() {
            ctx.bad(
                format!("{p}.zone"),
                format!("does not apply to a {} rule; give `camera`", r.kind),
            );
        }
        let cam = match r.camera.as_deref() {
            None => {
                ctx.bad(
                    format!("{p}.camera"),
                    format!(
                        "is required for a {} rule (the camera that watches it)",
                        r.kind
                    ),
                );
                None
            }
            Some(c) => {
                let id = ctx.id(&format!("{p}.camera"), c, CameraId::new);
                if id.is_some() && !rc.incomplete && !rc.cameras.contains(c) {
                    ctx.bad(format!("{p}.camera"), format!("no camera has the id {c:?}"));
                    None
                } else {
                    id
                }
            }
        };
        return (cam, None);
    }
    if r.camera.is_some() {
        ctx.bad(
            format!("{p}.camera"),
            "is taken from the zone; give only `zone`",
        );
    }
    let Some(z) = r.zone.as_deref() else {
        ctx.bad(
            format!("{p}.zone"),
            format!("is required for a rule of kind {:?}", r.kind),
        );
        return (None, None);
    };
    let zid = ctx.id(&format!("{p}.zone"), z, ZoneId::new);
    match rc.zones.get(z) {
        Some((cam, is_line)) => {
            let wants_line = need == ZoneNeed::Line;
            if *is_line != wants_line {
                let what = if wants_line {
                    "a line ([[lines]])"
                } else {
                    "a zone ([[zones]])"
                };
                ctx.bad(
                    format!("{p}.zone"),
                    format!("{z:?} must name {what} for a rule of kind {:?}", r.kind),
                );
            }
            (CameraId::new(*cam).ok(), zid)
        }
        None => {
            if !rc.incomplete {
                ctx.bad(
                    format!("{p}.zone"),
                    format!("no zone or line has the id {z:?}"),
                );
            }
            (None, None)
        }
    }
}

fn validate_schedule(ctx: &mut Ctx<'_>, p: &str, s: &RawSchedule) -> Option<Schedule> {
    let mut ok = true;
    let mut days = Vec::new();
    for (i, d) in s
        .days
        .clone()
        .unwrap_or_else(|| {
            Weekday::NAMED
                .iter()
                .map(|(n, _)| (*n).to_owned())
                .collect()
        })
        .iter()
        .enumerate()
    {
        match ctx.named(&format!("{p}.days[{i}]"), Some(d.as_str()), Weekday::Mon) {
            Some(w) => days.push(w),
            None => ok = false,
        }
    }
    if days.is_empty() {
        ctx.bad(format!("{p}.days"), "must list at least one day (mon..sun)");
        ok = false;
    }
    let mut time = |key: &str, v: Option<&str>, default: u16| -> Option<u16> {
        match v {
            None => Some(default),
            Some(t) => minutes_of_day(t).or_else(|| {
                ctx.bad(
                    format!("{p}.{key}"),
                    format!("{t:?} is not a time of day HH:MM (00:00 to 24:00)"),
                );
                None
            }),
        }
    };
    let from_min = time("from", s.from.as_deref(), 0);
    let to_min = time("to", s.to.as_deref(), 1440);
    let (Some(f), Some(t)) = (from_min, to_min) else {
        return None;
    };
    if !ok {
        return None;
    }
    if f == t {
        ctx.bad(
            format!("{p}.to"),
            "must differ from `from` (use 00:00 to 24:00 for all day)",
        );
        return None;
    }
    match Schedule::new(WeekdaySet::of(&days), f, t) {
        Ok(s) => Some(s),
        Err(e) => {
            // Only `from = "24:00"` gets here: the day has ended.
            ctx.bad(format!("{p}.from"), e.to_string());
            None
        }
    }
}

fn validate_siren(ctx: &mut Ctx<'_>, sp: &str, s: &RawSiren) -> Option<SirenAction> {
    let pattern = match SirenPattern::of_kind(&s.pattern, Duration::ZERO) {
        None => {
            ctx.bad(
                format!("{sp}.pattern"),
                format!(
                    "{:?} is not one of: {}",
                    s.pattern,
                    SirenPattern::KINDS.join(", ")
                ),
            );
            None
        }
        Some(SirenPattern::Steady) => {
            if s.period_ms.is_some() {
                ctx.bad(
                    format!("{sp}.period_ms"),
                    "applies only to pattern = \"pulsed\"",
                );
            }
            Some(SirenPattern::Steady)
        }
        Some(SirenPattern::Pulsed { .. }) => ctx
            .int_in::<u64>(&format!("{sp}.period_ms"), s.period_ms, 1000, 100, 10_000)
            .map(|ms| SirenPattern::pulsed(Duration::from_millis(ms))),
    };
    let duration = match s.duration_s {
        None => Some(None),
        d => ctx
            .secs_in(&format!("{sp}.duration_s"), d, 0.0, 1.0, 3600.0)
            .map(Some),
    };
    Some(SirenAction {
        pattern: pattern?,
        duration: duration?,
    })
}

/// Checks one rule; `p` is its key path.
pub(crate) fn validate_rule(
    ctx: &mut Ctx<'_>,
    p: &str,
    id: &str,
    r: &RawRule,
    rc: &RuleContext<'_>,
) -> Option<RuleConfig> {
    let raw_id = id;
    let id = ctx.id(&format!("{p}.id"), id, RuleId::new);
    let (Some(need), Some((_, allowed))) = (
        RuleKind::need_of(&r.kind),
        KIND_KEYS.iter().find(|(k, _)| *k == r.kind),
    ) else {
        let names: Vec<&str> = RuleKind::KINDS.iter().map(|(n, _)| *n).collect();
        ctx.bad(
            format!("{p}.kind"),
            format!("{:?} is not one of: {}", r.kind, names.join(", ")),
        );
        return None;
    };
    for (key, present) in r.kind_keys() {
        if present && !allowed.contains(&key) {
            ctx.bad(
                format!("{p}.{key}"),
                format!("does not apply to a rule of kind {:?}", r.kind),
            );
        }
    }
    let name = ctx.name(&format!("{p}.name"), r.name.as_deref());
    let kind = validate_kind(ctx, p, r, rc);
    let (camera, zone) = validate_place(ctx, p, r, need, rc);

    let severity = ctx.named(
        &format!("{p}.severity"),
        r.severity.as_deref(),
        Severity::Warning,
    );
    let cooldown = ctx.secs_in(
        &format!("{p}.cooldown_s"),
        r.cooldown_s,
        30.0,
        0.0,
        86_400.0,
    );
    let clear_after = ctx.secs_in(
        &format!("{p}.clear_after_s"),
        r.clear_after_s,
        2.0,
        0.0,
        3600.0,
    );
    let schedule = match &r.schedule {
        None => Some(None),
        Some(s) => validate_schedule(ctx, &format!("{p}.schedule"), s).map(Some),
    };
    let mut outputs = Vec::new();
    for (i, o) in r.outputs.iter().flatten().enumerate() {
        let path = format!("{p}.outputs[{i}]");
        if let Some(oid) = ctx.id(&path, o, OutputId::new) {
            if !rc.incomplete && !rc.outputs.contains(o.as_str()) {
                ctx.bad(path, format!("no output line has the id {o:?}"));
            } else {
                outputs.push(oid);
            }
        }
    }
    let siren = match &r.siren {
        None => Some(SirenAction {
            pattern: SirenPattern::Steady,
            duration: None,
        }),
        Some(s) => validate_siren(ctx, &format!("{p}.siren"), s),
    };
    let relay_latch = match r.relay_latch_s {
        None => Some(None),
        v => ctx
            .secs_in(&format!("{p}.relay_latch_s"), v, 0.0, 0.1, 86_400.0)
            .map(Some),
    };
    let anchor = ctx.named(&format!("{p}.anchor"), r.anchor.as_deref(), Anchor::Feet);
    let armed_by = match r.armed_by.as_deref() {
        None => Some(None),
        Some(a) => {
            let path = format!("{p}.armed_by");
            match ctx.id(&path, a, InterlockId::new) {
                Some(i) if rc.incomplete || rc.interlocks.contains(a) => Some(Some(i)),
                Some(_) => {
                    ctx.bad(
                        path,
                        format!("no interlock has the id {a:?} (see [[integrations.interlocks]])"),
                    );
                    None
                }
                None => None,
            }
        }
    };

    let mut spec = RuleSpec::new(id?, camera?, zone, kind?);
    spec.severity = severity?;
    spec.cooldown = cooldown?;
    spec.clear_after = ClearAfter::Time(clear_after?);
    spec.schedule = schedule?;
    spec.armed_by = armed_by?;
    spec.anchor = anchor?;
    spec.outputs = outputs;
    Some(RuleConfig {
        name: name?.unwrap_or_else(|| raw_id.to_owned()),
        enabled: r.enabled.unwrap_or(true),
        siren: siren?,
        relay_latch: relay_latch?,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hhmm() {
        assert_eq!(minutes_of_day("06:30"), Some(390));
        assert_eq!(minutes_of_day("00:00"), Some(0));
        assert_eq!(minutes_of_day("7:05"), Some(425));
        assert_eq!(minutes_of_day("23:59"), Some(1439));
        assert_eq!(minutes_of_day("24:00"), Some(1440));
        for bad in [
            "24:01", "07:60", "7", "12:5", "+7:05", "-1:00", "1:2:3", "", "ab:cd", "123:00",
        ] {
            assert_eq!(minutes_of_day(bad), None, "{bad}");
        }
    }

    /// The file knows every kind of the engine, and no other.
    #[test]
    fn every_engine_kind_has_its_keys() {
        let file: Vec<&str> = KIND_KEYS.iter().map(|(k, _)| *k).collect();
        let engine: Vec<&str> = RuleKind::KINDS.iter().map(|(k, _)| *k).collect();
        assert_eq!(file, engine);
    }
}

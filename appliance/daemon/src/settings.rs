//! Settings edited through the API, layered over the configuration file.
//!
//! The configuration file stays the base. Zones, lines and rules edited through
//! the API are kept as documents in the store and laid over the file's
//! `[[zones]]`, `[[lines]]` and `[[rules]]` (same id: replaced; new id: added; deleted:
//! removed). Every edit is validated by rendering the layered configuration
//! and running the very same validation as `check-config`, so the API can
//! never put the daemon in a state the file could not describe. A valid edit
//! then swaps the running rule engine's rules and zones without a restart.
//!
//! Cameras and output lines are wiring: they change in the file, with a
//! restart, and the API refuses to edit them live.

use std::collections::BTreeMap;
use std::path::PathBuf;

use parking_lot::Mutex;
use safe_yolo_alarms::{Dispatcher, DispatcherConfig, RulesControl};
use safe_yolo_api::control::{ControlError, Problem};
use safe_yolo_api::{Control, SettingsChange};
use safe_yolo_config::{Config, RuleKind, Schedule, SourceConfig};
use safe_yolo_domain::{Named, Weekday};
use safe_yolo_rules::ClearAfter;
use safe_yolo_store::SettingKind;
use serde_json::{Value, json};

/// The running settings.
pub struct LiveSettings {
    file_text: String,
    base_dir: PathBuf,
    env: Vec<(String, String)>,
    state: Mutex<State>,
    rules: RulesControl,
    dispatcher: Dispatcher,
}

impl std::fmt::Debug for LiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSettings")
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

struct State {
    /// (kind, id) -> document, or `None` for a deletion.
    overlay: BTreeMap<(&'static str, String), Option<Value>>,
    config: Config,
}

fn section(kind: SettingKind) -> Option<&'static str> {
    match kind {
        SettingKind::Zone => Some("zones"),
        SettingKind::Rule => Some("rules"),
        SettingKind::Line => Some("lines"),
        SettingKind::Camera | SettingKind::Output => None,
    }
}

/// JSON (API wire form) to TOML; nulls (absent optional fields) are dropped.
fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(o) => toml::Value::Table(
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

impl LiveSettings {
    /// Builds the layered settings from the file and the stored edits.
    /// Stored edits that no longer validate against the file (a zone whose
    /// camera was removed, say) are skipped with an error in the log.
    pub fn new(
        file_text: String,
        base_dir: PathBuf,
        env: Vec<(String, String)>,
        config: Config,
        stored: Vec<(SettingKind, String, Value)>,
        rules: RulesControl,
        dispatcher: Dispatcher,
    ) -> (Self, Config) {
        let this = Self {
            file_text,
            base_dir,
            env,
            state: Mutex::new(State {
                overlay: BTreeMap::new(),
                config,
            }),
            rules,
            dispatcher,
        };
        for (kind, id, doc) in stored {
            let Some(sec) = section(kind) else { continue };
            let mut st = this.state.lock();
            let mut overlay = st.overlay.clone();
            overlay.insert((sec, id.clone()), Some(doc));
            match this.validate(&overlay, &format!("{sec}.{id}")) {
                Ok(cfg) => {
                    st.overlay = overlay;
                    st.config = cfg;
                }
                Err(e) => {
                    tracing::error!(kind = sec, id, reason = %e, "stored setting no longer valid; ignored")
                }
            }
        }
        let config = this.state.lock().config.clone();
        (this, config)
    }

    /// The configuration with `overlay` laid over the file, validated. Problems name
    /// their objects by id (`rules.dock-intrusion.zone`), not by position in the file;
    /// `object` is the edited one's path.
    fn validate(
        &self,
        overlay: &BTreeMap<(&'static str, String), Option<Value>>,
        object: &str,
    ) -> Result<Config, ControlError> {
        let invalid = |field: String, reason: String| ControlError::Invalid {
            problems: vec![Problem { field, reason }],
            object: object.to_owned(),
        };
        let mut table: toml::Table = self
            .file_text
            .parse()
            .map_err(|e: toml::de::Error| invalid("configuration file".into(), e.to_string()))?;
        for ((sec, id), doc) in overlay {
            let list = table
                .entry((*sec).to_owned())
                .or_insert_with(|| toml::Value::Array(Vec::new()));
            let toml::Value::Array(items) = list else {
                return Err(invalid(
                    (*sec).to_owned(),
                    "is not a list in the configuration file".into(),
                ));
            };
            let pos = items
                .iter()
                .position(|t| t.get("id").and_then(toml::Value::as_str) == Some(id.as_str()));
            match (doc.as_ref().and_then(to_toml), pos) {
                (Some(toml::Value::Table(mut t)), pos) => {
                    t.insert("id".into(), toml::Value::String(id.clone()));
                    match pos {
                        Some(i) => items[i] = toml::Value::Table(t),
                        None => items.push(toml::Value::Table(t)),
                    }
                }
                (Some(_), _) => {
                    return Err(invalid(
                        format!("{sec}.{id}"),
                        "the document is not an object".into(),
                    ));
                }
                (None, Some(i)) => {
                    items.remove(i);
                }
                (None, None) => {}
            }
        }
        let text = toml::to_string(&table)
            .map_err(|e| invalid("settings".into(), format!("cannot be rendered: {e}")))?;
        safe_yolo_config::parse(&text, &self.base_dir, self.env.clone()).map_err(|problems| {
            ControlError::Invalid {
                problems: problems
                    .into_iter()
                    .map(|p| Problem {
                        field: by_id(&table, &p.path),
                        reason: p.reason,
                    })
                    .collect(),
                object: object.to_owned(),
            }
        })
    }
}

/// `rules[3].zone` as `rules.<id of the fourth rule>.zone`: a key path that names the
/// object, which an API client knows, rather than its place in the merged file.
fn by_id(table: &toml::Table, path: &str) -> String {
    let Some((sec, rest)) = path.split_once('[') else {
        return path.to_owned();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return path.to_owned();
    };
    let id = index
        .parse::<usize>()
        .ok()
        .and_then(|i| table.get(sec)?.as_array()?.get(i)?.get("id")?.as_str());
    match id {
        Some(id) => format!("{sec}.{id}{tail}"),
        None => path.to_owned(),
    }
}

impl Control for LiveSettings {
    fn apply(&self, change: SettingsChange) -> Result<(), ControlError> {
        let (kind, id, doc) = match change {
            SettingsChange::Put { kind, id, doc } => (kind, id, Some(doc)),
            SettingsChange::Delete { kind, id } => (kind, id, None),
        };
        let Some(sec) = section(kind) else {
            return Err(ControlError::Wiring {
                kind: kind.as_str(),
            });
        };
        let mut st = self.state.lock();
        let mut overlay = st.overlay.clone();
        overlay.insert((sec, id.clone()), doc);
        let cfg = self.validate(&overlay, &format!("{sec}.{id}"))?;
        let refused =
            |e: Box<dyn std::error::Error + Send + Sync>| ControlError::Refused { source: e };
        self.rules
            .blocking_replace(cfg.rule_specs(), cfg.zone_specs())
            .map_err(|e| refused(Box::new(e)))?;
        self.dispatcher
            .update_config(DispatcherConfig::from_config(&cfg));
        tracing::info!(kind = sec, id, "setting applied to the running pipeline");
        st.overlay = overlay;
        st.config = cfg;
        Ok(())
    }

    fn current(&self, kind: SettingKind) -> Vec<(String, Value)> {
        let st = self.state.lock();
        let c = &st.config;
        match kind {
            SettingKind::Zone => c
                .zones
                .iter()
                .map(|z| (z.id.to_string(), zone_doc(z)))
                .collect(),
            SettingKind::Line => c
                .lines
                .iter()
                .map(|l| (l.id.to_string(), line_doc(l)))
                .collect(),
            SettingKind::Rule => c
                .rules
                .iter()
                .map(|r| (r.id.to_string(), rule_doc(r)))
                .collect(),
            SettingKind::Camera => c
                .cameras
                .iter()
                .map(|cam| (cam.id.to_string(), camera_doc(cam, c)))
                .collect(),
            SettingKind::Output => c
                .outputs
                .lines
                .iter()
                .map(|l| {
                    (
                        l.id.to_string(),
                        json!({ "role": l.role, "active_low": l.active_low }),
                    )
                })
                .collect(),
        }
    }
}

fn zone_doc(z: &safe_yolo_config::ZoneConfig) -> Value {
    json!({
        "camera": z.camera,
        "name": z.name,
        "polygon": z.polygon.points().iter().map(|p| [p.x, p.y]).collect::<Vec<_>>(),
        "anchor": Named::as_str(z.anchor),
    })
}

fn line_doc(l: &safe_yolo_config::LineConfig) -> Value {
    let (a, b) = (l.line.a(), l.line.b());
    json!({
        "camera": l.camera,
        "name": l.name,
        "from": [a.x, a.y],
        "to": [b.x, b.y],
    })
}

/// `HH:MM` of a minute of the day (1440 is `24:00`).
fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

fn schedule_doc(s: &Schedule) -> Value {
    let days: Vec<&str> = Weekday::ALL
        .iter()
        .filter(|d| s.days().contains(**d))
        .map(|d| d.as_str())
        .collect();
    json!({ "days": days, "from": hhmm(s.from_min()), "to": hhmm(s.to_min()) })
}

fn camera_doc(cam: &safe_yolo_config::CameraConfig, c: &Config) -> Value {
    let source = match &cam.source {
        SourceConfig::V4l2 {
            device,
            width,
            height,
            fps,
            ..
        } => {
            json!({ "kind": "v4l2", "device": device, "width": width, "height": height, "fps": fps })
        }
        SourceConfig::Replay {
            path, looping, fps, ..
        } => {
            let rel = path.strip_prefix(&c.storage.media_dir).unwrap_or(path);
            json!({ "kind": "replay", "path": rel, "looping": looping, "fps": fps })
        }
    };
    json!({ "name": cam.name, "enabled": cam.enabled, "source": source, "detect_every": cam.detect_every.get() })
}

fn rule_doc(r: &safe_yolo_config::RuleConfig) -> Value {
    let severity = r.severity.as_str();
    let mut doc = json!({
        "name": r.name,
        "kind": r.kind.name(),
        "enabled": r.enabled,
        "severity": severity,
        "cooldown_s": r.cooldown.as_secs_f64(),
        "clear_after_s": match r.clear_after {
            ClearAfter::Time(d) => d.as_secs_f64(),
            ClearAfter::Frames(_) => 0.0,
        },
        "outputs": r.outputs,
        "anchor": Named::as_str(r.anchor),
    });
    if let Some(s) = &r.schedule {
        doc["schedule"] = schedule_doc(s);
    }
    let mut siren = json!({ "pattern": r.siren.pattern.kind() });
    if let Some(period) = r.siren.pattern.period() {
        siren["period_ms"] = json!(u64::try_from(period.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some(d) = r.siren.duration {
        siren["duration_s"] = json!(d.as_secs_f64());
    }
    doc["siren"] = siren;
    if let Some(l) = r.relay_latch {
        doc["relay_latch_s"] = json!(l.as_secs_f64());
    }
    if let Some(z) = &r.zone {
        doc["zone"] = json!(z);
    } else {
        doc["camera"] = json!(r.camera);
    }
    match &r.kind {
        RuleKind::Intrusion { min_frames } => doc["min_frames"] = json!(min_frames),
        RuleKind::MissingPpe(p) => {
            doc["ppe_present_class"] = json!(p.present_classes.first().map(|c| &**c));
            doc["ppe_missing_class"] = json!(p.absent_classes.first().map(|c| &**c));
            doc["min_frames"] = json!(p.min_frames);
            doc["grace_s"] = json!(p.grace.as_secs_f64());
        }
        RuleKind::Dwell { min_duration } => doc["seconds"] = json!(min_duration.as_secs_f64()),
        RuleKind::Occupancy { max_persons, .. } => doc["max_persons"] = json!(max_persons),
        RuleKind::LineCrossing { direction, .. } => {
            doc["direction"] = json!(direction.as_str());
        }
        RuleKind::CameraOffline { min_duration } => {
            doc["offline_after_s"] = json!(min_duration.as_secs_f64())
        }
        RuleKind::DoorOpen { min_duration } => {
            doc["open_after_s"] = json!(min_duration.as_secs_f64())
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TEXT: &str = r#"
[detector]
model = "models/m/manifest.toml"

[storage]
state_dir = "/tmp/sy"
media_dir = "/tmp/sy/media"

[outputs]
backend = "simulated"

[[outputs.lines]]
id = "siren"
role = "siren"
offset = 0

[[outputs.lines]]
id = "stop-relay"
role = "relay"
offset = 1

[[cameras]]
id = "cam-1"
source = { kind = "replay", path = "walk.mjpeg" }

[[lines]]
id = "gate"
camera = "cam-1"
name = "Gate"
from = [0.5, 0.25]
to = [0.5, 0.75]

[[rules]]
id = "night-gate"
name = "Night crossing"
kind = "line_crossing"
zone = "gate"
direction = "a_to_b"
severity = "critical"
outputs = ["siren", "stop-relay"]
schedule = { days = ["mon", "fri"], from = "22:00", to = "06:30" }
siren = { pattern = "pulsed", period_ms = 500, duration_s = 30 }
relay_latch_s = 10
anchor = "centre"
"#;

    fn parse(text: &str) -> Config {
        safe_yolo_config::parse(text, Path::new("/etc/safe-yolo"), Vec::new())
            .unwrap_or_else(|p| panic!("{p:?}"))
    }

    /// The running view of a rule and a line, laid back over the file, gives the
    /// same configuration: a GET then PUT through the API loses nothing.
    #[test]
    fn rule_and_line_documents_round_trip() {
        let c = parse(TEXT);
        let rule = rule_doc(&c.rules[0]);
        let line = line_doc(&c.lines[0]);
        assert_eq!(
            rule["schedule"],
            json!({"days": ["mon", "fri"], "from": "22:00", "to": "06:30"})
        );
        assert_eq!(
            rule["siren"],
            json!({"pattern": "pulsed", "period_ms": 500, "duration_s": 30.0})
        );
        assert_eq!(rule["relay_latch_s"], json!(10.0));
        assert_eq!(rule["anchor"], json!("centre"));
        assert_eq!(line["from"], json!([0.5, 0.25]));

        let mut table: toml::Table = TEXT.parse().unwrap();
        for (sec, id, doc) in [("rules", "night-gate", &rule), ("lines", "gate", &line)] {
            let Some(toml::Value::Table(mut t)) = to_toml(doc) else {
                panic!("{doc}")
            };
            t.insert("id".into(), toml::Value::String(id.into()));
            table.insert(sec.into(), toml::Value::Array(vec![toml::Value::Table(t)]));
        }
        let again = parse(&toml::to_string(&table).unwrap());
        assert_eq!(rule_doc(&again.rules[0]), rule);
        assert_eq!(line_doc(&again.lines[0]), line);
        assert_eq!(again.rules[0].schedule, c.rules[0].schedule);
        assert_eq!(again.rules[0].siren, c.rules[0].siren);
        assert_eq!(again.rules[0].relay_latch, c.rules[0].relay_latch);
    }

    #[test]
    fn midnight_end_is_24_00() {
        assert_eq!(hhmm(1440), "24:00");
        assert_eq!(hhmm(0), "00:00");
        assert_eq!(hhmm(605), "10:05");
    }
}

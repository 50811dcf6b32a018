//! Settings edited through the API, layered over the configuration file.
//!
//! The configuration file stays the base. Cameras, zones, lines and rules edited
//! through the API are kept as documents in the store: their raw forms, the very
//! types the file's `[[cameras]]`, `[[zones]]`, `[[lines]]` and `[[rules]]` entries
//! are read into. They are laid over the file's as a typed [`Overlay`] (same id:
//! replaced; new id: added; deleted: removed), and the layered raw model is
//! validated by the very same code as `check-config`, so the API can never put the
//! daemon in a state the file could not describe. A valid edit then takes effect
//! without a restart: the pipeline starts, restarts or stops the cameras whose spec
//! changed (the others keep running), and the rule engine swaps its rules and zones.
//!
//! Deleting a camera that a zone, line or rule still names is refused, naming that
//! object (`zones.dock.camera: no camera has the id "cam-1"`): remove or move them
//! first. Output lines are wiring: they change in the file, with a restart.
//!
//! The integration settings (`[integrations]`) are one document laid over the
//! file's section the same way; a change replaces the interlocks (unchanged ones
//! keep their levels) and restarts the integrations (outbox sinks, Modbus server,
//! MQTT interlock client) on their runtime, while cameras, detection, rules and
//! outputs run on. Removing an interlock a rule is armed by is refused at the rule.

use std::path::PathBuf;

use parking_lot::Mutex;
use safe_yolo_alarms::{Dispatcher, DispatcherConfig, Interlocks, RulesControl};
use safe_yolo_api::control::{ControlError, Document, Problem};
use safe_yolo_api::{Control, SettingsChange};
use safe_yolo_config::{Config, Documents, IntegrationsConfig, Overlay};
use safe_yolo_integrations::IntegrationsRestart;
use safe_yolo_pipeline::Cameras;
use safe_yolo_store::SettingKind;
use serde_json::Value;

use crate::wiring;

/// The configuration file the edits are laid over.
struct Base {
    file_text: String,
    base_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Base {
    /// The configuration with `overlay` laid over the file, validated, and its
    /// cameras, zones, lines and rules as written. Problems name their objects by id
    /// (`rules.dock-intrusion.zone`); `object` is the edited one's path.
    fn validate(
        &self,
        overlay: &Overlay,
        object: &str,
    ) -> Result<(Config, Documents), ControlError> {
        safe_yolo_config::parse_layered(&self.file_text, &self.base_dir, self.env.clone(), overlay)
            .map_err(|problems| ControlError::Invalid {
                problems,
                object: object.to_owned(),
            })
    }
}

struct State {
    /// The edits.
    overlay: Overlay,
    /// The file with the edits, validated.
    config: Config,
    /// Its cameras, zones, lines and rules as written.
    documents: Documents,
}

/// The file with the stored edits laid over it, before anything runs: the
/// pipeline and the rules start from its configuration.
pub struct Layered {
    base: Base,
    state: State,
}

impl std::fmt::Debug for Layered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layered")
            .field("base_dir", &self.base.base_dir)
            .finish_non_exhaustive()
    }
}

/// The section of the file a kind's objects are in; `None` for wiring.
fn section(kind: SettingKind) -> Option<&'static str> {
    match kind {
        SettingKind::Camera => Some("cameras"),
        SettingKind::Zone => Some("zones"),
        SettingKind::Rule => Some("rules"),
        SettingKind::Line => Some("lines"),
        SettingKind::Integrations => Some("integrations"),
        SettingKind::Output => None,
    }
}

/// The key path of an edited object: `rules.<id>`, or `integrations` (one document).
fn object_path(section: &str, id: &str) -> String {
    if section == "integrations" {
        section.to_owned()
    } else {
        format!("{section}.{id}")
    }
}

/// Lays one edit into `overlay`: `doc` for the object `id` of `kind`, `None` to delete it.
fn edit(
    overlay: &mut Overlay,
    kind: SettingKind,
    id: String,
    doc: Option<Document>,
) -> Result<(), ControlError> {
    match (kind, doc) {
        (SettingKind::Camera, None) => drop(overlay.cameras.insert(id, None)),
        (SettingKind::Zone, None) => drop(overlay.zones.insert(id, None)),
        (SettingKind::Line, None) => drop(overlay.lines.insert(id, None)),
        (SettingKind::Rule, None) => drop(overlay.rules.insert(id, None)),
        (_, Some(Document::Camera(c))) => drop(overlay.cameras.insert(id, Some(*c))),
        (_, Some(Document::Zone(z))) => drop(overlay.zones.insert(id, Some(z))),
        (_, Some(Document::Line(l))) => drop(overlay.lines.insert(id, Some(l))),
        (_, Some(Document::Rule(r))) => drop(overlay.rules.insert(id, Some(*r))),
        (_, Some(Document::Integrations(i))) => overlay.integrations = Some(*i),
        (SettingKind::Integrations, None) => overlay.integrations = None,
        (SettingKind::Output, None) => {
            return Err(ControlError::Wiring {
                kind: kind.as_str(),
            });
        }
    }
    Ok(())
}

/// A stored document, read back into its kind's type (it is what the API accepted).
fn stored_document(kind: SettingKind, doc: Value) -> Result<Document, serde_json::Error> {
    Ok(match kind {
        SettingKind::Zone => Document::Zone(serde_json::from_value(doc)?),
        SettingKind::Line => Document::Line(serde_json::from_value(doc)?),
        SettingKind::Rule => Document::Rule(Box::new(serde_json::from_value(doc)?)),
        SettingKind::Integrations => Document::Integrations(Box::new(serde_json::from_value(doc)?)),
        SettingKind::Camera | SettingKind::Output => {
            Document::Camera(Box::new(serde_json::from_value(doc)?))
        }
    })
}

impl Layered {
    /// Lays the stored edits over the file. Stored edits that no longer validate
    /// against the file (a zone whose camera was removed from the file, say) are
    /// skipped with an error in the log. Also returns the effective configuration.
    pub fn new(
        file_text: String,
        base_dir: PathBuf,
        env: Vec<(String, String)>,
        config: Config,
        stored: Vec<(SettingKind, String, Value)>,
    ) -> (Self, Config) {
        let base = Base {
            file_text,
            base_dir,
            env,
        };
        let mut state = State {
            overlay: Overlay::default(),
            config,
            documents: Documents::default(),
        };
        match base.validate(&Overlay::default(), "configuration file") {
            Ok((_, documents)) => state.documents = documents,
            Err(e) => {
                tracing::error!(reason = %e, "the configuration file does not validate again")
            }
        }
        // Cameras and the integrations first: the zones and rules stored after them
        // name them (a camera, an interlock).
        let mut stored = stored;
        stored.sort_by_key(|(kind, _, _)| match kind {
            SettingKind::Camera => 0,
            SettingKind::Integrations => 1,
            _ => 2,
        });
        for (kind, id, doc) in stored {
            let Some(sec) = section(kind) else { continue };
            let object = object_path(sec, &id);
            let mut overlay = state.overlay.clone();
            let layered = stored_document(kind, doc)
                .map_err(|e| ControlError::Invalid {
                    problems: vec![Problem {
                        path: object.clone(),
                        reason: format!("stored document unreadable: {e}"),
                    }],
                    object: object.clone(),
                })
                .and_then(|doc| edit(&mut overlay, kind, id.clone(), Some(doc)))
                .and_then(|()| base.validate(&overlay, &object));
            match layered {
                Ok((config, documents)) => {
                    state.overlay = overlay;
                    state.config = config;
                    state.documents = documents;
                }
                Err(e) => {
                    tracing::error!(kind = sec, id, reason = %e, "stored setting no longer valid; ignored")
                }
            }
        }
        let config = state.config.clone();
        (Self { base, state }, config)
    }
}

/// The running settings.
pub struct LiveSettings {
    base: Base,
    state: Mutex<State>,
    rules: RulesControl,
    dispatcher: Dispatcher,
    cameras: Cameras,
    plant: Plant,
}

/// What the integration settings drive: the interlocks the rules read, and the
/// integrations' restarts.
pub struct Plant {
    /// The interlocks.
    pub interlocks: Interlocks,
    /// Restarts the integrations with new settings.
    pub integrations: IntegrationsRestart,
}

impl std::fmt::Debug for LiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSettings")
            .field("base_dir", &self.base.base_dir)
            .finish_non_exhaustive()
    }
}

impl LiveSettings {
    /// The layered settings, applied from now on to the running cameras
    /// (`cameras`), rules (`rules`), alarm settings (`dispatcher`) and plant
    /// integrations (`plant`).
    pub fn new(
        layered: Layered,
        rules: RulesControl,
        dispatcher: Dispatcher,
        cameras: Cameras,
        plant: Plant,
    ) -> Self {
        Self {
            base: layered.base,
            state: Mutex::new(layered.state),
            rules,
            dispatcher,
            cameras,
            plant,
        }
    }
}

impl Control for LiveSettings {
    fn apply(&self, change: SettingsChange) -> Result<(), ControlError> {
        let (kind, id, doc) = match change {
            SettingsChange::Put { id, doc } => (doc.kind(), id, Some(doc)),
            SettingsChange::Delete { kind, id } => (kind, id, None),
        };
        let Some(sec) = section(kind) else {
            return Err(ControlError::Wiring {
                kind: kind.as_str(),
            });
        };
        let mut st = self.state.lock();
        let mut overlay = st.overlay.clone();
        edit(&mut overlay, kind, id.clone(), doc)?;
        let (cfg, documents) = self.base.validate(&overlay, &object_path(sec, &id))?;
        // Only cameras whose own settings changed start, restart or stop.
        let specs = wiring::camera_specs(&cfg);
        if specs != self.cameras.specs() {
            let changed = self
                .cameras
                .apply(&specs)
                .map_err(|e| ControlError::Refused {
                    source: Box::new(e),
                })?;
            tracing::info!(?changed, "cameras changed at run time");
        }
        let integrations_changed = documents.integrations != st.documents.integrations;
        self.rules
            .blocking_replace(cfg.rule_specs(), cfg.zone_specs())
            .map_err(|e| ControlError::Refused {
                source: Box::new(e),
            })?;
        self.dispatcher
            .update_config(DispatcherConfig::from_config(&cfg));
        // After the rules, which cannot refuse the change any more: a rule naming an
        // interlock not there yet reads it unknown, which arms.
        if integrations_changed {
            self.plant.interlocks.replace(&cfg.integrations.interlocks);
            self.plant.integrations.restart(cfg.integrations.clone());
        }
        tracing::info!(kind = sec, id, "setting applied to the running pipeline");
        st.overlay = overlay;
        st.config = cfg;
        st.documents = documents;
        Ok(())
    }

    fn current(&self, kind: SettingKind) -> Vec<(String, Document)> {
        let st = self.state.lock();
        let d = &st.documents;
        match kind {
            SettingKind::Zone => d
                .zones
                .iter()
                .map(|(id, z)| (id.clone(), Document::Zone(z.clone())))
                .collect(),
            SettingKind::Line => d
                .lines
                .iter()
                .map(|(id, l)| (id.clone(), Document::Line(l.clone())))
                .collect(),
            SettingKind::Rule => d
                .rules
                .iter()
                .map(|(id, r)| (id.clone(), Document::Rule(Box::new(r.clone()))))
                .collect(),
            SettingKind::Camera => d
                .cameras
                .iter()
                .map(|(id, c)| (id.clone(), Document::Camera(Box::new(c.clone()))))
                .collect(),
            SettingKind::Integrations => vec![(
                SettingKind::INTEGRATIONS_ID.to_owned(),
                Document::Integrations(Box::new(d.integrations.clone())),
            )],
            // Output lines have no settings document: they are wiring, in the file.
            SettingKind::Output => Vec::new(),
        }
    }

    fn integrations(&self) -> Option<IntegrationsConfig> {
        Some(self.state.lock().config.integrations.clone())
    }

    fn modbus_error(&self) -> Option<String> {
        self.plant.integrations.modbus_error()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use safe_yolo_config::{RawLine, RawRule};

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

    fn layered(overlay: &Overlay) -> Result<(Config, Documents), Vec<safe_yolo_config::Problem>> {
        safe_yolo_config::parse_layered(TEXT, Path::new("/etc/safe-yolo"), Vec::new(), overlay)
    }

    /// The documents of the file, laid back over it as edits, give the same
    /// configuration: a GET then PUT through the API loses nothing. Their JSON is
    /// the API's wire form and what the store keeps.
    #[test]
    fn documents_round_trip_through_json_and_the_overlay() {
        let (c, docs) = layered(&Overlay::default()).unwrap();
        let (id, rule) = &docs.rules[0];
        assert_eq!(id, "night-gate");
        let json = serde_json::to_value(rule).unwrap();
        assert_eq!(
            json["schedule"],
            serde_json::json!({"days": ["mon", "fri"], "from": "22:00", "to": "06:30"})
        );
        assert_eq!(
            json["siren"],
            serde_json::json!({"pattern": "pulsed", "period_ms": 500, "duration_s": 30.0})
        );
        assert_eq!(json["anchor"], "centre");
        let line = serde_json::to_value(&docs.lines[0].1).unwrap();
        assert_eq!(line["from"], serde_json::json!([0.5, 0.25]));

        let mut overlay = Overlay::default();
        overlay.rules.insert(
            "night-gate".into(),
            Some(serde_json::from_value::<RawRule>(json).unwrap()),
        );
        overlay.lines.insert(
            "gate".into(),
            Some(serde_json::from_value::<RawLine>(line).unwrap()),
        );
        let (again, again_docs) = layered(&overlay).unwrap();
        assert_eq!(again_docs, docs);
        assert_eq!(again.rules[0].spec, c.rules[0].spec);
        assert_eq!(again.rules[0].siren, c.rules[0].siren);
        assert_eq!(again.rules[0].relay_latch, c.rules[0].relay_latch);
    }

    /// The running cameras are listed as the file's entries, as written: their JSON
    /// uses the file's keys and holds only what the file says. A camera edit is laid
    /// over the file like any other; removing a camera that a line still names is
    /// refused at that line.
    #[test]
    fn cameras_are_listed_as_written_and_edited_live() {
        let (_, docs) = layered(&Overlay::default()).unwrap();
        let [(id, camera)] = docs.cameras.as_slice() else {
            panic!("not one camera: {:?}", docs.cameras)
        };
        assert_eq!(id, "cam-1");
        assert_eq!(
            serde_json::to_value(camera).unwrap(),
            serde_json::json!({"source": {"kind": "replay", "path": "walk.mjpeg"}})
        );
        let mut overlay = Overlay::default();
        let mut second = camera.clone();
        second.detect_every = Some(3);
        edit(
            &mut overlay,
            SettingKind::Camera,
            "cam-2".into(),
            Some(Document::Camera(Box::new(second))),
        )
        .unwrap();
        let (config, docs) = layered(&overlay).unwrap();
        let ids: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["cam-1", "cam-2"]);
        assert_eq!(docs.cameras[1].1.detect_every, Some(3));
        // The new camera's spec is its own; the file's camera keeps its spec.
        let specs = crate::wiring::camera_specs(&config);
        assert_eq!(specs[1].detect_every, 3);
        assert_eq!(
            specs[0],
            crate::wiring::camera_specs(&layered(&Overlay::default()).unwrap().0)[0]
        );

        edit(&mut overlay, SettingKind::Camera, "cam-1".into(), None).unwrap();
        let problems = layered(&overlay).unwrap_err();
        assert_eq!(problems[0].path, "lines.gate.camera", "{problems:?}");
        assert!(problems[0].reason.contains("cam-1"), "{problems:?}");
        // Output lines stay wiring.
        let e = edit(&mut overlay, SettingKind::Output, "siren".into(), None).unwrap_err();
        assert!(matches!(e, ControlError::Wiring { .. }), "{e}");
    }

    /// A document stored by an earlier version (every absent field written as
    /// `null`) still loads.
    #[test]
    fn stored_documents_with_nulls_load() {
        let doc = serde_json::json!({
            "name": "Dock", "kind": "intrusion", "enabled": true, "camera": null,
            "zone": "dock", "severity": "critical", "cooldown_s": null,
            "clear_after_s": null, "outputs": null, "min_frames": 3, "seconds": null,
            "max_persons": null, "direction": null, "ppe_present_class": null,
            "ppe_missing_class": null, "grace_s": null, "offline_after_s": null,
            "open_after_s": null, "schedule": null, "siren": null,
            "relay_latch_s": null, "anchor": null
        });
        let Document::Rule(r) = stored_document(SettingKind::Rule, doc).unwrap() else {
            panic!("not a rule")
        };
        assert_eq!((r.kind.as_str(), r.min_frames), ("intrusion", Some(3)));
    }

    /// An edit's problems name the objects by id, deletions included.
    #[test]
    fn problems_name_objects_by_id() {
        let mut overlay = Overlay::default();
        overlay.lines.insert("gate".into(), None);
        let problems = layered(&overlay).unwrap_err();
        assert_eq!(problems[0].path, "rules.night-gate.zone", "{problems:?}");
    }
}

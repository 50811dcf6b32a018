//! Live edits: cameras, zones, lines and rules edited through the API, laid over the
//! file's.
//!
//! The edits are raw forms (the very documents the API takes), laid over the file's
//! raw model before validation: the layered configuration is checked by the same
//! code as the file alone, so an edit can never make a configuration the file could
//! not describe (a camera's replay footage inside the media directory, a zone naming
//! a camera that exists, ...). Output lines are wiring: only the file has them.
//!
//! The integration settings (`[integrations]`: MQTT, webhooks, Modbus, interlocks)
//! are one document: an edit replaces the file's section as a whole, except
//! `box_name`, `public_url` and `outbox_max_entries`, which only the file sets (an
//! edit that changes them is a problem at that key).

use std::collections::BTreeMap;

use crate::cameras::RawCamera;
use crate::integrations::RawIntegrations;
use crate::lines::RawLine;
use crate::rules::RawRule;
use crate::zones::RawZone;

/// Edits by id: `Some` replaces the file's object of that id (or adds one), `None`
/// removes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    /// Camera edits.
    pub cameras: BTreeMap<String, Option<RawCamera>>,
    /// Zone edits.
    pub zones: BTreeMap<String, Option<RawZone>>,
    /// Line edits.
    pub lines: BTreeMap<String, Option<RawLine>>,
    /// Rule edits.
    pub rules: BTreeMap<String, Option<RawRule>>,
    /// The integration settings, replacing the file's `[integrations]`.
    pub integrations: Option<RawIntegrations>,
}

/// The cameras, zones, lines and rules of a layered configuration as written (the
/// file's, with the edits laid over them), by id, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Documents {
    /// Cameras.
    pub cameras: Vec<(String, RawCamera)>,
    /// Zones.
    pub zones: Vec<(String, RawZone)>,
    /// Lines.
    pub lines: Vec<(String, RawLine)>,
    /// Rules.
    pub rules: Vec<(String, RawRule)>,
    /// `[integrations]`.
    pub integrations: RawIntegrations,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TEXT: &str = r#"
[detector]
model = "models/m/model.toml"

[[cameras]]
id = "cam-1"
source = { kind = "replay", path = "walk.mjpeg" }

[[zones]]
id = "dock"
camera = "cam-1"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]

[[rules]]
id = "dock-intrusion"
kind = "intrusion"
zone = "dock"
"#;

    fn layered(overlay: &Overlay) -> Result<(crate::Config, Documents), Vec<crate::Problem>> {
        crate::parse_layered(TEXT, Path::new("/etc/safe-yolo"), Vec::new(), overlay)
    }

    #[test]
    fn edits_replace_add_and_remove_by_id() {
        let (_, docs) = layered(&Overlay::default()).unwrap();
        assert_eq!(docs.rules.len(), 1);
        let mut rule = docs.rules[0].1.clone();
        rule.zone = Some("dok".into());
        let mut overlay = Overlay::default();
        overlay.rules.insert("night".into(), Some(rule.clone()));
        // A problem of an edit names the object by id.
        let problems = layered(&overlay).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["rules.night.zone"]);

        rule.zone = Some("dock".into());
        overlay.rules.insert("night".into(), Some(rule));
        overlay.rules.insert("dock-intrusion".into(), None);
        let (config, docs) = layered(&overlay).unwrap();
        let ids: Vec<&str> = docs.rules.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, vec!["night"]);
        assert_eq!(config.rules.len(), 1);
        assert_eq!(config.rules[0].id.to_string(), "night");
        // Removing the zone the rule needs is refused at the rule.
        overlay.zones.insert("dock".into(), None);
        let problems = layered(&overlay).unwrap_err();
        assert_eq!(problems[0].path, "rules.night.zone", "{problems:?}");
    }

    #[test]
    fn a_rule_the_file_locks_is_edited_but_never_disabled_deleted_or_unlocked() {
        let text = TEXT.replace(
            "id = \"dock-intrusion\"\n",
            "id = \"dock-intrusion\"\nlocked = true\n",
        );
        let layered = |overlay: &Overlay| {
            crate::parse_layered(&text, Path::new("/etc/safe-yolo"), Vec::new(), overlay)
        };
        let (_, docs) = layered(&Overlay::default()).unwrap();
        let file_rule = docs.rules[0].1.clone();
        assert_eq!(file_rule.locked, Some(true));
        let problem = |overlay: &Overlay| {
            layered(overlay)
                .unwrap_err()
                .into_iter()
                .map(|p| p.path)
                .collect::<Vec<_>>()
        };
        // An edit of another field is taken, and the rule stays locked even when
        // the edit leaves `locked` out.
        let mut edit = file_rule.clone();
        edit.name = Some("Dock, renamed".into());
        edit.locked = None;
        let overlay = Overlay {
            rules: [("dock-intrusion".into(), Some(edit.clone()))].into(),
            ..Overlay::default()
        };
        let (config, docs) = layered(&overlay).unwrap();
        assert_eq!(docs.rules[0].1.locked, Some(true));
        assert!(config.rules[0].enabled);
        // Disabled, deleted or unlocked: refused, naming the field.
        let mut off = edit.clone();
        off.enabled = Some(false);
        let overlay = Overlay {
            rules: [("dock-intrusion".into(), Some(off))].into(),
            ..Overlay::default()
        };
        assert_eq!(problem(&overlay), vec!["rules.dock-intrusion.enabled"]);
        let overlay = Overlay {
            rules: [("dock-intrusion".into(), None)].into(),
            ..Overlay::default()
        };
        assert_eq!(problem(&overlay), vec!["rules.dock-intrusion"]);
        let mut unlocked = edit.clone();
        unlocked.locked = Some(false);
        let overlay = Overlay {
            rules: [("dock-intrusion".into(), Some(unlocked))].into(),
            ..Overlay::default()
        };
        assert_eq!(problem(&overlay), vec!["rules.dock-intrusion.locked"]);
        // Only the file locks: an API rule cannot lock itself either.
        let mut new = edit;
        new.locked = Some(true);
        let overlay = Overlay {
            rules: [("night".into(), Some(new))].into(),
            ..Overlay::default()
        };
        assert_eq!(problem(&overlay), vec!["rules.night.locked"]);
    }

    /// The integration settings are one document: it replaces the file's section,
    /// the file keeps `box_name` and the rest of what only it sets, and removing an
    /// interlock a rule is armed by is refused at that rule.
    #[test]
    fn integration_settings_replace_the_files_and_keep_the_rules_references() {
        let text = format!(
            "{TEXT}armed_by = \"press\"\n\n[integrations]\nbox_name = \"press-7\"\n\n[integrations.mqtt]\nurl = \"mqtt://broker\"\n\n[[integrations.interlocks]]\nid = \"press\"\nsource = \"mqtt\"\ntopic = \"plant/press\"\narmed_value = \"on\"\n"
        );
        let layered = |overlay: &Overlay| {
            crate::parse_layered(&text, Path::new("/etc/safe-yolo"), Vec::new(), overlay)
        };
        let (config, docs) = layered(&Overlay::default()).unwrap();
        assert_eq!(config.integrations.interlocks.len(), 1);
        assert_eq!(docs.integrations.box_name.as_deref(), Some("press-7"));
        // An edit: a new prefix, the interlock kept; box_name left out stays the file's.
        let mut edit = docs.integrations.clone();
        edit.box_name = None;
        if let Some(m) = edit.mqtt.as_mut() {
            m.topic_prefix = Some("plant/box/".into());
        }
        let overlay = Overlay {
            integrations: Some(edit.clone()),
            ..Overlay::default()
        };
        let (config, docs) = layered(&overlay).unwrap();
        let mqtt = config.integrations.mqtt.unwrap();
        assert_eq!(mqtt.topic_prefix, "plant/box/");
        assert_eq!(mqtt.client_id, "safe-yolo-press-7");
        assert_eq!(docs.integrations.box_name.as_deref(), Some("press-7"));
        // Only the file names the box.
        let mut renamed = edit.clone();
        renamed.box_name = Some("other".into());
        let problems = layered(&Overlay {
            integrations: Some(renamed),
            ..Overlay::default()
        })
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["integrations.box_name"]);
        // The rule is armed by the interlock: removing it is refused at the rule.
        let mut gone = edit;
        gone.interlocks.clear();
        let problems = layered(&Overlay {
            integrations: Some(gone),
            ..Overlay::default()
        })
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["rules.dock-intrusion.armed_by"], "{problems:?}");
        assert!(problems[0].reason.contains("press"), "{problems:?}");
    }
}

//! Live edits: cameras, zones, lines and rules edited through the API, laid over the
//! file's.
//!
//! The edits are raw forms (the very documents the API takes), laid over the file's
//! raw model before validation: the layered configuration is checked by the same
//! code as the file alone, so an edit can never make a configuration the file could
//! not describe (a camera's replay footage inside the media directory, a zone naming
//! a camera that exists, ...). Output lines are wiring: only the file has them.

use std::collections::BTreeMap;

use crate::cameras::RawCamera;
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
}

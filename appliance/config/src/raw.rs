//! The file as written: each section's raw form (plain serde structs that reject
//! unknown keys, declared in the section's module), gathered here.
//!
//! Every section, and every element of every list, is deserialised on its
//! own so that one mistake does not hide the others. Values are kept loose
//! in the raw forms (plain numbers and strings); ranges and cross-references
//! are checked by each section's module, run in order by `validate`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::Problem;
use crate::api::RawApi;
use crate::cameras::RawCamera;
use crate::detector::RawDetector;
use crate::features::RawFeatures;
use crate::integrations::RawIntegrations;
use crate::lines::RawLine;
use crate::outputs::{RawOutputLine, RawOutputsHead};
use crate::overlay::{Documents, Overlay};
use crate::rules::RawRule;
use crate::storage::RawStorage;
use crate::system::RawSystem;
use crate::zones::RawZone;

/// Each list element carries its key path, for validation messages.
#[derive(Debug)]
pub(crate) struct At<T> {
    pub path: String,
    pub value: T,
}

/// An element of a list keyed by id (cameras, zones, lines, rules): its key path, its
/// id and its raw form (the element without its `id`).
#[derive(Debug)]
pub(crate) struct Keyed<T> {
    pub path: String,
    pub id: String,
    pub value: T,
}

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub system: RawSystem,
    pub detector: RawDetector,
    pub cameras: Vec<Keyed<RawCamera>>,
    pub zones: Vec<Keyed<RawZone>>,
    pub lines: Vec<Keyed<RawLine>>,
    pub rules: Vec<Keyed<RawRule>>,
    pub outputs: RawOutputsHead,
    pub output_lines: Vec<At<RawOutputLine>>,
    pub api: RawApi,
    pub storage: RawStorage,
    pub features: RawFeatures,
    pub integrations: RawIntegrations,
    /// Set when a list failed to parse as a whole or had a bad element, so
    /// that cross-reference checks do not report follow-on noise.
    pub incomplete: bool,
    /// Sections that failed to parse: their required keys are not reported
    /// missing on top of the parse problem.
    pub failed_sections: Vec<&'static str>,
}

const SECTIONS: &[&str] = &[
    "system",
    "detector",
    "cameras",
    "zones",
    "lines",
    "rules",
    "outputs",
    "api",
    "storage",
    "features",
    "integrations",
];

/// Deserialises `value` as a `T`, reporting a failure under `path`.
fn one<T: DeserializeOwned>(
    path: &str,
    value: toml::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." || inner.is_empty() {
                path.to_owned()
            } else {
                format!("{path}.{inner}")
            };
            problems.push(Problem {
                path: full,
                reason: clean_serde_message(&e.inner().to_string()),
            });
            None
        }
    }
}

/// serde's messages are good but sometimes carry TOML position noise.
fn clean_serde_message(msg: &str) -> String {
    msg.lines()
        .next()
        .unwrap_or(msg)
        .trim()
        .trim_end_matches('.')
        .to_owned()
}

fn section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &'static str,
    problems: &mut Vec<Problem>,
    failed: &mut Vec<&'static str>,
) -> T {
    let parsed = match table.remove(name) {
        None => Some(T::default()),
        Some(v @ toml::Value::Table(_)) => one(name, v, problems),
        Some(_) => {
            problems.push(Problem {
                path: name.into(),
                reason: format!("must be a section ([{name}])"),
            });
            None
        }
    };
    parsed.unwrap_or_else(|| {
        failed.push(name);
        T::default()
    })
}

fn list<T: DeserializeOwned>(
    value: Option<toml::Value>,
    name: &str,
    problems: &mut Vec<Problem>,
    incomplete: &mut bool,
) -> Vec<At<T>> {
    let items = match value {
        None => return Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push(Problem {
                path: name.into(),
                reason: format!("must be a list of tables ([[{name}]])"),
            });
            *incomplete = true;
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("{name}[{i}]");
        match one::<T>(&path, item, problems) {
            Some(value) => out.push(At { path, value }),
            None => *incomplete = true,
        }
    }
    out
}

/// A list keyed by id: each element's `id` is taken out, the rest is its raw form.
fn keyed_list<T: DeserializeOwned>(
    value: Option<toml::Value>,
    name: &str,
    problems: &mut Vec<Problem>,
    incomplete: &mut bool,
) -> Vec<Keyed<T>> {
    let mut out = Vec::new();
    for At { path, value } in list::<toml::Value>(value, name, problems, incomplete) {
        let toml::Value::Table(mut t) = value else {
            // Not a table: serde says what was expected.
            let _ = one::<T>(&path, value, problems);
            *incomplete = true;
            continue;
        };
        let id = match t.remove("id") {
            Some(id) => one::<String>(&format!("{path}.id"), id, problems),
            None => {
                problems.push(Problem {
                    path: path.clone(),
                    reason: "missing field `id`".into(),
                });
                None
            }
        };
        match (id, one::<T>(&path, toml::Value::Table(t), problems)) {
            (Some(id), Some(value)) => out.push(Keyed { path, id, value }),
            _ => *incomplete = true,
        }
    }
    out
}

/// Lays `edits` over `items` (same id: replaced; new id: added; `None`: removed) and
/// names every element by its id (`rules.<id>`), which an API client knows, rather
/// than by its place in the merged list.
fn lay<T: Clone>(items: &mut Vec<Keyed<T>>, edits: &BTreeMap<String, Option<T>>, name: &str) {
    for (id, edit) in edits {
        let pos = items.iter().position(|k| &k.id == id);
        match (edit, pos) {
            (Some(doc), Some(i)) => items[i].value = doc.clone(),
            (Some(doc), None) => items.push(Keyed {
                path: String::new(),
                id: id.clone(),
                value: doc.clone(),
            }),
            (None, Some(i)) => {
                items.remove(i);
            }
            (None, None) => {}
        }
    }
    for k in items.iter_mut() {
        k.path = format!("{name}.{}", k.id);
    }
}

/// The file's rule locks hold against the live edits: a rule the file marks
/// `locked = true` may be edited, but an edit may not disable it, delete it or
/// change its lock, and no edit may lock a rule (only the file does).
/// Returns the ids of the locked file rules.
fn check_locks(
    file: &[Keyed<crate::rules::RawRule>],
    edits: &BTreeMap<String, Option<crate::rules::RawRule>>,
    problems: &mut Vec<Problem>,
) -> Vec<String> {
    let locked: Vec<String> = file
        .iter()
        .filter(|k| k.value.locked == Some(true))
        .map(|k| k.id.clone())
        .collect();
    for (id, edit) in edits {
        let is_locked = locked.contains(id);
        let file_lock = file
            .iter()
            .find(|k| &k.id == id)
            .and_then(|k| k.value.locked);
        match edit {
            None if is_locked => problems.push(Problem {
                path: format!("rules.{id}"),
                reason: "the configuration file locks this rule: it cannot be deleted through the API".into(),
            }),
            Some(doc) if doc.locked.is_some() && doc.locked != file_lock => problems.push(Problem {
                path: format!("rules.{id}.locked"),
                reason: "is set in the configuration file only".into(),
            }),
            Some(doc) if is_locked && doc.enabled == Some(false) => problems.push(Problem {
                path: format!("rules.{id}.enabled"),
                reason: "the configuration file locks this rule: it cannot be disabled through the API (change the file to do that)".into(),
            }),
            _ => {}
        }
    }
    locked
}

/// The integration settings of an edit over the file's `[integrations]`: the edit's
/// MQTT, webhooks, Modbus and interlocks; the file's `box_name`, `public_url` and
/// `outbox_max_entries` (an edit may repeat them, not change them).
fn lay_integrations(
    file: &RawIntegrations,
    edit: &RawIntegrations,
    problems: &mut Vec<Problem>,
) -> RawIntegrations {
    for (key, changed) in [
        (
            "box_name",
            edit.box_name.is_some() && edit.box_name != file.box_name,
        ),
        (
            "public_url",
            edit.public_url.is_some() && edit.public_url != file.public_url,
        ),
        (
            "outbox_max_entries",
            edit.outbox_max_entries.is_some() && edit.outbox_max_entries != file.outbox_max_entries,
        ),
    ] {
        if changed {
            problems.push(Problem {
                path: format!("integrations.{key}"),
                reason: "is set in the configuration file only".into(),
            });
        }
    }
    RawIntegrations {
        box_name: file.box_name.clone(),
        public_url: file.public_url.clone(),
        outbox_max_entries: file.outbox_max_entries,
        ..edit.clone()
    }
}

impl RawConfig {
    /// Lays the live edits over the file's cameras, zones, lines and rules; their
    /// elements are named by id from then on. The file's rule locks are kept
    /// ([`check_locks`]): an edit breaking one is a problem.
    pub(crate) fn lay(&mut self, overlay: &Overlay, problems: &mut Vec<Problem>) {
        let locked = check_locks(&self.rules, &overlay.rules, problems);
        lay(&mut self.cameras, &overlay.cameras, "cameras");
        lay(&mut self.zones, &overlay.zones, "zones");
        lay(&mut self.lines, &overlay.lines, "lines");
        lay(&mut self.rules, &overlay.rules, "rules");
        for k in self.rules.iter_mut().filter(|k| locked.contains(&k.id)) {
            k.value.locked = Some(true);
        }
        if let Some(edit) = &overlay.integrations {
            self.integrations = lay_integrations(&self.integrations, edit, problems);
        }
    }

    /// The cameras, zones, lines and rules as written, by id.
    pub(crate) fn documents(&self) -> Documents {
        fn docs<T: Clone>(items: &[Keyed<T>]) -> Vec<(String, T)> {
            items
                .iter()
                .map(|k| (k.id.clone(), k.value.clone()))
                .collect()
        }
        Documents {
            cameras: docs(&self.cameras),
            zones: docs(&self.zones),
            lines: docs(&self.lines),
            rules: docs(&self.rules),
            integrations: self.integrations.clone(),
        }
    }

    pub(crate) fn from_table(mut table: toml::Table, problems: &mut Vec<Problem>) -> Self {
        let mut unknown: Vec<String> = table
            .keys()
            .filter(|k| !SECTIONS.contains(&k.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        for k in unknown {
            problems.push(Problem {
                path: k.clone(),
                reason: format!("unknown section; expected one of: {}", SECTIONS.join(", ")),
            });
        }
        let mut failed = Vec::new();
        let mut raw = RawConfig {
            system: section(&mut table, "system", problems, &mut failed),
            detector: section(&mut table, "detector", problems, &mut failed),
            api: section(&mut table, "api", problems, &mut failed),
            storage: section(&mut table, "storage", problems, &mut failed),
            features: section(&mut table, "features", problems, &mut failed),
            integrations: section(&mut table, "integrations", problems, &mut failed),
            ..RawConfig::default()
        };
        let mut incomplete = false;
        raw.cameras = keyed_list(
            table.remove("cameras"),
            "cameras",
            problems,
            &mut incomplete,
        );
        raw.zones = keyed_list(table.remove("zones"), "zones", problems, &mut incomplete);
        raw.lines = keyed_list(table.remove("lines"), "lines", problems, &mut incomplete);
        raw.rules = keyed_list(table.remove("rules"), "rules", problems, &mut incomplete);
        match table.remove("outputs") {
            None => {}
            Some(toml::Value::Table(mut t)) => {
                raw.output_lines = list(
                    t.remove("lines"),
                    "outputs.lines",
                    problems,
                    &mut incomplete,
                );
                raw.outputs =
                    one("outputs", toml::Value::Table(t), problems).unwrap_or_else(|| {
                        failed.push("outputs");
                        RawOutputsHead::default()
                    });
            }
            Some(_) => problems.push(Problem {
                path: "outputs".into(),
                reason: "must be a section ([outputs])".into(),
            }),
        }
        raw.incomplete = incomplete;
        raw.failed_sections = failed;
        raw
    }
}

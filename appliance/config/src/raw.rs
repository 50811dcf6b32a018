//! The file as written: each section's raw form (plain serde structs that reject
//! unknown keys, declared in the section's module), gathered here.
//!
//! Every section, and every element of every list, is deserialised on its
//! own so that one mistake does not hide the others. Values are kept loose
//! in the raw forms (plain numbers and strings); ranges and cross-references
//! are checked by each section's module, run in order by `validate`.

use serde::de::DeserializeOwned;

use crate::Problem;
use crate::api::RawApi;
use crate::cameras::RawCamera;
use crate::detector::RawDetector;
use crate::features::RawFeatures;
use crate::lines::RawLine;
use crate::outputs::{RawOutputLine, RawOutputsHead};
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

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub system: RawSystem,
    pub detector: RawDetector,
    pub cameras: Vec<At<RawCamera>>,
    pub zones: Vec<At<RawZone>>,
    pub lines: Vec<At<RawLine>>,
    pub rules: Vec<At<RawRule>>,
    pub outputs: RawOutputsHead,
    pub output_lines: Vec<At<RawOutputLine>>,
    pub api: RawApi,
    pub storage: RawStorage,
    pub features: RawFeatures,
    /// Set when a list failed to parse as a whole or had a bad element, so
    /// that cross-reference checks do not report follow-on noise.
    pub incomplete: bool,
    /// Sections that failed to parse: their required keys are not reported
    /// missing on top of the parse problem.
    pub failed_sections: Vec<&'static str>,
}

const SECTIONS: &[&str] = &[
    "system", "detector", "cameras", "zones", "lines", "rules", "outputs", "api", "storage",
    "features",
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

impl RawConfig {
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
            ..RawConfig::default()
        };
        let mut incomplete = false;
        raw.cameras = list(
            table.remove("cameras"),
            "cameras",
            problems,
            &mut incomplete,
        );
        raw.zones = list(table.remove("zones"), "zones", problems, &mut incomplete);
        raw.lines = list(table.remove("lines"), "lines", problems, &mut incomplete);
        raw.rules = list(table.remove("rules"), "rules", problems, &mut incomplete);
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

//! The file as written: plain serde structs that reject unknown keys.
//!
//! Every section, and every element of every list, is deserialised on its
//! own so that one mistake does not hide the others. Values are kept loose
//! here (plain numbers and strings); ranges and cross-references are checked
//! in `validate`.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::Problem;
use crate::rules::RawRule;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSystem {
    pub board: Option<String>,
    pub board_dir: Option<String>,
    pub stall_timeout_s: Option<f64>,
    pub shutdown_timeout_s: Option<f64>,
    pub detect_workers: Option<i64>,
    pub detect_nice: Option<i64>,
    pub api_nice: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetector {
    pub backend: Option<String>,
    pub model: Option<String>,
    pub ppe_model: Option<String>,
    pub threads: Option<i64>,
    pub score_threshold: Option<f64>,
    pub classes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCamera {
    pub id: String,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub source: RawSource,
    pub detect_every: Option<i64>,
    pub queue_depth: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub kind: String,
    // Replay.
    pub path: Option<String>,
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    pub pace: Option<String>,
    pub start_frame: Option<i64>,
    // V4L2.
    pub device: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub format: Option<String>,
    // Both.
    pub fps: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawZone {
    pub id: String,
    pub camera: String,
    pub name: Option<String>,
    pub polygon: Vec<[f64; 2]>,
    pub anchor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLine {
    pub id: String,
    pub camera: String,
    pub name: Option<String>,
    pub from: [f64; 2],
    pub to: [f64; 2],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutputLine {
    pub id: String,
    pub role: String,
    pub offset: Option<i64>,
    pub name: Option<String>,
    pub active_low: Option<bool>,
    pub safe_state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInput {
    pub offset: Option<i64>,
    pub name: Option<String>,
    pub active_low: Option<bool>,
    pub debounce_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutputsHead {
    pub backend: Option<String>,
    pub chip: Option<String>,
    pub sim_log: Option<String>,
    pub ack_button: Option<RawInput>,
    pub door_contact: Option<RawInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub bind: Option<String>,
    pub tls_min_version: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub http_redirect_bind: Option<String>,
    pub cors_origins: Option<Vec<String>>,
    pub setup_networks: Option<Vec<String>>,
    pub jpeg_quality: Option<i64>,
    pub max_body_kib: Option<i64>,
    pub rate_limit_per_s: Option<i64>,
    pub rate_limit_burst: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub state_dir: Option<String>,
    pub media_dir: Option<String>,
    pub event_retention_days: Option<i64>,
    pub audit_retention_days: Option<i64>,
    pub snapshot_quota_mb: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFeatures {
    pub ppe: Option<bool>,
    pub live_stream: Option<bool>,
    pub web_ui: Option<bool>,
    pub snapshots: Option<bool>,
}

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

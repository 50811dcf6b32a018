//! The appliance's configuration.
//!
//! A TOML file is read into loosely typed "raw" structs (unknown keys are
//! rejected there), environment overrides of the form
//! `SAFEYOLO_<SECTION>__<KEY>` are applied first, and the result is validated
//! into [`Config`], whose fields are newtypes that can only hold valid values.
//!
//! The crate is organised by resource: each section of the file (`system`,
//! `detector`, `cameras`, `zones`, `lines`, `rules`, `outputs`, `api`, `storage`,
//! `features`, `integrations`) has its own module holding its raw form, its validated form, its
//! checks and their tests. Where a pure crate runs the section (the rule engine,
//! the outputs), the section validates straight into that crate's types.
//!
//! Loading never stops at the first mistake: every section and every array
//! element is parsed on its own, then checked, and all problems come back
//! together in [`ConfigError::Invalid`], each naming its key path (for example
//! `cameras[1].detect_every`) and the reason. A technician fixes a file in one
//! round trip, not ten.
#![forbid(unsafe_code)]

mod api;
mod cameras;
mod check;
mod detector;
mod env;
mod features;
mod integrations;
mod lines;
mod modbus;
mod model;
mod outputs;
mod overlay;
mod raw;
mod rules;
mod storage;
mod system;
mod validate;
mod zones;

use std::path::{Path, PathBuf};

pub use api::{ApiConfig, IpNet, TlsMinVersion};
pub use cameras::{CameraConfig, RawCamera, RawSource};
pub use detector::{Backend, DetectorConfig, Isolation, default_devices};
pub use features::Features;
pub use integrations::{
    IntegrationsConfig, MqttConfig, MqttTransport, RawIntegrations, RawInterlock, RawModbus,
    RawMqtt, RawWebhook, Secret, SecretSource, WEBHOOK_SECRET_LEN, WebhookConfig, WebhookFilter,
    topic_word_ok,
};
pub use lines::{LineConfig, RawLine};
pub use modbus::{
    COIL_ACK_ALL, DI_ANY_ALARM, DI_CAMERA_ONLINE, DI_GUARDING, DI_RULE_ARMED, DI_RULE_RAISED,
    INTERLOCK_COILS, IR_LAST_EVENT, IR_RAISED, IR_ZONE_COUNT, InterlockConfig, InterlockSource,
    ModbusConfig, ModbusPoint, ModbusRegister, ModbusTable, modbus_map,
};
pub use model::Config;
pub use outputs::{
    BackendKind, InputConfig, InputsConfig, LineRef, OutputLineConfig, OutputRole, OutputsConfig,
    SafeState,
};
pub use overlay::{Documents, Overlay};
pub use rules::{
    LineDirection, RawRule, RawSchedule, RawSiren, RuleConfig, RuleKind, RuleSpec, Schedule,
    Severity, SirenAction, SirenPattern, Weekday, minutes_of_day,
};
pub use storage::StorageConfig;
pub use system::SystemConfig;
pub use zones::{Anchor, RawZone, ZoneConfig};

/// One thing wrong with a configuration: where, and why. The API carries these up
/// to the body of a refused settings edit (the key path as `field`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// Key path, e.g. `cameras[1].source.path`, `env SAFEYOLO_API__BIND` or, for a
    /// settings edit, `rules.dock-intrusion.zone` (sections name their objects by id).
    #[serde(rename = "field")]
    pub path: String,
    /// What is wrong, in words a technician can act on.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has problems; all of them are listed.
    #[error("{} has {} problem(s):\n{}", path.display(), problems.len(), list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems, when the file was readable.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// Reads and validates the configuration at `path`, applying overrides from
/// `env` (pass `std::env::vars()` in the daemon, a fixed list in tests).
///
/// Relative paths inside the file are resolved against the file's directory.
pub fn load(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    // Absolute, so the daemon's paths do not depend on its working directory.
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
    parse(&text, &base, env).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Parses and validates configuration text; `base` resolves relative paths.
pub fn parse(
    text: &str,
    base: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let config =
        read(text, env, &mut problems).map(|raw| validate::validate(&raw, base, &mut problems));
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(problems),
    }
}

/// Parses configuration text, lays `overlay` over its cameras, zones, lines and rules,
/// and validates the whole as [`parse`] does. Those are named by id in the problems'
/// key paths (`rules.dock-intrusion.zone`). Also returns the layered cameras, zones,
/// lines and rules as written.
pub fn parse_layered(
    text: &str,
    base: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    overlay: &Overlay,
) -> Result<(Config, Documents), Vec<Problem>> {
    let mut problems = Vec::new();
    let layered = read(text, env, &mut problems).map(|mut raw| {
        raw.lay(overlay, &mut problems);
        (
            validate::validate(&raw, base, &mut problems),
            raw.documents(),
        )
    });
    match layered {
        Some(layered) if problems.is_empty() => Ok(layered),
        _ => Err(problems),
    }
}

/// The file's raw model, overrides applied; `None` when the text is not TOML.
fn read(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) -> Option<raw::RawConfig> {
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem {
                path: "(file)".into(),
                reason: format!("not valid TOML: {}", e.message().trim()),
            });
            return None;
        }
    };
    env::apply_overrides(&mut table, env, problems);
    Some(raw::RawConfig::from_table(table, problems))
}

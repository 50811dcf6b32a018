//! The outputs section of the appliance configuration, and its validation.
//!
//! The shape (kept stable for the configuration crate to map from):
//!
//! ```toml
//! [outputs]
//! backend = "gpio"            # or "simulated"
//! chip = "/dev/gpiochip0"     # a path, a chip name (gpiochip0) or a chip label
//!
//! [[outputs.lines]]
//! id = "siren-dock"
//! role = "siren"              # siren | relay | healthy | generic
//! line = 17                   # an offset on the chip, or a line name: line = "SIREN"
//! active_low = false
//! safe_state = "off"          # off | on
//!
//! [outputs.inputs.ack_button]
//! line = "ACK"
//! active_low = true
//! debounce_ms = 30
//! ```
//!
//! [`OutputsConfig::validate`] reports every problem at once, each naming its field.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use safe_yolo_domain::OutputId;
use serde::{Deserialize, Serialize};

use crate::driver::DriverSettings;
use crate::spec::{InputRole, OutputRole, OutputSpec, SafeState};

/// Most lines one uAPI v2 line request may hold (`GPIO_V2_LINES_MAX`).
pub const MAX_LINES_PER_REQUEST: usize = 64;
/// Longest GPIO line name the kernel reports (`GPIO_MAX_NAME_SIZE` less the NUL).
pub const MAX_LINE_NAME: usize = 31;
/// Longest accepted input debounce period.
pub const MAX_DEBOUNCE_MS: u64 = 1000;

/// Which backend drives the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Linux GPIO character device (uAPI v2).
    Gpio,
    /// The recording simulator.
    Simulated,
}

/// A line on the chip: its offset, or its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LineRef {
    /// The line's offset on the chip.
    Offset(u32),
    /// The line's name (from the device tree `gpio-line-names` or gpio-sim `name`).
    Name(String),
}

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Offset(o) => write!(f, "offset {o}"),
            Self::Name(n) => write!(f, "name {n:?}"),
        }
    }
}

/// One output line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// The output's identifier.
    pub id: OutputId,
    /// What it is wired to.
    pub role: OutputRole,
    /// Where it is on the chip.
    pub line: LineRef,
    /// Whether the line is electrically low when the output is on.
    #[serde(default)]
    pub active_low: bool,
    /// Its level on start, shutdown and fault.
    pub safe_state: SafeState,
}

/// One input line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Where it is on the chip.
    pub line: LineRef,
    /// Whether the line is electrically low when active (pressed, open).
    #[serde(default)]
    pub active_low: bool,
    /// Debounce period, applied in the kernel where supported and in software.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
}

impl InputConfig {
    /// The debounce period.
    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms)
    }
}

/// The two optional inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsConfig {
    /// The acknowledge push-button.
    #[serde(default)]
    pub ack_button: Option<InputConfig>,
    /// The door contact.
    #[serde(default)]
    pub door_contact: Option<InputConfig>,
}

impl InputsConfig {
    /// The configured inputs with their roles.
    pub fn iter(&self) -> impl Iterator<Item = (InputRole, &InputConfig)> {
        [
            (InputRole::AckButton, self.ack_button.as_ref()),
            (InputRole::DoorContact, self.door_contact.as_ref()),
        ]
        .into_iter()
        .filter_map(|(r, c)| c.map(|c| (r, c)))
    }
}

/// The `[outputs]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    /// Which backend drives the lines.
    pub backend: BackendKind,
    /// The GPIO chip: a path (`/dev/gpiochip0`), a name (`gpiochip0`) or a label.
    #[serde(default)]
    pub chip: String,
    /// The output lines.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// The input lines.
    #[serde(default)]
    pub inputs: InputsConfig,
    /// The pipeline counts as dead after this long without a heartbeat.
    #[serde(default = "default_health_timeout_ms")]
    pub health_timeout_ms: u64,
    /// The runner's tick (pattern timing resolution, input polling).
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// The longest operator test accepted.
    #[serde(default = "default_max_test_ms")]
    pub max_test_ms: u64,
    /// With the simulated backend: also append transitions to this JSON-lines file.
    #[serde(default)]
    pub sim_log_file: Option<PathBuf>,
}

fn default_debounce_ms() -> u64 {
    30
}
fn default_health_timeout_ms() -> u64 {
    2000
}
fn default_tick_ms() -> u64 {
    10
}
fn default_max_test_ms() -> u64 {
    60_000
}

/// One problem found by [`OutputsConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The offending field, e.g. `outputs.lines[2].line`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every problem of an outputs configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid outputs configuration: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigError {
    /// The problems, in field order.
    pub problems: Vec<ConfigProblem>,
}

/// A configuration that passed validation, with the values the runner needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedOutputs {
    /// The configuration as given.
    pub config: OutputsConfig,
    /// The driver's view of the outputs, in configuration order.
    pub specs: Vec<OutputSpec>,
    /// The driver's tunables.
    pub settings: DriverSettings,
    /// The runner's tick.
    pub tick: Duration,
}

impl ValidatedOutputs {
    /// The configured input roles.
    pub fn input_roles(&self) -> Vec<InputRole> {
        self.config.inputs.iter().map(|(r, _)| r).collect()
    }

    /// The debounce period of each configured input.
    pub fn debounce_periods(&self) -> Vec<(InputRole, Duration)> {
        self.config
            .inputs
            .iter()
            .map(|(r, c)| (r, c.debounce()))
            .collect()
    }
}

/// Checks a line name as the kernel can report it.
fn check_line_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a line name must not be empty".into());
    }
    if name.len() > MAX_LINE_NAME {
        return Err(format!(
            "line name {name:?} is {} bytes long; the kernel reports at most {MAX_LINE_NAME}",
            name.len()
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(format!("line name {name:?} has a control character"));
    }
    Ok(())
}

impl OutputsConfig {
    /// Validates the whole section, reporting every problem at once.
    pub fn validate(self) -> Result<ValidatedOutputs, ConfigError> {
        let mut problems = Vec::new();
        let mut bad =
            |field: String, reason: String| problems.push(ConfigProblem { field, reason });

        if self.backend == BackendKind::Gpio && self.chip.trim().is_empty() {
            bad(
                "outputs.chip".into(),
                "the gpio backend needs a chip: a path like /dev/gpiochip0, a name like gpiochip0, or a chip label".into(),
            );
        }
        if self.backend == BackendKind::Gpio && self.sim_log_file.is_some() {
            bad(
                "outputs.sim_log_file".into(),
                "is only used by the simulated backend".into(),
            );
        }
        if !(100..=300_000).contains(&self.health_timeout_ms) {
            bad(
                "outputs.health_timeout_ms".into(),
                format!(
                    "is {}; it must be between 100 and 300000",
                    self.health_timeout_ms
                ),
            );
        }
        if !(1..=100).contains(&self.tick_ms) {
            bad(
                "outputs.tick_ms".into(),
                format!("is {}; it must be between 1 and 100", self.tick_ms),
            );
        }
        if !(1..=600_000).contains(&self.max_test_ms) {
            bad(
                "outputs.max_test_ms".into(),
                format!("is {}; it must be between 1 and 600000", self.max_test_ms),
            );
        }
        if self.lines.len() > MAX_LINES_PER_REQUEST {
            bad(
                "outputs.lines".into(),
                format!(
                    "has {} lines; one GPIO request holds at most {MAX_LINES_PER_REQUEST}",
                    self.lines.len()
                ),
            );
        }

        // Every line reference, outputs then inputs, for the duplicate check.
        let mut refs: Vec<(String, &LineRef)> = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            let field = format!("outputs.lines[{i}]");
            if let Some(j) = self.lines[..i].iter().position(|o| o.id == l.id) {
                bad(
                    format!("{field}.id"),
                    format!("output {} is already defined by outputs.lines[{j}]", l.id),
                );
            }
            if l.role == OutputRole::Healthy && l.safe_state == SafeState::On {
                bad(
                    format!("{field}.safe_state"),
                    "a healthy output must be off in the safe state, so a PLC sees a fault when the appliance stops".into(),
                );
            }
            refs.push((format!("{field}.line"), &l.line));
        }
        for (role, c) in self.inputs.iter() {
            let field = format!("outputs.inputs.{role}");
            if c.debounce_ms > MAX_DEBOUNCE_MS {
                bad(
                    format!("{field}.debounce_ms"),
                    format!("is {}; at most {MAX_DEBOUNCE_MS} is allowed", c.debounce_ms),
                );
            }
            refs.push((format!("{field}.line"), &c.line));
        }
        for (i, (field, r)) in refs.iter().enumerate() {
            if let LineRef::Name(n) = r
                && let Err(reason) = check_line_name(n)
            {
                bad(field.clone(), reason);
            }
            if let Some((other, _)) = refs[..i].iter().find(|(_, o)| o == r) {
                bad(field.clone(), format!("{r} is already used by {other}"));
            }
        }

        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let specs = self
            .lines
            .iter()
            .map(|l| OutputSpec {
                id: l.id.clone(),
                role: l.role,
                safe_state: l.safe_state,
                active_low: l.active_low,
            })
            .collect();
        Ok(ValidatedOutputs {
            specs,
            settings: DriverSettings {
                health_timeout: Duration::from_millis(self.health_timeout_ms),
                max_test: Duration::from_millis(self.max_test_ms),
                healthy_pulse: None,
            },
            tick: Duration::from_millis(self.tick_ms),
            config: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        backend = "gpio"
        chip = "gpiochip0"

        [[lines]]
        id = "siren-dock"
        role = "siren"
        line = 17
        safe_state = "off"

        [[lines]]
        id = "door-lock"
        role = "relay"
        line = "LOCK"
        active_low = true
        safe_state = "on"

        [[lines]]
        id = "healthy"
        role = "healthy"
        line = 3
        safe_state = "off"

        [inputs.ack_button]
        line = "ACK"
        active_low = true
        debounce_ms = 20

        [inputs.door_contact]
        line = 5
    "#;

    fn parse(s: &str) -> OutputsConfig {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn good_config_validates() {
        let v = parse(GOOD).validate().unwrap();
        assert_eq!(v.specs.len(), 3);
        assert_eq!(v.config.lines[1].line, LineRef::Name("LOCK".into()));
        assert!(v.specs[1].active_low);
        assert_eq!(v.specs[1].safe_state, SafeState::On);
        assert_eq!(v.tick, Duration::from_millis(10));
        assert_eq!(v.settings.health_timeout, Duration::from_secs(2));
        assert_eq!(
            v.debounce_periods(),
            vec![
                (InputRole::AckButton, Duration::from_millis(20)),
                (InputRole::DoorContact, Duration::from_millis(30))
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let bad = r#"
            backend = "gpio"
            chip = ""
            tick_ms = 0
            sim_log_file = "/tmp/x"

            [[lines]]
            id = "a"
            role = "healthy"
            line = 1
            safe_state = "on"

            [[lines]]
            id = "a"
            role = "siren"
            line = "this-name-is-far-too-long-for-the-kernel"
            safe_state = "off"

            [inputs.ack_button]
            line = 1
            debounce_ms = 5000
        "#;
        let e = parse(bad).validate().unwrap_err();
        let fields: Vec<&str> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "outputs.chip",
                "outputs.sim_log_file",
                "outputs.tick_ms",
                "outputs.lines[0].safe_state",
                "outputs.lines[1].id",
                "outputs.inputs.ack_button.debounce_ms",
                "outputs.lines[1].line",
                "outputs.inputs.ack_button.line",
            ]
        );
        let msg = e.to_string();
        assert!(
            msg.contains("offset 1 is already used by outputs.lines[0].line"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected_by_serde() {
        let e = toml::from_str::<OutputsConfig>("backend = \"gpio\"\nchipp = \"x\"").unwrap_err();
        assert!(e.to_string().contains("chipp"), "{e}");
        let e = toml::from_str::<OutputsConfig>(
            "backend = \"gpio\"\n[[lines]]\nid = \"x\"\nrole = \"horn\"\nline = 1\nsafe_state = \"off\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("horn"), "{e}");
        let e = toml::from_str::<OutputsConfig>(
            "backend = \"gpio\"\n[[lines]]\nid = \"x\"\nrole = \"siren\"\nline = 1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("safe_state"), "{e}");
    }

    #[test]
    fn simulated_backend_needs_no_chip() {
        let v = parse("backend = \"simulated\"\nsim_log_file = \"/tmp/gpio.jsonl\"")
            .validate()
            .unwrap();
        assert!(v.specs.is_empty());
        assert!(v.input_roles().is_empty());
    }
}

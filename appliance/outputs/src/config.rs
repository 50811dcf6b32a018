//! The `[outputs]` section of the appliance configuration as the outputs see it, and the
//! checks only they know: kernel limits of a line request, line names as the kernel
//! reports them, one line used twice, the healthy line's safe state.
//!
//! There is one file format: `safe_yolo_config` reads the TOML (`[[outputs.lines]]`
//! with `offset` or `name`, `[outputs.ack_button]`, `[outputs.door_contact]`), builds
//! an [`OutputsConfig`] and runs [`OutputsConfig::problems`] as part of its own
//! validation, so every problem comes back with the key path of the file.
//! [`OutputsConfig::validate`] runs the same checks and hands the runner its specs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use safe_yolo_domain::{Named, OutputId};

use crate::driver::DriverSettings;
use crate::spec::{InputRole, OutputRole, OutputSpec, SafeState};

/// Most lines one uAPI v2 line request may hold (`GPIO_V2_LINES_MAX`).
pub const MAX_LINES_PER_REQUEST: usize = 64;
/// Longest GPIO line name the kernel reports (`GPIO_MAX_NAME_SIZE` less the NUL).
pub const MAX_LINE_NAME: usize = 31;
/// Longest accepted input debounce period.
pub const MAX_DEBOUNCE_MS: u64 = 1000;
/// The runner's tick: pattern timing resolution and input polling.
pub const TICK: Duration = Duration::from_millis(10);
/// The longest operator test accepted.
pub const MAX_TEST: Duration = Duration::from_secs(60);

/// Which backend drives the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Linux GPIO character device (uAPI v2).
    Gpio,
    /// The recording simulator.
    Simulated,
}

impl Named for BackendKind {
    const WHAT: &'static str = "outputs backend";
    const NAMED: &'static [(&'static str, Self)] =
        &[("gpio", Self::Gpio), ("simulated", Self::Simulated)];
}
safe_yolo_domain::named_vocabulary!(BackendKind);

/// A line on the chip: its offset, or its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LineRef {
    /// The line's offset on the chip.
    Offset(u32),
    /// The line's name (from the device tree `gpio-line-names` or gpio-sim `name`).
    Name(String),
}

impl LineRef {
    /// The key of the configuration file that holds it (`offset` or `name`).
    pub fn key(&self) -> &'static str {
        match self {
            Self::Offset(_) => "offset",
            Self::Name(_) => "name",
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// The output's identifier.
    pub id: OutputId,
    /// What it is wired to.
    pub role: OutputRole,
    /// Where it is on the chip.
    pub line: LineRef,
    /// Whether the line is electrically low when the output is on.
    pub active_low: bool,
    /// Its level on start, shutdown and fault.
    pub safe_state: SafeState,
}

/// One input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    /// Where it is on the chip.
    pub line: LineRef,
    /// Whether the line is electrically low when active (pressed, open).
    pub active_low: bool,
    /// Debounce period, applied in the kernel where supported and in software.
    pub debounce: Duration,
}

/// The optional inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputsConfig {
    /// The acknowledge push-button.
    pub ack_button: Option<InputConfig>,
    /// The door contact.
    pub door_contact: Option<InputConfig>,
    /// The machine-state contact (a `gpio` interlock).
    pub machine_state: Option<InputConfig>,
}

impl InputsConfig {
    /// The configured inputs with their roles.
    pub fn iter(&self) -> impl Iterator<Item = (InputRole, &InputConfig)> {
        [
            (InputRole::AckButton, self.ack_button.as_ref()),
            (InputRole::DoorContact, self.door_contact.as_ref()),
            (InputRole::MachineState, self.machine_state.as_ref()),
        ]
        .into_iter()
        .filter_map(|(r, c)| c.map(|c| (r, c)))
    }
}

/// The `[outputs]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputsConfig {
    /// Which backend drives the lines.
    pub backend: BackendKind,
    /// The GPIO chip: a path (`/dev/gpiochip0`), a name (`gpiochip0`) or a label.
    pub chip: String,
    /// The output lines.
    pub lines: Vec<LineConfig>,
    /// The input lines.
    pub inputs: InputsConfig,
    /// The pipeline counts as dead after this long without a heartbeat (the
    /// configuration's `system.stall_timeout_s`).
    pub health_timeout: Duration,
    /// With the simulated backend: also append transitions to this JSON-lines file.
    pub sim_log: Option<PathBuf>,
}

impl OutputsConfig {
    /// A simulated backend without lines (tests, a box still to be wired).
    pub fn simulated() -> Self {
        Self {
            backend: BackendKind::Simulated,
            chip: String::new(),
            lines: Vec::new(),
            inputs: InputsConfig::default(),
            health_timeout: Duration::from_secs(2),
            sim_log: None,
        }
    }
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
            .map(|(r, c)| (r, c.debounce))
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
    /// Every problem of the section, each with the key path of the configuration file.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut bad =
            |field: String, reason: String| problems.push(ConfigProblem { field, reason });

        if self.backend == BackendKind::Gpio && self.chip.trim().is_empty() {
            bad(
                "outputs.chip".into(),
                "is required with backend = \"gpio\": a path like /dev/gpiochip0, a name like gpiochip0, or a chip label".into(),
            );
        }
        if self.backend == BackendKind::Gpio && self.sim_log.is_some() {
            bad(
                "outputs.sim_log".into(),
                "is only used by the simulated backend".into(),
            );
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&self.health_timeout) {
            bad(
                "system.stall_timeout_s".into(),
                format!(
                    "is {:?}; the outputs take between 0.1 and 300 s",
                    self.health_timeout
                ),
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
                    format!("output `{}` is already defined by outputs.lines[{j}]", l.id),
                );
            }
            if l.role == OutputRole::Healthy && l.safe_state == SafeState::On {
                bad(
                    format!("{field}.safe_state"),
                    "a healthy output must be off in the safe state, so a PLC sees a fault when the appliance stops".into(),
                );
            }
            if l.role == OutputRole::Healthy
                && self.lines[..i]
                    .iter()
                    .any(|o| o.role == OutputRole::Healthy)
            {
                bad(
                    format!("{field}.role"),
                    "at most one line may have role = \"healthy\"".into(),
                );
            }
            refs.push((format!("{field}.{}", l.line.key()), &l.line));
        }
        for (role, c) in self.inputs.iter() {
            let field = format!("outputs.{role}");
            if c.debounce > Duration::from_millis(MAX_DEBOUNCE_MS) {
                bad(
                    format!("{field}.debounce_ms"),
                    format!(
                        "is {}; at most {MAX_DEBOUNCE_MS} is allowed",
                        c.debounce.as_millis()
                    ),
                );
            }
            refs.push((format!("{field}.{}", c.line.key()), &c.line));
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
        problems
    }

    /// Validates the whole section ([`Self::problems`]) and derives what the driver
    /// and the runner need.
    pub fn validate(self) -> Result<ValidatedOutputs, ConfigError> {
        let problems = self.problems();
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
                health_timeout: self.health_timeout,
                max_test: MAX_TEST,
                healthy_pulse: None,
            },
            tick: TICK,
            config: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, role: OutputRole, line: LineRef, safe_state: SafeState) -> LineConfig {
        LineConfig {
            id: OutputId::new(id).unwrap(),
            role,
            line,
            active_low: false,
            safe_state,
        }
    }

    fn input(line: LineRef, debounce_ms: u64) -> InputConfig {
        InputConfig {
            line,
            active_low: true,
            debounce: Duration::from_millis(debounce_ms),
        }
    }

    fn good() -> OutputsConfig {
        let mut lock = line(
            "door-lock",
            OutputRole::Relay,
            LineRef::Name("LOCK".into()),
            SafeState::On,
        );
        lock.active_low = true;
        OutputsConfig {
            backend: BackendKind::Gpio,
            chip: "gpiochip0".into(),
            lines: vec![
                line(
                    "siren-dock",
                    OutputRole::Siren,
                    LineRef::Offset(17),
                    SafeState::Off,
                ),
                lock,
                line(
                    "healthy",
                    OutputRole::Healthy,
                    LineRef::Offset(3),
                    SafeState::Off,
                ),
            ],
            inputs: InputsConfig {
                ack_button: Some(input(LineRef::Name("ACK".into()), 20)),
                door_contact: Some(input(LineRef::Offset(5), 30)),
                machine_state: None,
            },
            ..OutputsConfig::simulated()
        }
    }

    #[test]
    fn good_config_validates() {
        let v = good().validate().unwrap();
        assert_eq!(v.specs.len(), 3);
        assert_eq!(v.config.lines[1].line, LineRef::Name("LOCK".into()));
        assert!(v.specs[1].active_low);
        assert_eq!(v.specs[1].safe_state, SafeState::On);
        assert_eq!(v.tick, TICK);
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
    fn every_problem_is_reported_with_the_files_key_path() {
        let cfg = OutputsConfig {
            backend: BackendKind::Gpio,
            chip: String::new(),
            sim_log: Some("/tmp/x".into()),
            health_timeout: Duration::from_millis(50),
            lines: vec![
                line("a", OutputRole::Healthy, LineRef::Offset(1), SafeState::On),
                line(
                    "a",
                    OutputRole::Siren,
                    LineRef::Name("this-name-is-far-too-long-for-the-kernel".into()),
                    SafeState::Off,
                ),
                line("h", OutputRole::Healthy, LineRef::Offset(9), SafeState::Off),
            ],
            inputs: InputsConfig {
                ack_button: Some(input(LineRef::Offset(1), 5000)),
                door_contact: None,
                machine_state: None,
            },
        };
        let e = cfg.validate().unwrap_err();
        let fields: Vec<&str> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "outputs.chip",
                "outputs.sim_log",
                "system.stall_timeout_s",
                "outputs.lines[0].safe_state",
                "outputs.lines[1].id",
                "outputs.lines[2].role",
                "outputs.ack_button.debounce_ms",
                "outputs.lines[1].name",
                "outputs.ack_button.offset",
            ]
        );
        let msg = e.to_string();
        assert!(
            msg.contains("offset 1 is already used by outputs.lines[0].offset"),
            "{msg}"
        );
    }

    #[test]
    fn simulated_backend_needs_no_chip() {
        let v = OutputsConfig {
            sim_log: Some("/tmp/gpio.jsonl".into()),
            ..OutputsConfig::simulated()
        }
        .validate()
        .unwrap();
        assert!(v.specs.is_empty());
        assert!(v.input_roles().is_empty());
    }

    #[test]
    fn roles_and_safe_states_have_one_name_each() {
        assert_eq!(OutputRole::from_name("generic"), Some(OutputRole::Generic));
        assert_eq!(OutputRole::Healthy.as_str(), "healthy");
        assert_eq!(SafeState::from_name("on"), Some(SafeState::On));
        assert_eq!(
            BackendKind::unknown("i2c"),
            r#""i2c" is not one of: gpio, simulated"#
        );
    }
}

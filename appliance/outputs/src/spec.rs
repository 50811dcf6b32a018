//! Value types describing outputs, inputs and the actions that drive them.
//!
//! These are the words shared by the configuration, the pure [`crate::driver`]
//! and the runner's command channel. Nothing here does I/O.

use std::fmt;
use std::time::Duration;

use safe_yolo_domain::{Named, OutputId, RuleId};
use serde::{Deserialize, Serialize};

/// What an output is wired to; decides its idle level and which actions it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputRole {
    /// An audible or visual alarm; accepts steady and pulsed patterns.
    Siren,
    /// A relay (machine stop, interlock, door lock); usually latched until acknowledged.
    Relay,
    /// The "system healthy" line: on only while the pipeline is alive, so a PLC reads its
    /// loss (including a dead appliance or a cut wire) as a fault. Accepts no actions.
    Healthy,
    /// Any other output (beacon, lamp); behaves like a siren.
    Generic,
}

impl Named for OutputRole {
    const WHAT: &'static str = "output role";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("siren", Self::Siren),
        ("relay", Self::Relay),
        ("healthy", Self::Healthy),
        ("generic", Self::Generic),
    ];
}
safe_yolo_domain::named_vocabulary!(OutputRole);

impl OutputRole {
    /// Whether rule actions may drive an output of this role.
    pub fn accepts_actions(self) -> bool {
        !matches!(self, Self::Healthy)
    }
}

/// The logical level an output is forced to on start, on shutdown and on a pipeline fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SafeState {
    /// The output is inactive (de-energised) in the safe state.
    Off,
    /// The output is active (energised) in the safe state, e.g. a stop relay.
    On,
}

impl Named for SafeState {
    const WHAT: &'static str = "safe state";
    const NAMED: &'static [(&'static str, Self)] = &[("off", Self::Off), ("on", Self::On)];
}
safe_yolo_domain::named_vocabulary!(SafeState);

impl SafeState {
    /// The logical level (`true` = active) of this safe state.
    pub fn is_on(self) -> bool {
        matches!(self, Self::On)
    }
}

/// One configured output as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The output's identifier, referenced by rules and the API.
    pub id: OutputId,
    /// What the output is wired to.
    pub role: OutputRole,
    /// The output's level on start, shutdown and fault.
    pub safe_state: SafeState,
    /// Whether the electrical line is low when the output is logically on.
    pub active_low: bool,
}

impl OutputSpec {
    /// The logical level of this output when nothing drives it and the pipeline is alive.
    pub fn idle_level(&self) -> bool {
        matches!(self.role, OutputRole::Healthy)
    }
}

/// How an active output behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pattern {
    /// Continuously on.
    Steady,
    /// On for `on`, then off for `off`, repeating from the moment of activation.
    Pulsed {
        /// Time on in each period.
        #[serde(with = "safe_yolo_domain::millis")]
        #[schemars(with = "u64")]
        on: Duration,
        /// Time off in each period.
        #[serde(with = "safe_yolo_domain::millis")]
        #[schemars(with = "u64")]
        off: Duration,
    },
}

impl Pattern {
    /// The kinds of pattern by the name files and the API write (`pattern = "pulsed"`).
    pub const KINDS: [&'static str; 2] = ["steady", "pulsed"];

    /// The pattern of kind `name`; a pulsed one with the full on+off `period`.
    /// `None` for a name that is not one of [`Self::KINDS`].
    pub fn of_kind(name: &str, period: Duration) -> Option<Self> {
        match name {
            "steady" => Some(Self::Steady),
            "pulsed" => Some(Self::pulsed(period)),
            _ => None,
        }
    }

    /// The kind's name (one of [`Self::KINDS`]).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Pulsed { .. } => "pulsed",
        }
    }

    /// The full on+off period of a pulsed pattern.
    pub fn period(self) -> Option<Duration> {
        match self {
            Self::Steady => None,
            Self::Pulsed { on, off } => Some(on.saturating_add(off)),
        }
    }

    /// A square wave with the given period (half on, half off).
    pub fn pulsed(period: Duration) -> Self {
        let on = period / 2;
        Self::Pulsed {
            on,
            off: period.saturating_sub(on),
        }
    }

    /// The level of this pattern `elapsed` after its activation.
    pub fn level_at(self, elapsed: Duration) -> bool {
        match self {
            Self::Steady => true,
            Self::Pulsed { on, off } => {
                let period = on.saturating_add(off);
                if period.is_zero() {
                    return false;
                }
                let phase = elapsed.as_nanos() % period.as_nanos();
                phase < on.as_nanos()
            }
        }
    }
}

/// When an action ends. An acknowledgement ends every action it matches, timed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    /// The action holds (latches) until acknowledged.
    UntilAck,
    /// The action ends by itself this long after its (latest) activation.
    After {
        /// How long the action lasts.
        #[serde(with = "safe_yolo_domain::millis")]
        #[schemars(with = "u64")]
        duration: Duration,
    },
}

/// What a rule asks its outputs to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, Deserialize)]
pub struct ActionSpec {
    /// The output's behaviour while the action is active.
    pub pattern: Pattern,
    /// When the action ends.
    pub ending: Ending,
}

impl ActionSpec {
    /// A relay latched until acknowledged.
    pub fn latch() -> Self {
        Self {
            pattern: Pattern::Steady,
            ending: Ending::UntilAck,
        }
    }
}

/// Who asked for an action: the rule and the event it raised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema, Deserialize)]
pub struct Source {
    /// The rule that fired.
    pub rule: RuleId,
    /// The event the rule raised (opaque to this crate, e.g. the store's event key).
    pub event: String,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.rule, self.event)
    }
}

/// Which actions an acknowledgement ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum AckTarget {
    /// Every active action (the physical acknowledge button does this).
    All,
    /// The actions raised by one event.
    Event(String),
    /// The actions raised by one rule, whatever the event.
    Rule(RuleId),
}

impl AckTarget {
    /// Whether this acknowledgement covers actions from `source`.
    pub fn matches(&self, source: &Source) -> bool {
        match self {
            Self::All => true,
            Self::Event(e) => source.event == *e,
            Self::Rule(r) => source.rule == *r,
        }
    }
}

/// The supported GPIO inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputRole {
    /// The operator's acknowledge push-button: a press acknowledges every active action.
    AckButton,
    /// A door contact: its debounced state is reported to subscribers and in the status.
    DoorContact,
    /// A machine-state contact (the press runs): active arms the rules of the `gpio`
    /// interlock.
    MachineState,
}

impl Named for InputRole {
    const WHAT: &'static str = "input role";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("ack_button", Self::AckButton),
        ("door_contact", Self::DoorContact),
        ("machine_state", Self::MachineState),
    ];
}
safe_yolo_domain::named_vocabulary!(InputRole);

/// Maps a logical level to the electrical level of a line (`true` = high).
pub fn physical_level(on: bool, active_low: bool) -> bool {
    on != active_low
}

/// Maps an electrical level (`true` = high) to the logical level of a line.
pub fn logical_level(high: bool, active_low: bool) -> bool {
    high != active_low
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn pulsed_pattern_alternates() {
        let p = Pattern::Pulsed {
            on: ms(300),
            off: ms(700),
        };
        assert!(p.level_at(ms(0)));
        assert!(p.level_at(ms(299)));
        assert!(!p.level_at(ms(300)));
        assert!(!p.level_at(ms(999)));
        assert!(p.level_at(ms(1000)));
        assert_eq!(
            Pattern::pulsed(ms(1000)),
            Pattern::Pulsed {
                on: ms(500),
                off: ms(500)
            }
        );
        assert!(
            !Pattern::Pulsed {
                on: ms(0),
                off: ms(0)
            }
            .level_at(ms(5))
        );
    }

    #[test]
    fn active_low_mapping_is_an_involution() {
        for on in [false, true] {
            for al in [false, true] {
                assert_eq!(logical_level(physical_level(on, al), al), on);
            }
        }
        assert!(!physical_level(true, true));
        assert!(physical_level(false, true));
        assert!(physical_level(true, false));
    }

    #[test]
    fn ack_targets_match_sources() {
        let s = Source {
            rule: RuleId::new("no-go").unwrap(),
            event: "42".into(),
        };
        assert!(AckTarget::All.matches(&s));
        assert!(AckTarget::Event("42".into()).matches(&s));
        assert!(!AckTarget::Event("43".into()).matches(&s));
        assert!(AckTarget::Rule(RuleId::new("no-go").unwrap()).matches(&s));
        assert!(!AckTarget::Rule(RuleId::new("other").unwrap()).matches(&s));
    }

    #[test]
    fn action_serde_round_trip() {
        let a = ActionSpec {
            pattern: Pattern::pulsed(ms(1000)),
            ending: Ending::After {
                duration: ms(30_000),
            },
        };
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(
            j,
            r#"{"pattern":{"kind":"pulsed","on":500,"off":500},"ending":{"kind":"after","duration":30000}}"#
        );
        assert_eq!(serde_json::from_str::<ActionSpec>(&j).unwrap(), a);
    }
}

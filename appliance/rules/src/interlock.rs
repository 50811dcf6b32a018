//! Interlocks: machine states that arm rules (a zone guarded only while the press
//! runs, a lock-out that disarms a rule while a fitter works inside).
//!
//! A rule naming an interlock (`armed_by`) is evaluated only while the interlock says
//! *armed*. **Fail-safe:** only a fresh, explicit *disarmed* disarms; an interlock the
//! box has not heard from since it started, or whose source went stale or away, is
//! [`InterlockLevel::Unknown`], which arms. A disarmed rule's condition counts as absent,
//! as outside its schedule: a raised alarm clears as its `clear_after` says.
//!
//! The engine only reads a snapshot ([`InterlockStates`]) given with each frame; where
//! the levels come from (a Modbus coil, an MQTT topic, a GPIO input) is the daemon's.

use safe_yolo_domain::{InterlockId, Named};

/// What an interlock says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterlockLevel {
    /// The machine state arms the rules.
    Armed,
    /// The machine state disarms the rules.
    Disarmed,
    /// Never heard since start, stale or its source is gone: arms (fail-safe).
    Unknown,
}

impl Named for InterlockLevel {
    const WHAT: &'static str = "interlock level";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("armed", Self::Armed),
        ("disarmed", Self::Disarmed),
        ("unknown", Self::Unknown),
    ];
}
safe_yolo_domain::named_vocabulary!(InterlockLevel);

impl InterlockLevel {
    /// Whether rules armed by an interlock at this level are evaluated.
    pub fn arms(self) -> bool {
        self != Self::Disarmed
    }
}

/// The level of every interlock at one moment (sorted by id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterlockStates(Vec<(InterlockId, InterlockLevel)>);

impl InterlockStates {
    /// No interlock known: every rule is armed.
    pub const EMPTY: Self = Self(Vec::new());

    /// The states of `levels` (a later duplicate wins).
    pub fn new(levels: impl IntoIterator<Item = (InterlockId, InterlockLevel)>) -> Self {
        let mut v: Vec<(InterlockId, InterlockLevel)> = Vec::new();
        for (id, level) in levels {
            match v.binary_search_by(|(k, _)| k.cmp(&id)) {
                Ok(i) => v[i].1 = level,
                Err(i) => v.insert(i, (id, level)),
            }
        }
        Self(v)
    }

    /// The level of `id` ([`InterlockLevel::Unknown`] when not listed).
    pub fn level(&self, id: &InterlockId) -> InterlockLevel {
        self.0
            .binary_search_by(|(k, _)| k.cmp(id))
            .map_or(InterlockLevel::Unknown, |i| self.0[i].1)
    }

    /// Whether a rule armed by `armed_by` (none: always) is evaluated.
    pub fn arms(&self, armed_by: Option<&InterlockId>) -> bool {
        armed_by.is_none_or(|id| self.level(id).arms())
    }

    /// Every listed interlock with its level.
    pub fn iter(&self) -> impl Iterator<Item = (&InterlockId, InterlockLevel)> {
        self.0.iter().map(|(k, l)| (k, *l))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    fn id(s: &str) -> InterlockId {
        InterlockId::new(s).unwrap()
    }

    #[test]
    fn only_an_explicit_disarm_disarms() {
        let s = InterlockStates::new([
            (id("press"), InterlockLevel::Disarmed),
            (id("loto"), InterlockLevel::Armed),
            (id("stale"), InterlockLevel::Unknown),
        ]);
        assert!(!s.arms(Some(&id("press"))));
        assert!(s.arms(Some(&id("loto"))));
        assert!(s.arms(Some(&id("stale"))));
        assert!(s.arms(Some(&id("never-heard"))));
        assert!(s.arms(None));
        assert!(InterlockStates::EMPTY.arms(Some(&id("press"))));
    }

    #[test]
    fn a_later_level_replaces_an_earlier_one() {
        let s = InterlockStates::new([
            (id("b"), InterlockLevel::Armed),
            (id("a"), InterlockLevel::Armed),
            (id("b"), InterlockLevel::Disarmed),
        ]);
        assert_eq!(s.level(&id("b")), InterlockLevel::Disarmed);
        let ids: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }
}

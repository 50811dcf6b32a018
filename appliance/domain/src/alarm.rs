//! What an alarm was: the rule engine raises it, the dispatcher commands the
//! outputs for it, and the store keeps it with the event it leaves.
//!
//! Declared here, below both the rule engine and the store, so the engine's
//! decision and the stored record are one type. The serde form is the
//! database's and the API's: a tagged object (`{"kind": "occupancy",
//! "count": 3}`), its closed sets spelled by their [`Named`](crate::Named)
//! tables.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Named;

/// The camera's health as reported by the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CameraHealth {
    /// Frames arrive and look normal.
    #[default]
    Ok,
    /// No frames arrive.
    Offline,
    /// Frames arrive but the view is blocked, blinded or moved.
    Tampered,
}

impl Named for CameraHealth {
    const WHAT: &'static str = "camera health";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("ok", Self::Ok),
        ("offline", Self::Offline),
        ("tampered", Self::Tampered),
    ];
}
crate::named_vocabulary!(CameraHealth);

/// Why a camera that delivers frames is not watching: what the pipeline's
/// tamper check saw (`pipeline::tamper`), in the order a `camera_tamper`
/// alarm names them when several hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TamperReason {
    /// Frames arrive but their content (or their capture time) does not advance.
    Frozen,
    /// The picture is nearly uniform and not bright: the lens is covered.
    Covered,
    /// The picture is nearly uniform and bright: the camera is blinded.
    Blinded,
    /// The picture is much less sharp than the camera's own learned baseline.
    Defocused,
    /// The static background no longer matches the camera's reference picture.
    Moved,
}

impl Named for TamperReason {
    const WHAT: &'static str = "tamper reason";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("frozen", Self::Frozen),
        ("covered", Self::Covered),
        ("blinded", Self::Blinded),
        ("defocused", Self::Defocused),
        ("moved", Self::Moved),
    ];
}
crate::named_vocabulary!(TamperReason);

/// A set of [`TamperReason`]s (the reasons holding on a camera, or the
/// reasons a rule watches); iterates in the vocabulary's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TamperSet(u8);

impl TamperSet {
    /// No reason.
    pub const EMPTY: Self = Self(0);

    /// Every reason.
    pub fn all() -> Self {
        TamperReason::NAMED
            .iter()
            .fold(Self::EMPTY, |s, (_, r)| s.with(*r))
    }

    fn bit(r: TamperReason) -> u8 {
        1 << (r as u8)
    }

    /// This set and `r`.
    #[must_use]
    pub fn with(self, r: TamperReason) -> Self {
        Self(self.0 | Self::bit(r))
    }

    /// Whether `r` is in the set.
    pub fn contains(self, r: TamperReason) -> bool {
        self.0 & Self::bit(r) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The reasons in both sets.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The reasons, in the vocabulary's order.
    pub fn iter(self) -> impl Iterator<Item = TamperReason> {
        TamperReason::NAMED
            .iter()
            .map(|(_, r)| *r)
            .filter(move |r| self.contains(*r))
    }

    /// The first reason (the one an alarm names), if any.
    pub fn first(self) -> Option<TamperReason> {
        self.iter().next()
    }
}

impl FromIterator<TamperReason> for TamperSet {
    fn from_iter<I: IntoIterator<Item = TamperReason>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

/// A crossing that happened, with its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crossing {
    /// From side A to side B.
    AToB,
    /// From side B to side A.
    BToA,
}

impl Named for Crossing {
    const WHAT: &'static str = "crossing";
    const NAMED: &'static [(&'static str, Self)] =
        &[("a_to_b", Self::AToB), ("b_to_a", Self::BToA)];
}
crate::named_vocabulary!(Crossing);

/// Rule-kind specific facts of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlarmDetail {
    /// A person in a forbidden area.
    Intrusion,
    /// A person without the required protective equipment.
    MissingPpe,
    /// A person stayed too long; how long they had been inside.
    Dwell {
        /// Time inside when raised (`inside_ms`: whole milliseconds).
        #[serde(rename = "inside_ms", with = "crate::millis")]
        #[schemars(with = "u64")]
        inside: Duration,
    },
    /// Too many persons; how many were inside.
    Occupancy {
        /// Persons inside when raised.
        count: u32,
    },
    /// A person crossed the line this way.
    LineCrossing {
        /// The crossing's direction.
        crossing: Crossing,
    },
    /// The camera is unhealthy.
    CameraOffline {
        /// Its state when raised.
        health: CameraHealth,
    },
    /// The camera delivers frames but is frozen, covered, blinded, defocused
    /// or moved (the first reason holding when raised).
    CameraTamper {
        /// Why.
        reason: TamperReason,
    },
    /// The door contact is open.
    DoorOpen,
    /// A detector is down (its process crashed, hung or cannot load its
    /// model): the camera's frames are not analysed.
    DetectorFault,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_have_a_tagged_serde_form() {
        let cases = [
            (AlarmDetail::Intrusion, r#"{"kind":"intrusion"}"#),
            (AlarmDetail::MissingPpe, r#"{"kind":"missing_ppe"}"#),
            (
                AlarmDetail::Dwell {
                    inside: Duration::from_millis(12_500),
                },
                r#"{"kind":"dwell","inside_ms":12500}"#,
            ),
            (
                AlarmDetail::Occupancy { count: 3 },
                r#"{"kind":"occupancy","count":3}"#,
            ),
            (
                AlarmDetail::LineCrossing {
                    crossing: Crossing::BToA,
                },
                r#"{"kind":"line_crossing","crossing":"b_to_a"}"#,
            ),
            (
                AlarmDetail::CameraOffline {
                    health: CameraHealth::Tampered,
                },
                r#"{"kind":"camera_offline","health":"tampered"}"#,
            ),
            (
                AlarmDetail::CameraTamper {
                    reason: TamperReason::Moved,
                },
                r#"{"kind":"camera_tamper","reason":"moved"}"#,
            ),
            (AlarmDetail::DoorOpen, r#"{"kind":"door_open"}"#),
            (AlarmDetail::DetectorFault, r#"{"kind":"detector_fault"}"#),
        ];
        for (detail, json) in cases {
            assert_eq!(serde_json::to_string(&detail).unwrap(), json);
            assert_eq!(
                serde_json::from_str::<AlarmDetail>(json).unwrap(),
                detail,
                "{json}"
            );
        }
        assert!(serde_json::from_str::<AlarmDetail>(r#"{"kind":"fire"}"#).is_err());
        assert!(
            serde_json::from_str::<AlarmDetail>(r#"{"kind":"camera_offline","health":"sad"}"#)
                .is_err()
        );
        assert_eq!(CameraHealth::default(), CameraHealth::Ok);
    }

    #[test]
    fn tamper_sets_iterate_in_the_vocabulary_order() {
        let s: TamperSet = [TamperReason::Moved, TamperReason::Frozen]
            .into_iter()
            .collect();
        assert_eq!(s.first(), Some(TamperReason::Frozen));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [TamperReason::Frozen, TamperReason::Moved]
        );
        assert!(!s.contains(TamperReason::Covered));
        assert_eq!(TamperSet::all().iter().count(), TamperReason::NAMED.len());
        assert_eq!(
            TamperSet::all().intersection(s),
            s,
            "all() holds every reason"
        );
        assert!(TamperSet::EMPTY.is_empty() && TamperSet::EMPTY.first().is_none());
    }
}

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
}

//! Table definitions and schema versions.
//!
//! Schema history:
//! - **v1** (first field release): `meta`, `events` (flat state fields, no snapshot or
//!   details), `users`, `sessions`, `api_keys`, `settings`.
//! - **v2**: events carry a tagged life-cycle state, free-form `details`, a
//!   `snapshot` reference and `recorded_at`; new tables `open_events` (ids of events not yet
//!   cleared), `snapshots` (snapshot index: event id -> file size) and `audit`. The alarm
//!   dispatcher wrote `details` as `{"alarm_key": "<boot_ms>-<seq>", "detail": "<Rust Debug
//!   text of the alarm detail>"}` (e.g. `"Dwell { inside: 12.5s }"`); events migrated from v1
//!   had `null`.
//! - **v3**: `details` is typed ([`EventDetails`](crate::model::EventDetails)):
//!   `null`, or `{"alarm_key": {"boot_ms", "seq"}, "detail": {"kind": ..., ...}}` with the
//!   detail in the serde form of
//!   [`AlarmDetail`](safe_yolo_domain::alarm::AlarmDetail). The migration parses the v2 text
//!   (see [`v2`]); details it cannot read become `null`, logged with the event id and
//!   counted in the migration's audit row (the pre-migration copy keeps the original).
//!   Tables unchanged.
//! - **v4** (current): the integrations' outbox ([`crate::outbox`]): new tables `outbox`
//!   (entry seq -> entry), `outbox_routine` (seq of each non-critical entry, the ones the
//!   bound may drop) and `outbox_sinks` (sink name -> cursor), new `meta` keys
//!   `outbox_seq`, `outbox_dropped`, `outbox_drop_pending`, `outbox_drop_audit_at`. The
//!   migration creates the empty tables; records are unchanged.
//!
//! Keys are `u64` (redb orders them numerically) or `&str`; values are `serde_json` bytes.

use redb::TableDefinition;

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = 4;

/// Key/value metadata: schema version and sequences.
pub(crate) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
/// Events keyed by id.
pub(crate) const EVENTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("events");
/// Ids of events not cleared yet (v2).
pub(crate) const OPEN_EVENTS: TableDefinition<'static, u64, ()> =
    TableDefinition::new("open_events");
/// Snapshot index: event id -> file size in bytes (v2).
pub(crate) const SNAPSHOTS: TableDefinition<'static, u64, u64> = TableDefinition::new("snapshots");
/// Users keyed by user name.
pub(crate) const USERS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("users");
/// Sessions keyed by session id.
pub(crate) const SESSIONS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("sessions");
/// API keys keyed by key id.
pub(crate) const API_KEYS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("api_keys");
/// Settings documents keyed by `kind/id`.
pub(crate) const SETTINGS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("settings");
/// Audit log keyed by id (v2).
pub(crate) const AUDIT: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("audit");

/// The integrations' outbox: entry seq -> [`crate::outbox::OutboxEntry`] (v4).
pub(crate) const OUTBOX: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("outbox");
/// Seqs of the outbox entries the bound may drop (not about a critical event) (v4).
pub(crate) const OUTBOX_ROUTINE: TableDefinition<'static, u64, ()> =
    TableDefinition::new("outbox_routine");
/// Delivery cursors: sink name -> [`crate::outbox::SinkCursor`] (v4).
pub(crate) const OUTBOX_SINKS: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("outbox_sinks");

/// `meta` key of the schema version.
pub(crate) const KEY_SCHEMA: &str = "schema_version";
/// `meta` key of the last event id handed out.
pub(crate) const KEY_EVENT_SEQ: &str = "event_seq";
/// `meta` key of the last audit id handed out.
pub(crate) const KEY_AUDIT_SEQ: &str = "audit_seq";

/// `meta` key of the last outbox entry written (v4).
pub(crate) const KEY_OUTBOX_SEQ: &str = "outbox_seq";
/// `meta` key of the outbox entries dropped, ever (v4).
pub(crate) const KEY_OUTBOX_DROPPED: &str = "outbox_dropped";
/// `meta` key of the outbox drops not audited yet (v4).
pub(crate) const KEY_OUTBOX_DROP_PENDING: &str = "outbox_drop_pending";
/// `meta` key of the time of the last `outbox.drop` audit row (v4).
pub(crate) const KEY_OUTBOX_DROP_AUDIT_AT: &str = "outbox_drop_audit_at";

/// Settings key for `kind/id`.
pub(crate) fn setting_key(kind: crate::model::SettingKind, id: &str) -> String {
    format!("{}/{}", kind.as_str(), id)
}

/// The rows every schema fixture holds besides its events (tables unchanged since
/// v1): one admin, one session, one API key and one zone setting, stamped `t0`.
fn write_accounts(tx: &redb::WriteTransaction, t0: u64) -> Result<(), crate::error::StoreError> {
    use crate::error::DbContext;
    let day = t0 + 86_400_000;
    type Table = TableDefinition<'static, &'static str, &'static [u8]>;
    let rows: [(Table, &str, String); 4] = [
        (
            USERS,
            "admin",
            format!(
                r#"{{"username":"admin","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA","role":"admin","created_at":{t0},"disabled":false}}"#
            ),
        ),
        (
            SESSIONS,
            "s-1",
            format!(
                r#"{{"id":"s-1","username":"admin","created_at":{t0},"expires_at":{day},"revoked":false}}"#
            ),
        ),
        (
            API_KEYS,
            "k-1",
            format!(
                r#"{{"id":"k-1","key_hash":"sha256:00","role":"viewer","label":"vms","created_at":{t0},"expires_at":null,"revoked":false}}"#
            ),
        ),
        (
            SETTINGS,
            "zone/forklift-lane",
            format!(
                r#"{{"kind":"zone","id":"forklift-lane","version":3,"doc":{{"polygon":[[0.1,0.1],[0.9,0.1],[0.9,0.9]]}},"updated_at":{t0},"updated_by":"admin"}}"#
            ),
        ),
    ];
    for (table, key, json) in rows {
        tx.open_table(table)
            .db("open a fixture table")?
            .insert(key, json.as_bytes())
            .db("write a fixture row")?;
    }
    Ok(())
}

/// Commits a fixture and compacts the file so the committed fixture stays small.
fn finish_fixture(
    tx: redb::WriteTransaction,
    mut db: redb::Database,
) -> Result<(), crate::error::StoreError> {
    use crate::error::{DbContext, StoreError};
    tx.commit().db("commit a fixture")?;
    while db.compact().map_err(|e| StoreError::Db {
        op: "compact a fixture",
        source: Box::new(e.into()),
    })? {}
    Ok(())
}

/// Schema v1 record types and a fixture writer, kept so migrations can be tested forever.
pub mod v1 {
    use std::path::Path;

    use redb::Database;
    use serde::{Deserialize, Serialize};

    use super::{EVENTS, KEY_EVENT_SEQ, KEY_SCHEMA, META};
    use crate::error::{DbContext, StoreError};

    /// An event as schema v1 stored it: the state was three flat fields.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EventV1 {
        /// Id.
        pub id: u64,
        /// Camera slug.
        pub camera: String,
        /// Rule slug.
        pub rule: String,
        /// Zone slug.
        pub zone: Option<String>,
        /// Track id.
        pub track: Option<u64>,
        /// Kind.
        pub kind: String,
        /// `info`, `warning` or `critical`.
        pub severity: String,
        /// Start, Unix ms.
        pub started_at: u64,
        /// End, Unix ms.
        pub ended_at: Option<u64>,
        /// `active`, `acknowledged` or `cleared`.
        pub state: String,
        /// Who acknowledged.
        pub acked_by: Option<String>,
        /// When acknowledged.
        pub acked_at: Option<u64>,
        /// When cleared.
        pub cleared_at: Option<u64>,
        /// Message.
        pub message: String,
    }

    /// Writes the reference v1 fixture database to `path` (which must not exist).
    ///
    /// It holds 5 events (two active, one acknowledged, two cleared), one user, one
    /// session, one API key and one zone setting, with the event sequence at 7 (ids 2 and
    /// 5 were allocated and their events later removed), which the migration must preserve.
    pub fn write_fixture(path: &Path) -> Result<(), StoreError> {
        if path.exists() {
            return Err(StoreError::AlreadyExists {
                what: "fixture file",
                key: path.display().to_string(),
            });
        }
        let db = Database::create(path).db("create v1 fixture")?;
        let tx = db.begin_write().db("begin v1 fixture")?;
        {
            let mut meta = tx.open_table(META).db("open meta")?;
            meta.insert(KEY_SCHEMA, 1).db("write schema version")?;
            meta.insert(KEY_EVENT_SEQ, 7).db("write event seq")?;
            let mut events = tx.open_table(EVENTS).db("open events")?;
            // (id, state, acked_by, acked_at, cleared_at)
            type Row = (
                u64,
                &'static str,
                Option<&'static str>,
                Option<u64>,
                Option<u64>,
            );
            let states: [Row; 5] = [
                (
                    1,
                    "cleared",
                    Some("alice"),
                    Some(1_700_000_010_000),
                    Some(1_700_000_020_000),
                ),
                (3, "cleared", None, None, Some(1_700_000_320_000)),
                (
                    4,
                    "acknowledged",
                    Some("bob"),
                    Some(1_700_000_410_000),
                    None,
                ),
                (6, "active", None, None, None),
                (7, "active", None, None, None),
            ];
            for (id, state, by, at, cleared) in states {
                let e = EventV1 {
                    id,
                    camera: if id % 2 == 0 {
                        "dock".into()
                    } else {
                        "gate".into()
                    },
                    rule: "no-entry".into(),
                    zone: Some("forklift-lane".into()),
                    track: Some(id * 10),
                    kind: "intrusion".into(),
                    severity: if id == 7 {
                        "critical".into()
                    } else {
                        "warning".into()
                    },
                    started_at: 1_700_000_000_000 + id * 100_000,
                    ended_at: cleared,
                    state: state.into(),
                    acked_by: by.map(str::to_owned),
                    acked_at: at,
                    cleared_at: cleared,
                    message: format!("person in forklift lane (event {id})"),
                };
                let bytes = serde_json::to_vec(&e).map_err(|source| StoreError::Encode {
                    table: "events",
                    source,
                })?;
                events.insert(id, bytes.as_slice()).db("write v1 event")?;
            }
            super::write_accounts(&tx, 1_700_000_000_000)?;
        }
        super::finish_fixture(tx, db)
    }
}

/// Schema v2's alarm details (Rust Debug text) and a fixture writer.
pub mod v2 {
    use std::path::Path;
    use std::time::Duration;

    use redb::Database;
    use safe_yolo_domain::alarm::{AlarmDetail, CameraHealth, Crossing};
    use serde_json::{Value, json};

    use super::{
        AUDIT, EVENTS, KEY_AUDIT_SEQ, KEY_EVENT_SEQ, KEY_SCHEMA, META, OPEN_EVENTS, SNAPSHOTS,
    };
    use crate::error::{DbContext, StoreError};
    use crate::model::{AlarmKey, EventDetails};

    /// Reads the `details` a v2 event stored: `null`, or the dispatcher's
    /// `{"alarm_key": "<boot_ms>-<seq>", "detail": "<Debug text>"}`.
    ///
    /// `Ok(None)` for `null`; [`StoreError::Invalid`] with the reason for anything else it
    /// cannot read.
    pub fn parse_details(v: &Value) -> Result<Option<EventDetails>, StoreError> {
        if v.is_null() {
            return Ok(None);
        }
        let invalid = |reason: String| StoreError::Invalid {
            field: "details",
            reason,
        };
        let text = |field: &str| {
            v.get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("no {field} text in {v}")))
        };
        let alarm_key: AlarmKey = text("alarm_key")?.parse()?;
        let detail = text("detail")?;
        let detail = parse_detail(detail)
            .ok_or_else(|| invalid(format!("unknown alarm detail {detail:?}")))?;
        Ok(Some(EventDetails { alarm_key, detail }))
    }

    /// Parses the Debug text of an [`AlarmDetail`] as v2 stored it, e.g. `Intrusion`,
    /// `Dwell { inside: 12.5s }`, `Occupancy { count: 3 }`,
    /// `LineCrossing { crossing: AToB }`, `CameraOffline { health: Offline }`.
    pub fn parse_detail(s: &str) -> Option<AlarmDetail> {
        let s = s.trim();
        let (name, body) = match s.split_once('{') {
            Some((name, rest)) => (name.trim(), Some(rest.strip_suffix('}')?.trim())),
            None => (s, None),
        };
        let field = |want: &str| -> Option<&str> {
            let (k, v) = body?.split_once(':')?;
            (k.trim() == want).then_some(v.trim())
        };
        Some(match (name, body) {
            ("Intrusion", None) => AlarmDetail::Intrusion,
            ("MissingPpe", None) => AlarmDetail::MissingPpe,
            ("DoorOpen", None) => AlarmDetail::DoorOpen,
            ("Dwell", Some(_)) => AlarmDetail::Dwell {
                inside: parse_duration(field("inside")?)?,
            },
            ("Occupancy", Some(_)) => AlarmDetail::Occupancy {
                count: field("count")?.parse().ok()?,
            },
            ("LineCrossing", Some(_)) => AlarmDetail::LineCrossing {
                crossing: match field("crossing")? {
                    "AToB" => Crossing::AToB,
                    "BToA" => Crossing::BToA,
                    _ => return None,
                },
            },
            ("CameraOffline", Some(_)) => AlarmDetail::CameraOffline {
                health: match field("health")? {
                    "Ok" => CameraHealth::Ok,
                    "Offline" => CameraHealth::Offline,
                    "Tampered" => CameraHealth::Tampered,
                    _ => return None,
                },
            },
            _ => return None,
        })
    }

    /// Parses the Debug text of a [`Duration`]: a decimal number and one of `s`, `ms`,
    /// `µs`, `ns` (`12.5s`, `850ms`, `0ns`), exactly.
    pub fn parse_duration(s: &str) -> Option<Duration> {
        let (number, digits) = [("ns", 0u32), ("µs", 3), ("ms", 6), ("s", 9)]
            .into_iter()
            .find_map(|(unit, digits)| s.strip_suffix(unit).map(|n| (n, digits)))?;
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac.len() > digits as usize {
            return None;
        }
        let unit = 10u128.pow(digits);
        let frac_nanos = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().ok()? * 10u128.pow(digits - u32::try_from(frac.len()).ok()?)
        };
        let nanos = int.parse::<u128>().ok()?.checked_mul(unit)? + frac_nanos;
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
        Some(Duration::new(secs, sub))
    }

    /// The details of the v2 fixture's events, by id: what the dispatcher wrote (`None`
    /// for `null`) and what the migration must make of it (`None` for `null`).
    pub fn fixture_details() -> Vec<(u64, Value, Option<EventDetails>)> {
        let key = |seq| AlarmKey {
            boot_ms: 1_733_500_000_000,
            seq,
        };
        let alarm = |seq: u64, text: &str, detail: AlarmDetail| {
            (
                json!({"alarm_key": key(seq).to_string(), "detail": text}),
                Some(EventDetails {
                    alarm_key: key(seq),
                    detail,
                }),
            )
        };
        let rows = [
            alarm(0, "Intrusion", AlarmDetail::Intrusion),
            alarm(1, "MissingPpe", AlarmDetail::MissingPpe),
            alarm(
                2,
                "Dwell { inside: 12.5s }",
                AlarmDetail::Dwell {
                    inside: Duration::from_millis(12_500),
                },
            ),
            alarm(
                3,
                "Dwell { inside: 850ms }",
                AlarmDetail::Dwell {
                    inside: Duration::from_millis(850),
                },
            ),
            alarm(
                4,
                "Occupancy { count: 7 }",
                AlarmDetail::Occupancy { count: 7 },
            ),
            alarm(
                5,
                "LineCrossing { crossing: AToB }",
                AlarmDetail::LineCrossing {
                    crossing: Crossing::AToB,
                },
            ),
            alarm(
                6,
                "LineCrossing { crossing: BToA }",
                AlarmDetail::LineCrossing {
                    crossing: Crossing::BToA,
                },
            ),
            alarm(
                7,
                "CameraOffline { health: Offline }",
                AlarmDetail::CameraOffline {
                    health: CameraHealth::Offline,
                },
            ),
            alarm(
                8,
                "CameraOffline { health: Tampered }",
                AlarmDetail::CameraOffline {
                    health: CameraHealth::Tampered,
                },
            ),
            alarm(9, "DoorOpen", AlarmDetail::DoorOpen),
            // An event migrated from v1.
            (Value::Null, None),
            // Text no release wrote: unreadable, becomes null.
            (json!({"alarm_key": "bogus", "detail": "Fire"}), None),
        ];
        // Ids 1..=13 with 4 missing (removed by retention before the copy was taken).
        (1..=13)
            .filter(|id| *id != 4)
            .zip(rows)
            .map(|(id, (v2, v3))| (id, v2, v3))
            .collect()
    }

    /// Writes the reference v2 fixture database to `path` (which must not exist).
    ///
    /// It holds the 12 events of [`fixture_details`] (ids 1..=13 without 4, the sequence
    /// at 13) in every life-cycle state and with every snapshot status (one stored, its
    /// index row saying 2048 bytes), one user, one session, one API key, one zone setting
    /// and two audit rows (the audit sequence at 5: rows 1-3 were pruned).
    pub fn write_fixture(path: &Path) -> Result<(), StoreError> {
        if path.exists() {
            return Err(StoreError::AlreadyExists {
                what: "fixture file",
                key: path.display().to_string(),
            });
        }
        let encode = |table: &'static str, v: &Value| {
            serde_json::to_vec(v).map_err(|source| StoreError::Encode { table, source })
        };
        let db = Database::create(path).db("create v2 fixture")?;
        let tx = db.begin_write().db("begin v2 fixture")?;
        {
            let mut meta = tx.open_table(META).db("open meta")?;
            meta.insert(KEY_SCHEMA, 2).db("write schema version")?;
            meta.insert(KEY_EVENT_SEQ, 13).db("write event seq")?;
            meta.insert(KEY_AUDIT_SEQ, 5).db("write audit seq")?;
            let mut events = tx.open_table(EVENTS).db("open events")?;
            let mut open = tx.open_table(OPEN_EVENTS).db("open open_events")?;
            let mut snapshots = tx.open_table(SNAPSHOTS).db("open snapshots")?;
            for (id, details, _) in fixture_details() {
                let t = 1_733_500_000_000 + id * 60_000;
                let (state, ended_at) = match id % 3 {
                    0 => (json!({"state": "active"}), Value::Null),
                    1 => (
                        json!({"state": "acknowledged", "by": "bob", "at": t + 5_000}),
                        Value::Null,
                    ),
                    _ => (
                        json!({"state": "cleared", "at": t + 9_000, "by": "alice",
                               "acknowledged": {"by": "alice", "at": t + 8_000}}),
                        json!(t + 7_000),
                    ),
                };
                let snapshot = match id {
                    1 => json!({"status": "stored", "file": "00000000000000000001.jpg",
                                "bytes": 2048, "sha256": "ab".repeat(32), "written_at": t}),
                    2 => json!({"status": "pruned", "at": t + 86_400_000, "bytes": 4096,
                                "sha256": "cd".repeat(32)}),
                    3 => json!({"status": "refused", "reason": "disk_full"}),
                    _ => json!({"status": "none"}),
                };
                let mut e = json!({
                    "id": id,
                    "camera": if id % 2 == 0 { "dock" } else { "gate" },
                    "rule": "no-entry",
                    "zone": if id == 11 { Value::Null } else { json!("forklift-lane") },
                    "track": if id == 11 { Value::Null } else { json!(id * 10) },
                    "kind": "intrusion",
                    "severity": if id == 7 { "critical" } else { "warning" },
                    "started_at": t,
                    "ended_at": ended_at,
                    "message": format!("person in forklift lane (event {id})"),
                    "details": details,
                    "snapshot": snapshot,
                    "recorded_at": t + 3,
                });
                if let (Some(obj), Some(st)) = (e.as_object_mut(), state.as_object()) {
                    obj.extend(st.clone());
                }
                events
                    .insert(id, encode("events", &e)?.as_slice())
                    .db("write v2 event")?;
                if id % 3 != 2 {
                    open.insert(id, ()).db("write v2 open event")?;
                }
                if id == 1 {
                    snapshots.insert(id, 2048).db("write v2 snapshot index")?;
                }
            }
            let mut audit = tx.open_table(AUDIT).db("open audit")?;
            for (id, action) in [(4u64, "user.create"), (5, "event.acknowledge")] {
                let row = json!({"id": id, "at": 1_733_500_100_000u64 + id, "actor": "admin",
                    "role": "admin", "source": "10.0.0.2:50000", "action": action,
                    "target": format!("target-{id}"), "before": null, "after": "acknowledged",
                    "result": "ok"});
                audit
                    .insert(id, encode("audit", &row)?.as_slice())
                    .db("write v2 audit")?;
            }
            super::write_accounts(&tx, 1_733_500_000_000)?;
        }
        super::finish_fixture(tx, db)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_debug_form_of_an_alarm_detail_parses_back() {
            let durations = [
                Duration::ZERO,
                Duration::from_nanos(7),
                Duration::from_micros(1),
                Duration::from_nanos(1_500),
                Duration::from_millis(850),
                Duration::from_nanos(1_234_567),
                Duration::from_secs(90),
                Duration::from_millis(12_500),
                Duration::new(3_600, 1),
                Duration::new(u64::MAX, 999_999_999),
            ];
            let mut details = vec![
                AlarmDetail::Intrusion,
                AlarmDetail::MissingPpe,
                AlarmDetail::DoorOpen,
                AlarmDetail::Occupancy { count: 0 },
                AlarmDetail::Occupancy { count: u32::MAX },
            ];
            details.extend(durations.map(|inside| AlarmDetail::Dwell { inside }));
            details.extend(
                [Crossing::AToB, Crossing::BToA]
                    .map(|crossing| AlarmDetail::LineCrossing { crossing }),
            );
            details.extend(
                [
                    CameraHealth::Ok,
                    CameraHealth::Offline,
                    CameraHealth::Tampered,
                ]
                .map(|health| AlarmDetail::CameraOffline { health }),
            );
            for d in details {
                let text = format!("{d:?}");
                assert_eq!(parse_detail(&text), Some(d), "{text}");
            }
        }

        #[test]
        fn unreadable_texts_are_refused() {
            for bad in [
                "",
                "Fire",
                "Intrusion { }",
                "Dwell",
                "Dwell { inside: 12.5 }",
                "Dwell { inside: 1.0000000001s }",
                "Dwell { inside: -1s }",
                "Dwell { count: 3 }",
                "Occupancy { count: many }",
                "LineCrossing { crossing: Up }",
                "CameraOffline { health: Sad }",
                "Occupancy { count: 3",
            ] {
                assert_eq!(parse_detail(bad), None, "{bad:?}");
            }
            assert_eq!(parse_duration("s"), None);
            assert_eq!(parse_duration(".5s"), None);
        }

        #[test]
        fn details_parse_or_say_why_not() {
            for (id, v2, v3) in fixture_details() {
                match parse_details(&v2) {
                    Ok(d) => assert_eq!(d, v3, "event {id}"),
                    Err(why) => {
                        assert_eq!(v3, None, "event {id}: {why}");
                        assert!(why.to_string().contains("bogus"), "{why}");
                    }
                }
            }
            assert!(parse_details(&json!({})).is_err());
            assert!(parse_details(&json!({"alarm_key": "1-2"})).is_err());
            assert!(parse_details(&json!({"alarm_key": "1-2", "detail": "Fire"})).is_err());
        }
    }
}

/// Schema v3's fixture: the v2 fixture migrated by the v2 -> v3 step, as a v3 release
/// left it (no outbox tables).
pub mod v3 {
    use std::path::Path;

    use redb::{Database, ReadableTable};

    use super::{KEY_SCHEMA, META};
    use crate::error::{DbContext, StoreError};

    /// Writes the reference v3 fixture database to `path` (which must not exist): the v2
    /// fixture ([`super::v2::write_fixture`]) brought to v3 by that step alone.
    pub fn write_fixture(path: &Path) -> Result<(), StoreError> {
        super::v2::write_fixture(path)?;
        let db = Database::create(path).db("open v3 fixture")?;
        crate::migrate::v2_to_v3_fixture_step(&db)?;
        let tx = db.begin_write().db("begin v3 fixture")?;
        {
            let meta = tx.open_table(META).db("open meta")?;
            let v = meta
                .get(KEY_SCHEMA)
                .db("read schema version")?
                .map(|v| v.value());
            if v != Some(3) {
                return Err(StoreError::Invalid {
                    field: "schema_version",
                    reason: format!("the v3 fixture is at {v:?}"),
                });
            }
        }
        super::finish_fixture(tx, db)
    }
}

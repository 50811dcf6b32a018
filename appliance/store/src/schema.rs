//! Table definitions and schema versions.
//!
//! Schema history:
//! - **v1** (first field release): `meta`, `events` (flat state fields, no snapshot or
//!   details), `users`, `sessions`, `api_keys`, `settings`.
//! - **v2** (current): events carry a tagged life-cycle state, free-form `details`, a
//!   `snapshot` reference and `recorded_at`; new tables `open_events` (ids of events not yet
//!   cleared), `snapshots` (snapshot index: event id -> file size) and `audit`.
//!
//! Keys are `u64` (redb orders them numerically) or `&str`; values are `serde_json` bytes.

use redb::TableDefinition;

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = 2;

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

/// `meta` key of the schema version.
pub(crate) const KEY_SCHEMA: &str = "schema_version";
/// `meta` key of the last event id handed out.
pub(crate) const KEY_EVENT_SEQ: &str = "event_seq";
/// `meta` key of the last audit id handed out.
pub(crate) const KEY_AUDIT_SEQ: &str = "audit_seq";

/// Settings key for `kind/id`.
pub(crate) fn setting_key(kind: crate::model::SettingKind, id: &str) -> String {
    format!("{}/{}", kind.as_str(), id)
}

/// Schema v1 record types and a fixture writer, kept so migrations can be tested forever.
pub mod v1 {
    use std::path::Path;

    use redb::Database;
    use serde::{Deserialize, Serialize};

    use super::{API_KEYS, EVENTS, KEY_EVENT_SEQ, KEY_SCHEMA, META, SESSIONS, SETTINGS, USERS};
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
            let mut users = tx.open_table(USERS).db("open users")?;
            users
                .insert(
                    "admin",
                    br#"{"username":"admin","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA","role":"admin","created_at":1700000000000,"disabled":false}"#.as_slice(),
                )
                .db("write v1 user")?;
            let mut sessions = tx.open_table(SESSIONS).db("open sessions")?;
            sessions
                .insert(
                    "s-1",
                    br#"{"id":"s-1","username":"admin","created_at":1700000000000,"expires_at":1700086400000,"revoked":false}"#.as_slice(),
                )
                .db("write v1 session")?;
            let mut keys = tx.open_table(API_KEYS).db("open api keys")?;
            keys.insert(
                "k-1",
                br#"{"id":"k-1","key_hash":"sha256:00","role":"viewer","label":"vms","created_at":1700000000000,"expires_at":null,"revoked":false}"#.as_slice(),
            )
            .db("write v1 api key")?;
            let mut settings = tx.open_table(SETTINGS).db("open settings")?;
            settings
                .insert(
                    "zone/forklift-lane",
                    br#"{"kind":"zone","id":"forklift-lane","version":3,"doc":{"polygon":[[0.1,0.1],[0.9,0.1],[0.9,0.9]]},"updated_at":1700000000000,"updated_by":"admin"}"#.as_slice(),
                )
                .db("write v1 setting")?;
        }
        tx.commit().db("commit v1 fixture")?;
        let mut db = db;
        // Compaction shrinks the file so the committed fixture stays small.
        while db.compact().map_err(|e| StoreError::Db {
            op: "compact v1 fixture",
            source: Box::new(e.into()),
        })? {}
        Ok(())
    }
}

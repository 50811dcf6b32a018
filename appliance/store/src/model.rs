//! Records kept by the store: events, snapshots, users, sessions, API keys, settings, audit.
//!
//! Every record is serialized with `serde_json`; fields added later carry `#[serde(default)]`
//! so that older records still decode, and the schema migrations rewrite them explicitly.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use safe_yolo_domain::alarm::AlarmDetail;
use safe_yolo_domain::{CameraId, RuleId, ZoneId};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Milliseconds since the Unix epoch.
pub type UnixMs = u64;

/// How serious an event is (stored by its name: `info`, `warning`, `critical`).
pub use safe_yolo_domain::Severity;

/// Who acknowledged an event and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The user (or API key id) that acknowledged.
    pub by: String,
    /// When.
    pub at: UnixMs,
}

/// Life cycle of an event: active, then acknowledged, then cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum EventState {
    /// Raised and not yet acknowledged.
    Active,
    /// Seen by an operator but not cleared yet.
    Acknowledged {
        /// Who acknowledged it.
        by: String,
        /// When.
        at: UnixMs,
    },
    /// Closed. Only cleared events may be removed by retention.
    Cleared {
        /// When it was cleared.
        at: UnixMs,
        /// Who cleared it (`None` when the rule engine cleared it).
        by: Option<String>,
        /// The acknowledgement that preceded the clearing, if any.
        acknowledged: Option<Acknowledgement>,
    },
}

impl EventState {
    /// The state's name: `active`, `acknowledged` or `cleared`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Acknowledged { .. } => "acknowledged",
            Self::Cleared { .. } => "cleared",
        }
    }

    /// Whether retention must keep the event (it is not cleared yet).
    pub fn is_open(&self) -> bool {
        !matches!(self, Self::Cleared { .. })
    }
}

/// A state filter for event queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    /// Only active (unacknowledged) events.
    Active,
    /// Only acknowledged, not yet cleared events.
    Acknowledged,
    /// Only cleared events.
    Cleared,
    /// Active or acknowledged events (everything retention keeps).
    Open,
}

impl StateFilter {
    /// Whether `state` passes the filter.
    pub fn matches(self, state: &EventState) -> bool {
        match self {
            Self::Active => matches!(state, EventState::Active),
            Self::Acknowledged => matches!(state, EventState::Acknowledged { .. }),
            Self::Cleared => matches!(state, EventState::Cleared { .. }),
            Self::Open => state.is_open(),
        }
    }
}

/// A JPEG snapshot stored beside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// File name inside the snapshot directory, e.g. `00000000000000000042.jpg`.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex, so evidence can be verified.
    pub sha256: String,
    /// When the file was written.
    pub written_at: UnixMs,
}

/// Why an event has no snapshot file (any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotRefusal {
    /// The snapshot quota was used up.
    Quota,
    /// The disk is (nearly) full.
    DiskFull,
    /// Writing the file failed for another reason (logged).
    WriteFailed,
}

/// The snapshot attached to an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Snapshot {
    /// No snapshot was offered.
    #[default]
    None,
    /// The snapshot is on disk.
    Stored(SnapshotRef),
    /// A snapshot was offered but not written.
    Refused {
        /// Why.
        reason: SnapshotRefusal,
    },
    /// The snapshot was written and later removed by retention.
    Pruned {
        /// When it was removed.
        at: UnixMs,
        /// Its size, for the record.
        bytes: u64,
        /// Its hash, so an exported copy can still be verified.
        sha256: String,
    },
}

impl Snapshot {
    /// The stored file, if there is one.
    pub fn stored(&self) -> Option<&SnapshotRef> {
        match self {
            Self::Stored(r) => Some(r),
            _ => None,
        }
    }
}

/// Identity of one raised alarm: the boot it was raised in (the dispatcher's start, Unix ms)
/// and its sequence number within that boot.
///
/// The outputs know an alarm's actions by its display form, `<boot_ms>-<seq>`; the store
/// keeps it typed in [`EventDetails`], so acknowledging an event (even one from an earlier
/// boot) releases exactly the outputs its alarm commanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmKey {
    /// When the dispatcher that raised the alarm started, Unix ms.
    pub boot_ms: UnixMs,
    /// The alarm's number within that boot, from 0.
    pub seq: u64,
}

impl fmt::Display for AlarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.boot_ms, self.seq)
    }
}

impl FromStr for AlarmKey {
    type Err = StoreError;

    /// Parses the display form `<boot_ms>-<seq>` (schema v2 stored it as text).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::Invalid {
            field: "alarm_key",
            reason: format!("{s:?} is not <boot_ms>-<seq>"),
        };
        let (boot, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            boot_ms: boot.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// What the alarm behind an event was (typed since schema v3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDetails {
    /// The alarm's identity; the outputs' actions for it are released by it.
    pub alarm_key: AlarmKey,
    /// The rule kind's facts (dwell time, head count, crossing direction, ...).
    pub detail: AlarmDetail,
}

/// An event as submitted by the rules engine; the store assigns its id.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Camera that saw it.
    pub camera: CameraId,
    /// Rule that fired.
    pub rule: RuleId,
    /// Zone or line involved, if any.
    pub zone: Option<ZoneId>,
    /// Tracker id of the object involved, if any.
    pub track: Option<u64>,
    /// Short machine-readable kind, e.g. `intrusion`.
    pub kind: String,
    /// Severity.
    pub severity: Severity,
    /// When the condition started.
    pub started_at: UnixMs,
    /// When the condition ended, if it already has.
    pub ended_at: Option<UnixMs>,
    /// Human-readable message.
    pub message: String,
    /// The alarm behind the event, if an alarm raised it.
    pub details: Option<EventDetails>,
    /// A JPEG to keep as evidence, written beside the database.
    pub snapshot_jpeg: Option<Arc<[u8]>>,
    /// Record the event as already cleared (informational events that need no
    /// acknowledgement, e.g. line counts), so retention may remove it.
    pub cleared: bool,
}

impl NewEvent {
    /// The event as stored under `id`, committed at `recorded_at` with `snapshot`:
    /// active, or already cleared (at its end, else at the commit) when asked.
    pub fn to_event(&self, id: u64, snapshot: Snapshot, recorded_at: UnixMs) -> Event {
        let state = if self.cleared {
            EventState::Cleared {
                at: self.ended_at.unwrap_or(recorded_at),
                by: None,
                acknowledged: None,
            }
        } else {
            EventState::Active
        };
        Event {
            id,
            camera: self.camera.clone(),
            rule: self.rule.clone(),
            zone: self.zone.clone(),
            track: self.track,
            kind: self.kind.clone(),
            severity: self.severity,
            started_at: self.started_at,
            ended_at: self.ended_at,
            state,
            message: self.message.clone(),
            details: self.details,
            snapshot,
            recorded_at,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Strictly increasing id, never reused.
    pub id: u64,
    /// Camera that saw it.
    pub camera: CameraId,
    /// Rule that fired.
    pub rule: RuleId,
    /// Zone or line involved, if any.
    pub zone: Option<ZoneId>,
    /// Tracker id of the object involved, if any.
    pub track: Option<u64>,
    /// Short machine-readable kind, e.g. `intrusion`.
    pub kind: String,
    /// Severity.
    pub severity: Severity,
    /// When the condition started.
    pub started_at: UnixMs,
    /// When the condition ended, if it has.
    pub ended_at: Option<UnixMs>,
    /// Life-cycle state.
    #[serde(flatten)]
    pub state: EventState,
    /// Human-readable message.
    pub message: String,
    /// The alarm behind the event (free-form JSON in schema v2, typed since v3; `null` for
    /// events from schema v1 and events no alarm raised).
    #[serde(default)]
    pub details: Option<EventDetails>,
    /// The evidence snapshot (added in schema v2).
    #[serde(default)]
    pub snapshot: Snapshot,
    /// When the store committed the event (added in schema v2).
    #[serde(default)]
    pub recorded_at: UnixMs,
}

/// The life cycle's transitions, declared once: the store's transactions and in-memory
/// stand-ins (tests) apply them to an event they hold.
impl Event {
    /// Active -> acknowledged by `by` at `at`; any other state is a
    /// [`StoreError::BadTransition`].
    pub fn acknowledge(&mut self, by: &str, at: UnixMs) -> Result<(), StoreError> {
        match self.state {
            EventState::Active => {
                self.state = EventState::Acknowledged {
                    by: by.to_owned(),
                    at,
                };
                Ok(())
            }
            ref s => Err(StoreError::BadTransition {
                id: self.id,
                from: s.name(),
                to: "acknowledged",
            }),
        }
    }

    /// Active or acknowledged -> cleared (eligible for retention); sets `ended_at` if unset.
    pub fn clear(&mut self, by: Option<&str>, at: UnixMs) -> Result<(), StoreError> {
        let acknowledged = match &self.state {
            EventState::Active => None,
            EventState::Acknowledged { by, at } => Some(Acknowledgement {
                by: by.clone(),
                at: *at,
            }),
            s @ EventState::Cleared { .. } => {
                return Err(StoreError::BadTransition {
                    id: self.id,
                    from: s.name(),
                    to: "cleared",
                });
            }
        };
        self.state = EventState::Cleared {
            at,
            by: by.map(str::to_owned),
            acknowledged,
        };
        if self.ended_at.is_none() {
            self.ended_at = Some(at);
        }
        Ok(())
    }

    /// An operator (or the acknowledge button) acknowledges the alarm: acknowledged, and
    /// cleared at once by the same person if its condition has already ended.
    pub fn acknowledge_alarm(&mut self, by: &str, at: UnixMs) -> Result<(), StoreError> {
        self.acknowledge(by, at)?;
        if self.ended_at.is_some() {
            self.clear(Some(by), at)?;
        }
        Ok(())
    }

    /// The alarm's condition ended at `at`: recorded, and the event cleared if it was
    /// already acknowledged (an active one stays active until acknowledged).
    pub fn end_alarm(&mut self, at: UnixMs) -> Result<(), StoreError> {
        self.ended_at = Some(at);
        if matches!(self.state, EventState::Acknowledged { .. }) {
            self.clear(None, at)?;
        }
        Ok(())
    }
}

/// A change to an event's mutable fields (`ended_at`, `message`, `details`).
#[derive(Debug, Clone, Default)]
pub struct EventUpdate {
    /// New end time.
    pub ended_at: Option<UnixMs>,
    /// New message.
    pub message: Option<String>,
    /// New details.
    pub details: Option<EventDetails>,
}

/// Which events a query returns.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events that started at or after this time.
    pub from: Option<UnixMs>,
    /// Only events that started before this time.
    pub to: Option<UnixMs>,
    /// Only this camera.
    pub camera: Option<CameraId>,
    /// Only this rule.
    pub rule: Option<RuleId>,
    /// Only events in this state.
    pub state: Option<StateFilter>,
    /// Resume after this id (exclusive), in the query's order.
    pub cursor: Option<u64>,
    /// Oldest first instead of the default newest first.
    pub oldest_first: bool,
    /// Page size; 0 means the default of 100. At most 10 000.
    pub limit: usize,
}

impl EventQuery {
    /// Whether `e` passes the filters (cursor and limit aside).
    pub fn matches(&self, e: &Event) -> bool {
        self.from.is_none_or(|f| e.started_at >= f)
            && self.to.is_none_or(|t| e.started_at < t)
            && self.camera.as_ref().is_none_or(|c| &e.camera == c)
            && self.rule.as_ref().is_none_or(|r| &e.rule == r)
            && self.state.is_none_or(|s| s.matches(&e.state))
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// The events, in the query's order.
    pub events: Vec<Event>,
    /// Pass as `cursor` to get the next page; `None` when there are no more.
    pub next_cursor: Option<u64>,
    /// How many stored events the page looked at (its cost: the API charges
    /// the caller's rate limit for it).
    pub scanned: usize,
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users and settings.
    Admin,
    /// Acknowledge and clear events, view everything.
    Operator,
    /// Read only.
    Viewer,
}

/// A user account. The password hash is opaque to the store (argon2 PHC string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name, the key.
    pub username: String,
    /// PHC-format password hash.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// When the account was created.
    pub created_at: UnixMs,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
}

/// A login session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Opaque session id (or a hash of it), the key.
    pub id: String,
    /// The user it belongs to.
    pub username: String,
    /// When it was created.
    pub created_at: UnixMs,
    /// When it stops being valid.
    pub expires_at: UnixMs,
    /// Revoked sessions are invalid regardless of expiry.
    pub revoked: bool,
}

/// An API key. Only a hash of the secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public key id, the key.
    pub id: String,
    /// Hash of the secret part (opaque to the store).
    pub key_hash: String,
    /// Role granted.
    pub role: Role,
    /// Human label.
    pub label: String,
    /// When it was created.
    pub created_at: UnixMs,
    /// When it stops being valid, if ever.
    pub expires_at: Option<UnixMs>,
    /// Revoked keys are invalid.
    pub revoked: bool,
}

/// The kind of an API-edited settings document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettingKind {
    /// A camera definition.
    Camera,
    /// A zone (an area).
    Zone,
    /// A safety rule.
    Rule,
    /// A GPIO output.
    Output,
    /// A counting line (line-crossing rules refer to it by id, like a zone).
    Line,
    /// The integration settings (`[integrations]`: MQTT, webhooks, Modbus,
    /// interlocks): one document, id [`SettingKind::INTEGRATIONS_ID`].
    Integrations,
}

impl SettingKind {
    /// The kind's name, used as the key prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Camera => "camera",
            Self::Zone => "zone",
            Self::Rule => "rule",
            Self::Output => "output",
            Self::Line => "line",
            Self::Integrations => "integrations",
        }
    }

    /// The id of the one integration settings document.
    pub const INTEGRATIONS_ID: &str = "integrations";

    /// All kinds.
    pub const ALL: [SettingKind; 6] = [
        Self::Camera,
        Self::Zone,
        Self::Rule,
        Self::Output,
        Self::Line,
        Self::Integrations,
    ];
}

/// A versioned settings document edited through the API, layered over the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingDoc {
    /// The kind.
    pub kind: SettingKind,
    /// The object's id (a slug).
    pub id: String,
    /// Starts at 1 and grows by one on every change.
    pub version: u64,
    /// The document itself; the config crate validates it.
    pub doc: serde_json::Value,
    /// When it was last changed.
    pub updated_at: UnixMs,
    /// Who changed it.
    pub updated_by: String,
}

/// Outcome recorded in an audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "result", content = "reason", rename_all = "lowercase")]
pub enum AuditResult {
    /// The action took effect.
    Ok,
    /// The action was refused (authorization).
    Denied(String),
    /// The action was attempted and failed.
    Failed(String),
}

/// An audit row before the store gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// When.
    pub at: UnixMs,
    /// User name, API key id or `system`.
    pub actor: String,
    /// The actor's role, if authenticated.
    pub role: Option<Role>,
    /// Remote address, if the action came over the network.
    pub source: Option<String>,
    /// What was done, e.g. `settings.put`.
    pub action: String,
    /// What it was done to, e.g. `zone/dock-1`.
    pub target: String,
    /// Summary of the state before.
    pub before: Option<String>,
    /// Summary of the state after.
    pub after: Option<String>,
    /// Outcome.
    pub result: AuditResult,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Strictly increasing id.
    pub id: u64,
    /// When.
    pub at: UnixMs,
    /// User name, API key id or `system`.
    pub actor: String,
    /// The actor's role, if authenticated.
    pub role: Option<Role>,
    /// Remote address, if any.
    pub source: Option<String>,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Summary of the state before.
    pub before: Option<String>,
    /// Summary of the state after.
    pub after: Option<String>,
    /// Outcome.
    #[serde(flatten)]
    pub result: AuditResult,
}

/// The current time in Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_round_trips_with_flattened_state() {
        let e = Event {
            id: 7,
            camera: CameraId::new("gate").unwrap(),
            rule: RuleId::new("no-entry").unwrap(),
            zone: None,
            track: Some(3),
            kind: "intrusion".into(),
            severity: Severity::Warning,
            started_at: 1,
            ended_at: Some(2),
            state: EventState::Cleared {
                at: 3,
                by: Some("op".into()),
                acknowledged: Some(Acknowledgement {
                    by: "op".into(),
                    at: 2,
                }),
            },
            message: "m".into(),
            details: Some(EventDetails {
                alarm_key: AlarmKey {
                    boot_ms: 1_700_000_000_000,
                    seq: 4,
                },
                detail: AlarmDetail::Occupancy { count: 3 },
            }),
            snapshot: Snapshot::Pruned {
                at: 4,
                bytes: 10,
                sha256: "ab".into(),
            },
            recorded_at: 1,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["state"], "cleared");
        assert_eq!(json["snapshot"]["status"], "pruned");
        assert_eq!(
            json["details"],
            serde_json::json!({
                "alarm_key": {"boot_ms": 1_700_000_000_000u64, "seq": 4},
                "detail": {"kind": "occupancy", "count": 3},
            })
        );
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
    }

    fn active(id: u64) -> Event {
        Event {
            id,
            camera: CameraId::new("gate").unwrap(),
            rule: RuleId::new("no-entry").unwrap(),
            zone: None,
            track: None,
            kind: "intrusion".into(),
            severity: Severity::Critical,
            started_at: 1,
            ended_at: None,
            state: EventState::Active,
            message: "m".into(),
            details: None,
            snapshot: Snapshot::None,
            recorded_at: 1,
        }
    }

    #[test]
    fn the_alarm_life_cycle() {
        // Acknowledged first, then the condition ends: cleared by the end.
        let mut e = active(1);
        e.acknowledge_alarm("op", 10).unwrap();
        assert_eq!(
            e.state,
            EventState::Acknowledged {
                by: "op".into(),
                at: 10
            }
        );
        e.end_alarm(20).unwrap();
        assert_eq!(e.ended_at, Some(20));
        assert_eq!(
            e.state,
            EventState::Cleared {
                at: 20,
                by: None,
                acknowledged: Some(Acknowledgement {
                    by: "op".into(),
                    at: 10
                }),
            }
        );
        // Ended first (stays active), then acknowledged: cleared by the operator.
        let mut e = active(2);
        e.end_alarm(20).unwrap();
        assert_eq!(e.state, EventState::Active);
        e.acknowledge_alarm("op", 30).unwrap();
        assert_eq!(
            e.state,
            EventState::Cleared {
                at: 30,
                by: Some("op".into()),
                acknowledged: Some(Acknowledgement {
                    by: "op".into(),
                    at: 30
                }),
            }
        );
        assert_eq!(e.ended_at, Some(20));
        // Twice is a conflict, naming the event and the states.
        match e.acknowledge_alarm("op", 40) {
            Err(StoreError::BadTransition { id: 2, from, to }) => {
                assert_eq!((from, to), ("cleared", "acknowledged"));
            }
            other => panic!("expected a bad transition, got {other:?}"),
        }
        assert!(matches!(
            e.clear(None, 50),
            Err(StoreError::BadTransition { to: "cleared", .. })
        ));
        // Clearing an active event records when it ended.
        let mut e = active(3);
        e.clear(None, 60).unwrap();
        assert_eq!(e.ended_at, Some(60));
    }

    #[test]
    fn alarm_keys_print_and_parse_as_boot_dash_seq() {
        let k = AlarmKey {
            boot_ms: 1_733_500_000_123,
            seq: 17,
        };
        assert_eq!(k.to_string(), "1733500000123-17");
        assert_eq!("1733500000123-17".parse::<AlarmKey>().unwrap(), k);
        for bad in ["", "17", "a-1", "1-b", "1-2-3", "-1", "1-"] {
            assert!(bad.parse::<AlarmKey>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn audit_result_round_trips() {
        for result in [
            AuditResult::Ok,
            AuditResult::Denied("role".into()),
            AuditResult::Failed("io".into()),
        ] {
            let r = AuditRecord {
                id: 1,
                at: 2,
                actor: "a".into(),
                role: Some(Role::Admin),
                source: None,
                action: "x".into(),
                target: "y".into(),
                before: None,
                after: Some("z".into()),
                result,
            };
            let back: AuditRecord =
                serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn state_filters() {
        let acked = EventState::Acknowledged {
            by: "a".into(),
            at: 1,
        };
        assert!(StateFilter::Open.matches(&EventState::Active));
        assert!(StateFilter::Open.matches(&acked));
        assert!(!StateFilter::Active.matches(&acked));
        let cleared = EventState::Cleared {
            at: 1,
            by: None,
            acknowledged: None,
        };
        assert!(StateFilter::Cleared.matches(&cleared));
        assert!(!cleared.is_open());
    }
}

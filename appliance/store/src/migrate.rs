//! Opening a database: schema check, initialisation and forward migrations.
//!
//! Before any migration the file is copied aside (`<db>.pre-v<N>.from-v<M>.bak`, fsynced), so
//! a failed upgrade or a RAUC rollback to the previous image still has a readable file. Each
//! step runs in one write transaction: a failing step leaves the database as it was.

use std::fs;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::error::{DbContext, StoreError};
use crate::model::{Acknowledgement, AuditResult, Event, EventState, Severity, Snapshot};
use crate::schema::{
    API_KEYS, AUDIT, CURRENT_VERSION, EVENTS, KEY_AUDIT_SEQ, KEY_EVENT_SEQ, KEY_SCHEMA, META,
    OPEN_EVENTS, SESSIONS, SETTINGS, SNAPSHOTS, USERS, v1::EventV1,
};

/// What happened when the database was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The version found in the file (`None` for a new database).
    pub found_version: Option<u32>,
    /// The pre-migration copy, if a migration ran.
    pub backup: Option<PathBuf>,
}

/// Opens (or creates) the database at `path` and brings it to [`CURRENT_VERSION`].
pub(crate) fn open_database(
    path: &Path,
    cache_bytes: usize,
) -> Result<(Database, OpenReport), StoreError> {
    let open = || Database::builder().set_cache_size(cache_bytes).create(path);
    let db = open().db("open database")?;
    let found = read_version(&db, path)?;
    match found {
        None => {
            init_current(&db)?;
            Ok((
                db,
                OpenReport {
                    found_version: None,
                    backup: None,
                },
            ))
        }
        Some(v) if v == CURRENT_VERSION => Ok((
            db,
            OpenReport {
                found_version: Some(v),
                backup: None,
            },
        )),
        Some(v) if v > CURRENT_VERSION => Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: v,
            supported: CURRENT_VERSION,
        }),
        Some(v) => {
            // Release the file so the copy is of a closed, consistent database.
            drop(db);
            let backup = backup_path(path, v);
            copy_durably(path, &backup)?;
            tracing::info!(
                from = v,
                to = CURRENT_VERSION,
                backup = %backup.display(),
                "migrating store schema"
            );
            let db = open().db("reopen database for migration")?;
            for from in v..CURRENT_VERSION {
                migrate_step(&db, from).map_err(|e| StoreError::Migration {
                    path: path.to_path_buf(),
                    from,
                    to: from + 1,
                    backup: backup.clone(),
                    source: Box::new(e),
                })?;
            }
            Ok((
                db,
                OpenReport {
                    found_version: Some(v),
                    backup: Some(backup),
                },
            ))
        }
    }
}

/// Where the pre-migration copy of `path` at version `from` goes.
pub(crate) fn backup_path(path: &Path, from: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store.redb".to_owned());
    path.with_file_name(format!("{name}.pre-v{CURRENT_VERSION}.from-v{from}.bak"))
}

/// Copies `from` to `to` through a temporary file, fsyncing the file and its directory.
pub(crate) fn copy_durably(from: &Path, to: &Path) -> Result<(), StoreError> {
    let tmp = to.with_extension("tmp");
    fs::copy(from, &tmp).map_err(|e| StoreError::io("copy", from, e))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("fsync", &tmp, e))?;
    fs::rename(&tmp, to).map_err(|e| StoreError::io("rename", to, e))?;
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Reads the schema version; `None` means an empty (new) database.
fn read_version(db: &Database, path: &Path) -> Result<Option<u32>, StoreError> {
    let tx = db.begin_read().db("begin read")?;
    let has_tables = tx.list_tables().db("list tables")?.next().is_some();
    let meta = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return if has_tables {
                Err(StoreError::NotAStore {
                    path: path.to_path_buf(),
                })
            } else {
                Ok(None)
            };
        }
        Err(e) => return Err(e).db("open meta"),
    };
    let Some(v) = meta.get(KEY_SCHEMA).db("read schema version")? else {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
        });
    };
    let v = u32::try_from(v.value()).map_err(|_| StoreError::NotAStore {
        path: path.to_path_buf(),
    })?;
    Ok(Some(v))
}

/// Creates every current table and the metadata of a fresh database.
fn init_current(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write().db("begin init")?;
    create_current_tables(&tx)?;
    {
        let mut meta = tx.open_table(META).db("open meta")?;
        meta.insert(KEY_SCHEMA, u64::from(CURRENT_VERSION))
            .db("write schema version")?;
        meta.insert(KEY_EVENT_SEQ, 0).db("write event seq")?;
        meta.insert(KEY_AUDIT_SEQ, 0).db("write audit seq")?;
    }
    tx.commit().db("commit init")?;
    Ok(())
}

/// Opens (and so creates) every table of the current schema.
pub(crate) fn create_current_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(META).db("create meta")?;
    tx.open_table(EVENTS).db("create events")?;
    tx.open_table(OPEN_EVENTS).db("create open_events")?;
    tx.open_table(SNAPSHOTS).db("create snapshots")?;
    tx.open_table(USERS).db("create users")?;
    tx.open_table(SESSIONS).db("create sessions")?;
    tx.open_table(API_KEYS).db("create api_keys")?;
    tx.open_table(SETTINGS).db("create settings")?;
    tx.open_table(AUDIT).db("create audit")?;
    Ok(())
}

/// Runs the migration from `from` to `from + 1` in one transaction.
fn migrate_step(db: &Database, from: u32) -> Result<(), StoreError> {
    let tx = db.begin_write().db("begin migration")?;
    match from {
        1 => v1_to_v2(&tx)?,
        2 => v2_to_v3(&tx)?,
        other => {
            return Err(StoreError::Invalid {
                field: "schema_version",
                reason: format!("no migration from v{other}"),
            });
        }
    }
    {
        let mut meta = tx.open_table(META).db("open meta")?;
        meta.insert(KEY_SCHEMA, u64::from(from + 1))
            .db("write schema version")?;
    }
    tx.commit().db("commit migration")?;
    tracing::info!(from, to = from + 1, "store schema migrated");
    Ok(())
}

/// v1 -> v2: rewrite events into the tagged format, build `open_events`, create the
/// snapshot index and the audit log, and record the migration in the audit log.
fn v1_to_v2(tx: &WriteTransaction) -> Result<(), StoreError> {
    create_current_tables(tx)?;
    let mut rewritten = 0u64;
    {
        let mut events = tx.open_table(EVENTS).db("open events")?;
        let mut open = tx.open_table(OPEN_EVENTS).db("open open_events")?;
        let mut old = Vec::new();
        for row in events.iter().db("scan v1 events")? {
            let (k, v) = row.db("read v1 event")?;
            let e: EventV1 =
                serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                    table: "events",
                    key: k.value().to_string(),
                    source,
                })?;
            old.push(e);
        }
        for e in old {
            let new = upgrade_event(e)?;
            if new.state.is_open() {
                open.insert(new.id, ()).db("write open event")?;
            }
            let bytes = serde_json::to_vec(&new).map_err(|source| StoreError::Encode {
                table: "events",
                source,
            })?;
            events
                .insert(new.id, bytes.as_slice())
                .db("write v2 event")?;
            rewritten += 1;
        }
    }
    audit_migration(tx, "v1", format!("v2 ({rewritten} events rewritten)"))
}

/// v2 -> v3: the events' `details` become typed ([`crate::model::EventDetails`]): the v2
/// dispatcher's Debug text is parsed ([`crate::schema::v2::parse_details`]); what cannot be
/// read becomes `null` (logged with the event id and the original text, counted in the
/// audit row; the pre-migration copy keeps it). Every other field is kept as it was.
fn v2_to_v3(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut typed = 0u64;
    let mut unreadable = Vec::new();
    {
        let mut events = tx.open_table(EVENTS).db("open events")?;
        let mut old = Vec::new();
        for row in events.iter().db("scan v2 events")? {
            let (k, v) = row.db("read v2 event")?;
            let decode = |source| StoreError::Decode {
                table: "events",
                key: k.value().to_string(),
                source,
            };
            let e: serde_json::Value = serde_json::from_slice(v.value()).map_err(decode)?;
            old.push((k.value(), e));
        }
        for (id, mut e) in old {
            let v2 = e.get("details").cloned().unwrap_or(serde_json::Value::Null);
            let details = match crate::schema::v2::parse_details(&v2) {
                Ok(d) => d,
                Err(reason) => {
                    tracing::warn!(event_id = id, details = %v2, reason = %reason, "unreadable v2 event details dropped");
                    unreadable.push(id);
                    None
                }
            };
            typed += u64::from(details.is_some());
            if let Some(obj) = e.as_object_mut() {
                let v3 = serde_json::to_value(details).map_err(|source| StoreError::Encode {
                    table: "events",
                    source,
                })?;
                obj.insert("details".into(), v3);
            }
            let new: Event = serde_json::from_value(e).map_err(|source| StoreError::Decode {
                table: "events",
                key: id.to_string(),
                source,
            })?;
            let bytes = serde_json::to_vec(&new).map_err(|source| StoreError::Encode {
                table: "events",
                source,
            })?;
            events.insert(id, bytes.as_slice()).db("write v3 event")?;
        }
    }
    let mut after = format!("v3 ({typed} event details typed");
    if !unreadable.is_empty() {
        let ids: Vec<String> = unreadable.iter().map(u64::to_string).collect();
        after.push_str(&format!(", unreadable dropped: events {}", ids.join(" ")));
    }
    after.push(')');
    audit_migration(tx, "v2", after)
}

/// Appends the `store.migrate` audit row of one migration step.
fn audit_migration(tx: &WriteTransaction, before: &str, after: String) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META).db("open meta")?;
    let audit_seq = meta
        .get(KEY_AUDIT_SEQ)
        .db("read audit seq")?
        .map_or(0, |v| v.value())
        + 1;
    meta.insert(KEY_AUDIT_SEQ, audit_seq)
        .db("write audit seq")?;
    let row = crate::model::AuditRecord {
        id: audit_seq,
        at: crate::model::now_ms(),
        actor: "system".into(),
        role: None,
        source: None,
        action: "store.migrate".into(),
        target: "schema".into(),
        before: Some(before.into()),
        after: Some(after),
        result: AuditResult::Ok,
    };
    let bytes = serde_json::to_vec(&row).map_err(|source| StoreError::Encode {
        table: "audit",
        source,
    })?;
    let mut audit = tx.open_table(AUDIT).db("open audit")?;
    audit
        .insert(audit_seq, bytes.as_slice())
        .db("write audit")?;
    Ok(())
}

/// Converts one v1 event into the v2 record.
fn upgrade_event(e: EventV1) -> Result<Event, StoreError> {
    let bad = |field: &'static str, reason: String| StoreError::Invalid { field, reason };
    let severity =
        <Severity as safe_yolo_domain::Named>::from_name(&e.severity).ok_or_else(|| {
            bad(
                "severity",
                format!("event {}: unknown {:?}", e.id, e.severity),
            )
        })?;
    let ack = match (e.acked_by, e.acked_at) {
        (Some(by), Some(at)) => Some(Acknowledgement { by, at }),
        _ => None,
    };
    let state = match e.state.as_str() {
        "active" => EventState::Active,
        "acknowledged" => {
            let a = ack.ok_or_else(|| {
                bad(
                    "state",
                    format!("event {}: acknowledged without acked_by/acked_at", e.id),
                )
            })?;
            EventState::Acknowledged { by: a.by, at: a.at }
        }
        "cleared" => EventState::Cleared {
            at: e.cleared_at.or(e.ended_at).unwrap_or(e.started_at),
            by: None,
            acknowledged: ack,
        },
        other => return Err(bad("state", format!("event {}: unknown {other:?}", e.id))),
    };
    let id_err = |field: &'static str, err: safe_yolo_domain::IdError| {
        bad(field, format!("event {}: {err}", e.id))
    };
    Ok(Event {
        id: e.id,
        camera: safe_yolo_domain::CameraId::new(e.camera).map_err(|err| id_err("camera", err))?,
        rule: safe_yolo_domain::RuleId::new(e.rule).map_err(|err| id_err("rule", err))?,
        zone: e
            .zone
            .map(safe_yolo_domain::ZoneId::new)
            .transpose()
            .map_err(|err| id_err("zone", err))?,
        track: e.track,
        kind: e.kind,
        severity,
        started_at: e.started_at,
        ended_at: e.ended_at,
        state,
        message: e.message,
        details: None,
        snapshot: Snapshot::None,
        recorded_at: e.started_at,
    })
}

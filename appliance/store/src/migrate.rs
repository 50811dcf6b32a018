//! Opening a database: schema check, initialisation and forward migrations.
//!
//! Before any migration the file is copied aside (`<db>.pre-v<N>.from-v<M>.bak`, fsynced), so
//! a failed upgrade or a RAUC rollback to the previous image still has a readable file. Each
//! step runs in one write transaction: a failing step leaves the database as it was.
//!
//! A database of a newer schema (the firmware was rolled back after an update migrated it)
//! is moved aside unchanged and that copy restored ([`open_database`], [`Rollback`]). This
//! code must be in the firmware that is rolled back *to*: a release without it refuses a
//! newer database (the v3 releases before this one did: see the store's README).

use std::fs;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::error::{DbContext, StoreError};
use crate::model::{Acknowledgement, AuditResult, Event, EventState, Severity, Snapshot};
use crate::schema::{
    API_KEYS, AUDIT, EVENTS, KEY_AUDIT_SEQ, KEY_EVENT_SEQ, KEY_SCHEMA, META, OPEN_EVENTS, OUTBOX,
    OUTBOX_ROUTINE, OUTBOX_SINKS, SESSIONS, SETTINGS, SNAPSHOTS, USERS, v1::EventV1,
};

/// What happened when the database was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The version found in the file (`None` for a new database). After a rollback, the
    /// version of the database that was then opened (the restored copy's, or `None`).
    pub found_version: Option<u32>,
    /// The pre-migration copy, if a migration ran.
    pub backup: Option<PathBuf>,
    /// The database was written by a newer release (the firmware was rolled back): what
    /// was set aside and restored.
    pub rollback: Option<Rollback>,
    /// Databases an earlier rollback set aside (`<db>.newer-v<N>-<ms>`), still kept beside
    /// this one: evidence the operator may want back (see the store's README).
    pub set_aside: Vec<PathBuf>,
}

/// What opening did with a database written by a newer release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The newer database's schema version.
    pub newer_version: u32,
    /// Where the newer database now is (`<db>.newer-v<N>-<ms>`): moved, never changed.
    pub set_aside: PathBuf,
    /// The pre-migration copy restored in its place, if one at a readable version existed
    /// (else the store starts empty).
    pub restored_from: Option<PathBuf>,
    /// The events the newer database holds beyond the restored copy.
    pub newer_events: NewerEvents,
    /// Where the snapshot files of those events were moved (`snapshots.newer-v<N>-<ms>`),
    /// if there were any.
    pub snapshots_set_aside: Option<PathBuf>,
}

/// The events recorded in a set-aside newer database since the restored copy was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewerEvents {
    /// How many.
    pub count: u64,
    /// Their ids, oldest first.
    pub ids: Vec<u64>,
    /// `started_at` of the oldest, if readable.
    pub first_at: Option<u64>,
    /// `started_at` of the newest, if readable.
    pub last_at: Option<u64>,
    /// The newer database's last event id (the restored store continues after it, so no
    /// id is ever used twice).
    pub newer_event_seq: u64,
    /// Why the newer database could not be read, if it could not (then the counts are 0).
    pub unreadable: Option<String>,
}

/// Opens (or creates) the database at `path` and brings it to `reader`, the schema version
/// of the firmware running ([`crate::CURRENT_VERSION`]; tests pass an earlier one to play an
/// older firmware's reader honestly).
///
/// A database of a newer version (the firmware was rolled back after an update migrated
/// it) is never refused and never changed: it is moved aside as `<db>.newer-v<N>-<ms>`,
/// the newest pre-migration copy at a version `reader` reads is restored in its place (or
/// the store starts empty when there is none), and the restored store's event sequence
/// continues after the newer one's, recorded with a `store.rollback` audit row.
pub(crate) fn open_database(
    path: &Path,
    cache_bytes: usize,
    reader: u32,
) -> Result<(Database, OpenReport), StoreError> {
    let open = || Database::builder().set_cache_size(cache_bytes).create(path);
    // Looked at read-only first: opening for writing rewrites the header, and a newer
    // database is to be kept exactly as it was.
    let newer = peek_version(path).filter(|v| *v > reader);
    let mut db = match newer {
        Some(_) => None,
        None => Some(open().db("open database")?),
    };
    let mut found = match &db {
        Some(db) => read_version(db, path)?,
        None => newer,
    };
    let mut rollback = None;
    if let Some(v) = found.filter(|v| *v > reader) {
        drop(db.take());
        let rb = roll_back(path, v, reader)?;
        let restored = open().db("open restored database")?;
        found = read_version(&restored, path)?;
        db = Some(restored);
        if let Some(v) = found.filter(|v| *v > reader) {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: v,
                supported: reader,
            });
        }
        rollback = Some(rb);
    }
    let Some(mut db) = db else {
        return Err(StoreError::Invalid {
            field: "schema_version",
            reason: "database neither opened nor rolled back".into(),
        });
    };
    let mut backup = None;
    match found {
        None => init_current(&db, reader)?,
        Some(v) if v == reader => {}
        Some(v) => {
            // Release the file so the copy is of a closed, consistent database.
            drop(db);
            let copy = backup_path(path, reader, v);
            copy_durably(path, &copy)?;
            tracing::info!(
                from = v,
                to = reader,
                backup = %copy.display(),
                "migrating store schema"
            );
            db = open().db("reopen database for migration")?;
            for from in v..reader {
                migrate_step(&db, from).map_err(|e| StoreError::Migration {
                    path: path.to_path_buf(),
                    from,
                    to: from + 1,
                    backup: copy.clone(),
                    source: Box::new(e),
                })?;
            }
            backup = Some(copy);
        }
    }
    if let Some(rb) = &rollback {
        record_rollback(&db, rb)?;
    }
    let set_aside = set_aside_databases(path)?;
    if !set_aside.is_empty() {
        tracing::warn!(
            files = ?set_aside,
            "databases set aside by a firmware rollback are kept beside the store; their events are not in it (see the store's README to merge them back)"
        );
    }
    Ok((
        db,
        OpenReport {
            found_version: found,
            backup,
            rollback,
            set_aside,
        },
    ))
}

/// Moves the newer database at `path` aside and restores the newest pre-migration copy
/// `reader` can read, if any. Nothing is deleted or overwritten.
fn roll_back(path: &Path, newer: u32, reader: u32) -> Result<Rollback, StoreError> {
    let aside = unused_path(&sibling(
        path,
        &format!("newer-v{newer}-{}", crate::model::now_ms()),
    ));
    fs::rename(path, &aside).map_err(|e| StoreError::io("set aside newer database", path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    let copy = pre_migration_copy(path, reader)?;
    let copy_seq = match &copy {
        Some(c) => {
            copy_durably(c, path)?;
            read_event_seq(c).unwrap_or(0)
        }
        None => 0,
    };
    let newer_events = newer_events(&aside, copy_seq);
    tracing::error!(
        newer_version = newer,
        reader,
        set_aside = %aside.display(),
        restored_from = ?copy,
        newer_events = newer_events.count,
        first_id = ?newer_events.ids.first(),
        last_id = ?newer_events.ids.last(),
        // Every id while the list is short; the range says the rest.
        newer_event_ids = ?(newer_events.ids.len() <= 50).then_some(&newer_events.ids),
        first_at = ?newer_events.first_at,
        last_at = ?newer_events.last_at,
        unreadable = ?newer_events.unreadable,
        "STORE ROLLED BACK: the database was written by a newer firmware; it is kept aside \
         unchanged and the copy taken before its migration is in use (the events listed are \
         only in the set-aside file)"
    );
    Ok(Rollback {
        newer_version: newer,
        set_aside: aside,
        restored_from: copy,
        newer_events,
        snapshots_set_aside: None,
    })
}

/// `<db>.<suffix>` beside `path`.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store.redb".to_owned());
    path.with_file_name(format!("{name}.{suffix}"))
}

/// `path`, or `path-1`, `path-2`, ... whichever does not exist yet: never overwrite.
pub(crate) fn unused_path(path: &Path) -> PathBuf {
    let mut candidate = path.to_path_buf();
    let mut n = 0u32;
    while candidate.symlink_metadata().is_ok() {
        n += 1;
        candidate = PathBuf::from(format!("{}-{n}", path.display()));
    }
    candidate
}

/// The newest pre-migration copy of `path` (`<db>.pre-v<N>.from-v<M>.bak`) with `M <=
/// reader`: the highest `M`, then the highest `N`.
fn pre_migration_copy(path: &Path, reader: u32) -> Result<Option<PathBuf>, StoreError> {
    let Some(dir) = path.parent() else {
        return Ok(None);
    };
    let prefix = sibling(path, "pre-v")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut best: Option<((u32, u32), PathBuf)> = None;
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read directory", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".bak"))
        else {
            continue;
        };
        let Some((to, from)) = rest.split_once(".from-v") else {
            continue;
        };
        let (Ok(to), Ok(from)) = (to.parse::<u32>(), from.parse::<u32>()) else {
            continue;
        };
        if from <= reader && best.as_ref().is_none_or(|(k, _)| (from, to) > *k) {
            best = Some(((from, to), entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// Databases earlier rollbacks set aside beside `path`, sorted.
fn set_aside_databases(path: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let Some(dir) = path.parent() else {
        return Ok(Vec::new());
    };
    let prefix = sibling(path, "newer-v")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("read directory", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read directory", dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The schema version of an existing database, read without changing the file; `None`
/// when there is no file or it cannot be read that way (the normal open then decides).
fn peek_version(path: &Path) -> Option<u32> {
    if !path.is_file() {
        return None;
    }
    let db = redb::ReadOnlyDatabase::open(path).ok()?;
    let tx = db.begin_read().ok()?;
    let meta = tx.open_table(META).ok()?;
    let v = meta.get(KEY_SCHEMA).ok()??.value();
    u32::try_from(v).ok()
}

/// The last event id handed out in the database at `path`, read without changing it.
fn read_event_seq(path: &Path) -> Result<u64, StoreError> {
    let db = redb::ReadOnlyDatabase::open(path).db("open database read-only")?;
    let tx = db.begin_read().db("begin read")?;
    let meta = tx.open_table(META).db("open meta")?;
    Ok(meta
        .get(KEY_EVENT_SEQ)
        .db("read event seq")?
        .map_or(0, |v| v.value()))
}

/// The events of the (newer) database at `path` with ids above `after`. Only the tables'
/// keys and the JSON field `started_at` are read, which every schema so far has; a file
/// this reader cannot read at all is reported, not an error.
fn newer_events(path: &Path, after: u64) -> NewerEvents {
    let read = || -> Result<NewerEvents, StoreError> {
        let db = redb::ReadOnlyDatabase::open(path).db("open newer database read-only")?;
        let tx = db.begin_read().db("begin read")?;
        let meta = tx.open_table(META).db("open meta")?;
        let seq = meta
            .get(KEY_EVENT_SEQ)
            .db("read event seq")?
            .map_or(0, |v| v.value());
        let events = tx.open_table(EVENTS).db("open events")?;
        let mut out = NewerEvents {
            newer_event_seq: seq,
            ..NewerEvents::default()
        };
        for row in events
            .range(after.saturating_add(1)..)
            .db("scan newer events")?
        {
            let (k, v) = row.db("read newer event")?;
            let at = serde_json::from_slice::<serde_json::Value>(v.value())
                .ok()
                .and_then(|e| e.get("started_at").and_then(serde_json::Value::as_u64));
            out.count += 1;
            out.ids.push(k.value());
            if out.first_at.is_none() {
                out.first_at = at;
            }
            out.last_at = at.or(out.last_at);
        }
        Ok(out)
    };
    read().unwrap_or_else(|e| NewerEvents {
        unreadable: Some(safe_yolo_domain::error_chain(&e).to_string()),
        ..NewerEvents::default()
    })
}

/// After a rollback: the restored store's event sequence continues after the newer
/// database's (no id is used twice across the two files), and a `store.rollback` audit
/// row says what happened, in one transaction.
fn record_rollback(db: &Database, rb: &Rollback) -> Result<(), StoreError> {
    let tx = db.begin_write().db("begin rollback record")?;
    {
        let mut meta = tx.open_table(META).db("open meta")?;
        let seq = meta
            .get(KEY_EVENT_SEQ)
            .db("read event seq")?
            .map_or(0, |v| v.value());
        if rb.newer_events.newer_event_seq > seq {
            meta.insert(KEY_EVENT_SEQ, rb.newer_events.newer_event_seq)
                .db("write event seq")?;
        }
    }
    let n = &rb.newer_events;
    let mut after = match &rb.restored_from {
        Some(c) => format!("restored {}", c.display()),
        None => "no pre-migration copy: started empty".to_owned(),
    };
    after.push_str(&format!(
        "; {} newer event(s) kept only in {}",
        n.count,
        rb.set_aside.display()
    ));
    if let (Some(first), Some(last)) = (n.ids.first(), n.ids.last()) {
        after.push_str(&format!(" (ids {first}..={last}"));
        if let (Some(a), Some(b)) = (n.first_at, n.last_at) {
            after.push_str(&format!(", started {a}..={b} ms"));
        }
        after.push(')');
    }
    if let Some(why) = &n.unreadable {
        after.push_str(&format!("; newer file unreadable: {why}"));
    }
    audit_system(
        &tx,
        "store.rollback",
        format!("v{}", rb.newer_version),
        after,
    )?;
    tx.commit().db("commit rollback record")?;
    Ok(())
}

/// Where the pre-migration copy of `path` at version `from`, migrated to `to`, goes.
pub(crate) fn backup_path(path: &Path, to: u32, from: u32) -> PathBuf {
    sibling(path, &format!("pre-v{to}.from-v{from}.bak"))
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

/// Creates every current table and the metadata of a fresh database of `version`.
fn init_current(db: &Database, version: u32) -> Result<(), StoreError> {
    let tx = db.begin_write().db("begin init")?;
    create_current_tables(&tx)?;
    {
        let mut meta = tx.open_table(META).db("open meta")?;
        meta.insert(KEY_SCHEMA, u64::from(version))
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
    tx.open_table(OUTBOX).db("create outbox")?;
    tx.open_table(OUTBOX_ROUTINE).db("create outbox_routine")?;
    tx.open_table(OUTBOX_SINKS).db("create outbox_sinks")?;
    Ok(())
}

/// Runs the migration from `from` to `from + 1` in one transaction.
fn migrate_step(db: &Database, from: u32) -> Result<(), StoreError> {
    let tx = db.begin_write().db("begin migration")?;
    match from {
        1 => v1_to_v2(&tx)?,
        2 => v2_to_v3(&tx)?,
        3 => v3_to_v4(&tx)?,
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

/// The v2 -> v3 step alone, for the v3 fixture writer ([`crate::schema::v3`]).
pub(crate) fn v2_to_v3_fixture_step(db: &Database) -> Result<(), StoreError> {
    migrate_step(db, 2)
}

/// v3 -> v4: the integrations' outbox tables, empty (no sink is registered yet, so no
/// earlier record waits for delivery).
fn v3_to_v4(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(OUTBOX).db("create outbox")?;
    tx.open_table(OUTBOX_ROUTINE).db("create outbox_routine")?;
    tx.open_table(OUTBOX_SINKS).db("create outbox_sinks")?;
    audit_migration(tx, "v3", "v4 (integration outbox created)".to_owned())
}

/// Appends the `store.migrate` audit row of one migration step.
fn audit_migration(tx: &WriteTransaction, before: &str, after: String) -> Result<(), StoreError> {
    audit_system(tx, "store.migrate", before.to_owned(), after)
}

/// Appends an audit row of the store itself (`actor` `system`, target `schema`).
fn audit_system(
    tx: &WriteTransaction,
    action: &str,
    before: String,
    after: String,
) -> Result<(), StoreError> {
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
        action: action.into(),
        target: "schema".into(),
        before: Some(before),
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

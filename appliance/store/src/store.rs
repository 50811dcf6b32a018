//! The blocking store: one redb database plus a snapshot directory.
//!
//! Every method here blocks on disk I/O; async code goes through
//! [`StoreHandle`](crate::StoreHandle), which runs them off the reactor.

use std::collections::HashSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{DbContext, StoreError};
use crate::migrate::{self, OpenReport};
use crate::model::{
    ApiKey, AuditRecord, AuditResult, Event, EventPage, EventQuery, EventUpdate, NewAudit,
    NewEvent, Session, SettingDoc, SettingKind, Snapshot, SnapshotRef, SnapshotRefusal,
    StateFilter, UnixMs, User, now_ms,
};
use crate::retention::RetentionPolicy;
use crate::schema::{
    API_KEYS, AUDIT, CURRENT_VERSION, EVENTS, KEY_AUDIT_SEQ, KEY_EVENT_SEQ, KEY_SCHEMA, META,
    OPEN_EVENTS, SESSIONS, SETTINGS, SNAPSHOTS, USERS, setting_key,
};
use crate::snapshots;

/// Longest actor, source, action or target an audit row keeps (bytes).
pub const AUDIT_NAME_MAX: usize = 256;
/// Longest before/after text or result message an audit row keeps (bytes): a
/// whole rule document fits; a flood of oversized strings cannot fill the disk.
pub const AUDIT_TEXT_MAX: usize = 8 * 1024;

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn capped(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    const MARK: &str = "…[truncated]";
    let mut end = max.saturating_sub(MARK.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(MARK);
    s
}

/// Name of the database file inside the state directory.
pub const DB_FILE: &str = "store.redb";
/// Name of the snapshot directory inside the state directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// Default upper bound of the database page cache: small, for an appliance.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;
/// Largest page a query returns.
pub const MAX_PAGE: usize = 10_000;
/// Page size when a query does not say.
pub const DEFAULT_PAGE: usize = 100;

/// Where the store lives and how it keeps its size in check.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// State directory; holds [`DB_FILE`] and [`SNAPSHOT_DIR`].
    pub state_dir: PathBuf,
    /// Retention and quota rules.
    pub retention: RetentionPolicy,
    /// Upper bound of redb's page cache in bytes (redb's own default is 1 GiB).
    pub cache_bytes: usize,
    /// Bound of the integrations' outbox (entries waiting for the slowest sink); past it
    /// the oldest non-critical entries are dropped ([`crate::outbox`]).
    pub outbox_max_entries: u64,
}

impl StoreConfig {
    /// A configuration with the default retention policy.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            retention: RetentionPolicy::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            outbox_max_entries: crate::outbox::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// Counters and flags for Prometheus; plain atomics, read with `Ordering::Relaxed`.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Events committed.
    pub events_written: AtomicU64,
    /// Write transactions committed by the event writer (events per batch = ratio).
    pub event_batches: AtomicU64,
    /// Events refused by `try_submit` because the queue was full (returned to the caller).
    pub events_rejected_queue_full: AtomicU64,
    /// Events whose commit failed after all retries (logged with their content).
    pub event_write_failures: AtomicU64,
    /// Events waiting in the writer queue.
    pub queue_depth: AtomicU64,
    /// Snapshot files written.
    pub snapshots_written: AtomicU64,
    /// Snapshots refused because the quota was used up.
    pub snapshots_refused_quota: AtomicU64,
    /// Snapshots refused because the disk was (nearly) full.
    pub snapshots_refused_disk_full: AtomicU64,
    /// Snapshot writes that failed for another reason.
    pub snapshot_write_failures: AtomicU64,
    /// Bytes of snapshot files on disk.
    pub snapshot_bytes: AtomicU64,
    /// Events removed by retention.
    pub events_pruned: AtomicU64,
    /// Snapshot files removed by retention.
    pub snapshots_pruned: AtomicU64,
    /// Audit rows removed by retention.
    pub audit_pruned: AtomicU64,
    /// Expired or revoked sessions removed by retention.
    pub sessions_pruned: AtomicU64,
    /// Set while snapshots are refused for the quota; cleared when one fits again.
    pub snapshot_quota_exceeded: AtomicBool,
    /// Set while snapshots are refused for lack of disk space; cleared when one is written.
    pub disk_full: AtomicBool,
    /// Outbox entries dropped by the bound or aged out (since the store opened).
    pub outbox_dropped: AtomicU64,
}

/// Sizes and sequence numbers, for the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct StoreStats {
    /// Schema version of the open database.
    pub schema_version: u32,
    /// Last event id handed out.
    pub event_seq: u64,
    /// Events stored.
    pub events: u64,
    /// Events not cleared.
    pub open_events: u64,
    /// Snapshot files indexed.
    pub snapshots: u64,
    /// Bytes of snapshot files.
    pub snapshot_bytes: u64,
    /// Audit rows.
    pub audit_rows: u64,
    /// Users.
    pub users: u64,
    /// Size of the database file.
    pub db_file_bytes: u64,
}

/// The store. Cheap to share behind an `Arc`; redb serialises write transactions.
#[derive(Debug)]
pub struct Store {
    db: Database,
    db_path: PathBuf,
    snapshot_dir: PathBuf,
    config: StoreConfig,
    metrics: Arc<StoreMetrics>,
    open_report: OpenReport,
    prune_wanted: Arc<tokio::sync::Notify>,
    tmp_counter: AtomicU64,
    outbox_head: tokio::sync::watch::Sender<u64>,
}

/// A snapshot after the first phase of an event write.
enum Prepared {
    /// No snapshot was offered.
    None,
    /// Not written, for this reason.
    Refused(SnapshotRefusal),
    /// Data written and fsynced under a temporary name.
    Written {
        tmp: PathBuf,
        bytes: u64,
        sha256: String,
    },
}

/// Removes the files of a failed event write (best effort; the sweep at open catches the rest).
fn discard(prepared: &[Prepared], placed: &[PathBuf]) {
    for p in prepared {
        if let Prepared::Written { tmp, .. } = p {
            let _ = std::fs::remove_file(tmp);
        }
    }
    for f in placed {
        let _ = std::fs::remove_file(f);
    }
}

pub(crate) fn enc<T: Serialize>(table: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|source| StoreError::Encode { table, source })
}

pub(crate) fn dec<T: DeserializeOwned>(
    table: &'static str,
    key: &dyn Display,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        table,
        key: key.to_string(),
        source,
    })
}

fn get_str<T: DeserializeOwned>(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    table: &'static str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match t.get(key).db("read record")? {
        Some(v) => Ok(Some(dec(table, &key, v.value())?)),
        None => Ok(None),
    }
}

fn list_str<T: DeserializeOwned>(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    table: &'static str,
    prefix: &str,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for row in t.range(prefix..).db("scan records")? {
        let (k, v) = row.db("read record")?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push(dec(table, &k.value(), v.value())?);
    }
    Ok(out)
}

pub(crate) fn get_event_in(
    t: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<Event>, StoreError> {
    match t.get(id).db("read event")? {
        Some(v) => Ok(Some(dec("events", &id, v.value())?)),
        None => Ok(None),
    }
}

fn meta_get(t: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, StoreError> {
    Ok(t.get(key).db("read meta")?.map_or(0, |v| v.value()))
}

// === impl Store ===

impl Store {
    /// Opens (or creates) the store in `config.state_dir`, migrating an older schema and
    /// removing snapshot files no event references.
    ///
    /// A database written by a newer release (the firmware was rolled back) is moved aside
    /// and the copy taken before its migration restored: see [`OpenReport::rollback`].
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        Self::open_as(config, CURRENT_VERSION)
    }

    /// [`Store::open`] deciding as the reader of schema `reader` would: which databases
    /// are newer, how far to migrate. For tests that play an earlier release's reader
    /// against the real files; the tables written are this build's.
    #[doc(hidden)]
    pub fn open_as(config: StoreConfig, reader: u32) -> Result<Self, StoreError> {
        let dir = &config.state_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io("create state directory", dir, e))?;
        let snapshot_dir = dir.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&snapshot_dir)
            .map_err(|e| StoreError::io("create snapshot directory", &snapshot_dir, e))?;
        let db_path = dir.join(DB_FILE);
        let (db, open_report) = migrate::open_database(&db_path, config.cache_bytes, reader)?;
        let mut store = Self {
            db,
            db_path,
            snapshot_dir,
            config,
            metrics: Arc::new(StoreMetrics::default()),
            open_report,
            prune_wanted: Arc::new(tokio::sync::Notify::new()),
            tmp_counter: AtomicU64::new(0),
            outbox_head: tokio::sync::watch::Sender::new(0),
        };
        let (referenced, bytes) = store.snapshot_index()?;
        if let Some(rb) = &mut store.open_report.rollback {
            // The newer database's snapshots are evidence too: moved beside it, not swept.
            let aside = migrate::unused_path(&store.config.state_dir.join(format!(
                "{SNAPSHOT_DIR}.newer-v{}-{}",
                rb.newer_version,
                now_ms()
            )));
            let moved = snapshots::set_aside(&store.snapshot_dir, &referenced, &aside)?;
            if moved > 0 {
                tracing::warn!(files = moved, dir = %aside.display(), "snapshots of the set-aside newer database moved beside it");
                rb.snapshots_set_aside = Some(aside);
            }
        }
        snapshots::sweep(&store.snapshot_dir, &referenced)?;
        store.metrics.snapshot_bytes.store(bytes, Ordering::Relaxed);
        tracing::info!(
            db = %store.db_path.display(),
            schema = CURRENT_VERSION,
            snapshots = referenced.len(),
            snapshot_bytes = bytes,
            "store opened"
        );
        Ok(store)
    }

    /// The counters and flags.
    pub fn metrics(&self) -> &Arc<StoreMetrics> {
        &self.metrics
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// What opening found (version, migration copy).
    pub fn open_report(&self) -> &OpenReport {
        &self.open_report
    }

    /// Path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Path of the snapshot directory.
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// Bytes available to unprivileged writers on the file system that holds the state
    /// directory (for callers that put temporary copies there, such as a backup).
    pub fn available_bytes(&self) -> Result<u64, StoreError> {
        snapshots::available_bytes(&self.config.state_dir)
    }

    /// Full path of a stored snapshot. The name must be one the store writes
    /// (`<20 digits>.jpg`): a row naming anything else (a restored backup that was
    /// crafted) cannot make the API serve another file such as a key.
    pub fn snapshot_path(&self, r: &SnapshotRef) -> Result<PathBuf, StoreError> {
        if snapshots::parse_file_name(&r.file).is_none() {
            return Err(StoreError::Invalid {
                field: "snapshot.file",
                reason: format!("{:?} is not a snapshot file name (<20 digits>.jpg)", r.file),
            });
        }
        Ok(self.snapshot_dir.join(&r.file))
    }

    /// Events whose stored snapshot names a file the store would never write
    /// (checked after a restore: such rows came from a crafted backup; their
    /// snapshots are refused by [`Store::snapshot_path`]).
    pub fn events_with_invalid_snapshot_names(&self) -> Result<Vec<u64>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(EVENTS).db("open events")?;
        let mut bad = Vec::new();
        for row in t.iter().db("scan events")? {
            let (k, v) = row.db("read event")?;
            let e: Event = dec("events", &k.value(), v.value())?;
            if let Snapshot::Stored(r) = &e.snapshot
                && snapshots::parse_file_name(&r.file).is_none()
            {
                bad.push(e.id);
            }
        }
        Ok(bad)
    }

    /// Woken when a snapshot is refused for the quota, so retention can run early.
    pub fn prune_wanted(&self) -> &Arc<tokio::sync::Notify> {
        &self.prune_wanted
    }

    /// The outbox's head (last entry written), changed after each commit that wrote
    /// one: the integrations wait on it.
    pub fn watch_outbox(&self) -> tokio::sync::watch::Receiver<u64> {
        self.outbox_head.subscribe()
    }

    /// Tells the integrations that entries up to `seq` are committed.
    pub(crate) fn outbox_written(&self, seq: u64) {
        self.outbox_head.send_if_modified(|h| {
            let newer = seq > *h;
            if newer {
                *h = seq;
            }
            newer
        });
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    fn snapshot_index(&self) -> Result<(HashSet<u64>, u64), StoreError> {
        let tx = self.db.begin_read().db("begin read")?;
        let t = tx.open_table(SNAPSHOTS).db("open snapshots")?;
        let mut ids = HashSet::new();
        let mut bytes = 0u64;
        for row in t.iter().db("scan snapshots")? {
            let (k, v) = row.db("read snapshot index")?;
            ids.insert(k.value());
            bytes = bytes.saturating_add(v.value());
        }
        Ok((ids, bytes))
    }

    /// Starts a read transaction (a consistent view of the whole store).
    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().db("begin read")
    }

    // --- events ---

    /// Commits `batch` in one write transaction (group commit) and returns the new ids in
    /// order. Snapshot data is written and fsynced to temporary files before the write lock
    /// is taken; inside the transaction the files are only renamed to `<id>.jpg` and the
    /// directory fsynced, before the commit. On failure the files are removed and nothing
    /// is recorded.
    pub fn insert_events(&self, batch: &[NewEvent]) -> Result<Vec<u64>, StoreError> {
        let now = now_ms();
        let mut pending = 0u64;
        let mut prepared: Vec<Prepared> = batch
            .iter()
            .map(|ev| match &ev.snapshot_jpeg {
                None => Prepared::None,
                Some(jpeg) => self.prepare_snapshot(jpeg, &mut pending),
            })
            .collect();
        let tx = match self.db.begin_write().db("begin event write") {
            Ok(tx) => tx,
            Err(e) => {
                discard(&prepared, &[]);
                return Err(e);
            }
        };
        let mut ids = Vec::with_capacity(batch.len());
        let mut placed: Vec<PathBuf> = Vec::new();
        let mut outbox_seq = None;
        let result = (|| {
            let mut meta = tx.open_table(META).db("open meta")?;
            let mut events = tx.open_table(EVENTS).db("open events")?;
            let mut open = tx.open_table(OPEN_EVENTS).db("open open_events")?;
            let mut snaps = tx.open_table(SNAPSHOTS).db("open snapshots")?;
            let mut seq = meta_get(&meta, KEY_EVENT_SEQ)?;
            let mut raised = Vec::with_capacity(batch.len());
            for (ev, prep) in batch.iter().zip(prepared.iter_mut()) {
                seq = seq.checked_add(1).ok_or_else(|| StoreError::Invalid {
                    field: "event_seq",
                    reason: "sequence exhausted".into(),
                })?;
                let id = seq;
                let snapshot = match prep {
                    Prepared::None => Snapshot::None,
                    Prepared::Refused(reason) => Snapshot::Refused { reason: *reason },
                    Prepared::Written { tmp, bytes, sha256 } => {
                        let name = snapshots::file_name(id);
                        let path = self.snapshot_dir.join(&name);
                        std::fs::rename(&*tmp, &path)
                            .map_err(|e| StoreError::io("rename snapshot", &path, e))?;
                        placed.push(path);
                        snaps.insert(id, *bytes).db("index snapshot")?;
                        Snapshot::Stored(SnapshotRef {
                            file: name,
                            bytes: *bytes,
                            sha256: std::mem::take(sha256),
                            written_at: now,
                        })
                    }
                };
                if !ev.cleared {
                    open.insert(id, ()).db("index open event")?;
                }
                let event = ev.to_event(id, snapshot, now);
                events
                    .insert(id, enc("events", &event)?.as_slice())
                    .db("insert event")?;
                ids.push(id);
                raised.push(event);
            }
            meta.insert(KEY_EVENT_SEQ, seq).db("write event seq")?;
            drop((meta, events, open, snaps));
            // The integrations' entries, in the same transaction as the events.
            for event in raised {
                let message = crate::outbox::OutboxMessage::EventRaised {
                    event: Box::new(event),
                };
                if let Some(s) =
                    crate::outbox::append(&tx, message, self.config.outbox_max_entries)?
                {
                    outbox_seq = Some(s);
                }
            }
            Ok::<(), StoreError>(())
        })();
        let result = result.and_then(|()| {
            if !placed.is_empty() {
                migrate::sync_dir(&self.snapshot_dir)?;
            }
            tx.commit().db("commit events")
        });
        if let Err(e) = result {
            discard(&prepared, &placed);
            return Err(e);
        }
        if let Some(seq) = outbox_seq {
            self.outbox_written(seq);
        }
        let m = &self.metrics;
        m.events_written
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        m.event_batches.fetch_add(1, Ordering::Relaxed);
        m.snapshots_written
            .fetch_add(placed.len() as u64, Ordering::Relaxed);
        m.snapshot_bytes.fetch_add(pending, Ordering::Relaxed);
        Ok(ids)
    }

    /// Decides whether a snapshot fits and writes it durably to a temporary file.
    fn prepare_snapshot(&self, jpeg: &[u8], pending: &mut u64) -> Prepared {
        let m = &self.metrics;
        let len = jpeg.len() as u64;
        let used = m.snapshot_bytes.load(Ordering::Relaxed) + *pending;
        let quota = self.config.retention.snapshot_quota_bytes;
        if used.saturating_add(len) > quota {
            m.snapshots_refused_quota.fetch_add(1, Ordering::Relaxed);
            if !m.snapshot_quota_exceeded.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    used,
                    quota,
                    "snapshot quota reached; snapshots refused until retention frees space"
                );
            }
            self.prune_wanted.notify_one();
            return Prepared::Refused(SnapshotRefusal::Quota);
        }
        let refuse_full = || {
            m.snapshots_refused_disk_full
                .fetch_add(1, Ordering::Relaxed);
            if !m.disk_full.swap(true, Ordering::Relaxed) {
                tracing::error!("disk full; snapshots refused, events still recorded");
            }
            self.prune_wanted.notify_one();
            Prepared::Refused(SnapshotRefusal::DiskFull)
        };
        match snapshots::available_bytes(&self.snapshot_dir) {
            Ok(avail) if avail < self.config.retention.min_free_bytes.saturating_add(len) => {
                return refuse_full();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read free space; writing snapshot anyway"),
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!("pending-{}-{n}", std::process::id());
        match snapshots::write_temp(&self.snapshot_dir, &tmp_name, jpeg) {
            Ok((tmp, sha256)) => {
                *pending += len;
                m.snapshot_quota_exceeded.store(false, Ordering::Relaxed);
                m.disk_full.store(false, Ordering::Relaxed);
                Prepared::Written {
                    tmp,
                    bytes: len,
                    sha256,
                }
            }
            Err(e) if snapshots::is_disk_full(&e) => refuse_full(),
            Err(e) => {
                m.snapshot_write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "snapshot write failed; event recorded without it");
                Prepared::Refused(SnapshotRefusal::WriteFailed)
            }
        }
    }

    /// The event with this id.
    pub fn get_event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(EVENTS).db("open events")?;
        get_event_in(&t, id)
    }

    /// One page of events matching `q`, newest first unless `q.oldest_first`.
    pub fn query_events(&self, q: &EventQuery) -> Result<EventPage, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(EVENTS).db("open events")?;
        let open = tx.open_table(OPEN_EVENTS).db("open open_events")?;
        query_events_in(&t, &open, q)
    }

    /// Ids of all events not cleared yet, oldest first.
    pub fn open_event_ids(&self) -> Result<Vec<u64>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(OPEN_EVENTS).db("open open_events")?;
        let mut ids = Vec::new();
        for row in t.iter().db("scan open events")? {
            ids.push(row.db("read open event")?.0.value());
        }
        Ok(ids)
    }

    /// Acknowledges an active event (convenience for [`StoreTxn::acknowledge_event`]).
    pub fn acknowledge(&self, id: u64, by: &str, at: UnixMs) -> Result<Event, StoreError> {
        self.transaction(|tx| tx.acknowledge_event(id, by, at))
    }

    /// Clears an open event (convenience for [`StoreTxn::clear_event`]).
    pub fn clear(&self, id: u64, by: Option<&str>, at: UnixMs) -> Result<Event, StoreError> {
        self.transaction(|tx| tx.clear_event(id, by, at))
    }

    /// Updates an event's mutable fields (convenience for [`StoreTxn::update_event`]).
    pub fn update_event(&self, id: u64, update: EventUpdate) -> Result<Event, StoreError> {
        self.transaction(|tx| tx.update_event(id, update))
    }

    // --- transactions ---

    /// Runs `f` in one write transaction and commits it if `f` succeeds. Use it to commit a
    /// change and its audit row together.
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&mut StoreTxn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_write().db("begin write")?;
        let mut stx = StoreTxn {
            tx,
            outbox_max_entries: self.config.outbox_max_entries,
            outbox_seq: None,
        };
        let out = f(&mut stx)?;
        let outbox_seq = stx.outbox_seq;
        stx.tx.commit().db("commit")?;
        if let Some(seq) = outbox_seq {
            self.outbox_written(seq);
        }
        Ok(out)
    }

    // --- reads of the other tables ---

    /// A user by name.
    pub fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let tx = self.begin_read()?;
        get_str(&tx.open_table(USERS).db("open users")?, "users", username)
    }

    /// All users, by name.
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let tx = self.begin_read()?;
        list_str(&tx.open_table(USERS).db("open users")?, "users", "")
    }

    /// A session by id.
    pub fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let tx = self.begin_read()?;
        get_str(
            &tx.open_table(SESSIONS).db("open sessions")?,
            "sessions",
            id,
        )
    }

    /// An API key by id.
    pub fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let tx = self.begin_read()?;
        get_str(
            &tx.open_table(API_KEYS).db("open api_keys")?,
            "api_keys",
            id,
        )
    }

    /// All API keys, by id.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let tx = self.begin_read()?;
        list_str(
            &tx.open_table(API_KEYS).db("open api_keys")?,
            "api_keys",
            "",
        )
    }

    /// A settings document.
    pub fn get_setting(
        &self,
        kind: SettingKind,
        id: &str,
    ) -> Result<Option<SettingDoc>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(SETTINGS).db("open settings")?;
        get_str(&t, "settings", &setting_key(kind, id))
    }

    /// All settings documents of a kind (all kinds when `None`), by key.
    pub fn list_settings(&self, kind: Option<SettingKind>) -> Result<Vec<SettingDoc>, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(SETTINGS).db("open settings")?;
        let prefix = kind.map(|k| format!("{}/", k.as_str())).unwrap_or_default();
        list_str(&t, "settings", &prefix)
    }

    /// One page of the audit log: rows after `cursor` in the chosen order.
    pub fn audit_page(
        &self,
        cursor: Option<u64>,
        limit: usize,
        oldest_first: bool,
    ) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(AUDIT).db("open audit")?;
        let limit = clamp_limit(limit);
        let iter = match (oldest_first, cursor) {
            (true, Some(c)) => Box::new(t.range(c.saturating_add(1)..).db("scan audit")?)
                as Box<dyn Iterator<Item = _>>,
            (true, None) => Box::new(t.iter().db("scan audit")?),
            (false, Some(c)) => Box::new(t.range(..c).db("scan audit")?.rev()),
            (false, None) => Box::new(t.iter().db("scan audit")?.rev()),
        };
        let mut rows = Vec::new();
        let mut more = false;
        for row in iter {
            let (k, v) = row.db("read audit row")?;
            if rows.len() == limit {
                more = true;
                break;
            }
            rows.push(dec::<AuditRecord>("audit", &k.value(), v.value())?);
        }
        let next = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Sizes and sequence numbers.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let tx = self.begin_read()?;
        let meta = tx.open_table(META).db("open meta")?;
        let schema = u32::try_from(meta_get(&meta, KEY_SCHEMA)?).unwrap_or(u32::MAX);
        Ok(StoreStats {
            schema_version: schema,
            event_seq: meta_get(&meta, KEY_EVENT_SEQ)?,
            events: tx
                .open_table(EVENTS)
                .db("open events")?
                .len()
                .db("count events")?,
            open_events: tx
                .open_table(OPEN_EVENTS)
                .db("open open_events")?
                .len()
                .db("count")?,
            snapshots: tx
                .open_table(SNAPSHOTS)
                .db("open snapshots")?
                .len()
                .db("count")?,
            snapshot_bytes: self.metrics.snapshot_bytes.load(Ordering::Relaxed),
            audit_rows: tx.open_table(AUDIT).db("open audit")?.len().db("count")?,
            users: tx.open_table(USERS).db("open users")?.len().db("count")?,
            db_file_bytes: std::fs::metadata(&self.db_path)
                .map(|m| m.len())
                .unwrap_or(0),
        })
    }
}

pub(crate) fn clamp_limit(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

/// Most events one page looks at: a filter that matches rarely (a camera with
/// few events in a large store) costs each request at most this many decodes,
/// and the page ends early with `next_cursor` set.
pub const SCAN_BUDGET: usize = 10_000;

pub(crate) fn query_events_in(
    t: &impl ReadableTable<u64, &'static [u8]>,
    open: &impl ReadableTable<u64, ()>,
    q: &EventQuery,
) -> Result<EventPage, StoreError> {
    let limit = clamp_limit(q.limit);
    // Events not cleared yet (the alarms an operator must see) are listed from
    // their index, so a filter on them never misses one buried under thousands of
    // cleared events; anything else scans the events table within the budget.
    let by_index = matches!(
        q.state,
        Some(StateFilter::Active | StateFilter::Acknowledged | StateFilter::Open)
    );
    type Rows<'a> = Box<dyn Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + 'a>;
    let from_table = |range: Box<dyn Iterator<Item = _>>| -> Rows<'_> {
        Box::new(range.map(
            |row: Result<
                (
                    redb::AccessGuard<'_, u64>,
                    redb::AccessGuard<'_, &'static [u8]>,
                ),
                redb::StorageError,
            >| {
                let (k, v) = row.db("read event")?;
                Ok((k.value(), v.value().to_vec()))
            },
        ))
    };
    let iter: Rows<'_> = if by_index {
        let ids: Box<dyn Iterator<Item = _>> = match (q.oldest_first, q.cursor) {
            (true, Some(c)) => Box::new(open.range(c.saturating_add(1)..).db("scan open events")?),
            (true, None) => Box::new(open.iter().db("scan open events")?),
            (false, Some(c)) => Box::new(open.range(..c).db("scan open events")?.rev()),
            (false, None) => Box::new(open.iter().db("scan open events")?.rev()),
        };
        Box::new(ids.filter_map(move |row| {
            let id = match row.db("read open event") {
                Ok((k, _)) => k.value(),
                Err(e) => return Some(Err(e)),
            };
            match t.get(id).db("read event") {
                Ok(Some(v)) => Some(Ok((id, v.value().to_vec()))),
                // Cleared and pruned between the index and the table: skip.
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        }))
    } else {
        match (q.oldest_first, q.cursor) {
            (true, Some(c)) => {
                from_table(Box::new(t.range(c.saturating_add(1)..).db("scan events")?))
            }
            (true, None) => from_table(Box::new(t.iter().db("scan events")?)),
            (false, Some(c)) => from_table(Box::new(t.range(..c).db("scan events")?.rev())),
            (false, None) => from_table(Box::new(t.iter().db("scan events")?.rev())),
        }
    };
    let mut events = Vec::new();
    let mut more = false;
    let mut last_scanned = None;
    let mut looked_at = 0;
    for (scanned, row) in iter.enumerate() {
        let (id, bytes) = row?;
        if scanned == SCAN_BUDGET {
            // The page's work is spent: the caller resumes after the last row
            // looked at, with fewer (maybe no) events on this page.
            more = true;
            break;
        }
        looked_at = scanned + 1;
        let e: Event = dec("events", &id, &bytes)?;
        if !q.matches(&e) {
            last_scanned = Some(id);
            continue;
        }
        if events.len() == limit {
            more = true;
            break;
        }
        last_scanned = Some(id);
        events.push(e);
    }
    let next_cursor = if more { last_scanned } else { None };
    Ok(EventPage {
        events,
        next_cursor,
        scanned: looked_at,
    })
}

/// A write transaction: changes made through it, and the audit rows appended with
/// [`StoreTxn::append_audit`], commit together or not at all.
pub struct StoreTxn {
    tx: WriteTransaction,
    outbox_max_entries: u64,
    /// The last outbox entry this transaction wrote (announced after the commit).
    outbox_seq: Option<u64>,
}

impl std::fmt::Debug for StoreTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTxn").finish_non_exhaustive()
    }
}

/// Appends an audit row in `tx` and returns its id.
pub(crate) fn append_audit_in(tx: &WriteTransaction, a: NewAudit) -> Result<u64, StoreError> {
    let mut meta = tx.open_table(META).db("open meta")?;
    let id = meta_get(&meta, KEY_AUDIT_SEQ)? + 1;
    meta.insert(KEY_AUDIT_SEQ, id).db("write audit seq")?;
    let result = match a.result {
        AuditResult::Ok => AuditResult::Ok,
        AuditResult::Denied(m) => AuditResult::Denied(capped(m, AUDIT_TEXT_MAX)),
        AuditResult::Failed(m) => AuditResult::Failed(capped(m, AUDIT_TEXT_MAX)),
    };
    let row = AuditRecord {
        id,
        at: a.at,
        actor: capped(a.actor, AUDIT_NAME_MAX),
        role: a.role,
        source: a.source.map(|s| capped(s, AUDIT_NAME_MAX)),
        action: capped(a.action, AUDIT_NAME_MAX),
        target: capped(a.target, AUDIT_NAME_MAX),
        before: a.before.map(|s| capped(s, AUDIT_TEXT_MAX)),
        after: a.after.map(|s| capped(s, AUDIT_TEXT_MAX)),
        result,
    };
    let mut t = tx.open_table(AUDIT).db("open audit")?;
    t.insert(id, enc("audit", &row)?.as_slice())
        .db("write audit")?;
    Ok(id)
}

// === impl StoreTxn ===

impl StoreTxn {
    /// The redb transaction (for the store's own modules).
    pub(crate) fn tx(&self) -> &WriteTransaction {
        &self.tx
    }

    /// The outbox's bound.
    pub(crate) fn outbox_max_entries(&self) -> u64 {
        self.outbox_max_entries
    }

    /// Notes that this transaction wrote outbox entry `seq`.
    pub(crate) fn outbox_wrote(&mut self, seq: Option<u64>) {
        if seq.is_some() {
            self.outbox_seq = seq;
        }
    }

    fn put_str<T: Serialize>(
        &self,
        def: redb::TableDefinition<'static, &'static str, &'static [u8]>,
        table: &'static str,
        key: &str,
        v: &T,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut t = self.tx.open_table(def).db("open table")?;
        let old = t
            .insert(key, enc(table, v)?.as_slice())
            .db("write record")?;
        Ok(old.map(|g| g.value().to_vec()))
    }

    fn get_str_tx<T: DeserializeOwned>(
        &self,
        def: redb::TableDefinition<'static, &'static str, &'static [u8]>,
        table: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let t = self.tx.open_table(def).db("open table")?;
        get_str(&t, table, key)
    }

    fn event_mut(
        &mut self,
        id: u64,
        f: impl FnOnce(&mut Event) -> Result<(), StoreError>,
    ) -> Result<Event, StoreError> {
        let mut t = self.tx.open_table(EVENTS).db("open events")?;
        let mut e = get_event_in(&t, id)?.ok_or_else(|| StoreError::NotFound {
            what: "event",
            key: id.to_string(),
        })?;
        let before = (e.state.name(), e.ended_at);
        f(&mut e)?;
        t.insert(id, enc("events", &e)?.as_slice())
            .db("write event")?;
        let mut open = self.tx.open_table(OPEN_EVENTS).db("open open_events")?;
        if e.state.is_open() {
            open.insert(id, ()).db("index open event")?;
        } else {
            open.remove(id).db("unindex open event")?;
        }
        drop((t, open));
        // A change of the life cycle (acknowledged, ended, cleared) is delivered to the
        // integrations, in this transaction.
        if before != (e.state.name(), e.ended_at) {
            let message = crate::outbox::OutboxMessage::EventChanged {
                event: Box::new(e.clone()),
            };
            let seq = crate::outbox::append(&self.tx, message, self.outbox_max_entries)?;
            self.outbox_wrote(seq);
        }
        Ok(e)
    }

    /// Reads an event inside the transaction.
    pub fn get_event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        let t = self.tx.open_table(EVENTS).db("open events")?;
        get_event_in(&t, id)
    }

    /// Moves an active event to acknowledged.
    pub fn acknowledge_event(
        &mut self,
        id: u64,
        by: &str,
        at: UnixMs,
    ) -> Result<Event, StoreError> {
        self.event_mut(id, |e| e.acknowledge(by, at))
    }

    /// Clears an active or acknowledged event; it becomes eligible for retention.
    pub fn clear_event(
        &mut self,
        id: u64,
        by: Option<&str>,
        at: UnixMs,
    ) -> Result<Event, StoreError> {
        self.event_mut(id, |e| e.clear(by, at))
    }

    /// Acknowledges an alarm's event, clearing it if its condition has ended
    /// ([`Event::acknowledge_alarm`]).
    pub fn acknowledge_alarm(
        &mut self,
        id: u64,
        by: &str,
        at: UnixMs,
    ) -> Result<Event, StoreError> {
        self.event_mut(id, |e| e.acknowledge_alarm(by, at))
    }

    /// Records the end of an alarm's condition, clearing its event if already
    /// acknowledged ([`Event::end_alarm`]).
    pub fn end_alarm(&mut self, id: u64, at: UnixMs) -> Result<Event, StoreError> {
        self.event_mut(id, |e| e.end_alarm(at))
    }

    /// Changes an event's end time, message or details.
    pub fn update_event(&mut self, id: u64, update: EventUpdate) -> Result<Event, StoreError> {
        self.event_mut(id, |e| {
            if let Some(t) = update.ended_at {
                e.ended_at = Some(t);
            }
            if let Some(m) = update.message {
                e.message = m;
            }
            if let Some(d) = update.details {
                e.details = Some(d);
            }
            Ok(())
        })
    }

    /// Appends an audit row and returns its id.
    pub fn append_audit(&mut self, a: NewAudit) -> Result<u64, StoreError> {
        append_audit_in(&self.tx, a)
    }

    /// Creates a user; fails if the name is taken.
    pub fn create_user(&mut self, user: &User) -> Result<(), StoreError> {
        if self.get_user(&user.username)?.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "user",
                key: user.username.clone(),
            });
        }
        self.put_user(user)
    }

    /// Creates or replaces a user.
    pub fn put_user(&mut self, user: &User) -> Result<(), StoreError> {
        if user.username.is_empty() {
            return Err(StoreError::Invalid {
                field: "username",
                reason: "must not be empty".into(),
            });
        }
        self.put_str(USERS, "users", &user.username, user).map(drop)
    }

    /// Reads a user inside the transaction.
    pub fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.get_str_tx(USERS, "users", username)
    }

    /// All users, by name, inside the transaction (a check such as "the last
    /// enabled admin" is then decided on the same state the change is made to).
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let t = self.tx.open_table(USERS).db("open users")?;
        list_str(&t, "users", "")
    }

    /// Deletes a user and all their sessions; returns the removed user.
    pub fn delete_user(&mut self, username: &str) -> Result<User, StoreError> {
        let user = self
            .get_user(username)?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                key: username.to_owned(),
            })?;
        self.tx
            .open_table(USERS)
            .db("open users")?
            .remove(username)
            .db("remove user")?;
        let mut sessions = self.tx.open_table(SESSIONS).db("open sessions")?;
        sessions
            .retain(|_, v| {
                serde_json::from_slice::<Session>(v).map_or(true, |s| s.username != username)
            })
            .db("remove user sessions")?;
        Ok(user)
    }

    /// Creates or replaces a session.
    pub fn put_session(&mut self, s: &Session) -> Result<(), StoreError> {
        self.put_str(SESSIONS, "sessions", &s.id, s).map(drop)
    }

    /// Reads a session inside the transaction.
    pub fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.get_str_tx(SESSIONS, "sessions", id)
    }

    /// Marks a session revoked.
    pub fn revoke_session(&mut self, id: &str) -> Result<Session, StoreError> {
        let mut s = self.get_session(id)?.ok_or_else(|| StoreError::NotFound {
            what: "session",
            key: id.to_owned(),
        })?;
        s.revoked = true;
        self.put_session(&s)?;
        Ok(s)
    }

    /// Sessions whose id starts with `<family>.`: the rotated refresh-token records of
    /// the session `family` (see the API's refresh-token rotation). Ordered by id.
    pub fn session_children(&self, family: &str) -> Result<Vec<Session>, StoreError> {
        let t = self.tx.open_table(SESSIONS).db("open sessions")?;
        list_str(&t, "sessions", &format!("{family}."))
    }

    /// Revokes the session `family` and every session whose id starts with `<family>.`;
    /// returns how many records were newly revoked. A missing family record is not an
    /// error (its children are still revoked).
    pub fn revoke_session_family(&mut self, family: &str) -> Result<usize, StoreError> {
        let mut all = self.session_children(family)?;
        if let Some(s) = self.get_session(family)? {
            all.push(s);
        }
        self.revoke_sessions(all)
    }

    /// Marks `sessions` revoked; returns how many were not revoked before.
    fn revoke_sessions(&mut self, sessions: Vec<Session>) -> Result<usize, StoreError> {
        let mut n = 0;
        for mut s in sessions.into_iter().filter(|s| !s.revoked) {
            s.revoked = true;
            self.put_session(&s)?;
            n += 1;
        }
        Ok(n)
    }

    /// Revokes every session (the signing key was replaced: nobody stays logged
    /// in); returns how many were newly revoked.
    pub fn revoke_all_sessions(&mut self) -> Result<usize, StoreError> {
        let all: Vec<Session> = {
            let t = self.tx.open_table(SESSIONS).db("open sessions")?;
            list_str(&t, "sessions", "")?
        };
        self.revoke_sessions(all)
    }

    /// Creates or replaces an API key.
    pub fn put_api_key(&mut self, k: &ApiKey) -> Result<(), StoreError> {
        self.put_str(API_KEYS, "api_keys", &k.id, k).map(drop)
    }

    /// Reads an API key inside the transaction.
    pub fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.get_str_tx(API_KEYS, "api_keys", id)
    }

    /// Marks an API key revoked.
    pub fn revoke_api_key(&mut self, id: &str) -> Result<ApiKey, StoreError> {
        let mut k = self.get_api_key(id)?.ok_or_else(|| StoreError::NotFound {
            what: "api key",
            key: id.to_owned(),
        })?;
        k.revoked = true;
        self.put_api_key(&k)?;
        Ok(k)
    }

    /// Reads a settings document inside the transaction.
    pub fn get_setting(
        &self,
        kind: SettingKind,
        id: &str,
    ) -> Result<Option<SettingDoc>, StoreError> {
        self.get_str_tx(SETTINGS, "settings", &setting_key(kind, id))
    }

    /// Stores a new version of a settings document. With `expected_version`, fails with
    /// [`StoreError::VersionConflict`] unless the stored version matches (0 = must not exist).
    pub fn put_setting(
        &mut self,
        kind: SettingKind,
        id: &str,
        doc: serde_json::Value,
        expected_version: Option<u64>,
        by: &str,
        at: UnixMs,
    ) -> Result<SettingDoc, StoreError> {
        if let Err(e) = safe_yolo_domain::CameraId::new(id) {
            return Err(StoreError::Invalid {
                field: "setting id",
                reason: format!("{id:?} {e}"),
            });
        }
        let current = self.get_setting(kind, id)?.map_or(0, |d| d.version);
        check_version(kind, id, expected_version, current)?;
        let new = SettingDoc {
            kind,
            id: id.to_owned(),
            version: current + 1,
            doc,
            updated_at: at,
            updated_by: by.to_owned(),
        };
        self.put_str(SETTINGS, "settings", &setting_key(kind, id), &new)?;
        Ok(new)
    }

    /// Deletes a settings document (same version check as [`StoreTxn::put_setting`]).
    pub fn delete_setting(
        &mut self,
        kind: SettingKind,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<SettingDoc, StoreError> {
        let doc = self
            .get_setting(kind, id)?
            .ok_or_else(|| StoreError::NotFound {
                what: "setting",
                key: setting_key(kind, id),
            })?;
        check_version(kind, id, expected_version, doc.version)?;
        self.tx
            .open_table(SETTINGS)
            .db("open settings")?
            .remove(setting_key(kind, id).as_str())
            .db("remove setting")?;
        Ok(doc)
    }
}

fn check_version(
    kind: SettingKind,
    id: &str,
    expected: Option<u64>,
    actual: u64,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::VersionConflict {
            what: "setting",
            key: setting_key(kind, id),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

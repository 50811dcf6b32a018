//! Retention: events and snapshots pruned by age and quota, oldest first, never open ones;
//! the audit log by its own, longer rule; expired sessions.
//!
//! Pruning runs in small transactions (at most [`BATCH`] rows) so the event writer never
//! waits long for the write lock. Snapshot files are deleted after the transaction that
//! drops their references commits; a crash in between leaves orphans that the next open
//! sweeps away.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redb::{ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use crate::error::{DbContext, StoreError};
use crate::model::{AuditRecord, Session, Snapshot, UnixMs};
use crate::schema::{AUDIT, EVENTS, OPEN_EVENTS, SESSIONS, SNAPSHOTS};
use crate::snapshots;
use crate::store::{Store, dec, enc, get_event_in};

/// Rows handled per pruning transaction.
pub const BATCH: usize = 256;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// How long things are kept and how much disk snapshots may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Cleared events older than this (by start time) are removed; `None` keeps them.
    pub event_max_age: Option<Duration>,
    /// At most this many events are kept; the oldest cleared ones go first.
    pub max_events: Option<u64>,
    /// Snapshots older than this are removed (their events stay, marked `pruned`).
    pub snapshot_max_age: Option<Duration>,
    /// Snapshot files may use at most this many bytes; beyond it new snapshots are refused
    /// and retention removes the oldest snapshots of cleared events.
    pub snapshot_quota_bytes: u64,
    /// Retention brings snapshot usage down to this percentage of the quota.
    pub snapshot_low_water_percent: u8,
    /// Snapshots are refused when less than this many bytes would stay free on the disk.
    pub min_free_bytes: u64,
    /// Audit rows older than this are removed; `None` keeps them forever.
    pub audit_max_age: Option<Duration>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            event_max_age: Some(Duration::from_millis(365 * DAY_MS)),
            max_events: Some(1_000_000),
            snapshot_max_age: Some(Duration::from_millis(90 * DAY_MS)),
            snapshot_quota_bytes: 2 << 30,
            snapshot_low_water_percent: 90,
            min_free_bytes: 256 << 20,
            audit_max_age: Some(Duration::from_millis(3 * 365 * DAY_MS)),
        }
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Events removed, oldest first.
    pub events: Vec<u64>,
    /// Events whose snapshot file was removed (the event itself may remain), oldest first.
    pub snapshots: Vec<u64>,
    /// Audit rows removed.
    pub audit_rows: u64,
    /// Sessions removed.
    pub sessions: u64,
    /// Integration outbox entries aged out with the events.
    pub outbox: u64,
}

fn cutoff(now: UnixMs, age: Option<Duration>) -> Option<UnixMs> {
    age.map(|a| now.saturating_sub(u64::try_from(a.as_millis()).unwrap_or(u64::MAX)))
}

// === impl Store (retention) ===

impl Store {
    /// Runs one retention pass at time `now`.
    pub fn prune(&self, now: UnixMs) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        self.prune_events(now, &mut report)?;
        self.prune_snapshots(now, &mut report)?;
        self.prune_audit(now, &mut report)?;
        self.prune_sessions(now, &mut report)?;
        report.outbox = self.prune_outbox(cutoff(now, self.config().retention.event_max_age))?;
        let m = self.metrics();
        if m.snapshot_bytes.load(Ordering::Relaxed) < self.config().retention.snapshot_quota_bytes {
            m.snapshot_quota_exceeded.store(false, Ordering::Relaxed);
        }
        if !report.events.is_empty() || !report.snapshots.is_empty() || report.audit_rows > 0 {
            tracing::info!(
                events = report.events.len(),
                snapshots = report.snapshots.len(),
                audit_rows = report.audit_rows,
                sessions = report.sessions,
                "retention pass"
            );
        }
        Ok(report)
    }

    fn prune_events(&self, now: UnixMs, report: &mut PruneReport) -> Result<(), StoreError> {
        let policy = &self.config().retention;
        let age_cut = cutoff(now, policy.event_max_age);
        let mut after = 0u64;
        loop {
            let tx = self.db().begin_write().db("begin prune events")?;
            let mut removed_files = Vec::new();
            let mut removed = Vec::new();
            let mut freed = 0u64;
            let mut done = true;
            {
                let mut events = tx.open_table(EVENTS).db("open events")?;
                let open = tx.open_table(OPEN_EVENTS).db("open open_events")?;
                let mut snaps = tx.open_table(SNAPSHOTS).db("open snapshots")?;
                let total = events.len().db("count events")?;
                let mut excess = policy.max_events.map_or(0, |m| total.saturating_sub(m));
                let mut victims = Vec::new();
                for row in events.range(after..).db("scan events")? {
                    let (k, v) = row.db("read event")?;
                    let id = k.value();
                    after = id + 1;
                    if open.get(id).db("read open_events")?.is_some() {
                        continue;
                    }
                    let e: crate::model::Event = dec("events", &id, v.value())?;
                    let too_old = age_cut.is_some_and(|c| e.started_at < c);
                    if too_old || excess > 0 {
                        victims.push(id);
                        excess = excess.saturating_sub(1);
                    } else {
                        // Ids grow with time: nothing later is old enough either.
                        break;
                    }
                    if victims.len() == BATCH {
                        done = false;
                        break;
                    }
                }
                for id in victims {
                    events.remove(id).db("remove event")?;
                    if let Some(bytes) = snaps.remove(id).db("remove snapshot index")? {
                        freed += bytes.value();
                        removed_files.push(self.snapshot_dir().join(snapshots::file_name(id)));
                    }
                    removed.push(id);
                }
            }
            tx.commit().db("commit prune events")?;
            self.after_prune_commit(&removed_files, freed);
            let m = self.metrics();
            m.events_pruned
                .fetch_add(removed.len() as u64, Ordering::Relaxed);
            m.snapshots_pruned
                .fetch_add(removed_files.len() as u64, Ordering::Relaxed);
            report.events.extend(removed);
            if done {
                return Ok(());
            }
        }
    }

    fn prune_snapshots(&self, now: UnixMs, report: &mut PruneReport) -> Result<(), StoreError> {
        let policy = &self.config().retention;
        let age_cut = cutoff(now, policy.snapshot_max_age);
        let target = policy
            .snapshot_quota_bytes
            .saturating_mul(u64::from(policy.snapshot_low_water_percent.min(100)))
            / 100;
        let mut after = 0u64;
        loop {
            let mut used = self.metrics().snapshot_bytes.load(Ordering::Relaxed);
            let tx = self.db().begin_write().db("begin prune snapshots")?;
            let mut removed_files = Vec::new();
            let mut removed = Vec::new();
            let mut freed = 0u64;
            let mut done = true;
            {
                let mut events = tx.open_table(EVENTS).db("open events")?;
                let open = tx.open_table(OPEN_EVENTS).db("open open_events")?;
                let mut snaps = tx.open_table(SNAPSHOTS).db("open snapshots")?;
                let mut victims = Vec::new();
                for row in snaps.range(after..).db("scan snapshots")? {
                    let (k, v) = row.db("read snapshot index")?;
                    let id = k.value();
                    after = id + 1;
                    if open.get(id).db("read open_events")?.is_some() {
                        continue;
                    }
                    let over_quota = used > target;
                    let e = get_event_in(&events, id)?;
                    let too_old = match (&e, age_cut) {
                        (Some(e), Some(c)) => e.snapshot.stored().is_some_and(|r| r.written_at < c),
                        (None, _) => true,
                        _ => false,
                    };
                    if over_quota || too_old {
                        victims.push((id, v.value()));
                        used = used.saturating_sub(v.value());
                    } else {
                        break;
                    }
                    if victims.len() == BATCH {
                        done = false;
                        break;
                    }
                }
                for (id, bytes) in victims {
                    snaps.remove(id).db("remove snapshot index")?;
                    if let Some(mut e) = get_event_in(&events, id)?
                        && let Snapshot::Stored(r) = &e.snapshot
                    {
                        e.snapshot = Snapshot::Pruned {
                            at: now,
                            bytes: r.bytes,
                            sha256: r.sha256.clone(),
                        };
                        events
                            .insert(id, enc("events", &e)?.as_slice())
                            .db("write event")?;
                    }
                    freed += bytes;
                    removed_files.push(self.snapshot_dir().join(snapshots::file_name(id)));
                    removed.push(id);
                }
            }
            tx.commit().db("commit prune snapshots")?;
            self.after_prune_commit(&removed_files, freed);
            self.metrics()
                .snapshots_pruned
                .fetch_add(removed.len() as u64, Ordering::Relaxed);
            report.snapshots.extend(removed);
            if done {
                return Ok(());
            }
        }
    }

    fn after_prune_commit(&self, files: &[std::path::PathBuf], freed: u64) {
        for f in files {
            if let Err(e) = std::fs::remove_file(f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %f.display(), error = %e, "cannot remove pruned snapshot");
            }
        }
        let m = self.metrics();
        let _ = m
            .snapshot_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(freed))
            });
    }

    fn prune_audit(&self, now: UnixMs, report: &mut PruneReport) -> Result<(), StoreError> {
        let Some(cut) = cutoff(now, self.config().retention.audit_max_age) else {
            return Ok(());
        };
        loop {
            let tx = self.db().begin_write().db("begin prune audit")?;
            let mut n = 0u64;
            {
                let mut t = tx.open_table(AUDIT).db("open audit")?;
                let mut victims = Vec::new();
                for row in t.iter().db("scan audit")? {
                    let (k, v) = row.db("read audit")?;
                    let r: AuditRecord = dec("audit", &k.value(), v.value())?;
                    if r.at >= cut || victims.len() == BATCH {
                        break;
                    }
                    victims.push(k.value());
                }
                for id in victims {
                    t.remove(id).db("remove audit row")?;
                    n += 1;
                }
            }
            tx.commit().db("commit prune audit")?;
            self.metrics().audit_pruned.fetch_add(n, Ordering::Relaxed);
            report.audit_rows += n;
            if n < BATCH as u64 {
                return Ok(());
            }
        }
    }

    fn prune_sessions(&self, now: UnixMs, report: &mut PruneReport) -> Result<(), StoreError> {
        let tx = self.db().begin_write().db("begin prune sessions")?;
        let mut n = 0u64;
        {
            let mut t = tx.open_table(SESSIONS).db("open sessions")?;
            t.retain(|_, v| {
                let keep = serde_json::from_slice::<Session>(v)
                    .map_or(true, |s| !s.revoked && s.expires_at > now);
                if !keep {
                    n += 1;
                }
                keep
            })
            .db("remove sessions")?;
        }
        tx.commit().db("commit prune sessions")?;
        self.metrics()
            .sessions_pruned
            .fetch_add(n, Ordering::Relaxed);
        report.sessions = n;
        Ok(())
    }
}

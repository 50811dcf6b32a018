//! The durable outbox: what the plant's integrations (MQTT, webhooks) deliver.
//!
//! Every event, every change of an event's state (acknowledged, ended, cleared), every
//! camera health change and every output change gets an outbox entry **in the same write
//! transaction** as the record itself, so what is stored is what is delivered, and
//! nothing is delivered that was not stored.
//!
//! Each sink (an MQTT broker, a webhook) has a persistent cursor: the last entry it
//! delivered. A sink reads the entries after its cursor in order and moves the cursor
//! only once the far side accepted them, so delivery is ordered and at least once,
//! across restarts and power loss (a crash between delivery and the cursor's commit
//! delivers that entry again: receivers de-duplicate by the event id and its state). An
//! entry every sink has delivered is removed.
//!
//! A new sink starts at the head (it is not flooded with the history). A sink no longer
//! configured loses its cursor when the daemon registers the configured ones
//! ([`Store::register_outbox_sinks`]). While no sink is registered no entry is written.
//!
//! **The bound.** At most [`StoreConfig::outbox_max_entries`](crate::StoreConfig) entries
//! wait. Past it the oldest *non-critical* entry is dropped for each new one (its sinks
//! never see it); entries about critical events are kept however many wait, until they
//! age out with the events themselves (retention removes entries older than the events'
//! maximum age). Drops are counted (`outbox_dropped`, [`OutboxStatus::dropped`], the
//! metric) and audited: an `outbox.drop` row at most once an hour while drops go on,
//! each with the count since the previous row, and the rest by the next retention pass.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use safe_yolo_domain::alarm::CameraHealth;
use safe_yolo_domain::{CameraId, OutputId, ZoneId};
use serde::{Deserialize, Serialize};

use crate::error::{DbContext, StoreError};
use crate::model::{AuditResult, Event, NewAudit, Severity, UnixMs, now_ms};
use crate::schema::{
    KEY_OUTBOX_DROP_AUDIT_AT, KEY_OUTBOX_DROP_PENDING, KEY_OUTBOX_DROPPED, KEY_OUTBOX_SEQ, META,
    OUTBOX, OUTBOX_ROUTINE, OUTBOX_SINKS,
};
use crate::store::{Store, StoreTxn, dec, enc};

/// Default bound of the backlog (entries waiting for the slowest sink).
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// Largest batch [`Store::outbox_after`] returns.
pub const MAX_BATCH: usize = 1_000;
/// At most one `outbox.drop` audit row per this many ms while drops go on.
const DROP_AUDIT_EVERY_MS: u64 = 3_600_000;

/// What an entry tells the plant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboxMessage {
    /// An event was raised (stored for the first time).
    EventRaised {
        /// The event as committed.
        event: Box<Event>,
    },
    /// A stored event changed state: acknowledged, its condition ended, cleared.
    EventChanged {
        /// The event after the change.
        event: Box<Event>,
    },
    /// A camera's health changed.
    CameraHealth {
        /// The camera.
        camera: CameraId,
        /// Its health now.
        health: CameraHealth,
    },
    /// An output line was switched on or off by an alarm (or released).
    Output {
        /// The line.
        output: OutputId,
        /// On (`true`) or off.
        active: bool,
    },
    /// The persons in a zone changed (at most once a second per zone).
    ZoneCount {
        /// The zone.
        zone: ZoneId,
        /// Persons inside now.
        count: u32,
    },
    /// A test message an administrator asked for (every sink delivers it).
    Test {
        /// Who asked.
        by: String,
    },
}

impl OutboxMessage {
    /// The event this message is about, if any.
    pub fn event(&self) -> Option<&Event> {
        match self {
            Self::EventRaised { event } | Self::EventChanged { event } => Some(event),
            Self::CameraHealth { .. }
            | Self::Output { .. }
            | Self::ZoneCount { .. }
            | Self::Test { .. } => None,
        }
    }

    /// Entries about critical events survive the bound (see the module's documentation).
    pub fn is_critical(&self) -> bool {
        self.event()
            .is_some_and(|e| e.severity == Severity::Critical)
    }
}

/// One entry of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox: strictly increasing, never reused.
    pub seq: u64,
    /// When it was written.
    pub at: UnixMs,
    /// What it says.
    pub message: OutboxMessage,
}

/// The persistent delivery state of one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SinkCursor {
    /// The last entry delivered (entries after it are the sink's backlog).
    pub cursor: u64,
    /// Entries delivered since the sink was registered.
    pub delivered: u64,
    /// The event id of the last delivered entry about an event.
    pub last_event_id: Option<u64>,
    /// When the last entry was delivered.
    pub last_delivered_at: Option<UnixMs>,
    /// When the sink was registered.
    pub registered_at: UnixMs,
    /// The last delivery failure (the far side unreachable, refusing, timing out).
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it happened.
    #[serde(default)]
    pub last_error_at: Option<UnixMs>,
}

/// A sink's delivery status: its cursor and how many entries wait for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SinkStatus {
    /// The sink's name (`mqtt`, `webhook:<id>`).
    pub name: String,
    /// Its persistent state.
    #[serde(flatten)]
    pub cursor: SinkCursor,
    /// Entries waiting for it.
    pub backlog: u64,
}

/// The whole outbox, for the status page and the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OutboxStatus {
    /// The last entry written.
    pub head: u64,
    /// Entries kept (waiting for at least one sink).
    pub entries: u64,
    /// Entries dropped by the bound or aged out, ever.
    pub dropped: u64,
    /// Per sink.
    pub sinks: Vec<SinkStatus>,
}

fn meta_get(meta: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, StoreError> {
    Ok(meta
        .get(key)
        .db("read outbox meta")?
        .map_or(0, |v| v.value()))
}

/// The cursor of `sink`, if registered.
fn read_cursor(
    sinks: &impl ReadableTable<&'static str, &'static [u8]>,
    sink: &str,
) -> Result<Option<SinkCursor>, StoreError> {
    sinks
        .get(sink)
        .db("read outbox sink")?
        .map(|v| dec::<SinkCursor>("outbox_sinks", &sink, v.value()))
        .transpose()
}

/// The cursor of `sink`; [`StoreError::NotFound`] when it is not registered.
fn known_cursor(
    sinks: &impl ReadableTable<&'static str, &'static [u8]>,
    sink: &str,
) -> Result<SinkCursor, StoreError> {
    read_cursor(sinks, sink)?.ok_or_else(|| StoreError::NotFound {
        what: "outbox sink",
        key: sink.to_owned(),
    })
}

/// Appends `message` in `tx` if any sink is registered, enforcing the bound. Returns the
/// entry's seq (`None`: no sink, nothing written) and how many entries were dropped.
pub(crate) fn append(
    tx: &WriteTransaction,
    message: OutboxMessage,
    max_entries: u64,
) -> Result<Option<u64>, StoreError> {
    let sinks = tx.open_table(OUTBOX_SINKS).db("open outbox_sinks")?;
    if sinks.is_empty().db("count outbox sinks")? {
        return Ok(None);
    }
    drop(sinks);
    let now = now_ms();
    let mut meta = tx.open_table(META).db("open meta")?;
    let seq = meta_get(&meta, KEY_OUTBOX_SEQ)? + 1;
    meta.insert(KEY_OUTBOX_SEQ, seq).db("write outbox seq")?;
    let critical = message.is_critical();
    let entry = OutboxEntry {
        seq,
        at: now,
        message,
    };
    let mut outbox = tx.open_table(OUTBOX).db("open outbox")?;
    let mut routine = tx.open_table(OUTBOX_ROUTINE).db("open outbox_routine")?;
    outbox
        .insert(seq, enc("outbox", &entry)?.as_slice())
        .db("write outbox entry")?;
    if !critical {
        routine.insert(seq, ()).db("index outbox entry")?;
    }
    // The bound: the oldest non-critical entries go first; critical ones stay.
    let mut dropped = 0u64;
    let mut len = outbox.len().db("count outbox")?;
    while len > max_entries {
        let Some(first) = routine.first().db("oldest routine entry")? else {
            break;
        };
        let victim = first.0.value();
        drop(first);
        routine.remove(victim).db("drop routine entry")?;
        outbox.remove(victim).db("drop outbox entry")?;
        dropped += 1;
        len -= 1;
    }
    drop((outbox, routine));
    if dropped > 0 {
        let total = meta_get(&meta, KEY_OUTBOX_DROPPED)? + dropped;
        meta.insert(KEY_OUTBOX_DROPPED, total)
            .db("write outbox dropped")?;
        let pending = meta_get(&meta, KEY_OUTBOX_DROP_PENDING)? + dropped;
        let audited_at = meta_get(&meta, KEY_OUTBOX_DROP_AUDIT_AT)?;
        if now.saturating_sub(audited_at) >= DROP_AUDIT_EVERY_MS {
            drop(meta);
            audit_drops(tx, pending, "the backlog is full")?;
        } else {
            meta.insert(KEY_OUTBOX_DROP_PENDING, pending)
                .db("write outbox drop count")?;
        }
    }
    Ok(Some(seq))
}

/// Writes the `outbox.drop` audit row for `count` drops and resets the pending count.
fn audit_drops(tx: &WriteTransaction, count: u64, why: &str) -> Result<(), StoreError> {
    let now = now_ms();
    {
        let mut meta = tx.open_table(META).db("open meta")?;
        meta.insert(KEY_OUTBOX_DROP_PENDING, 0)
            .db("write outbox drop count")?;
        meta.insert(KEY_OUTBOX_DROP_AUDIT_AT, now)
            .db("write outbox drop audit time")?;
    }
    tracing::warn!(
        count,
        why,
        "integration outbox: entries dropped (oldest non-critical first)"
    );
    crate::store::append_audit_in(
        tx,
        NewAudit {
            at: now,
            actor: "system".into(),
            role: None,
            source: None,
            action: "outbox.drop".into(),
            target: "outbox".into(),
            before: None,
            after: Some(format!("{count} entries dropped: {why}")),
            result: AuditResult::Ok,
        },
    )?;
    Ok(())
}

/// Removes the entries every registered sink has delivered.
fn collect_delivered(tx: &WriteTransaction) -> Result<(), StoreError> {
    let sinks = tx.open_table(OUTBOX_SINKS).db("open outbox_sinks")?;
    let mut low: Option<u64> = None;
    for row in sinks.iter().db("scan outbox sinks")? {
        let (k, v) = row.db("read outbox sink")?;
        let c: SinkCursor = dec("outbox_sinks", &k.value(), v.value())?;
        low = Some(low.map_or(c.cursor, |l| l.min(c.cursor)));
    }
    drop(sinks);
    let mut outbox = tx.open_table(OUTBOX).db("open outbox")?;
    let mut routine = tx.open_table(OUTBOX_ROUTINE).db("open outbox_routine")?;
    match low {
        // No sink: nothing waits for anything.
        None => {
            outbox.retain(|_, _| false).db("empty outbox")?;
            routine.retain(|_, ()| false).db("empty outbox index")?;
        }
        Some(low) => {
            outbox
                .retain_in(..=low, |_, _| false)
                .db("remove delivered entries")?;
            routine
                .retain_in(..=low, |_, ()| false)
                .db("remove delivered index")?;
        }
    }
    Ok(())
}

// === impl StoreTxn (outbox) ===

impl StoreTxn {
    /// Appends an outbox entry in this transaction (with the record it describes).
    /// `None` when no sink is registered (nothing to deliver to).
    pub fn append_outbox(&mut self, message: OutboxMessage) -> Result<Option<u64>, StoreError> {
        let max = self.outbox_max_entries();
        append(self.tx(), message, max)
    }
}

// === impl Store (outbox) ===

impl Store {
    /// Records a camera health change or an output change for the integrations (in a
    /// transaction of its own: it is its own record).
    pub fn record_outbox(&self, message: OutboxMessage) -> Result<Option<u64>, StoreError> {
        let seq = self.transaction(|t| t.append_outbox(message))?;
        if let Some(seq) = seq {
            self.outbox_written(seq);
        }
        Ok(seq)
    }

    /// Registers the configured sinks: a new one starts at the head; a cursor whose sink
    /// is no longer configured is removed (so it does not hold entries forever). Returns
    /// every configured sink's cursor.
    pub fn register_outbox_sinks(&self, names: &[String]) -> Result<Vec<SinkCursor>, StoreError> {
        let out = self.transaction(|t| {
            let tx = t.tx();
            let head = {
                let meta = tx.open_table(META).db("open meta")?;
                meta_get(&meta, KEY_OUTBOX_SEQ)?
            };
            let mut sinks = tx.open_table(OUTBOX_SINKS).db("open outbox_sinks")?;
            let mut gone = Vec::new();
            for row in sinks.iter().db("scan outbox sinks")? {
                let name = row.db("read outbox sink")?.0.value().to_owned();
                if !names.contains(&name) {
                    gone.push(name);
                }
            }
            for name in &gone {
                sinks.remove(name.as_str()).db("remove outbox sink")?;
                tracing::info!(sink = %name, "integration no longer configured: its outbox cursor is removed");
            }
            let mut out = Vec::new();
            for name in names {
                let existing = read_cursor(&sinks, name)?;
                let cursor = match existing {
                    Some(c) => c,
                    None => {
                        let c = SinkCursor {
                            cursor: head,
                            delivered: 0,
                            last_event_id: None,
                            last_delivered_at: None,
                            registered_at: now_ms(),
                            last_error: None,
                            last_error_at: None,
                        };
                        sinks
                            .insert(name.as_str(), enc("outbox_sinks", &c)?.as_slice())
                            .db("write outbox sink")?;
                        tracing::info!(sink = %name, head, "integration registered: it delivers what happens from now on");
                        c
                    }
                };
                out.push(cursor);
            }
            drop(sinks);
            collect_delivered(tx)?;
            Ok(out)
        })?;
        Ok(out)
    }

    /// Up to `limit` (at most [`MAX_BATCH`]) entries after `sink`'s cursor, oldest first.
    pub fn outbox_after(&self, sink: &str, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let tx = self.begin_read()?;
        let sinks = tx.open_table(OUTBOX_SINKS).db("open outbox_sinks")?;
        let cursor = known_cursor(&sinks, sink)?;
        let outbox = tx.open_table(OUTBOX).db("open outbox")?;
        let mut out = Vec::new();
        for row in outbox
            .range(cursor.cursor.saturating_add(1)..)
            .db("scan outbox")?
        {
            if out.len() >= limit.clamp(1, MAX_BATCH) {
                break;
            }
            let (k, v) = row.db("read outbox entry")?;
            out.push(dec("outbox", &k.value(), v.value())?);
        }
        Ok(out)
    }

    /// `sink` delivered every entry up to `entry` (and the far side accepted it): its
    /// cursor moves there, durably, and entries every sink has delivered are removed.
    pub fn outbox_delivered(
        &self,
        sink: &str,
        entry: &OutboxEntry,
        count: u64,
    ) -> Result<SinkCursor, StoreError> {
        self.transaction(|t| {
            let tx = t.tx();
            let mut sinks = tx.open_table(OUTBOX_SINKS).db("open outbox_sinks")?;
            let mut c = known_cursor(&sinks, sink)?;
            if entry.seq <= c.cursor {
                return Ok(c);
            }
            c.cursor = entry.seq;
            c.delivered += count;
            c.last_delivered_at = Some(now_ms());
            if let Some(e) = entry.message.event() {
                c.last_event_id = Some(e.id);
            }
            sinks
                .insert(sink, enc("outbox_sinks", &c)?.as_slice())
                .db("write outbox sink")?;
            drop(sinks);
            collect_delivered(tx)?;
            Ok(c)
        })
    }

    /// Records why `sink` could not deliver. Written only when the reason changes (a sink
    /// retrying against a dead broker does not write once per attempt).
    pub fn outbox_failed(&self, sink: &str, error: &str) -> Result<(), StoreError> {
        self.transaction(|t| {
            let tx = t.tx();
            let mut sinks = tx.open_table(OUTBOX_SINKS).db("open outbox_sinks")?;
            let Some(mut c) = read_cursor(&sinks, sink)? else {
                return Ok(());
            };
            if c.last_error.as_deref() == Some(error) {
                return Ok(());
            }
            c.last_error = Some(error.to_owned());
            c.last_error_at = Some(now_ms());
            sinks
                .insert(sink, enc("outbox_sinks", &c)?.as_slice())
                .db("write outbox sink")?;
            Ok(())
        })
    }

    /// The outbox's head, size, drops and every sink's cursor and backlog.
    pub fn outbox_status(&self) -> Result<OutboxStatus, StoreError> {
        let tx = self.begin_read()?;
        let meta = tx.open_table(META).db("open meta")?;
        let outbox = tx.open_table(OUTBOX).db("open outbox")?;
        let sinks = tx.open_table(OUTBOX_SINKS).db("open outbox_sinks")?;
        let mut out = Vec::new();
        for row in sinks.iter().db("scan outbox sinks")? {
            let (k, v) = row.db("read outbox sink")?;
            let cursor: SinkCursor = dec("outbox_sinks", &k.value(), v.value())?;
            let mut backlog = 0u64;
            for r in outbox
                .range(cursor.cursor.saturating_add(1)..)
                .db("scan outbox")?
            {
                r.db("read outbox entry")?;
                backlog += 1;
            }
            out.push(SinkStatus {
                name: k.value().to_owned(),
                cursor,
                backlog,
            });
        }
        Ok(OutboxStatus {
            head: meta_get(&meta, KEY_OUTBOX_SEQ)?,
            entries: outbox.len().db("count outbox")?,
            dropped: meta_get(&meta, KEY_OUTBOX_DROPPED)?,
            sinks: out,
        })
    }

    /// Retention of the outbox: entries older than `cutoff` (the events' maximum age)
    /// are removed, critical or not, and drops not audited yet are. Returns how many
    /// entries aged out.
    pub(crate) fn prune_outbox(&self, cutoff: Option<UnixMs>) -> Result<u64, StoreError> {
        self.transaction(|t| {
            let tx = t.tx();
            let mut aged = Vec::new();
            {
                let outbox = tx.open_table(OUTBOX).db("open outbox")?;
                if let Some(cutoff) = cutoff {
                    for row in outbox.iter().db("scan outbox")? {
                        let (k, v) = row.db("read outbox entry")?;
                        let e: OutboxEntry = dec("outbox", &k.value(), v.value())?;
                        if e.at >= cutoff || aged.len() >= crate::retention::BATCH * 16 {
                            break;
                        }
                        aged.push(e.seq);
                    }
                }
            }
            let mut outbox = tx.open_table(OUTBOX).db("open outbox")?;
            let mut routine = tx.open_table(OUTBOX_ROUTINE).db("open outbox_routine")?;
            for seq in &aged {
                outbox.remove(*seq).db("age out outbox entry")?;
                routine.remove(*seq).db("age out outbox index")?;
            }
            drop((outbox, routine));
            let n = aged.len() as u64;
            let mut meta = tx.open_table(META).db("open meta")?;
            if n > 0 {
                let total = meta_get(&meta, KEY_OUTBOX_DROPPED)? + n;
                meta.insert(KEY_OUTBOX_DROPPED, total)
                    .db("write outbox dropped")?;
            }
            let pending = meta_get(&meta, KEY_OUTBOX_DROP_PENDING)?;
            drop(meta);
            if n > 0 || pending > 0 {
                let why = if n > 0 {
                    format!("{n} aged out with the events, {pending} for the full backlog")
                } else {
                    "the backlog is full".to_owned()
                };
                audit_drops(tx, n + pending, &why)?;
            }
            Ok(n)
        })
    }
}

//! The store as the rest of the appliance sees it: open, or not (yet).
//!
//! Storage degrades; the safety path does not. A store that cannot be opened at start
//! (unreadable file, full or read-only disk, ...) or whose writes fail does not stop the
//! daemon: [`Storage`] keeps the dispatcher's events in a bounded memory buffer, a keeper
//! task retries opening with a backoff ([`StorageSettings::retry_first`] doubling up to
//! [`StorageSettings::retry_max`]), and once the store takes writes again the buffered
//! events are written in the order they came, each one's [`Committed`] resolving to its id
//! then. Everything else that needs the database (the API's routes) gets
//! [`StoreError::Unavailable`] meanwhile, and [`Storage::status`] says what is going on.
//!
//! The buffer holds at most [`StorageSettings::buffer_events`] events; when it is full the
//! oldest is dropped (logged in full, counted, its caller told [`AckError::Dropped`]).
//! Snapshot bytes are bounded separately ([`StorageSettings::buffer_snapshot_bytes`]): past
//! it the oldest buffered events lose their snapshot first (counted), the event is kept.
//! Buffered events live in memory only: a restart while the store is unavailable loses
//! them (each one was logged when it was raised, and those left at shutdown are logged in
//! full).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::handle::{AckError, StoreHandle, SubmitError, WriterThread, log_unstored};
use crate::model::NewEvent;
use crate::store::Store;

/// Resolves to a submitted event's id once it is durably committed.
pub type Committed = Pin<Box<dyn Future<Output = Result<u64, AckError>> + Send>>;

/// Opens the store (blocking; run on the blocking pool). Called again by the keeper until
/// it succeeds.
pub type Opener = Arc<dyn Fn() -> Result<Store, StoreError> + Send + Sync>;

/// Called with the number of buffered events whenever it changes (a metric gauge).
pub type DepthObserver = Box<dyn Fn(u64) + Send + Sync>;

/// Bounds and timings of [`Storage`].
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// Most events kept in memory while the store cannot take them.
    pub buffer_events: usize,
    /// Most snapshot bytes kept in memory with them.
    pub buffer_snapshot_bytes: usize,
    /// First wait before opening (or writing) again after a failure.
    pub retry_first: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    /// How often retention runs on the open store.
    pub retention_every: Duration,
    /// The store writer's queue length.
    pub writer_queue: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            // 1000 events: a shift of a busy site's alarms.
            buffer_events: 1000,
            // 32 MiB: a few hundred annotated snapshots.
            buffer_snapshot_bytes: 32 << 20,
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            retention_every: Duration::from_secs(600),
            writer_queue: 1024,
        }
    }
}

/// What the storage is doing, for the status page, the health probe and the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct StorageStatus {
    /// The store is open.
    pub open: bool,
    /// Events waiting in memory for the store (written in order when it takes them).
    pub buffered_events: u64,
    /// Events dropped from the full buffer since start (each one logged in full).
    pub dropped_events: u64,
    /// Buffered events whose snapshot was dropped to bound memory, since start.
    pub dropped_snapshots: u64,
    /// Why the store is not open or its last write failed, while that lasts.
    pub problem: Option<String>,
}

impl StorageStatus {
    /// Open, nothing waiting, no problem.
    pub fn is_ok(&self) -> bool {
        self.open && self.buffered_events == 0 && self.problem.is_none()
    }
}

/// An event waiting in memory, and who waits for its id.
struct Pending {
    event: NewEvent,
    ack: oneshot::Sender<Result<u64, AckError>>,
}

/// The memory buffer.
#[derive(Default)]
struct Buffer {
    events: VecDeque<Pending>,
    snapshot_bytes: usize,
    /// The keeper has taken the front event and is writing it: new events queue behind.
    flushing: bool,
}

fn snapshot_len(e: &NewEvent) -> usize {
    e.snapshot_jpeg.as_ref().map_or(0, |j| j.len())
}

struct Inner {
    settings: StorageSettings,
    opener: Option<Opener>,
    handle: RwLock<Option<StoreHandle>>,
    writer: Mutex<Option<WriterThread>>,
    retention: Mutex<Option<tokio::task::JoinHandle<()>>>,
    buffer: Mutex<Buffer>,
    problem: Mutex<Option<String>>,
    dropped: AtomicU64,
    dropped_snapshots: AtomicU64,
    depth: Option<DepthObserver>,
    wake: Notify,
    stop: CancellationToken,
}

/// The store, open or not, with the memory buffer for events. Cheap to clone.
#[derive(Clone)]
pub struct Storage(Arc<Inner>);

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Storage {
    fn new(
        opener: Option<Opener>,
        settings: StorageSettings,
        depth: Option<DepthObserver>,
    ) -> Self {
        Self(Arc::new(Inner {
            settings,
            opener,
            handle: RwLock::new(None),
            writer: Mutex::new(None),
            retention: Mutex::new(None),
            buffer: Mutex::new(Buffer::default()),
            problem: Mutex::new(None),
            dropped: AtomicU64::new(0),
            dropped_snapshots: AtomicU64::new(0),
            depth,
            wake: Notify::new(),
            stop: CancellationToken::new(),
        }))
    }

    /// Opens the store with `opener` (off the reactor) and starts the keeper task. Never
    /// fails: a store that cannot be opened is logged loudly and reported by
    /// [`Storage::status`], events wait in memory, and the keeper retries. Call inside a
    /// tokio runtime; stop with [`Storage::close`].
    pub async fn start(
        opener: Opener,
        settings: StorageSettings,
        depth: Option<DepthObserver>,
    ) -> Self {
        let this = Self::new(Some(opener), settings, depth);
        if let Err(e) = this.try_open().await {
            tracing::error!(
                error = %safe_yolo_domain::error_chain(&e),
                buffer_events = this.0.settings.buffer_events,
                "STORE UNAVAILABLE: alarms and outputs keep working; events are kept in memory and written when the store opens (retrying); the API answers 503 where it needs the store"
            );
            this.set_problem(&e);
        }
        tokio::spawn(this.clone().keep());
        this
    }

    /// Storage over a store already opened and started by the caller (who keeps its
    /// writer thread). Failed writes are buffered and retried like [`Storage::start`]'s.
    /// Call inside a tokio runtime.
    pub fn with_handle(handle: StoreHandle, settings: StorageSettings) -> Self {
        let this = Self::new(None, settings, None);
        *this.0.handle.write() = Some(handle);
        tokio::spawn(this.clone().keep());
        this
    }

    /// The open store, if it is open.
    pub fn current(&self) -> Option<StoreHandle> {
        self.0.handle.read().clone()
    }

    /// Appends an audit row for a change that already took effect (a plant system's,
    /// a wired input's), best effort: a closed store or a failed write is logged, not
    /// returned (the change stands either way).
    pub async fn audit_best_effort(&self, row: crate::NewAudit) {
        let (actor, action) = (row.actor.clone(), row.action.clone());
        let Some(store) = self.current() else {
            tracing::warn!(actor, action, "store not open: a change is not audited");
            return;
        };
        if let Err(e) = store
            .run(move |s| s.transaction(|t| t.append_audit(row)))
            .await
        {
            tracing::warn!(actor, action, error = %safe_yolo_domain::error_chain(&e), "cannot audit a change");
        }
    }

    /// The open store, or [`StoreError::Unavailable`] saying why it is not.
    pub fn handle(&self) -> Result<StoreHandle, StoreError> {
        self.current().ok_or_else(|| StoreError::Unavailable {
            reason: self
                .0
                .problem
                .lock()
                .clone()
                .unwrap_or_else(|| "not open".to_owned()),
        })
    }

    /// What the storage is doing.
    pub fn status(&self) -> StorageStatus {
        StorageStatus {
            open: self.0.handle.read().is_some(),
            buffered_events: self.0.buffer.lock().events.len() as u64,
            dropped_events: self.0.dropped.load(Ordering::Relaxed),
            dropped_snapshots: self.0.dropped_snapshots.load(Ordering::Relaxed),
            problem: self.0.problem.lock().clone(),
        }
    }

    /// Queues `event` without waiting. Goes to the store's writer when the store is open
    /// and nothing waits in memory (so the order is kept), else to the memory buffer. A
    /// full writer queue hands the event back ([`SubmitError::QueueFull`]); a commit that
    /// fails puts the event in the buffer, to be retried. Call inside a tokio runtime.
    pub fn submit(&self, event: NewEvent) -> Result<Committed, SubmitError> {
        let Some(h) = self.direct() else {
            return Ok(self.buffer(event));
        };
        let keep = event.clone();
        match h.try_submit(event) {
            Ok(ticket) => {
                // Watched on a task of its own, so a failed commit goes to memory
                // whether or not the caller polls the result.
                let this = self.clone();
                let (tx, rx) = oneshot::channel();
                tokio::spawn(async move {
                    let result = match ticket.committed().await {
                        Ok(id) => Ok(id),
                        Err(e) => {
                            this.write_failed(&e);
                            this.buffer(keep).await
                        }
                    };
                    let _ = tx.send(result);
                });
                Ok(Box::pin(async move {
                    rx.await.unwrap_or(Err(AckError::WriterGone))
                }))
            }
            Err(SubmitError::WriterGone { event }) => Ok(self.buffer(*event)),
            Err(full @ SubmitError::QueueFull { .. }) => Err(full),
        }
    }

    /// Like [`Storage::submit`], waiting for room in the writer's queue.
    pub async fn submit_waiting(&self, event: NewEvent) -> Result<u64, AckError> {
        let Some(h) = self.direct() else {
            return self.buffer(event).await;
        };
        let keep = event.clone();
        match h.record(event).await {
            Ok(id) => Ok(id),
            Err(e) => {
                self.write_failed(&e);
                self.buffer(keep).await
            }
        }
    }

    /// Closes the store at shutdown: stops the keeper, logs (in full) the events still
    /// in memory, drops this handle and joins the writer once every handle is gone.
    pub async fn close(&self) {
        self.0.stop.cancel();
        let left: Vec<Pending> = {
            let mut b = self.0.buffer.lock();
            b.snapshot_bytes = 0;
            b.events.drain(..).collect()
        };
        self.observe_depth(0);
        for p in left {
            log_unstored(
                &p.event,
                &"the store did not take it before shutdown",
                "BUFFERED EVENT NOT STORED",
            );
            let _ = p.ack.send(Err(AckError::WriterGone));
        }
        if let Some(r) = self.0.retention.lock().take() {
            r.abort();
        }
        drop(self.0.handle.write().take());
        let writer = self.0.writer.lock().take();
        if let Some(w) = writer
            && tokio::task::spawn_blocking(move || w.join()).await.is_err()
        {
            tracing::error!("store writer join panicked");
        }
    }

    /// The open store, if events may go to it directly (nothing waits in memory).
    fn direct(&self) -> Option<StoreHandle> {
        let b = self.0.buffer.lock();
        if b.events.is_empty() && !b.flushing {
            self.current()
        } else {
            None
        }
    }

    /// Puts `event` at the back of the memory buffer, within its bounds; resolves when
    /// the keeper has written it.
    fn buffer(&self, mut event: NewEvent) -> Committed {
        let s = &self.0.settings;
        let (ack, rx) = oneshot::channel();
        let mut dropped = None;
        let mut stripped = 0u64;
        let depth = {
            let mut b = self.0.buffer.lock();
            if b.events.len() >= s.buffer_events.max(1)
                && let Some(old) = b.events.pop_front()
            {
                b.snapshot_bytes = b.snapshot_bytes.saturating_sub(snapshot_len(&old.event));
                dropped = Some(old);
            }
            b.snapshot_bytes += snapshot_len(&event);
            // Past the snapshot budget the newest keeps its picture longest.
            if b.snapshot_bytes > s.buffer_snapshot_bytes && snapshot_len(&event) > 0 {
                let mut over = b.snapshot_bytes - s.buffer_snapshot_bytes;
                for p in &mut b.events {
                    if over == 0 {
                        break;
                    }
                    if let Some(j) = p.event.snapshot_jpeg.take() {
                        over = over.saturating_sub(j.len());
                        stripped += 1;
                    }
                }
                if over > 0 {
                    event.snapshot_jpeg = None;
                    stripped += 1;
                }
                b.snapshot_bytes = b
                    .events
                    .iter()
                    .map(|p| snapshot_len(&p.event))
                    .sum::<usize>()
                    + snapshot_len(&event);
            }
            b.events.push_back(Pending { event, ack });
            b.events.len()
        };
        if let Some(old) = dropped {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
            log_unstored(
                &old.event,
                &format!(
                    "the memory buffer is full ({} events) and the store is unavailable",
                    s.buffer_events
                ),
                "BUFFERED EVENT DROPPED (oldest first)",
            );
            let _ = old.ack.send(Err(AckError::Dropped));
        }
        if stripped > 0 {
            self.0
                .dropped_snapshots
                .fetch_add(stripped, Ordering::Relaxed);
            tracing::warn!(
                snapshots = stripped,
                budget_bytes = s.buffer_snapshot_bytes,
                "buffered events' snapshots dropped to bound memory (the events are kept)"
            );
        }
        if depth == 1 {
            tracing::warn!("the store is not taking events: keeping them in memory");
        }
        self.observe_depth(depth);
        self.0.wake.notify_one();
        Box::pin(async move { rx.await.unwrap_or(Err(AckError::WriterGone)) })
    }

    fn observe_depth(&self, depth: usize) {
        if let Some(f) = &self.0.depth {
            f(depth as u64);
        }
    }

    fn set_problem(&self, e: &dyn std::error::Error) {
        *self.0.problem.lock() = Some(safe_yolo_domain::error_chain(e).to_string());
    }

    fn write_failed(&self, e: &AckError) {
        tracing::error!(
            error = %safe_yolo_domain::error_chain(e),
            "a store write failed: the event is kept in memory and written again"
        );
        self.set_problem(e);
    }

    /// Opens the store and starts its writer and retention.
    async fn try_open(&self) -> Result<(), StoreError> {
        let Some(opener) = self.0.opener.clone() else {
            return Err(StoreError::Unavailable {
                reason: "no way to open it was given".to_owned(),
            });
        };
        let store = tokio::task::spawn_blocking(move || opener())
            .await
            .map_err(|source| StoreError::TaskFailed { source })??;
        tracing::info!(report = ?store.open_report(), "store open");
        let (handle, writer) = StoreHandle::start(store, self.0.settings.writer_queue)?;
        let retention = handle.spawn_retention(self.0.settings.retention_every);
        *self.0.writer.lock() = Some(writer);
        *self.0.retention.lock() = Some(retention);
        *self.0.handle.write() = Some(handle);
        Ok(())
    }

    /// Waits `d` unless stopped first; true when stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            () = self.0.stop.cancelled() => true,
        }
    }

    /// The keeper: opens the store while it is not open, writes the buffer in order while
    /// it is, backing off after each failure.
    async fn keep(self) {
        let s = self.0.settings.clone();
        let mut backoff = s.retry_first;
        let mut was_down = self.current().is_none();
        loop {
            if self.current().is_none() {
                if let Err(e) = self.try_open().await {
                    self.set_problem(&e);
                    tracing::warn!(
                        error = %safe_yolo_domain::error_chain(&e),
                        buffered = self.0.buffer.lock().events.len(),
                        retry_in_s = backoff.as_secs_f64(),
                        "store still unavailable"
                    );
                    if self.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(s.retry_max);
                    continue;
                }
                let waiting = self.0.buffer.lock().events.len();
                tracing::warn!(
                    buffered = waiting,
                    "store open again: writing the events kept in memory, in order"
                );
                was_down = true;
            }
            match self.flush().await {
                Ok(written) => {
                    backoff = s.retry_first;
                    if written > 0 || was_down {
                        tracing::info!(written, "storage healthy again: nothing waits in memory");
                    }
                    was_down = false;
                    *self.0.problem.lock() = None;
                    tokio::select! {
                        () = self.0.wake.notified() => {}
                        () = self.0.stop.cancelled() => return,
                    }
                }
                Err(e) => {
                    self.set_problem(&e);
                    was_down = true;
                    tracing::warn!(
                        error = %safe_yolo_domain::error_chain(&e),
                        buffered = self.0.buffer.lock().events.len(),
                        retry_in_s = backoff.as_secs_f64(),
                        "the store does not take the buffered events yet"
                    );
                    if self.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(s.retry_max);
                }
            }
        }
    }

    /// Writes the buffered events one by one, oldest first; returns how many.
    async fn flush(&self) -> Result<usize, AckError> {
        let Some(h) = self.current() else {
            return Ok(0);
        };
        let mut written = 0;
        loop {
            let (next, depth) = {
                let mut b = self.0.buffer.lock();
                match b.events.pop_front() {
                    Some(p) => {
                        b.flushing = true;
                        b.snapshot_bytes = b.snapshot_bytes.saturating_sub(snapshot_len(&p.event));
                        let depth = b.events.len();
                        (p, depth)
                    }
                    None => {
                        b.flushing = false;
                        return Ok(written);
                    }
                }
            };
            match h.record(next.event.clone()).await {
                Ok(id) => {
                    self.observe_depth(depth);
                    let _ = next.ack.send(Ok(id));
                    written += 1;
                }
                Err(e) => {
                    let mut b = self.0.buffer.lock();
                    b.snapshot_bytes += snapshot_len(&next.event);
                    b.events.push_front(next);
                    b.flushing = false;
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;
    use safe_yolo_domain::{CameraId, RuleId, Severity};

    fn event(n: u64, jpeg: Option<usize>) -> NewEvent {
        NewEvent {
            camera: CameraId::new("gate").unwrap(),
            rule: RuleId::new("no-entry").unwrap(),
            zone: None,
            track: Some(n),
            kind: "intrusion".into(),
            severity: Severity::Critical,
            started_at: 1_000 + n,
            ended_at: None,
            message: format!("alarm {n}"),
            details: None,
            snapshot_jpeg: jpeg.map(|len| Arc::from(vec![7u8; len])),
            cleared: false,
        }
    }

    fn settings() -> StorageSettings {
        StorageSettings {
            buffer_events: 3,
            buffer_snapshot_bytes: 250,
            retry_first: Duration::from_millis(20),
            retry_max: Duration::from_millis(50),
            ..StorageSettings::default()
        }
    }

    /// The state directory's database path is a directory: the store cannot open. Events
    /// are buffered (the oldest dropped past the bound, snapshots dropped past theirs);
    /// once the blocking directory is gone, the keeper opens the store and writes the
    /// buffered events in order, resolving each one's id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_wait_in_memory_until_the_store_opens_then_are_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join(crate::store::DB_FILE);
        std::fs::create_dir_all(blocker.join("not-a-database")).unwrap();
        let config = StoreConfig::new(dir.path());
        let depth = Arc::new(AtomicU64::new(u64::MAX));
        let seen = Arc::clone(&depth);
        let storage = Storage::start(
            Arc::new(move || Store::open(config.clone())),
            settings(),
            Some(Box::new(move |d| seen.store(d, Ordering::Relaxed))),
        )
        .await;
        let status = storage.status();
        assert!(!status.open && !status.is_ok());
        assert!(status.problem.is_some());
        assert!(matches!(
            storage.handle(),
            Err(StoreError::Unavailable { .. })
        ));
        // Four events, bound three: the first is dropped.
        let first = storage.submit(event(0, None)).unwrap();
        let later: Vec<Committed> = [(1, Some(100)), (2, Some(100)), (3, Some(100))]
            .into_iter()
            .map(|(n, j)| storage.submit(event(n, j)).unwrap())
            .collect();
        assert!(matches!(first.await, Err(AckError::Dropped)));
        let status = storage.status();
        assert_eq!((status.buffered_events, status.dropped_events), (3, 1));
        assert_eq!(status.dropped_snapshots, 1, "300 bytes over a 250 budget");
        assert_eq!(depth.load(Ordering::Relaxed), 3);
        // The fault goes away.
        std::fs::remove_dir_all(&blocker).unwrap();
        let mut ids = Vec::new();
        for c in later {
            ids.push(
                tokio::time::timeout(Duration::from_secs(30), c)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(ids, [1, 2, 3]);
        let h = storage.handle().unwrap();
        let tracks: Vec<_> = (1..=3)
            .map(|id| h.store().get_event(id).unwrap().unwrap())
            .map(|e| (e.track, e.snapshot.stored().is_some()))
            .collect();
        assert_eq!(
            tracks,
            [(Some(1), false), (Some(2), true), (Some(3), true)],
            "in order; the oldest lost its snapshot"
        );
        // Healthy again: nothing waits, a new event goes straight through.
        let id = storage.submit(event(4, None)).unwrap().await.unwrap();
        assert_eq!(id, 4);
        let status = storage.status();
        assert_eq!(depth.load(Ordering::Relaxed), 0);
        assert!(status.open && status.buffered_events == 0, "{status:?}");
        drop(h);
        storage.close().await;
    }

    /// Writes that fail on an open store (here: the snapshot's place is taken by a
    /// directory, so the commit fails with an I/O error every time) put the event in
    /// memory; later events queue behind it; once the obstacle is gone the keeper
    /// writes them, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_writes_on_an_open_store_wait_in_memory_and_are_retried() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let (handle, _writer) = StoreHandle::start(store, 16).unwrap();
        let obstacle = dir
            .path()
            .join(crate::store::SNAPSHOT_DIR)
            .join(crate::snapshots::file_name(1));
        std::fs::create_dir_all(obstacle.join("in-the-way")).unwrap();
        let storage = Storage::with_handle(handle, settings());
        let first = storage.submit(event(1, Some(100))).unwrap();
        // The commit fails (three attempts), the event goes to memory.
        let waiting = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if storage.status().buffered_events == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waiting.is_ok(), "{:?}", storage.status());
        let status = storage.status();
        assert!(status.open && status.problem.is_some(), "{status:?}");
        let second = storage.submit(event(2, None)).unwrap();
        assert_eq!(
            storage.status().buffered_events,
            2,
            "queued behind the first"
        );
        std::fs::remove_dir_all(&obstacle).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(30), first)
            .await
            .unwrap()
            .unwrap();
        let second = tokio::time::timeout(Duration::from_secs(30), second)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first, second), (1, 2));
        let h = storage.handle().unwrap();
        let e1 = h.store().get_event(1).unwrap().unwrap();
        assert_eq!(e1.track, Some(1));
        assert!(e1.snapshot.stored().is_some(), "written with its snapshot");
        drop(h);
        storage.close().await;
    }
}

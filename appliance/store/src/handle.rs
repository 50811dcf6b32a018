//! The async face of the store: a dedicated writer thread with a bounded queue for events,
//! and `spawn_blocking` for everything else.
//!
//! The pipeline submits with [`StoreHandle::try_submit`], which never waits: when the queue
//! is full the event is handed back (and counted) so the caller can keep it, retry or raise
//! an alarm: it is never dropped silently. Callers that need durability await the
//! returned [`Ticket`], which resolves after the commit (the writer groups everything
//! queued into one transaction, then acknowledges each event).

use safe_yolo_domain::Named;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::model::{Event, EventPage, EventQuery, NewEvent, UnixMs};
use crate::retention::PruneReport;
use crate::store::{Store, StoreMetrics, StoreTxn};

/// Queue length of the default writer: 40 s of a 100 events/s alarm storm.
pub const DEFAULT_QUEUE: usize = 4096;
/// Most events committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Attempts per batch before its events are reported failed.
const ATTEMPTS: u32 = 3;

type Ack = oneshot::Sender<Result<u64, Arc<StoreError>>>;

struct Job {
    event: NewEvent,
    ack: Ack,
}

/// Why an event was not queued. The event is handed back in either case.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full (an alarm storm beyond its capacity, or a stalled disk).
    #[error("the store queue is full")]
    QueueFull {
        /// The event, for the caller to keep or retry.
        event: Box<NewEvent>,
    },
    /// The writer thread has stopped.
    #[error("the store writer has stopped")]
    WriterGone {
        /// The event, for the caller to keep or retry.
        event: Box<NewEvent>,
    },
}

/// Why a queued event was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AckError {
    /// The commit failed after retries; the event was logged at error level.
    #[error("event commit failed")]
    Failed(#[source] Arc<StoreError>),
    /// The writer stopped before the event was committed.
    #[error("the store writer stopped before committing the event")]
    WriterGone,
    /// The store could not take events for so long that the in-memory buffer filled up,
    /// and this event, the oldest, was dropped (logged in full).
    #[error("the event was dropped from the full in-memory buffer while the store was unavailable")]
    Dropped,
}

/// Resolves to the event id once the event is durably committed.
#[derive(Debug)]
pub struct Ticket(oneshot::Receiver<Result<u64, Arc<StoreError>>>);

impl Ticket {
    /// Waits for the commit.
    pub async fn committed(self) -> Result<u64, AckError> {
        match self.0.await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(AckError::Failed(e)),
            Err(_) => Err(AckError::WriterGone),
        }
    }

    /// Waits for the commit from a thread outside the async runtime.
    pub fn blocking_committed(self) -> Result<u64, AckError> {
        match self.0.blocking_recv() {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(AckError::Failed(e)),
            Err(_) => Err(AckError::WriterGone),
        }
    }
}

/// A cloneable async handle to the store.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    store: Arc<Store>,
    tx: mpsc::Sender<Job>,
}

/// The writer thread; join it after dropping every handle to flush the queue.
#[derive(Debug)]
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits until the writer has committed everything queued and exited (blocking).
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("store writer thread panicked");
        }
    }
}

// === impl StoreHandle ===

impl StoreHandle {
    /// Starts the writer thread with a queue of `queue` events.
    pub fn start(store: Store, queue: usize) -> Result<(Self, WriterThread), StoreError> {
        let store = Arc::new(store);
        let (tx, rx) = mpsc::channel(queue.max(1));
        let writer_store = Arc::clone(&store);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&writer_store, rx))
            .map_err(|e| StoreError::io("spawn writer thread", "store-writer", e))?;
        Ok((Self { store, tx }, WriterThread(thread)))
    }

    /// The blocking store, for code that already runs on its own thread.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Counters and flags.
    pub fn metrics(&self) -> &Arc<StoreMetrics> {
        self.store.metrics()
    }

    /// Queues an event without waiting. Never blocks; on a full queue the event comes back
    /// in the error and `events_rejected_queue_full` is counted.
    pub fn try_submit(&self, event: NewEvent) -> Result<Ticket, SubmitError> {
        let (ack, rx) = oneshot::channel();
        // Counted before sending so the writer's decrement can never come first.
        self.metrics().queue_depth.fetch_add(1, Ordering::Relaxed);
        let sent = self.tx.try_send(Job { event, ack });
        if sent.is_err() {
            self.metrics().queue_depth.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(Ticket(rx)),
            Err(mpsc::error::TrySendError::Full(job)) => {
                self.metrics()
                    .events_rejected_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(camera = %job.event.camera, rule = %job.event.rule, "store queue full; event handed back to the caller");
                Err(SubmitError::QueueFull {
                    event: Box::new(job.event),
                })
            }
            Err(mpsc::error::TrySendError::Closed(job)) => Err(SubmitError::WriterGone {
                event: Box::new(job.event),
            }),
        }
    }

    /// Queues an event, waiting for room, and waits for its commit.
    pub async fn record(&self, event: NewEvent) -> Result<u64, AckError> {
        let (ack, rx) = oneshot::channel();
        self.metrics().queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Job { event, ack }).await.is_err() {
            self.metrics().queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(AckError::WriterGone);
        }
        Ticket(rx).committed().await
    }

    /// Like [`StoreHandle::record`], for threads outside the async runtime.
    pub fn blocking_record(&self, event: NewEvent) -> Result<u64, AckError> {
        let (ack, rx) = oneshot::channel();
        self.metrics().queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.blocking_send(Job { event, ack }).is_err() {
            self.metrics().queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(AckError::WriterGone);
        }
        Ticket(rx).blocking_committed()
    }

    /// Runs blocking store work on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|source| StoreError::TaskFailed { source })?
    }

    /// Runs `f` in one write transaction off the reactor (change + audit row together).
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut StoreTxn) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |s| s.transaction(f)).await
    }

    /// An event by id.
    pub async fn get_event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        self.run(move |s| s.get_event(id)).await
    }

    /// A page of events.
    pub async fn query_events(&self, q: EventQuery) -> Result<EventPage, StoreError> {
        self.run(move |s| s.query_events(&q)).await
    }

    /// One retention pass.
    pub async fn prune(&self, now: UnixMs) -> Result<PruneReport, StoreError> {
        self.run(move |s| s.prune(now)).await
    }

    /// Spawns a task that runs retention every `every`, and early when a snapshot was
    /// refused for the quota or a full disk. The task holds no handle, so it does not keep
    /// the writer alive: it ends at its next wake-up once the store has been dropped (or
    /// abort it through the returned handle).
    pub fn spawn_retention(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.store);
        let wake = Arc::clone(self.store.prune_wanted());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = wake.notified() => {}
                }
                let Some(store) = weak.upgrade() else { break };
                let pass =
                    tokio::task::spawn_blocking(move || store.prune(crate::model::now_ms())).await;
                match pass {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "retention pass failed"),
                    Err(e) => tracing::error!(error = %e, "retention task did not complete"),
                }
            }
        })
    }
}

/// Receives jobs, commits them in groups and acknowledges each one.
fn writer_loop(store: &Store, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        store
            .metrics()
            .queue_depth
            .fetch_sub(jobs.len() as u64, Ordering::Relaxed);
        commit_jobs(store, &mut jobs);
    }
    tracing::info!("store writer stopped: queue closed and drained");
}

fn commit_jobs(store: &Store, jobs: &mut Vec<Job>) {
    let (events, acks): (Vec<NewEvent>, Vec<Ack>) =
        jobs.drain(..).map(|j| (j.event, j.ack)).unzip();
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match store.insert_events(&events) {
            Ok(ids) => break Ok(ids),
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, events = events.len(), "event commit failed; retrying");
                #[allow(
                    clippy::disallowed_methods,
                    reason = "dedicated writer thread, not a tokio worker"
                )]
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
            }
            Err(e) => break Err(Arc::new(e)),
        }
    };
    match result {
        Ok(ids) => {
            for (ack, id) in acks.into_iter().zip(ids) {
                // The caller may have stopped waiting; the event is committed regardless.
                let _ = ack.send(Ok(id));
            }
        }
        Err(e) => {
            store
                .metrics()
                .event_write_failures
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            for (ev, ack) in events.iter().zip(acks) {
                // Never silent: the full event goes to the log, and the caller gets the error.
                log_unstored(ev, &e, "event could not be stored");
                let _ = ack.send(Err(Arc::clone(&e)));
            }
        }
    }
}

/// Logs an event that did not reach the database, in full (the log is then its only
/// record, or the last word before it is retried from memory).
pub(crate) fn log_unstored(ev: &NewEvent, error: &dyn std::fmt::Display, what: &'static str) {
    tracing::error!(
        error = %error,
        camera = %ev.camera,
        rule = %ev.rule,
        zone = ?ev.zone.as_ref().map(|z| z.as_str()),
        track = ?ev.track,
        kind = %ev.kind,
        severity = ev.severity.as_str(),
        started_at = ev.started_at,
        message = %ev.message,
        details = ?ev.details,
        "{what}"
    );
}

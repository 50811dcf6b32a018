//! The delivery loop every sink shares: read the entries after the sink's cursor from
//! the store, hand them to the sink one at a time, in order, and move the cursor once
//! the far side accepted each. A failure keeps the cursor where it is, records the
//! reason in the store and reconnects with a backoff (1 s doubling to 30 s), so what was
//! not acknowledged is sent again: at least once, in order.
//!
//! The loop runs on its own task and only ever reads the store: the alarm path never
//! waits for it, and a dead broker costs nothing but a growing (bounded) outbox.

use std::future::Future;
use std::time::Duration;

use safe_yolo_store::{OutboxEntry, Storage, StoreHandle};
use tokio_util::sync::CancellationToken;

/// Entries read per store query.
const BATCH: usize = 64;
/// How long one entry may take to be accepted before the connection is given up.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an idle sink looks at the outbox even without a notice (a store that
/// opened late has a new notice channel).
const POLL: Duration = Duration::from_secs(1);

/// Why a sink could not deliver (the text is what the status shows).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// One destination of the outbox.
pub trait Sink: Send {
    /// The cursor's name in the store (`mqtt`, `webhook:<id>`).
    fn name(&self) -> &str;

    /// Connects (a fresh session each time: nothing of an earlier one is reused).
    fn connect(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Delivers one entry and resolves once the far side accepted it.
    fn deliver(
        &mut self,
        entry: &OutboxEntry,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Keeps the connection alive while nothing is to be sent; resolves only when it
    /// fails. Cancelled whenever there is something to send.
    fn idle(&mut self) -> impl Future<Output = SinkError> + Send;

    /// Says goodbye (best effort) at shutdown.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Runs `sink` until `stop` is cancelled.
pub async fn run<S: Sink>(mut sink: S, storage: Storage, stop: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    'session: loop {
        if stop.is_cancelled() {
            break;
        }
        let Some(store) = wait_for_store(&storage, &stop).await else {
            break;
        };
        let connected = tokio::select! {
            r = sink.connect() => r,
            () = stop.cancelled() => break,
        };
        if let Err(e) = connected {
            failed(&store, sink.name(), &e, backoff).await;
            if sleep_or_stop(backoff, &stop).await {
                break;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        tracing::info!(sink = sink.name(), "integration connected");
        let mut head = store.store().watch_outbox();
        loop {
            let name = sink.name().to_owned();
            let batch = store.run(move |s| s.outbox_after(&name, BATCH)).await;
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(sink = sink.name(), error = %safe_yolo_domain::error_chain(&e), "cannot read the outbox");
                    if sleep_or_stop(POLL, &stop).await {
                        break 'session;
                    }
                    continue 'session;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = head.changed() => {}
                    () = tokio::time::sleep(POLL) => {}
                    e = sink.idle() => {
                        failed(&store, sink.name(), &e, backoff).await;
                        if sleep_or_stop(backoff, &stop).await {
                            break 'session;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue 'session;
                    }
                    () = stop.cancelled() => break 'session,
                }
                continue;
            }
            for entry in batch {
                let result = tokio::select! {
                    r = tokio::time::timeout(DELIVERY_TIMEOUT, sink.deliver(&entry)) => r,
                    () = stop.cancelled() => break 'session,
                };
                let err = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some(SinkError(format!(
                        "not accepted within {} s",
                        DELIVERY_TIMEOUT.as_secs()
                    ))),
                };
                if let Some(e) = err {
                    failed(&store, sink.name(), &e, backoff).await;
                    if sleep_or_stop(backoff, &stop).await {
                        break 'session;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue 'session;
                }
                backoff = Duration::from_secs(1);
                let name = sink.name().to_owned();
                let moved = store
                    .run(move |s| s.outbox_delivered(&name, &entry, 1))
                    .await;
                if let Err(e) = moved {
                    // Delivered but not recorded: it is sent again later (at least once).
                    tracing::warn!(sink = sink.name(), error = %safe_yolo_domain::error_chain(&e), "cannot record a delivery");
                }
            }
        }
    }
    sink.close().await;
    tracing::info!(sink = sink.name(), "integration stopped");
}

/// The open store, waited for (it may open late); `None` once stopped.
async fn wait_for_store(storage: &Storage, stop: &CancellationToken) -> Option<StoreHandle> {
    loop {
        if let Some(h) = storage.current() {
            return Some(h);
        }
        if sleep_or_stop(POLL, stop).await {
            return None;
        }
    }
}

/// Logs and records a failure.
async fn failed(store: &StoreHandle, sink: &str, e: &SinkError, retry_in: Duration) {
    tracing::warn!(
        sink,
        error = %e,
        retry_in_s = retry_in.as_secs(),
        "integration cannot deliver; the outbox keeps the entries"
    );
    let (name, text) = (sink.to_owned(), e.to_string());
    if let Err(e) = store.run(move |s| s.outbox_failed(&name, &text)).await {
        tracing::debug!(error = %e, "cannot record a delivery failure");
    }
}

/// Sleeps `d`; `true` when stopped meanwhile.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = stop.cancelled() => true,
    }
}

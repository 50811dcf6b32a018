//! The dispatcher's two seams: where events go ([`EventSink`]) and what drives the
//! sirens and relays ([`AlarmOutputs`]).
//!
//! The real implementations are the store's and the outputs' handles themselves;
//! [`memory`](super::memory) has stand-ins that record every call, for tests that
//! need neither a database nor GPIO.

use std::future::Future;
use std::time::SystemTime;

use safe_yolo_domain::OutputId;
use safe_yolo_outputs::{AckTarget, ActionSpec, OutputsError, OutputsHandle, Source};
pub use safe_yolo_store::Committed;
use safe_yolo_store::{
    AckError, AlarmKey, Event, NewAudit, NewEvent, Storage, StoreError, StoreHandle, SubmitError,
    UnixMs,
};

/// Where the dispatcher's events go: the daemon's [`Storage`] (the store's writer queue,
/// or its memory buffer while the store is unavailable), the store's handle itself, or an
/// in-memory stand-in.
pub trait EventSink: Send + Sync + 'static {
    /// Queues `event` without waiting. A full queue (or a stopped writer) hands the
    /// event back in the error.
    fn submit(&self, event: NewEvent) -> Result<Committed, SubmitError>;

    /// Submits `event`, waiting for room in the queue; resolves to its id once committed.
    fn submit_waiting(&self, event: NewEvent)
    -> impl Future<Output = Result<u64, AckError>> + Send;

    /// Records that the condition of event `id` ended at `at`, clearing the event if it
    /// was already acknowledged ([`Event::end_alarm`]), in one transaction.
    fn end(&self, id: u64, at: UnixMs) -> impl Future<Output = Result<Event, StoreError>> + Send;

    /// Acknowledges event `id` by `by` at `at`, clearing it if its condition has ended
    /// ([`Event::acknowledge_alarm`]). `audit`, if given, is committed in the same
    /// transaction with its `before` and `after` set to the event's state names.
    fn acknowledge(
        &self,
        id: u64,
        by: &str,
        at: UnixMs,
        audit: Option<NewAudit>,
    ) -> impl Future<Output = Result<Event, StoreError>> + Send;

    /// Ids of the events not cleared yet, oldest first.
    fn open_ids(&self) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;
}

/// The sirens and relays, as the dispatcher drives them.
pub trait AlarmOutputs: Send + Sync + 'static {
    /// Starts `action` on `outputs` for `source` without waiting (the command is
    /// queued). `origin` is the capture time of the frame that raised the alarm, for
    /// the glass-to-output latency.
    fn activate(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
        origin: Option<SystemTime>,
    ) -> Result<(), OutputsError>;

    /// Ends the actions the alarm `key` started (silences its sirens, releases its
    /// latched relays), whichever boot raised it; resolves to how many ended.
    fn release(&self, key: AlarmKey) -> impl Future<Output = Result<usize, OutputsError>> + Send;
}

/// The `before`/`after` columns of an acknowledgement's audit row.
pub(crate) fn audited(mut audit: NewAudit, before: Option<&Event>, after: &Event) -> NewAudit {
    audit.before = before.map(|e| e.state.name().to_owned());
    audit.after = Some(after.state.name().to_owned());
    audit
}

impl EventSink for StoreHandle {
    fn submit(&self, event: NewEvent) -> Result<Committed, SubmitError> {
        let ticket = self.try_submit(event)?;
        Ok(Box::pin(ticket.committed()))
    }

    async fn submit_waiting(&self, event: NewEvent) -> Result<u64, AckError> {
        self.record(event).await
    }

    async fn end(&self, id: u64, at: UnixMs) -> Result<Event, StoreError> {
        self.transaction(move |t| t.end_alarm(id, at)).await
    }

    async fn acknowledge(
        &self,
        id: u64,
        by: &str,
        at: UnixMs,
        audit: Option<NewAudit>,
    ) -> Result<Event, StoreError> {
        let by = by.to_owned();
        self.transaction(move |t| {
            let before = t.get_event(id)?;
            let after = t.acknowledge_alarm(id, &by, at)?;
            if let Some(a) = audit {
                t.append_audit(audited(a, before.as_ref(), &after))?;
            }
            Ok(after)
        })
        .await
    }

    async fn open_ids(&self) -> Result<Vec<u64>, StoreError> {
        self.run(|s| s.open_event_ids()).await
    }
}

/// The daemon's sink: events go to the store, or wait in memory while it is unavailable
/// (their ids come when they are written); the rest needs the open store and fails with
/// [`StoreError::Unavailable`] meanwhile.
impl EventSink for Storage {
    fn submit(&self, event: NewEvent) -> Result<Committed, SubmitError> {
        Storage::submit(self, event)
    }

    async fn submit_waiting(&self, event: NewEvent) -> Result<u64, AckError> {
        Storage::submit_waiting(self, event).await
    }

    async fn end(&self, id: u64, at: UnixMs) -> Result<Event, StoreError> {
        EventSink::end(&self.handle()?, id, at).await
    }

    async fn acknowledge(
        &self,
        id: u64,
        by: &str,
        at: UnixMs,
        audit: Option<NewAudit>,
    ) -> Result<Event, StoreError> {
        EventSink::acknowledge(&self.handle()?, id, by, at, audit).await
    }

    async fn open_ids(&self) -> Result<Vec<u64>, StoreError> {
        EventSink::open_ids(&self.handle()?).await
    }
}

impl AlarmOutputs for OutputsHandle {
    fn activate(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
        origin: Option<SystemTime>,
    ) -> Result<(), OutputsError> {
        self.try_activate_from(source, outputs, action, origin)
    }

    async fn release(&self, key: AlarmKey) -> Result<usize, OutputsError> {
        self.acknowledge(AckTarget::Event(key.to_string())).await
    }
}

#[cfg(test)]
mod tests {
    use safe_yolo_domain::alarm::AlarmDetail;
    use safe_yolo_domain::{CameraId, RuleId, Severity};
    use safe_yolo_store::{AuditResult, EventDetails, EventState, Store, StoreConfig};

    use super::*;

    fn event(seq: u64) -> NewEvent {
        NewEvent {
            camera: CameraId::new("gate").unwrap(),
            rule: RuleId::new("no-entry").unwrap(),
            zone: None,
            track: Some(seq),
            kind: "intrusion".into(),
            severity: Severity::Critical,
            started_at: 1_000 + seq,
            ended_at: None,
            message: format!("alarm {seq}"),
            details: Some(EventDetails {
                alarm_key: AlarmKey { boot_ms: 5, seq },
                detail: AlarmDetail::Occupancy { count: 2 },
            }),
            snapshot_jpeg: None,
            cleared: false,
        }
    }

    fn audit(target: &str) -> NewAudit {
        NewAudit {
            at: 7,
            actor: "alice".into(),
            role: None,
            source: None,
            action: "event.acknowledge".into(),
            target: target.into(),
            before: None,
            after: None,
            result: AuditResult::Ok,
        }
    }

    /// The store's handle as the dispatcher's sink: ids after commit, the end and
    /// the acknowledgement in one transaction each, the audit row with the change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_handle_is_an_event_sink() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _writer) =
            StoreHandle::start(Store::open(StoreConfig::new(dir.path())).unwrap(), 4).unwrap();
        let sink = &store;
        let a = EventSink::submit(sink, event(0)).unwrap().await.unwrap();
        let b = EventSink::submit_waiting(sink, event(1)).await.unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(EventSink::open_ids(sink).await.unwrap(), [1, 2]);
        // Acknowledged, then ended: cleared by the end.
        let e = EventSink::acknowledge(sink, a, "alice", 10, Some(audit("event/1")))
            .await
            .unwrap();
        assert_eq!(e.state.name(), "acknowledged");
        let e = EventSink::end(sink, a, 20).await.unwrap();
        assert!(matches!(e.state, EventState::Cleared { by: None, .. }));
        // Ended, then acknowledged: cleared by the acknowledgement; no audit row asked.
        EventSink::end(sink, b, 30).await.unwrap();
        let e = EventSink::acknowledge(sink, b, "ack-button", 40, None)
            .await
            .unwrap();
        assert_eq!(e.state.name(), "cleared");
        assert_eq!(e.details, event(1).details, "typed details round-trip");
        assert!(EventSink::open_ids(sink).await.unwrap().is_empty());
        // A refused acknowledgement writes no audit row either.
        assert!(matches!(
            EventSink::acknowledge(sink, b, "bob", 50, Some(audit("event/2"))).await,
            Err(StoreError::BadTransition { .. })
        ));
        let (rows, _) = store.store().audit_page(None, 10, true).unwrap();
        let rows: Vec<_> = rows
            .iter()
            .map(|r| (r.target.as_str(), r.before.as_deref(), r.after.as_deref()))
            .collect();
        assert_eq!(rows, [("event/1", Some("active"), Some("acknowledged"))]);
    }
}

//! In-memory stand-ins for the dispatcher's seams, for tests without a database,
//! GPIO, a detector or footage.
//!
//! [`MemorySink`] and [`MemoryOutputs`] append every call they receive, in order,
//! to one shared [`Journal`], so a test can check the order of effects across both
//! (outputs commanded before the event is submitted, released after the
//! acknowledgement is committed). Either can be told to fail, and the sink can hold
//! its commits until the test releases them (a slow disk).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use safe_yolo_domain::OutputId;
use safe_yolo_outputs::{ActionSpec, OutputsError, Source};
use safe_yolo_store::{
    AckError, AlarmKey, Event, NewAudit, NewEvent, Snapshot, StoreError, SubmitError, UnixMs,
};
use tokio::sync::{Notify, Semaphore};

use super::sink::{AlarmOutputs, Committed, EventSink, audited};

/// One call to a stand-in, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// [`AlarmOutputs::activate`] was called (and accepted unless the outputs refuse).
    Activate {
        /// Rule and alarm key, as the outputs know them.
        source: Source,
        /// The output lines.
        outputs: Vec<OutputId>,
        /// What they were told to do.
        action: ActionSpec,
    },
    /// [`AlarmOutputs::release`] was called for this alarm.
    Release(AlarmKey),
    /// [`EventSink::submit`] was called (whether or not the queue took it).
    Submit(NewEventSummary),
    /// [`EventSink::submit_waiting`] was called.
    SubmitWaiting(NewEventSummary),
    /// An event was committed with this id.
    Committed(u64),
    /// A commit failed.
    CommitFailed,
    /// [`EventSink::end`] was called.
    End(u64),
    /// [`EventSink::acknowledge`] was called.
    Acknowledge {
        /// The event.
        id: u64,
        /// Who.
        by: String,
        /// The audit row committed with it (`before`/`after` filled in), if any.
        audit: Option<NewAudit>,
    },
    /// [`EventSink::open_ids`] was called.
    OpenIds,
}

/// The parts of a submitted event a test checks.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEventSummary {
    /// The rule.
    pub rule: String,
    /// The alarm key and detail.
    pub details: Option<safe_yolo_store::EventDetails>,
    /// The message.
    pub message: String,
    /// The kind name.
    pub kind: String,
    /// Whether a snapshot came with it.
    pub snapshot: bool,
}

impl From<&NewEvent> for NewEventSummary {
    fn from(e: &NewEvent) -> Self {
        Self {
            rule: e.rule.to_string(),
            details: e.details,
            message: e.message.clone(),
            kind: e.kind.clone(),
            snapshot: e.snapshot_jpeg.is_some(),
        }
    }
}

/// Every call to the stand-ins sharing it, in order.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    calls: Arc<Mutex<Vec<Call>>>,
    changed: Arc<Notify>,
}

impl Journal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, call: Call) {
        self.calls.lock().push(call);
        self.changed.notify_waiters();
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    /// Waits until the calls satisfy `done` (tasks of the dispatcher run meanwhile).
    pub async fn until(&self, done: impl Fn(&[Call]) -> bool) {
        loop {
            let changed = self.changed.notified();
            if done(&self.calls.lock()) {
                return;
            }
            changed.await;
        }
    }
}

#[derive(Debug, Default)]
struct SinkState {
    next_id: u64,
    events: BTreeMap<u64, Event>,
    refuse_submits: usize,
    stopped: bool,
    fail_commits: bool,
    fail_updates: bool,
}

/// An [`EventSink`] keeping events in memory.
#[derive(Debug, Clone)]
pub struct MemorySink {
    journal: Journal,
    state: Arc<Mutex<SinkState>>,
    gate: Option<Arc<Semaphore>>,
}

impl MemorySink {
    /// A sink that commits at once, recording into `journal`.
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            state: Arc::default(),
            gate: None,
        }
    }

    /// A sink whose commits wait for [`MemorySink::release`] (a slow disk).
    pub fn held(journal: Journal) -> Self {
        Self {
            gate: Some(Arc::new(Semaphore::new(0))),
            ..Self::new(journal)
        }
    }

    /// Lets `n` held commits through.
    pub fn release(&self, n: usize) {
        if let Some(g) = &self.gate {
            g.add_permits(n);
        }
    }

    /// The next `n` calls to [`EventSink::submit`] find the queue full.
    pub fn refuse_submits(&self, n: usize) {
        self.state.lock().refuse_submits = n;
    }

    /// Submits are refused from now on as if the store's writer had stopped.
    pub fn stop(&self) {
        self.state.lock().stopped = true;
    }

    /// Commits fail from now on (a broken disk).
    pub fn fail_commits(&self) {
        self.state.lock().fail_commits = true;
    }

    /// Ends and acknowledgements fail from now on.
    pub fn fail_updates(&self) {
        self.state.lock().fail_updates = true;
    }

    /// Adds an event as if an earlier boot had stored it; returns its id.
    pub fn insert(&self, event: NewEvent) -> u64 {
        let mut st = self.state.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.events.insert(id, stored(id, &event));
        id
    }

    /// An event by id.
    pub fn event(&self, id: u64) -> Option<Event> {
        self.state.lock().events.get(&id).cloned()
    }

    fn commit(&self, event: NewEvent) -> Result<u64, AckError> {
        let mut st = self.state.lock();
        if st.fail_commits {
            drop(st);
            self.journal.push(Call::CommitFailed);
            return Err(AckError::Failed(Arc::new(StoreError::Invalid {
                field: "event",
                reason: "the memory sink was told to fail".into(),
            })));
        }
        st.next_id += 1;
        let id = st.next_id;
        st.events.insert(id, stored(id, &event));
        drop(st);
        self.journal.push(Call::Committed(id));
        Ok(id)
    }

    async fn pass_gate(&self) {
        if let Some(g) = &self.gate
            && let Ok(permit) = g.acquire().await
        {
            permit.forget();
        }
    }

    fn update(
        &self,
        id: u64,
        f: impl FnOnce(&mut Event) -> Result<(), StoreError>,
    ) -> Result<(Event, Event), StoreError> {
        let mut st = self.state.lock();
        if st.fail_updates {
            return Err(StoreError::Invalid {
                field: "event",
                reason: "the memory sink was told to fail".into(),
            });
        }
        let e = st.events.get_mut(&id).ok_or_else(|| StoreError::NotFound {
            what: "event",
            key: id.to_string(),
        })?;
        let before = e.clone();
        f(e)?;
        Ok((before, e.clone()))
    }
}

fn stored(id: u64, e: &NewEvent) -> Event {
    e.to_event(id, Snapshot::None, e.started_at)
}

impl EventSink for MemorySink {
    fn submit(&self, event: NewEvent) -> Result<Committed, SubmitError> {
        self.journal.push(Call::Submit((&event).into()));
        {
            let mut st = self.state.lock();
            if st.stopped {
                return Err(SubmitError::WriterGone {
                    event: Box::new(event),
                });
            }
            if st.refuse_submits > 0 {
                st.refuse_submits -= 1;
                return Err(SubmitError::QueueFull {
                    event: Box::new(event),
                });
            }
        }
        let this = self.clone();
        Ok(Box::pin(async move {
            this.pass_gate().await;
            this.commit(event)
        }))
    }

    async fn submit_waiting(&self, event: NewEvent) -> Result<u64, AckError> {
        self.journal.push(Call::SubmitWaiting((&event).into()));
        self.pass_gate().await;
        self.commit(event)
    }

    async fn end(&self, id: u64, at: UnixMs) -> Result<Event, StoreError> {
        self.journal.push(Call::End(id));
        self.update(id, |e| e.end_alarm(at)).map(|(_, e)| e)
    }

    async fn acknowledge(
        &self,
        id: u64,
        by: &str,
        at: UnixMs,
        audit: Option<NewAudit>,
    ) -> Result<Event, StoreError> {
        let result = self.update(id, |e| e.acknowledge_alarm(by, at));
        let audit = match (&result, audit) {
            (Ok((before, after)), Some(a)) => Some(audited(a, Some(before), after)),
            _ => None,
        };
        self.journal.push(Call::Acknowledge {
            id,
            by: by.to_owned(),
            audit,
        });
        result.map(|(_, e)| e)
    }

    async fn open_ids(&self) -> Result<Vec<u64>, StoreError> {
        self.journal.push(Call::OpenIds);
        let st = self.state.lock();
        if st.fail_updates {
            return Err(StoreError::Invalid {
                field: "event",
                reason: "the memory sink was told to fail".into(),
            });
        }
        Ok(st
            .events
            .values()
            .filter(|e| e.state.is_open())
            .map(|e| e.id)
            .collect())
    }
}

/// [`AlarmOutputs`] that only record what they were told.
#[derive(Debug, Clone)]
pub struct MemoryOutputs {
    journal: Journal,
    busy: Arc<Mutex<bool>>,
}

impl MemoryOutputs {
    /// Outputs recording into `journal`.
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            busy: Arc::default(),
        }
    }

    /// From now on the command queue is full: activations and releases are refused
    /// (and still recorded).
    pub fn set_busy(&self) {
        *self.busy.lock() = true;
    }
}

impl AlarmOutputs for MemoryOutputs {
    fn activate(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
        _origin: Option<SystemTime>,
    ) -> Result<(), OutputsError> {
        self.journal.push(Call::Activate {
            source,
            outputs,
            action,
        });
        if *self.busy.lock() {
            return Err(OutputsError::Busy);
        }
        Ok(())
    }

    fn release(&self, key: AlarmKey) -> impl Future<Output = Result<usize, OutputsError>> + Send {
        self.journal.push(Call::Release(key));
        let busy = *self.busy.lock();
        async move { if busy { Err(OutputsError::Busy) } else { Ok(1) } }
    }
}

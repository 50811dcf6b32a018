//! The alarm dispatcher: the engine's decisions become physical actions,
//! stored events with evidence, and notices for subscribers.
//!
//! Order matters for safety: the sirens and relays are commanded first,
//! synchronously through the outputs' non-blocking queue, before any disk
//! work. The event (with its annotated snapshot) is then written by the
//! store's writer thread; the analysis task never waits for it.
//!
//! Event lifecycle (ISA-18.2 style): an event stays *active* until an
//! operator (or the acknowledge button) acknowledges it, even after the
//! condition has ended (`ended_at` set); it is *cleared* once it is both
//! acknowledged and ended.
//!
//! The dispatcher reaches the store and the outputs through two narrow traits
//! ([`EventSink`], [`AlarmOutputs`]), implemented by their handles and, for
//! tests, by the recording stand-ins of [`memory`]. There is one acknowledge
//! path ([`Dispatcher::acknowledge`]): the API (with its audit row, committed in
//! the same transaction) and the acknowledge button
//! ([`Dispatcher::acknowledge_all`]) both go through it.

pub mod memory;
pub mod sink;
#[cfg(test)]
mod tests;

pub use sink::{AlarmOutputs, Committed, EventSink};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use safe_yolo_config::{Config, OutputRole};
use safe_yolo_domain::alarm::AlarmDetail;
use safe_yolo_domain::{
    CameraId, Detection, InterlockId, Named, NormPoint, OutputId, RuleId, ZoneId,
};
use safe_yolo_outputs::{ActionSpec, Ending, OutputsHandle, Pattern, Source};
use safe_yolo_rules::{Alarm, Decision};
use safe_yolo_store::{
    AlarmKey, Event, EventDetails, NewAudit, NewEvent, Storage, StoreError, SubmitError,
};
use safe_yolo_telemetry::Metrics;
use tokio::sync::{broadcast, watch};
use tokio_util::task::TaskTracker;

use crate::draw::{ALARM, Canvas, OTHER, ZONE};

/// What a rule does when it fires, from the configuration.
#[derive(Debug, Clone)]
pub struct RuleAction {
    /// Human name for messages.
    pub name: String,
    /// Kind name (`intrusion`, ...).
    pub kind: &'static str,
    /// Siren outputs' action.
    pub siren: ActionSpec,
    /// Relay outputs' action.
    pub relay: ActionSpec,
    /// The rule is enabled.
    pub enabled: bool,
    /// The interlock that arms it, if any.
    pub armed_by: Option<InterlockId>,
}

/// The dispatcher's settings.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Per rule: name and actions.
    pub rules: HashMap<RuleId, RuleAction>,
    /// Role of each output line.
    pub output_roles: HashMap<OutputId, OutputRole>,
    /// Zone outlines, for snapshots.
    pub zones: HashMap<ZoneId, Vec<NormPoint>>,
    /// Write annotated snapshots with events.
    pub snapshots: bool,
    /// Snapshot JPEG quality.
    pub jpeg_quality: u8,
}

impl DispatcherConfig {
    /// From the validated configuration.
    pub fn from_config(config: &Config) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|r| {
                let pattern = r.siren.pattern;
                let ending = |d: Option<Duration>| match d {
                    Some(duration) => Ending::After { duration },
                    None => Ending::UntilAck,
                };
                (
                    r.id.clone(),
                    RuleAction {
                        name: r.name.clone(),
                        kind: r.kind.name(),
                        siren: ActionSpec {
                            pattern,
                            ending: ending(r.siren.duration),
                        },
                        relay: ActionSpec {
                            pattern: Pattern::Steady,
                            ending: ending(r.relay_latch),
                        },
                        enabled: r.enabled,
                        armed_by: r.spec.armed_by.clone(),
                    },
                )
            })
            .collect();
        Self {
            rules,
            output_roles: config
                .outputs
                .lines
                .iter()
                .map(|l| (l.id.clone(), l.role))
                .collect(),
            zones: config
                .zones
                .iter()
                .map(|z| (z.id.clone(), z.polygon.points().to_vec()))
                .chain(
                    config
                        .lines
                        .iter()
                        .map(|l| (l.id.clone(), vec![l.line.a(), l.line.b()])),
                )
                .collect(),
            snapshots: config.features.snapshots,
            jpeg_quality: config.api.jpeg_quality,
        }
    }
}

/// What happened to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Raised and stored.
    Raised,
    /// The condition ended.
    Ended,
    /// Acknowledged by an operator or the button.
    Acknowledged,
}

impl safe_yolo_domain::Named for NoticeKind {
    const WHAT: &'static str = "alarm notice";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("raised", Self::Raised),
        ("ended", Self::Ended),
        ("acknowledged", Self::Acknowledged),
    ];
}
safe_yolo_domain::named_vocabulary!(NoticeKind);

/// A change of an alarm, for subscribers (API event stream, live view).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmNotice {
    /// What happened.
    pub kind: NoticeKind,
    /// The stored event.
    pub event_id: u64,
    /// The rule.
    pub rule: RuleId,
    /// The camera.
    pub camera: CameraId,
    /// The zone or line.
    pub zone: Option<ZoneId>,
    /// Severity name.
    pub severity: &'static str,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
}

/// Why the dispatcher could not record an alarm or an operator action on one.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The store refused or failed to update the event (not found, already
    /// acknowledged, I/O).
    #[error("event {id} could not be updated")]
    Store {
        /// The event.
        id: u64,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The event could not be queued for the store.
    #[error("the alarm event could not be queued")]
    Submit(#[source] SubmitError),
    /// The event was queued but not committed.
    #[error("the alarm event was not committed")]
    Commit(#[from] safe_yolo_store::AckError),
}

#[derive(Debug)]
struct Open {
    id: watch::Receiver<Option<u64>>,
    rule: RuleId,
}

#[derive(Debug)]
struct Inner<S, O> {
    sink: S,
    outputs: O,
    cfg: parking_lot::RwLock<Arc<DispatcherConfig>>,
    open: Mutex<HashMap<String, Open>>,
    seq: AtomicU64,
    boot_ms: u64,
    notices: broadcast::Sender<AlarmNotice>,
    metrics: Metrics,
    tasks: TaskTracker,
}

/// Cheap to clone; all clones share state.
///
/// Generic over its seams; the daemon's is the default, over its [`Storage`] (the
/// store, or a memory buffer while the store is unavailable) and the outputs' handle.
#[derive(Debug)]
pub struct Dispatcher<S = Storage, O = OutputsHandle> {
    inner: Arc<Inner<S, O>>,
}

impl<S, O> Clone for Dispatcher<S, O> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Identity of an alarm across its Raise and Clear decisions.
fn identity(a: &Alarm) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        a.rule,
        a.camera,
        a.zone.as_ref().map_or("", |z| z.as_str()),
        a.track.map_or(String::new(), |t| t.to_string()),
        a.raised_at.as_nanos()
    )
}

/// The frame an alarm was raised on, for its snapshot.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The frame as captured; decoded (full size) only when a snapshot is stored.
    pub picture: safe_yolo_capture::Picture,
    /// Boxes of the frame's detections.
    pub detections: Arc<Vec<Detection>>,
    /// Box of the track that raised the alarm, if any.
    pub culprit: Option<safe_yolo_domain::BBox>,
    /// When the frame was captured (the start of glass-to-output latency).
    pub captured_at: std::time::SystemTime,
    /// Capture to detections ready, for this frame.
    pub capture_to_detected: Duration,
    /// Of which the detector call(s) on this frame.
    pub inference: Duration,
    /// The frame is what raised the alarm, so capture-to-output is its
    /// glass-to-output latency (false for door alarms, whose frame is only
    /// a picture of the scene).
    pub frame_raised: bool,
}

impl<S: EventSink, O: AlarmOutputs> Dispatcher<S, O> {
    /// A dispatcher writing events to `sink` (the store's handle) and commanding
    /// `outputs` (the outputs' handle).
    pub fn new(sink: S, outputs: O, cfg: DispatcherConfig, metrics: Metrics) -> Self {
        let (notices, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Inner {
                sink,
                outputs,
                cfg: parking_lot::RwLock::new(Arc::new(cfg)),
                open: Mutex::new(HashMap::new()),
                seq: AtomicU64::new(0),
                boot_ms: now_ms(),
                notices,
                metrics,
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Replaces the rule actions and zone outlines (rules edited at run time).
    pub fn update_config(&self, cfg: DispatcherConfig) {
        *self.inner.cfg.write() = Arc::new(cfg);
    }

    fn cfg(&self) -> Arc<DispatcherConfig> {
        Arc::clone(&self.inner.cfg.read())
    }

    /// Subscribes to alarm notices. A subscriber that falls behind loses
    /// the oldest notices (it is told how many), never slows the dispatcher.
    pub fn subscribe(&self) -> broadcast::Receiver<AlarmNotice> {
        self.inner.notices.subscribe()
    }

    /// Every configured rule (live: follows edits) with whether it is enabled and
    /// the interlock that arms it.
    pub fn rules(&self) -> Vec<(RuleId, bool, Option<InterlockId>)> {
        self.cfg()
            .rules
            .iter()
            .map(|(id, a)| (id.clone(), a.enabled, a.armed_by.clone()))
            .collect()
    }

    /// Every configured area zone (live: follows edits; lines, two-point outlines,
    /// are left out: they count crossings, not persons).
    pub fn zone_ids(&self) -> Vec<ZoneId> {
        self.cfg()
            .zones
            .iter()
            .filter(|(_, outline)| outline.len() > 2)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The rules with an alarm raised now (raised and not cleared), each once.
    pub fn raised_rules(&self) -> Vec<RuleId> {
        let mut v: Vec<RuleId> = self
            .inner
            .open
            .lock()
            .values()
            .map(|o| o.rule.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Acts on one decision of the rule engine. Never blocks: outputs are
    /// commanded at once, storage happens on a spawned task.
    pub fn handle(&self, decision: Decision, evidence: Option<Evidence>) {
        match decision {
            Decision::Raise(alarm) => self.raise(alarm, evidence),
            Decision::Clear { alarm, .. } => self.end(&alarm),
        }
    }

    fn raise(&self, alarm: Alarm, evidence: Option<Evidence>) {
        let inner = &self.inner;
        let seq = inner.seq.fetch_add(1, Ordering::Relaxed);
        let key = AlarmKey {
            boot_ms: inner.boot_ms,
            seq,
        };
        let cfg = self.cfg();
        let action = cfg.rules.get(&alarm.rule).cloned();
        // 1. Physical outputs, before anything touches the disk.
        if let Some(action) = &action {
            let mut sirens = Vec::new();
            let mut relays = Vec::new();
            for o in alarm.outputs.iter() {
                match cfg.output_roles.get(o) {
                    Some(OutputRole::Siren | OutputRole::Generic) => sirens.push(o.clone()),
                    Some(OutputRole::Relay) => relays.push(o.clone()),
                    Some(OutputRole::Healthy) | None => {}
                }
            }
            let source = Source {
                rule: alarm.rule.clone(),
                event: key.to_string(),
            };
            for (outs, spec) in [(sirens, action.siren), (relays, action.relay)] {
                if outs.is_empty() {
                    continue;
                }
                let origin = evidence
                    .as_ref()
                    .filter(|e| e.frame_raised)
                    .map(|e| e.captured_at);
                if let Err(e) = inner.outputs.activate(source.clone(), outs, spec, origin) {
                    tracing::error!(rule = %alarm.rule, error = %e, "cannot command the outputs for an alarm");
                }
            }
        }
        inner
            .metrics
            .events_raised
            .get_or_create(&safe_yolo_telemetry::metrics::RuleLabels {
                rule: alarm.rule.to_string(),
                severity: alarm.severity.as_str().to_owned(),
            })
            .inc();
        // Stage times of the frame that raised the alarm, if one did.
        let timed = evidence.as_ref().filter(|e| e.frame_raised);
        tracing::warn!(
            rule = %alarm.rule,
            event = %key,
            capture_to_detected_ms = timed.map(|e| e.capture_to_detected.as_secs_f64() * 1000.0),
            inference_ms = timed.map(|e| e.inference.as_secs_f64() * 1000.0),
            capture_to_raise_ms = timed.and_then(|e| SystemTime::now().duration_since(e.captured_at).ok()).map(|d| d.as_secs_f64() * 1000.0),
            camera = %alarm.camera,
            zone = alarm.zone.as_ref().map_or("", |z| z.as_str()),
            track = alarm.track,
            severity = alarm.severity.as_str(),
            "alarm raised"
        );

        // 2. The event, with its snapshot, on a task of its own.
        let (id_tx, id_rx) = watch::channel(None);
        inner.open.lock().insert(
            identity(&alarm),
            Open {
                id: id_rx,
                rule: alarm.rule.clone(),
            },
        );
        let this = self.clone();
        inner.tasks.spawn(async move {
            this.store_raise(alarm, action, key, evidence, id_tx).await;
        });
    }

    async fn store_raise(
        &self,
        alarm: Alarm,
        action: Option<RuleAction>,
        key: AlarmKey,
        evidence: Option<Evidence>,
        id_tx: watch::Sender<Option<u64>>,
    ) {
        let inner = &self.inner;
        let started_at = now_ms();
        let cfg = self.cfg();
        let snapshot = match evidence.filter(|_| cfg.snapshots) {
            Some(ev) => {
                let zone = alarm.zone.as_ref().and_then(|z| cfg.zones.get(z)).cloned();
                let quality = cfg.jpeg_quality;
                tokio::task::spawn_blocking(move || annotated_jpeg(&ev, zone.as_deref(), quality))
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        };
        let name = action
            .as_ref()
            .map_or_else(|| alarm.rule.to_string(), |a| a.name.clone());
        let kind = action.as_ref().map_or("alarm", |a| a.kind);
        let message = match (&alarm.zone, alarm.track) {
            _ if alarm.detail == AlarmDetail::DoorOpen => {
                format!("{name}: door contact open (camera {})", alarm.camera)
            }
            _ if alarm.detail == AlarmDetail::DetectorFault => {
                format!("{name}: detector down, camera {} is blind", alarm.camera)
            }
            _ if let AlarmDetail::CameraTamper { reason } = alarm.detail => {
                format!("{name}: camera {} tampered with ({reason})", alarm.camera)
            }
            (Some(z), Some(t)) => format!("{name}: person #{t} in {z} on camera {}", alarm.camera),
            (Some(z), None) => format!("{name}: zone {z} on camera {}", alarm.camera),
            _ => format!("{name}: camera {}", alarm.camera),
        };
        let event = NewEvent {
            camera: alarm.camera.clone(),
            rule: alarm.rule.clone(),
            zone: alarm.zone.clone(),
            track: alarm.track,
            kind: kind.to_owned(),
            severity: alarm.severity,
            started_at,
            ended_at: None,
            message,
            details: Some(EventDetails {
                alarm_key: key,
                detail: alarm.detail,
            }),
            snapshot_jpeg: snapshot.map(Arc::from),
            cleared: false,
        };
        // The queue is sized for alarm storms; if it is full anyway, wait
        // for room here (this task only) rather than lose the event.
        let committed = match inner.sink.submit(event) {
            Ok(committed) => committed.await.map_err(DispatchError::from),
            Err(SubmitError::QueueFull { event }) => {
                tracing::warn!(rule = %alarm.rule, "the store queue is full; waiting for room");
                inner
                    .sink
                    .submit_waiting(*event)
                    .await
                    .map_err(DispatchError::from)
            }
            Err(e @ SubmitError::WriterGone { .. }) => Err(DispatchError::Submit(e)),
        };
        match committed {
            Ok(id) => {
                let _ = id_tx.send(Some(id));
                tracing::info!(event_id = id, rule = %alarm.rule, camera = %alarm.camera, "alarm event stored");
                let _ = inner.notices.send(AlarmNotice {
                    kind: NoticeKind::Raised,
                    event_id: id,
                    rule: alarm.rule,
                    camera: alarm.camera,
                    zone: alarm.zone,
                    severity: alarm.severity.as_str(),
                    at_ms: started_at,
                });
            }
            Err(e) => tracing::error!(
                rule = %alarm.rule,
                error = %safe_yolo_domain::error_chain(&e),
                "ALARM EVENT NOT STORED"
            ),
        }
    }

    fn end(&self, alarm: &Alarm) {
        let Some(open) = self.inner.open.lock().remove(&identity(alarm)) else {
            tracing::debug!(rule = %alarm.rule, "clear for an alarm this dispatcher did not raise");
            return;
        };
        tracing::info!(rule = %alarm.rule, camera = %alarm.camera, track = alarm.track, "alarm condition ended");
        let this = self.clone();
        let alarm = alarm.clone();
        self.inner.tasks.spawn(async move {
            let mut rx = open.id;
            let Ok(id) = rx.wait_for(Option::is_some).await.map(|v| *v) else {
                return;
            };
            let Some(id) = id else { return };
            let at = now_ms();
            let result = this.inner.sink.end(id, at).await;
            match result {
                Ok(_) => {
                    let _ = this.inner.notices.send(AlarmNotice {
                        kind: NoticeKind::Ended,
                        event_id: id,
                        rule: alarm.rule,
                        camera: alarm.camera,
                        zone: alarm.zone,
                        severity: alarm.severity.as_str(),
                        at_ms: at,
                    });
                }
                Err(e) => {
                    tracing::error!(event_id = id, error = %e, "cannot record the end of an alarm")
                }
            }
        });
    }

    /// Acknowledges a stored event, the one acknowledge path (the API and the
    /// button): records who did it (clearing the event if its condition has
    /// ended) with `audit`, if given, in the same transaction; then silences
    /// its sirens and releases its latched relays by the alarm key stored with
    /// it (so an event from an earlier boot releases its outputs too); then
    /// tells subscribers.
    pub async fn acknowledge(
        &self,
        id: u64,
        by: &str,
        audit: Option<NewAudit>,
    ) -> Result<Event, DispatchError> {
        let inner = &self.inner;
        let at = now_ms();
        let event = inner
            .sink
            .acknowledge(id, by, at, audit)
            .await
            .map_err(|source| DispatchError::Store { id, source })?;
        if let Some(d) = &event.details
            && let Err(e) = inner.outputs.release(d.alarm_key).await
        {
            tracing::error!(event_id = id, key = %d.alarm_key, error = %e, "cannot release the outputs of an acknowledged alarm");
        }
        tracing::info!(
            event_id = id,
            by,
            state = event.state.name(),
            "alarm acknowledged"
        );
        let _ = inner.notices.send(AlarmNotice {
            kind: NoticeKind::Acknowledged,
            event_id: id,
            rule: event.rule.clone(),
            camera: event.camera.clone(),
            zone: event.zone.clone(),
            severity: event.severity.as_str(),
            at_ms: at,
        });
        Ok(event)
    }

    /// Acknowledges every open event (the physical acknowledge button; the
    /// outputs already silenced themselves on the press).
    pub async fn acknowledge_all(&self, by: &str) -> usize {
        // Alarms raised but not stored yet (the press can beat the disk):
        // acknowledge each as soon as its event exists.
        let pending: Vec<watch::Receiver<Option<u64>>> = self
            .inner
            .open
            .lock()
            .values()
            .filter(|o| o.id.borrow().is_none())
            .map(|o| o.id.clone())
            .collect();
        for mut rx in pending {
            let this = self.clone();
            let by = by.to_owned();
            self.inner.tasks.spawn(async move {
                let id = rx.wait_for(Option::is_some).await.ok().and_then(|v| *v);
                if let Some(id) = id
                    && let Err(e) = this.acknowledge(id, &by, None).await
                {
                    tracing::warn!(event_id = id, error = %e, "late acknowledgement failed");
                }
            });
        }
        let ids = match self.inner.sink.open_ids().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list open events to acknowledge");
                return 0;
            }
        };
        let mut n = 0;
        for id in ids {
            match self.acknowledge(id, by, None).await {
                Ok(_) => n += 1,
                Err(e) => tracing::debug!(event_id = id, error = %e, "not acknowledged"),
            }
        }
        n
    }

    /// Waits (up to `timeout`) for in-flight event writes, at shutdown.
    pub async fn drain(&self, timeout: Duration) {
        self.inner.tasks.close();
        if tokio::time::timeout(timeout, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some alarm events were still being stored at shutdown");
        }
    }
}

/// The alarm frame with every detection boxed (the culprit in red) and the
/// zone outlined, as JPEG.
fn annotated_jpeg(ev: &Evidence, zone: Option<&[NormPoint]>, quality: u8) -> Option<Vec<u8>> {
    let frame = match ev.picture.decode() {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %safe_yolo_domain::error_chain(&e), "cannot decode an alarm frame for its snapshot");
            return None;
        }
    };
    let mut canvas = Canvas::new(&frame);
    if let Some(z) = zone {
        canvas.polygon(z, ZONE);
    }
    for d in ev.detections.iter() {
        canvas.rect(&d.bbox, OTHER);
    }
    if let Some(b) = &ev.culprit {
        canvas.rect(b, ALARM);
    }
    let frame = canvas.finish()?;
    let mut enc = safe_yolo_capture::JpegEncoder::new(quality).ok()?;
    match enc.encode(&frame) {
        Ok(jpeg) => Some(jpeg),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode an alarm snapshot");
            None
        }
    }
}

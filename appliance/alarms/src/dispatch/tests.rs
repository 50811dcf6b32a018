//! The dispatcher against the in-memory sink and outputs: the order of its
//! effects, its notices and the acknowledge semantics, with no detector, footage,
//! database or GPIO.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use safe_yolo_domain::alarm::{AlarmDetail, CameraHealth};
use safe_yolo_domain::{BBox, CameraId, Detection, OutputId, RgbFrame, RuleId, Severity, ZoneId};
use safe_yolo_outputs::{ActionSpec, Ending, Pattern, Source};
use safe_yolo_rules::{Alarm, Decision};
use safe_yolo_store::{
    Acknowledgement, AlarmKey, AuditResult, EventDetails, EventState, NewAudit, NewEvent,
    StoreError,
};
use tokio::sync::broadcast::error::TryRecvError;
use tracing_subscriber::layer::SubscriberExt;

use super::memory::{Call, Journal, MemoryOutputs, MemorySink, NewEventSummary};
use super::*;

// === rig ===

const SIREN: ActionSpec = ActionSpec {
    pattern: Pattern::Steady,
    ending: Ending::UntilAck,
};
const RELAY: ActionSpec = ActionSpec {
    pattern: Pattern::Steady,
    ending: Ending::After {
        duration: Duration::from_secs(10),
    },
};

fn out(id: &str) -> OutputId {
    OutputId::new(id).unwrap()
}

fn outs(ids: &[&str]) -> Vec<OutputId> {
    ids.iter().map(|i| out(i)).collect()
}

fn config() -> DispatcherConfig {
    DispatcherConfig {
        rules: HashMap::from([(
            RuleId::new("no-entry").unwrap(),
            RuleAction {
                name: "No entry".into(),
                kind: "intrusion",
                siren: SIREN,
                relay: RELAY,
                enabled: true,
                armed_by: None,
            },
        )]),
        output_roles: HashMap::from([
            (out("siren-1"), OutputRole::Siren),
            (out("horn"), OutputRole::Generic),
            (out("relay-1"), OutputRole::Relay),
            (out("ok-led"), OutputRole::Healthy),
        ]),
        zones: HashMap::new(),
        snapshots: false,
        jpeg_quality: 80,
    }
}

struct Rig {
    journal: Journal,
    sink: MemorySink,
    outputs: MemoryOutputs,
    d: Dispatcher<MemorySink, MemoryOutputs>,
    notices: broadcast::Receiver<AlarmNotice>,
}

impl Rig {
    fn new() -> Self {
        Self::with(MemorySink::new, config())
    }

    fn held() -> Self {
        Self::with(MemorySink::held, config())
    }

    fn with(sink: fn(Journal) -> MemorySink, cfg: DispatcherConfig) -> Self {
        let journal = Journal::new();
        let sink = sink(journal.clone());
        let outputs = MemoryOutputs::new(journal.clone());
        let d = Dispatcher::new(sink.clone(), outputs.clone(), cfg, Metrics::new());
        let notices = d.subscribe();
        Self {
            journal,
            sink,
            outputs,
            d,
            notices,
        }
    }

    fn raise(&self, alarm: &Alarm) {
        self.d.handle(Decision::Raise(alarm.clone()), None);
    }

    fn clear(&self, alarm: &Alarm) {
        self.d.handle(
            Decision::Clear {
                alarm: alarm.clone(),
                at: alarm.raised_at + Duration::from_secs(5),
            },
            None,
        );
    }

    /// Waits until `n` calls satisfy `f`.
    async fn until(&self, n: usize, f: impl Fn(&Call) -> bool) {
        within(
            self.journal
                .until(|c| c.iter().filter(|c| f(c)).count() >= n),
        )
        .await;
    }

    async fn committed(&self, n: usize) {
        self.until(n, |c| matches!(c, Call::Committed(_))).await;
    }

    async fn notice(&mut self) -> AlarmNotice {
        within(self.notices.recv()).await.unwrap()
    }

    fn no_notice(&mut self) {
        assert_eq!(self.notices.try_recv().err(), Some(TryRecvError::Empty));
    }

    /// Lets every spawned task of the dispatcher finish.
    async fn settle(&self) {
        self.d.drain(Duration::from_secs(30)).await;
    }
}

/// A guard against a hang, not a timing assertion.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the dispatcher got stuck")
}

fn alarm(rule: &str, outputs: &[&str]) -> Alarm {
    Alarm {
        rule: RuleId::new(rule).unwrap(),
        camera: CameraId::new("gate").unwrap(),
        zone: Some(ZoneId::new("lane").unwrap()),
        track: Some(7),
        severity: Severity::Critical,
        detail: AlarmDetail::Intrusion,
        raised_at: Duration::from_secs(100),
        outputs: outs(outputs).into(),
    }
}

fn key_of(summary: &NewEventSummary) -> AlarmKey {
    summary.details.unwrap().alarm_key
}

fn submitted(calls: &[Call]) -> Vec<NewEventSummary> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Submit(s) | Call::SubmitWaiting(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn position(calls: &[Call], f: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(f).expect("the call was made")
}

/// Log lines at error or warn level, captured for the current thread (the
/// tokio test runtime runs the dispatcher's tasks on it).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.clone()));
        (logs, guard)
    }

    fn has(&self, level: tracing::Level, message: &str) -> bool {
        self.0
            .lock()
            .iter()
            .any(|(l, m)| *l == level && m.contains(message))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0.lock().push((*event.metadata().level(), m.0));
    }
}

fn audit_row() -> NewAudit {
    NewAudit {
        at: 1,
        actor: "alice".into(),
        role: None,
        source: Some("10.0.0.9:5000".into()),
        action: "event.acknowledge".into(),
        target: "event/1".into(),
        before: None,
        after: None,
        result: AuditResult::Ok,
    }
}

// === raise ===

#[tokio::test]
async fn raise_commands_the_outputs_by_role_before_the_event_is_submitted() {
    struct Case {
        name: &'static str,
        rule: &'static str,
        outputs: &'static [&'static str],
        activations: Vec<(Vec<OutputId>, ActionSpec)>,
        kind: &'static str,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "sirens and relays, healthy and unknown lines ignored",
            rule: "no-entry",
            outputs: &["siren-1", "relay-1", "horn", "ok-led", "ghost"],
            activations: vec![
                (outs(&["siren-1", "horn"]), SIREN),
                (outs(&["relay-1"]), RELAY),
            ],
            kind: "intrusion",
            message: "No entry: person #7 in lane on camera gate",
        },
        Case {
            name: "a relay alone",
            rule: "no-entry",
            outputs: &["relay-1"],
            activations: vec![(outs(&["relay-1"]), RELAY)],
            kind: "intrusion",
            message: "No entry: person #7 in lane on camera gate",
        },
        Case {
            name: "only the healthy line: nothing to command",
            rule: "no-entry",
            outputs: &["ok-led"],
            activations: vec![],
            kind: "intrusion",
            message: "No entry: person #7 in lane on camera gate",
        },
        Case {
            name: "a rule the configuration does not know: stored, no outputs",
            rule: "removed-rule",
            outputs: &["siren-1"],
            activations: vec![],
            kind: "alarm",
            message: "removed-rule: person #7 in lane on camera gate",
        },
    ];
    for case in cases {
        let mut rig = Rig::new();
        let a = alarm(case.rule, case.outputs);
        rig.raise(&a);
        // The outputs were commanded synchronously, before the storing task ran.
        let activations: Vec<_> = rig
            .journal
            .calls()
            .into_iter()
            .map(|c| match c {
                Call::Activate {
                    outputs, action, ..
                } => (outputs, action),
                other => panic!("{}: {other:?} before the outputs", case.name),
            })
            .collect();
        assert_eq!(activations, case.activations, "{}", case.name);
        rig.committed(1).await;
        let calls = rig.journal.calls();
        let first_submit = position(&calls, |c| matches!(c, Call::Submit(_)));
        assert_eq!(first_submit, case.activations.len(), "{}", case.name);
        let event = &submitted(&calls)[0];
        assert_eq!(
            (event.kind.as_str(), event.message.as_str(), event.snapshot),
            (case.kind, case.message, false),
            "{}",
            case.name
        );
        // The outputs know the alarm by the key stored with the event.
        let key = key_of(event);
        assert_eq!(key.seq, 0);
        for c in &calls {
            if let Call::Activate { source, .. } = c {
                assert_eq!(
                    source,
                    &Source {
                        rule: a.rule.clone(),
                        event: key.to_string()
                    }
                );
            }
        }
        assert_eq!(event.details.unwrap().detail, AlarmDetail::Intrusion);
        let n = rig.notice().await;
        assert_eq!(
            (n.kind, n.event_id, n.rule, n.severity),
            (NoticeKind::Raised, 1, a.rule.clone(), "critical"),
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn each_alarm_gets_its_own_key_and_a_message_for_its_kind() {
    let rig = Rig::new();
    let mut door = alarm("no-entry", &[]);
    door.detail = AlarmDetail::DoorOpen;
    door.zone = None;
    door.track = None;
    let mut occupancy = alarm("no-entry", &[]);
    occupancy.detail = AlarmDetail::Occupancy { count: 4 };
    occupancy.track = None;
    let mut camera = alarm("no-entry", &[]);
    camera.detail = AlarmDetail::CameraOffline {
        health: CameraHealth::Offline,
    };
    camera.zone = None;
    camera.track = None;
    let mut tamper = camera.clone();
    tamper.detail = AlarmDetail::CameraTamper {
        reason: safe_yolo_domain::alarm::TamperReason::Covered,
    };
    let cases = [
        (&door, "No entry: door contact open (camera gate)"),
        (&occupancy, "No entry: zone lane on camera gate"),
        (&camera, "No entry: camera gate"),
        (&tamper, "No entry: camera gate tampered with (covered)"),
    ];
    for (a, _) in &cases {
        rig.raise(a);
    }
    rig.committed(4).await;
    let events = submitted(&rig.journal.calls());
    for (i, (a, message)) in cases.iter().enumerate() {
        let e = events
            .iter()
            .find(|e| e.message == *message)
            .unwrap_or_else(|| panic!("no event {message:?} in {events:?}"));
        assert_eq!(e.details.unwrap().detail, a.detail);
        assert!(events.iter().filter(|o| key_of(o).seq == i as u64).count() == 1);
    }
}

#[tokio::test]
async fn the_raised_notice_waits_for_the_commit() {
    let mut rig = Rig::held();
    let a = alarm("no-entry", &["siren-1"]);
    rig.raise(&a);
    rig.until(1, |c| matches!(c, Call::Submit(_))).await;
    // The disk has not committed: no notice yet, however long we look.
    tokio::task::yield_now().await;
    rig.no_notice();
    assert!(
        !rig.journal
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Committed(_)))
    );
    rig.sink.release(1);
    let n = rig.notice().await;
    assert_eq!((n.kind, n.event_id), (NoticeKind::Raised, 1));
    let calls = rig.journal.calls();
    assert!(
        matches!(
            calls.as_slice(),
            [Call::Activate { .. }, Call::Submit(_), Call::Committed(1)]
        ),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_full_store_queue_waits_for_room_and_loses_nothing() {
    let (logs, _guard) = Logs::capture();
    let mut rig = Rig::new();
    rig.sink.refuse_submits(1);
    rig.raise(&alarm("no-entry", &["siren-1"]));
    let n = rig.notice().await;
    assert_eq!((n.kind, n.event_id), (NoticeKind::Raised, 1));
    let calls = rig.journal.calls();
    let submit = position(&calls, |c| matches!(c, Call::Submit(_)));
    let waiting = position(&calls, |c| matches!(c, Call::SubmitWaiting(_)));
    let committed = position(&calls, |c| matches!(c, Call::Committed(1)));
    assert!(submit < waiting && waiting < committed, "{calls:?}");
    assert!(logs.has(tracing::Level::WARN, "store queue is full"));
}

#[tokio::test]
async fn a_full_outputs_queue_is_logged_and_the_event_still_stored() {
    let (logs, _guard) = Logs::capture();
    let mut rig = Rig::new();
    rig.outputs.set_busy();
    rig.raise(&alarm("no-entry", &["siren-1", "relay-1"]));
    assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
    assert!(logs.has(tracing::Level::ERROR, "cannot command the outputs"));
    assert_eq!(
        rig.journal
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Activate { .. }))
            .count(),
        2
    );
}

#[tokio::test]
async fn a_store_failure_raises_no_notice_and_is_logged() {
    for stopped in [false, true] {
        let (logs, _guard) = Logs::capture();
        let mut rig = Rig::new();
        if stopped {
            rig.sink.stop();
        } else {
            rig.sink.fail_commits();
        }
        let a = alarm("no-entry", &["siren-1"]);
        rig.raise(&a);
        rig.settle().await;
        rig.no_notice();
        assert!(
            logs.has(tracing::Level::ERROR, "ALARM EVENT NOT STORED"),
            "stopped: {stopped}"
        );
        // The sirens were commanded all the same.
        assert!(matches!(rig.journal.calls()[0], Call::Activate { .. }));
        // Its end has no event to record, and nothing waits forever for one.
        rig.clear(&a);
        rig.settle().await;
        assert!(
            !rig.journal
                .calls()
                .iter()
                .any(|c| matches!(c, Call::End(_)))
        );
        rig.no_notice();
    }
}

#[tokio::test]
async fn a_snapshot_is_burnt_and_stored_with_the_event() {
    let mut cfg = config();
    cfg.snapshots = true;
    cfg.zones.insert(
        ZoneId::new("lane").unwrap(),
        vec![
            safe_yolo_domain::NormPoint::new(0.1, 0.1).unwrap(),
            safe_yolo_domain::NormPoint::new(0.9, 0.1).unwrap(),
            safe_yolo_domain::NormPoint::new(0.5, 0.9).unwrap(),
        ],
    );
    let mut rig = Rig::with(MemorySink::new, cfg);
    let bbox = BBox {
        x1: 4.0,
        y1: 4.0,
        x2: 20.0,
        y2: 28.0,
    };
    let evidence = Evidence {
        picture: safe_yolo_capture::Picture::from_rgb(
            &RgbFrame::new(32, 32, vec![90u8; 32 * 32 * 3]).unwrap(),
        ),
        detections: Arc::new(vec![Detection {
            class_id: 0,
            class_name: "person".into(),
            score: 0.9,
            bbox,
        }]),
        culprit: Some(bbox),
        captured_at: SystemTime::now(),
        capture_to_detected: Duration::from_millis(30),
        inference: Duration::from_millis(20),
        frame_raised: true,
    };
    rig.d.handle(
        Decision::Raise(alarm("no-entry", &["siren-1"])),
        Some(evidence),
    );
    assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
    assert!(submitted(&rig.journal.calls())[0].snapshot);
}

// === clear ===

async fn end_and_notice(rig: &mut Rig, a: &Alarm) {
    rig.clear(a);
    let n = rig.notice().await;
    assert_eq!((n.kind, n.event_id), (NoticeKind::Ended, 1));
}

#[tokio::test]
async fn the_end_of_an_alarm_is_recorded_and_clears_it_once_acknowledged() {
    #[derive(Debug, Clone, Copy)]
    enum Order {
        EndThenAck,
        AckThenEnd,
    }
    for order in [Order::EndThenAck, Order::AckThenEnd] {
        let mut rig = Rig::new();
        let a = alarm("no-entry", &["siren-1"]);
        rig.raise(&a);
        assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
        match order {
            Order::EndThenAck => {
                end_and_notice(&mut rig, &a).await;
                let e = rig.sink.event(1).unwrap();
                assert!(e.ended_at.is_some());
                assert_eq!(e.state, EventState::Active, "ended, not acknowledged");
                let e = rig.d.acknowledge(1, "alice", None).await.unwrap();
                assert!(
                    matches!(&e.state, EventState::Cleared { by: Some(b), .. } if b == "alice"),
                    "{e:?}"
                );
            }
            Order::AckThenEnd => {
                rig.d.acknowledge(1, "alice", None).await.unwrap();
                assert_eq!(rig.notice().await.kind, NoticeKind::Acknowledged);
                end_and_notice(&mut rig, &a).await;
                match rig.sink.event(1).unwrap().state {
                    EventState::Cleared {
                        by: None,
                        acknowledged: Some(Acknowledgement { by, .. }),
                        ..
                    } => assert_eq!(by, "alice"),
                    s => panic!("{order:?}: {s:?}"),
                }
            }
        }
        assert!(rig.journal.calls().contains(&Call::End(1)));
    }
}

#[tokio::test]
async fn an_end_before_the_commit_waits_for_the_event() {
    let mut rig = Rig::held();
    let a = alarm("no-entry", &["siren-1"]);
    rig.raise(&a);
    rig.clear(&a);
    rig.until(1, |c| matches!(c, Call::Submit(_))).await;
    rig.sink.release(1);
    rig.until(1, |c| matches!(c, Call::End(1))).await;
    let calls = rig.journal.calls();
    assert!(
        position(&calls, |c| matches!(c, Call::Committed(1)))
            < position(&calls, |c| matches!(c, Call::End(1)))
    );
    assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
    assert_eq!(rig.notice().await.kind, NoticeKind::Ended);
}

#[tokio::test]
async fn ends_of_alarms_not_raised_here_or_not_recordable() {
    let (logs, _guard) = Logs::capture();
    let rig = Rig::new();
    // Not raised by this dispatcher (an earlier boot, a removed rule): ignored.
    rig.clear(&alarm("no-entry", &[]));
    rig.settle().await;
    assert!(rig.journal.calls().is_empty());
    // Raised, but the end cannot be written: no notice, logged.
    let mut rig = Rig::new();
    let a = alarm("no-entry", &[]);
    rig.raise(&a);
    assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
    rig.sink.fail_updates();
    rig.clear(&a);
    rig.settle().await;
    rig.no_notice();
    assert!(logs.has(tracing::Level::ERROR, "cannot record the end of an alarm"));
}

// === acknowledge ===

#[tokio::test]
async fn acknowledging_commits_with_the_audit_then_releases_the_outputs_by_key() {
    let mut rig = Rig::new();
    let a = alarm("no-entry", &["siren-1", "relay-1"]);
    rig.raise(&a);
    assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
    let key = key_of(&submitted(&rig.journal.calls())[0]);
    let e = rig
        .d
        .acknowledge(1, "alice", Some(audit_row()))
        .await
        .unwrap();
    assert_eq!(e.state.name(), "acknowledged");
    let n = rig.notice().await;
    assert_eq!(
        (n.kind, n.event_id, n.rule),
        (NoticeKind::Acknowledged, 1, a.rule)
    );
    let calls = rig.journal.calls();
    let tail = &calls[calls.len() - 2..];
    let expected_audit = NewAudit {
        before: Some("active".into()),
        after: Some("acknowledged".into()),
        ..audit_row()
    };
    assert_eq!(
        tail,
        [
            Call::Acknowledge {
                id: 1,
                by: "alice".into(),
                audit: Some(expected_audit)
            },
            Call::Release(key),
        ]
    );
}

#[tokio::test]
async fn an_event_from_an_earlier_boot_releases_the_outputs_of_its_stored_key() {
    let mut rig = Rig::new();
    let old_key = AlarmKey {
        boot_ms: 1_700_000_000_000,
        seq: 41,
    };
    let event = |details| NewEvent {
        camera: CameraId::new("gate").unwrap(),
        rule: RuleId::new("no-entry").unwrap(),
        zone: None,
        track: None,
        kind: "intrusion".into(),
        severity: Severity::Warning,
        started_at: 1,
        ended_at: Some(2),
        message: "earlier".into(),
        details,
        snapshot_jpeg: None,
        cleared: false,
    };
    let typed = rig.sink.insert(event(Some(EventDetails {
        alarm_key: old_key,
        detail: AlarmDetail::Intrusion,
    })));
    // An event from schema v1 has no key: acknowledged, nothing to release.
    let untyped = rig.sink.insert(event(None));
    for id in [typed, untyped] {
        let e = rig.d.acknowledge(id, "bob", None).await.unwrap();
        assert_eq!(e.state.name(), "cleared", "it had ended");
        let n = rig.notice().await;
        assert_eq!(
            (n.kind, n.event_id, n.severity),
            (NoticeKind::Acknowledged, id, "warning")
        );
    }
    let releases: Vec<_> = rig
        .journal
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Release(_)))
        .collect();
    assert_eq!(releases, [Call::Release(old_key)]);
}

#[tokio::test]
async fn a_refused_acknowledgement_releases_nothing_and_tells_no_one() {
    let mut rig = Rig::new();
    rig.raise(&alarm("no-entry", &["siren-1"]));
    assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
    rig.d.acknowledge(1, "alice", None).await.unwrap();
    assert_eq!(rig.notice().await.kind, NoticeKind::Acknowledged);
    type Expected = fn(&StoreError) -> bool;
    let cases: [(u64, Expected); 2] = [
        (1, |e| matches!(e, StoreError::BadTransition { .. })),
        (99, |e| matches!(e, StoreError::NotFound { .. })),
    ];
    for (id, expected) in cases {
        let before = rig.journal.calls().len();
        match rig.d.acknowledge(id, "bob", Some(audit_row())).await {
            Err(DispatchError::Store { id: got, source }) => {
                assert_eq!(got, id);
                assert!(expected(&source), "{source:?}");
            }
            other => panic!("event {id}: {other:?}"),
        }
        let calls = rig.journal.calls();
        assert_eq!(
            &calls[before..],
            [Call::Acknowledge {
                id,
                by: "bob".into(),
                audit: None
            }],
            "no audit row, no release"
        );
        rig.no_notice();
    }
}

#[tokio::test]
async fn outputs_that_cannot_be_released_are_logged_and_the_acknowledgement_stands() {
    let (logs, _guard) = Logs::capture();
    let mut rig = Rig::new();
    rig.raise(&alarm("no-entry", &["siren-1"]));
    assert_eq!(rig.notice().await.kind, NoticeKind::Raised);
    rig.outputs.set_busy();
    let e = rig.d.acknowledge(1, "alice", None).await.unwrap();
    assert_eq!(e.state.name(), "acknowledged");
    assert_eq!(rig.notice().await.kind, NoticeKind::Acknowledged);
    assert!(logs.has(tracing::Level::ERROR, "cannot release the outputs"));
}

#[tokio::test]
async fn the_button_acknowledges_every_open_event_and_the_ones_not_stored_yet() {
    let mut rig = Rig::held();
    let a = alarm("no-entry", &["siren-1"]);
    let mut b = alarm("no-entry", &["relay-1"]);
    b.track = Some(8);
    rig.raise(&a);
    rig.sink.release(1);
    rig.committed(1).await;
    // The second alarm is raised but its event is not on disk when the button is pressed.
    rig.raise(&b);
    rig.until(2, |c| matches!(c, Call::Submit(_))).await;
    let n = within(rig.d.acknowledge_all("ack-button")).await;
    assert_eq!(n, 1, "the stored one at once");
    assert_eq!(rig.sink.event(1).unwrap().state.name(), "acknowledged");
    rig.sink.release(1);
    rig.until(1, |c| matches!(c, Call::Acknowledge { id: 2, .. }))
        .await;
    rig.settle().await;
    for id in [1, 2] {
        let state = rig.sink.event(id).unwrap().state;
        assert!(
            matches!(&state, EventState::Acknowledged { by, .. } if by == "ack-button"),
            "event {id}: {state:?}"
        );
    }
    let calls = rig.journal.calls();
    let keys: Vec<AlarmKey> = submitted(&calls).iter().map(key_of).collect();
    let released: Vec<AlarmKey> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Release(k) => Some(*k),
            _ => None,
        })
        .collect();
    assert_eq!(released, keys, "each alarm's outputs released, in order");
    let mut kinds = Vec::new();
    while let Ok(n) = rig.notices.try_recv() {
        kinds.push((n.kind, n.event_id));
    }
    assert_eq!(
        kinds,
        [
            (NoticeKind::Raised, 1),
            (NoticeKind::Acknowledged, 1),
            (NoticeKind::Raised, 2),
            (NoticeKind::Acknowledged, 2),
        ]
    );
}

#[tokio::test]
async fn the_button_with_an_unreadable_store_acknowledges_nothing() {
    let (logs, _guard) = Logs::capture();
    let rig = Rig::new();
    rig.raise(&alarm("no-entry", &[]));
    rig.committed(1).await;
    rig.sink.fail_updates();
    assert_eq!(rig.d.acknowledge_all("ack-button").await, 0);
    assert!(logs.has(tracing::Level::ERROR, "cannot list open events"));
}

// === configuration and shutdown ===

#[test]
fn the_configuration_becomes_rule_actions_and_outlines() {
    let text = r#"
[detector]
model = "models/m/manifest.toml"

[storage]
state_dir = "/tmp/sy"
media_dir = "/tmp/sy/media"

[outputs]
backend = "simulated"

[[outputs.lines]]
id = "siren"
role = "siren"
offset = 0

[[outputs.lines]]
id = "stop-relay"
role = "relay"
offset = 1

[[cameras]]
id = "cam-1"
source = { kind = "replay", path = "walk.mjpeg" }

[[zones]]
id = "press"
camera = "cam-1"
polygon = [[0.3, 0.4], [0.7, 0.4], [0.5, 0.9]]

[[lines]]
id = "gate"
camera = "cam-1"
name = "Gate"
from = [0.5, 0.25]
to = [0.5, 0.75]

[[rules]]
id = "press-intrusion"
name = "Person in the press"
kind = "intrusion"
zone = "press"
severity = "critical"
outputs = ["siren", "stop-relay"]
siren = { pattern = "steady" }

[[rules]]
id = "night-gate"
name = "Night crossing"
kind = "line_crossing"
zone = "gate"
direction = "a_to_b"
severity = "critical"
outputs = ["siren", "stop-relay"]
siren = { pattern = "pulsed", period_ms = 500, duration_s = 30 }
relay_latch_s = 10
"#;
    let config = safe_yolo_config::parse(text, std::path::Path::new("/etc/safe-yolo"), Vec::new())
        .unwrap_or_else(|p| panic!("{p:?}"));
    let cfg = DispatcherConfig::from_config(&config);
    let press = &cfg.rules[&RuleId::new("press-intrusion").unwrap()];
    assert_eq!(
        (press.name.as_str(), press.kind, press.siren, press.relay),
        (
            "Person in the press",
            "intrusion",
            ActionSpec {
                pattern: Pattern::Steady,
                ending: Ending::UntilAck
            },
            ActionSpec {
                pattern: Pattern::Steady,
                ending: Ending::UntilAck
            }
        )
    );
    let gate = &cfg.rules[&RuleId::new("night-gate").unwrap()];
    assert_eq!(gate.kind, "line_crossing");
    assert_eq!(
        gate.siren.ending,
        Ending::After {
            duration: Duration::from_secs(30)
        }
    );
    assert!(matches!(gate.siren.pattern, Pattern::Pulsed { .. }));
    assert_eq!(gate.relay, RELAY);
    assert_eq!(cfg.output_roles[&out("stop-relay")], OutputRole::Relay);
    assert_eq!(cfg.zones[&ZoneId::new("press").unwrap()].len(), 3);
    assert_eq!(cfg.zones[&ZoneId::new("gate").unwrap()].len(), 2);
}

#[tokio::test]
async fn rules_edited_at_run_time_apply_to_the_next_alarm() {
    let rig = Rig::new();
    let mut cfg = config();
    cfg.rules.clear();
    rig.d.update_config(cfg);
    rig.raise(&alarm("no-entry", &["siren-1"]));
    rig.committed(1).await;
    let calls = rig.journal.calls();
    assert!(!calls.iter().any(|c| matches!(c, Call::Activate { .. })));
    assert_eq!(submitted(&calls)[0].kind, "alarm");
}

#[tokio::test]
async fn shutdown_waits_for_event_writes_up_to_a_limit() {
    let (logs, _guard) = Logs::capture();
    let rig = Rig::held();
    rig.raise(&alarm("no-entry", &[]));
    rig.until(1, |c| matches!(c, Call::Submit(_))).await;
    // The disk never answers: shutdown gives up (and says so) rather than hang.
    rig.d.drain(Duration::from_millis(1)).await;
    assert!(logs.has(tracing::Level::WARN, "still being stored at shutdown"));
}

//! The runner driving the simulated backend, on tokio's paused clock: the recorded
//! transitions prove pattern timing, latching, the fail-safe states and debouncing.
//! Time here is virtual (deterministic), never the wall clock.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use std::time::Duration;

use safe_yolo_domain::{OutputId, RuleId};
use safe_yolo_outputs::driver::Mode;
use safe_yolo_outputs::sim::read_log;
use safe_yolo_outputs::{
    AckTarget, ActionSpec, Driver, DriverSettings, Ending, InputRole, OutputRole, OutputSpec,
    Outputs, OutputsError, OutputsHandle, OutputsRunner, Pattern, SafeState, SimBackend, SimHandle,
    Source, Transition,
};
use tokio::task::JoinHandle;
use tokio::time::sleep;

const TICK: Duration = Duration::from_millis(10);
/// Transitions land exactly on the virtual clock (the runner wakes at each pattern edge,
/// not only on ticks); tokio's timer wheel has a 1 ms resolution.
const TOLERANCE_MS: u64 = 1;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn id(s: &str) -> OutputId {
    OutputId::new(s).unwrap()
}

fn src(rule: &str, event: &str) -> Source {
    Source {
        rule: RuleId::new(rule).unwrap(),
        event: event.into(),
    }
}

fn specs() -> Vec<OutputSpec> {
    let o = |i: &str, role, safe_state, active_low| OutputSpec {
        id: id(i),
        role,
        safe_state,
        active_low,
    };
    vec![
        o("siren", OutputRole::Siren, SafeState::Off, true),
        o("stop", OutputRole::Relay, SafeState::On, false),
        o("healthy", OutputRole::Healthy, SafeState::Off, false),
        o("lamp", OutputRole::Generic, SafeState::Off, false),
    ]
}

fn safe_of(output: &str) -> bool {
    specs()
        .iter()
        .find(|s| s.id.as_str() == output)
        .unwrap()
        .safe_state
        .is_on()
}

struct Rig {
    handle: OutputsHandle,
    sim: SimHandle,
    task: JoinHandle<safe_yolo_outputs::RunnerReport>,
}

/// The driver of these tests: 500 ms health timeout, tests up to 10 s.
fn driver() -> Driver {
    Driver::new(
        specs(),
        DriverSettings {
            health_timeout: ms(500),
            max_test: ms(10_000),
            healthy_pulse: None,
        },
    )
    .unwrap()
}

fn rig_with(backend: SimBackend) -> Rig {
    let sim = backend.handle();
    let driver = driver();
    let (runner, handle) = OutputsRunner::new(
        backend,
        driver,
        vec![
            (InputRole::AckButton, ms(30)),
            (InputRole::DoorContact, ms(50)),
        ],
        TICK,
    );
    Rig {
        handle,
        sim,
        task: runner.spawn(),
    }
}

fn rig() -> Rig {
    rig_with(SimBackend::new(&specs(), &[InputRole::AckButton, InputRole::DoorContact]).unwrap())
}

/// Sends heartbeats every 100 ms until aborted.
fn heartbeats(h: &OutputsHandle) -> JoinHandle<()> {
    let h = h.clone();
    tokio::spawn(async move {
        loop {
            let _ = h.pipeline_health(true);
            sleep(ms(100)).await;
        }
    })
}

/// Transitions of one output as `(time since start in ms, logical level)`.
fn history(sim: &SimHandle, output: &str) -> Vec<(u64, bool)> {
    sim.transitions_of(&id(output))
        .iter()
        .map(|t| (u64::try_from(t.at.as_millis()).unwrap(), t.on))
        .collect()
}

/// Asserts recorded transitions match the expected ones (within [`TOLERANCE_MS`]).
fn assert_history(got: &[(u64, bool)], want: &[(u64, bool)]) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for ((gt, gl), (wt, wl)) in got.iter().zip(want) {
        assert_eq!(gl, wl, "got {got:?}, want {want:?}");
        assert!(
            gt.abs_diff(*wt) <= TOLERANCE_MS,
            "transition at {gt} ms, expected {wt} ms: got {got:?}, want {want:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn start_writes_safe_state_then_healthy_follows_heartbeats() {
    let r = rig();
    sleep(ms(200)).await;
    // Nothing is alive yet: every line sits at its safe level, written at t=0.
    for s in specs() {
        assert_history(
            &history(&r.sim, s.id.as_str()),
            &[(0, s.safe_state.is_on())],
        );
    }
    // The siren is active-low: safe off means electrically high.
    assert!(r.sim.transitions_of(&id("siren"))[0].high);
    let beats = heartbeats(&r.handle);
    sleep(ms(300)).await;
    assert_history(&history(&r.sim, "healthy"), &[(0, false), (200, true)]);
    assert_history(&history(&r.sim, "stop"), &[(0, true), (200, false)]);
    assert_eq!(r.handle.status().driver.mode, Mode::Running);
    beats.abort();
    // Heartbeats stop at t=400 (the last one was at 400): the timeout of 500 ms trips at 900.
    sleep(ms(1000)).await;
    assert_history(
        &history(&r.sim, "healthy"),
        &[(0, false), (200, true), (900, false)],
    );
    assert_history(
        &history(&r.sim, "stop"),
        &[(0, true), (200, false), (900, true)],
    );
    assert_eq!(r.handle.status().driver.mode, Mode::Faulted);
}

#[tokio::test(start_paused = true)]
async fn pulsed_siren_keeps_its_periods_and_expires() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    let action = ActionSpec {
        pattern: Pattern::Pulsed {
            on: ms(300),
            off: ms(200),
        },
        ending: Ending::After { duration: ms(1400) },
    };
    r.handle
        .activate(src("no-go", "e1"), vec![id("siren"), id("lamp")], action)
        .await
        .unwrap();
    sleep(ms(2000)).await;
    // Activated at t=100: on 300, off 200, ..., ended 1400 ms later (t=1500) mid on-phase.
    let want = [
        (0, false),
        (100, true),
        (400, false),
        (600, true),
        (900, false),
        (1100, true),
        (1400, false),
        (1600, true),
    ];
    let got = history(&r.sim, "siren");
    // The expiry at 1500 falls in the off phase (1400..1600): the pulse at 1600 never comes.
    assert_history(&got, &want[..7]);
    // On/off periods measured from the record itself.
    for w in got[1..].windows(2) {
        let len = w[1].0 - w[0].0;
        let expect = if w[0].1 { 300 } else { 200 };
        assert!(
            len.abs_diff(expect) <= TOLERANCE_MS,
            "phase of {len} ms, expected {expect}: {got:?}"
        );
    }
    assert_eq!(
        history(&r.sim, "lamp"),
        got,
        "both outputs follow the same pattern"
    );
    assert!(r.handle.status().driver.actions.is_empty());
}

#[tokio::test(start_paused = true)]
async fn timed_steady_action_ends_mid_phase() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    let action = ActionSpec {
        pattern: Pattern::Steady,
        ending: Ending::After { duration: ms(750) },
    };
    r.handle
        .activate(src("no-go", "e1"), vec![id("lamp")], action)
        .await
        .unwrap();
    sleep(ms(2000)).await;
    assert_history(
        &history(&r.sim, "lamp"),
        &[(0, false), (100, true), (850, false)],
    );
}

#[tokio::test(start_paused = true)]
async fn latched_relay_holds_until_acknowledged() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    r.handle
        .activate(src("forklift", "e7"), vec![id("stop")], ActionSpec::latch())
        .await
        .unwrap();
    sleep(ms(60_000)).await;
    // The first heartbeat (t=0) released the stop relay from its safe level.
    assert_history(
        &history(&r.sim, "stop"),
        &[(0, true), (0, false), (100, true)],
    );
    assert_eq!(
        r.handle
            .acknowledge(AckTarget::Event("other".into()))
            .await
            .unwrap(),
        0
    );
    sleep(ms(1000)).await;
    assert_eq!(r.sim.level(&id("stop")), Some(true));
    assert_eq!(
        r.handle
            .acknowledge(AckTarget::Rule(RuleId::new("forklift").unwrap()))
            .await
            .unwrap(),
        1
    );
    sleep(ms(100)).await;
    assert_history(
        &history(&r.sim, "stop"),
        &[(0, true), (0, false), (100, true), (61_100, false)],
    );
    // Repeating the acknowledged event does not latch again.
    r.handle
        .activate(src("forklift", "e7"), vec![id("stop")], ActionSpec::latch())
        .await
        .unwrap();
    sleep(ms(100)).await;
    assert_eq!(r.sim.level(&id("stop")), Some(false));
}

#[tokio::test(start_paused = true)]
async fn explicit_fault_drops_healthy_and_forces_safe_state_then_recovers() {
    let r = rig();
    let beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    r.handle
        .activate(src("no-go", "e1"), vec![id("siren")], ActionSpec::latch())
        .await
        .unwrap();
    sleep(ms(200)).await;
    assert_eq!(r.sim.level(&id("siren")), Some(true));
    beats.abort();
    r.handle.pipeline_health(false).unwrap();
    sleep(ms(20)).await;
    for s in specs() {
        assert_eq!(r.sim.level(&s.id), Some(s.safe_state.is_on()), "{}", s.id);
    }
    let healthy = history(&r.sim, "healthy");
    assert_history(&healthy, &[(0, false), (0, true), (300, false)]);
    // Manual tests are refused while faulted.
    assert!(matches!(
        r.handle.test(id("lamp"), ms(100)).await,
        Err(OutputsError::Refused(_))
    ));
    // Recovery: the latched siren comes back (it was never acknowledged).
    let _beats = heartbeats(&r.handle);
    sleep(ms(50)).await;
    assert_eq!(r.sim.level(&id("siren")), Some(true));
    assert_eq!(r.sim.level(&id("healthy")), Some(true));
}

#[tokio::test(start_paused = true)]
async fn shutdown_puts_every_line_in_its_safe_state_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gpio.jsonl");
    let backend = SimBackend::new(&specs(), &[InputRole::AckButton])
        .unwrap()
        .with_log_file(&log)
        .unwrap();
    let r = rig_with(backend);
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    r.handle
        .activate(
            src("no-go", "e1"),
            vec![id("siren"), id("lamp")],
            ActionSpec::latch(),
        )
        .await
        .unwrap();
    sleep(ms(100)).await;
    assert_eq!(r.sim.level(&id("siren")), Some(true));
    r.handle.shutdown().await.unwrap();
    let report = r.task.await.unwrap();
    assert!(report.safe);
    assert_eq!(report.write_errors, 0);
    for s in specs() {
        assert_eq!(r.sim.level(&s.id), Some(s.safe_state.is_on()), "{}", s.id);
    }
    // The JSON-lines log tells the same story to another process.
    let logged = read_log(&log).unwrap();
    assert_eq!(logged, r.sim.transitions());
    for s in specs() {
        let last: &Transition = logged.iter().rev().find(|t| t.output == s.id).unwrap();
        assert_eq!(last.on, safe_of(s.id.as_str()));
    }
    // Commands after shutdown fail cleanly.
    assert_eq!(
        r.handle.pipeline_health(true),
        Err(OutputsError::Stopped),
        "the runner has stopped"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_shuts_down_safely() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    r.handle
        .activate(src("no-go", "e1"), vec![id("lamp")], ActionSpec::latch())
        .await
        .unwrap();
    sleep(ms(50)).await;
    _beats.abort();
    let Rig { handle, sim, task } = r;
    drop(handle);
    let report = task.await.unwrap();
    assert!(report.safe);
    assert_eq!(sim.level(&id("lamp")), Some(false));
    assert_eq!(sim.level(&id("stop")), Some(true));
}

#[tokio::test(start_paused = true)]
async fn aborted_runner_still_leaves_safe_state() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    r.handle
        .activate(src("no-go", "e1"), vec![id("siren")], ActionSpec::latch())
        .await
        .unwrap();
    sleep(ms(50)).await;
    assert_eq!(r.sim.level(&id("siren")), Some(true));
    r.task.abort();
    let _ = r.task.await;
    for s in specs() {
        assert_eq!(r.sim.level(&s.id), Some(s.safe_state.is_on()), "{}", s.id);
    }
}

#[tokio::test(start_paused = true)]
async fn write_errors_are_counted_and_retried() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    r.sim.fail_next_writes(3);
    r.handle
        .activate(src("no-go", "e1"), vec![id("lamp")], ActionSpec::latch())
        .await
        .unwrap();
    sleep(ms(100)).await;
    assert_eq!(r.sim.level(&id("lamp")), Some(true));
    assert_eq!(r.handle.write_errors(), 3);
    let st = r.handle.status();
    assert_eq!(st.write_errors, 3);
    assert!(st.outputs.iter().all(|o| o.confirmed && o.on == o.desired));
    // The three failures cost three ticks at most.
    let lamp = history(&r.sim, "lamp");
    assert_eq!(lamp.len(), 2, "{lamp:?}");
    assert!((100..=130).contains(&lamp[1].0) && lamp[1].1, "{lamp:?}");
}

#[tokio::test(start_paused = true)]
async fn manual_test_runs_for_its_duration() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    sleep(ms(100)).await;
    r.handle.test(id("siren"), ms(400)).await.unwrap();
    r.handle.test(id("healthy"), ms(200)).await.unwrap();
    sleep(ms(1000)).await;
    assert_history(
        &history(&r.sim, "siren"),
        &[(0, false), (100, true), (500, false)],
    );
    assert_history(
        &history(&r.sim, "healthy"),
        &[(0, false), (0, true), (100, false), (300, true)],
    );
    assert!(matches!(
        r.handle.test(id("siren"), ms(20_000)).await,
        Err(OutputsError::Refused(_))
    ));
    assert!(matches!(
        r.handle.test(id("ghost"), ms(100)).await,
        Err(OutputsError::Refused(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn bouncy_ack_button_acknowledges_once() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    let mut events = r.handle.subscribe_inputs();
    sleep(ms(100)).await;
    r.handle
        .activate(src("no-go", "e1"), vec![id("siren")], ActionSpec::latch())
        .await
        .unwrap();
    r.handle
        .activate(src("forklift", "e2"), vec![id("stop")], ActionSpec::latch())
        .await
        .unwrap();
    sleep(ms(100)).await;
    // Press with contact bounce spread over three ticks, then a clean release.
    for (level, gap) in [(true, 3), (false, 4), (true, 12), (false, 2), (true, 9)] {
        r.sim.push_edge(InputRole::AckButton, level);
        sleep(ms(gap)).await;
    }
    sleep(ms(100)).await;
    r.sim.set_input(InputRole::AckButton, false);
    sleep(ms(100)).await;
    let press = events.try_recv().unwrap();
    assert_eq!((press.role, press.active), (InputRole::AckButton, true));
    let release = events.try_recv().unwrap();
    assert_eq!(
        (release.role, release.active),
        (InputRole::AckButton, false)
    );
    assert!(
        events.try_recv().is_err(),
        "exactly one press and one release"
    );
    assert_eq!(r.sim.level(&id("siren")), Some(false));
    assert_eq!(r.sim.level(&id("stop")), Some(false));
    // The press became stable 30 ms after its last bounce (edges seen at tick resolution).
    let last_bounce_ms = 200 + 3 + 4 + 12 + 2;
    assert!(
        press.at_ms.abs_diff(last_bounce_ms + 30) <= 10,
        "press debounced at {} ms",
        press.at_ms
    );
}

#[tokio::test(start_paused = true)]
async fn door_contact_glitch_is_ignored_and_a_real_opening_reported() {
    let r = rig();
    let _beats = heartbeats(&r.handle);
    let mut events = r.handle.subscribe_inputs();
    sleep(ms(100)).await;
    // A 20 ms glitch (debounce is 50 ms): nothing.
    r.sim.set_input(InputRole::DoorContact, true);
    sleep(ms(20)).await;
    r.sim.set_input(InputRole::DoorContact, false);
    sleep(ms(200)).await;
    assert!(events.try_recv().is_err());
    // A real opening.
    r.sim.set_input(InputRole::DoorContact, true);
    sleep(ms(200)).await;
    let open = events.try_recv().unwrap();
    assert_eq!((open.role, open.active), (InputRole::DoorContact, true));
    assert!(events.try_recv().is_err());
    let st = r.handle.status();
    let door = st
        .inputs
        .iter()
        .find(|i| i.role == InputRole::DoorContact)
        .unwrap();
    assert!(door.active);
    // The door does not acknowledge anything.
    assert_eq!(r.handle.status().driver.mode, Mode::Running);
}

/// Waits (on the real clock, generously bounded) until `lamp` was written as `on`.
async fn wait_for_lamp(handle: &OutputsHandle, on: bool) {
    let mut status = handle.watch_status();
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let lamp = status
                .borrow_and_update()
                .outputs
                .iter()
                .any(|o| o.id.as_str() == "lamp" && o.on == on && o.confirmed);
            if lamp {
                return;
            }
            status.changed().await.unwrap();
        }
    })
    .await;
    assert!(reached.is_ok(), "lamp never became {on}");
}

#[test]
fn dedicated_thread_runner_serves_the_seam_and_shuts_down_safely() {
    let backend = SimBackend::new(&specs(), &[]).unwrap();
    let sim = backend.handle();
    let driver = Driver::new(specs(), DriverSettings::default()).unwrap();
    let (runner, handle) = OutputsRunner::new(backend, driver, Vec::new(), TICK);
    let thread = runner.spawn_thread().unwrap();
    let seam: &dyn Outputs = &handle;
    seam.pipeline_health(true).unwrap();
    seam.try_activate(src("no-go", "e1"), vec![id("lamp")], ActionSpec::latch())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(wait_for_lamp(&handle, true));
    seam.try_acknowledge(AckTarget::All).unwrap();
    rt.block_on(wait_for_lamp(&handle, false));
    assert_eq!(seam.status().driver.mode, Mode::Running);
    rt.block_on(handle.shutdown()).unwrap();
    let report = thread.join().unwrap();
    assert!(report.safe);
    for s in specs() {
        assert_eq!(sim.level(&s.id), Some(s.safe_state.is_on()), "{}", s.id);
    }
}

#[tokio::test(start_paused = true)]
async fn alarm_activations_report_glass_to_output_latency() {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let backend = SimBackend::new(&specs(), &[]).unwrap();
    let sim = backend.handle();
    let driver = driver();
    let (runner, handle) = OutputsRunner::new(backend, driver, Vec::new(), TICK);
    let sink = std::sync::Arc::clone(&seen);
    let runner =
        runner.with_latency_observer(safe_yolo_outputs::LatencyObserver::new(move |source, d| {
            assert_eq!(source.event, "e1");
            sink.lock().push(d);
        }));
    let _task = runner.spawn();
    let _beats = heartbeats(&handle);
    sleep(ms(100)).await;
    // A frame captured 80 ms (wall clock) before the alarm reached the outputs.
    let origin = std::time::SystemTime::now() - ms(80);
    handle
        .try_activate_from(
            src("zone", "e1"),
            vec![id("siren")],
            ActionSpec::latch(),
            Some(origin),
        )
        .unwrap();
    // Activations without a frame (API, tests) are not measured.
    handle
        .try_activate(src("zone", "e2"), vec![id("lamp")], ActionSpec::latch())
        .unwrap();
    sleep(ms(50)).await;
    assert_eq!(sim.level(&id("siren")), Some(true));
    let got = seen.lock().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0] >= ms(80) && got[0] < ms(10_000), "{got:?}");
    // Repeating an acknowledged event changes no line and is not measured.
    handle
        .acknowledge(AckTarget::Event("e1".into()))
        .await
        .unwrap();
    handle
        .try_activate_from(
            src("zone", "e1"),
            vec![id("siren")],
            ActionSpec::latch(),
            Some(origin),
        )
        .unwrap();
    sleep(ms(50)).await;
    assert_eq!(seen.lock().len(), 1, "acknowledged activation ignored");
}

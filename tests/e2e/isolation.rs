//! The detector runs in a supervised child process: a crash, an abort or a
//! hang of it is a detector fault the daemon survives (its PID never changes),
//! and detection resumes with a new child.

use std::process::Command;
use std::time::Duration;

use crate::client::{
    Client, camera_counter, first_admin, free_port, metric_value, transitions, wait_until,
};
use crate::harness::{Appliance, Daemon, model_manifest, set_api_port};

const DETECTED: &str = "safeyolo_frames_detected_total";

/// The detector children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn kill(sig: &str, pid: i32) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} {pid}");
}

#[test]
fn a_crashed_aborted_or_hung_detector_process_is_replaced_and_the_daemon_runs_on() {
    let port = free_port();
    let (app, config) = crate::alarms::walkway_appliance(port);
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let pid = daemon.pid();
    let c = first_admin(&daemon, port);
    let detected = || camera_counter(&c, DETECTED, "walkway");
    wait_until(Duration::from_secs(30), || (detected() > 0).then_some(()))
        .unwrap_or_else(|| panic!("nothing detected; log:\n{}", daemon.log_text()));

    let first = children(pid);
    let [first] = first.as_slice() else {
        panic!("not one detector process: {first:?}")
    };
    // Sandboxed: the seccomp filter is on (tests: appliance/daemon/tests/sandbox.rs).
    let status = std::fs::read_to_string(format!("/proc/{first}/status")).unwrap();
    assert!(status.contains("Seccomp:\t2"), "{status}");
    let mut child = *first;
    for (faults, (sig, reason)) in (1..).zip([
        ("SEGV", "killed by signal 11 (SIGSEGV)"),
        ("ABRT", "killed by signal 6 (SIGABRT)"),
        // A stopped process answers nothing: a hang.
        ("STOP", "did not answer within"),
    ]) {
        kill(sig, child);
        // The fault is seen and counted, then a new child detects again.
        let counted = wait_until(Duration::from_secs(5), || {
            (metric_value(&c, "safeyolo_detector_faults_total") >= faults).then_some(())
        });
        assert!(
            counted.is_some(),
            "{sig}: no detector fault counted; log:\n{}",
            daemon.log_text()
        );
        let before = detected();
        let resumed = wait_until(Duration::from_secs(10), || {
            (detected() > before).then_some(())
        });
        assert!(
            resumed.is_some(),
            "{sig}: detection did not resume; log:\n{}",
            daemon.log_text()
        );
        let now = children(pid);
        assert_eq!(now.len(), 1, "{sig}: children {now:?}");
        assert_ne!(now[0], child, "{sig}: the faulty child still runs");
        assert_eq!(metric_value(&c, "safeyolo_detectors_down"), 0);
        assert!(
            daemon.log_text().contains(reason),
            "{sig}: {reason:?} not logged:\n{}",
            daemon.log_text()
        );
        child = now[0];
    }
    // Blind while a detector was down: the healthy line went off, and is on again.
    let healthy = transitions(&app, "healthy");
    let first_on = healthy.iter().position(|t| t.1).expect("healthy never on");
    assert!(
        healthy[first_on..].iter().any(|t| !t.1),
        "healthy stayed on while the detector was down: {healthy:?}"
    );
    assert!(
        ends_on(&app, "healthy", Duration::from_secs(5)),
        "healthy not back on: {:?}",
        transitions(&app, "healthy")
    );
    // The daemon itself never stopped.
    assert_eq!(daemon.pid(), pid);
    assert!(daemon.wait(Duration::ZERO).is_none(), "the daemon exited");
    let (status, health) = c.json("GET", "/api/v1/health", None);
    assert_eq!(status, 200, "{health}");
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        daemon.log_text()
    );
    // The child ended with the daemon.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !std::path::Path::new(&format!("/proc/{child}")).exists()
            || std::fs::read_to_string(format!("/proc/{child}/status"))
                .unwrap_or_default()
                .contains("State:\tZ"),
        "the detector process outlived the daemon"
    );
}

/// The scratch directory of detector child `pid` (after `--scratch` on its
/// command line), where a test build's child reads its fault command.
fn scratch_of(pid: i32) -> std::path::PathBuf {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let at = args
        .iter()
        .position(|a| *a == b"--scratch")
        .expect("no --scratch on the child's command line");
    std::path::PathBuf::from(String::from_utf8(args[at + 1].to_vec()).unwrap())
}

/// Whether the simulated line `output` is on (its last transition) within `timeout`.
fn ends_on(app: &Appliance, output: &str, timeout: Duration) -> bool {
    wait_until(timeout, || {
        transitions(app, output)
            .last()
            .is_some_and(|t| t.1)
            .then_some(())
    })
    .is_some()
}

/// Every event of `rule`, newest first.
fn events(c: &Client, rule: &str) -> Vec<serde_json::Value> {
    let (status, page) = c.json("GET", &format!("/api/v1/events?rule={rule}"), None);
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().cloned().unwrap_or_default()
}

/// An event of `rule` other than those in `seen`.
fn new_event(c: &Client, rule: &str, seen: &[u64]) -> Option<serde_json::Value> {
    events(c, rule)
        .into_iter()
        .find(|e| e["id"].as_u64().is_some_and(|id| !seen.contains(&id)))
}

/// Event `id` of `rule` once its alarm ended, waiting up to `timeout`.
fn ended(c: &Client, rule: &str, id: u64, timeout: Duration) -> Option<serde_json::Value> {
    wait_until(timeout, || {
        events(c, rule)
            .into_iter()
            .find(|e| e["id"] == id && e["ended_at"].is_u64())
    })
}

/// Whether `camera`'s detected-frame count grows within 10 s.
fn detects_again(c: &Client, camera: &str) -> bool {
    let before = camera_counter(c, DETECTED, camera);
    wait_until(Duration::from_secs(10), || {
        (camera_counter(c, DETECTED, camera) > before).then_some(())
    })
    .is_some()
}

fn unix_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A walkway with an intrusion rule on the siren, a detector-fault rule on
/// its own output (the beacon) and a second camera with a camera-offline
/// rule; the model is a copy the test can take away.
fn guarded_walkway(port: u16) -> (Appliance, std::path::PathBuf, std::path::PathBuf) {
    let (app, _) = crate::alarms::walkway_appliance(port);
    let models = app.path().join("models");
    let model_dir = models.join("nanodet");
    std::fs::create_dir_all(&model_dir).unwrap();
    let source = model_manifest().parent().unwrap().to_path_buf();
    for f in ["model.toml", "model-fp32.onnx", "model-int8.onnx"] {
        std::fs::copy(source.join(f), model_dir.join(f)).unwrap();
    }
    let people = app.path().join("media/people");
    let spare = app.path().join("media/spare");
    std::fs::create_dir_all(&spare).unwrap();
    for f in std::fs::read_dir(&people).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, spare.join(f.file_name().unwrap())).unwrap();
    }
    let config = app.write_config(
        0,
        r#"
[[outputs.lines]]
id = "beacon"
role = "relay"
offset = 3

[[cameras]]
id = "walkway"
source = { kind = "replay", path = "walk", fps = 10 }

[[cameras]]
id = "spare"
source = { kind = "replay", path = "spare", fps = 5 }

[[zones]]
id = "tape-front"
camera = "walkway"
polygon = [[0.20, 0.36], [0.50, 0.36], [0.50, 0.56], [0.20, 0.56]]

[[rules]]
id = "walkway-intrusion"
kind = "intrusion"
zone = "tape-front"
min_frames = 3
severity = "critical"
outputs = ["siren"]

[[rules]]
id = "walkway-blind"
kind = "detector_fault"
camera = "walkway"
severity = "critical"
cooldown_s = 0
clear_after_s = 0.5
outputs = ["beacon"]

[[rules]]
id = "spare-offline"
kind = "camera_offline"
camera = "spare"
severity = "critical"
"#,
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &model_manifest().display().to_string(),
        &model_dir.join("model.toml").display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    set_api_port(&config, port);
    (app, config, model_dir)
}

/// The whole alarm path outlives the detector: an active intrusion alarm's
/// siren keeps its state through detector faults, a detector-fault alarm is
/// raised (event stored, its own output driven) and cleared when detections
/// flow again, a camera going offline while the detector is down still
/// raises its alarm, events keep their ids, and the daemon's PID never
/// changes. Faults: a segfault (quick restart) and an abort after which the
/// model cannot be loaded for a while (a long outage, reported with the
/// child's error text).
#[test]
fn the_alarm_path_outlives_detector_faults_and_says_it_is_blind() {
    let port = free_port();
    let (app, config, model_dir) = guarded_walkway(port);
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let pid = daemon.pid();
    let c = first_admin(&daemon, port);
    let log = |daemon: &Daemon| daemon.log_text();

    // An intrusion: its siren goes on (and stays on until acknowledged).
    let intrusion = wait_until(Duration::from_secs(60), || {
        new_event(&c, "walkway-intrusion", &[])
    })
    .unwrap_or_else(|| panic!("no intrusion; log:\n{}", log(&daemon)));
    let intrusion_id = intrusion["id"].as_u64().unwrap();
    assert!(
        ends_on(&app, "siren", Duration::from_secs(5)),
        "siren not on: {:?}",
        transitions(&app, "siren")
    );
    let siren_before = transitions(&app, "siren").len();
    assert!(
        events(&c, "walkway-blind").is_empty(),
        "blind before any fault"
    );

    // 1. A segfault: the fault alarm rises at once and clears after the restart.
    let [child] = children(pid)[..] else {
        panic!("not one detector process: {:?}", children(pid))
    };
    let killed_at = unix_ms();
    kill("SEGV", child);
    let raised = wait_until(Duration::from_secs(10), || {
        new_event(&c, "walkway-blind", &[])
    })
    .unwrap_or_else(|| panic!("no detector-fault event; log:\n{}", log(&daemon)));
    let first_fault = raised["id"].as_u64().unwrap();
    assert!(first_fault > intrusion_id);
    assert_eq!(raised["camera"], "walkway");
    assert_eq!(raised["kind"], "detector_fault");
    let raise_ms = raised["started_at"]
        .as_u64()
        .unwrap()
        .saturating_sub(killed_at);
    eprintln!("segfault to detector-fault event: {raise_ms} ms");
    let cleared = ended(&c, "walkway-blind", first_fault, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("detector-fault alarm not cleared; log:\n{}", log(&daemon)));
    eprintln!(
        "segfault: detector down for {} ms (alarm raised to cleared)",
        cleared["ended_at"].as_u64().unwrap() - cleared["started_at"].as_u64().unwrap()
    );
    assert!(
        transitions(&app, "beacon").iter().any(|t| t.1),
        "the detector-fault output never went on"
    );
    assert!(
        detects_again(&c, "walkway"),
        "detection did not resume; log:\n{}",
        log(&daemon)
    );

    // The child hangs, then exits, on command (its fault file): each is a
    // fault alarm of its own, raised and cleared, the detector back after it.
    let mut seen = vec![first_fault];
    for command in ["hang", "exit 3"] {
        let [child] = children(pid)[..] else {
            panic!("not one detector process: {:?}", children(pid))
        };
        std::fs::write(scratch_of(child).join("fault"), command).unwrap();
        let ev = wait_until(Duration::from_secs(15), || {
            new_event(&c, "walkway-blind", &seen)
        })
        .unwrap_or_else(|| panic!("{command}: no detector-fault event; log:\n{}", log(&daemon)));
        let id = ev["id"].as_u64().unwrap();
        let cleared =
            ended(&c, "walkway-blind", id, Duration::from_secs(20)).unwrap_or_else(|| {
                panic!("{command}: fault alarm not cleared; log:\n{}", log(&daemon))
            });
        eprintln!(
            "{command}: detector-fault alarm raised to cleared in {} ms",
            cleared["ended_at"].as_u64().unwrap() - cleared["started_at"].as_u64().unwrap()
        );
        seen.push(id);
        let now = children(pid);
        assert!(
            !now.contains(&child),
            "{command}: the faulty child still runs"
        );
    }

    // 2. An abort, and the model cannot be loaded: a long outage.
    let [child] = children(pid)[..] else {
        panic!("not one detector process: {:?}", children(pid))
    };
    let parked = model_dir.with_file_name("parked");
    std::fs::rename(&model_dir, &parked).unwrap();
    kill("ABRT", child);
    let second = wait_until(Duration::from_secs(10), || {
        new_event(&c, "walkway-blind", &seen)
    })
    .unwrap_or_else(|| panic!("no second detector-fault event; log:\n{}", log(&daemon)));
    let second_fault = second["id"].as_u64().unwrap();
    let reported = wait_until(Duration::from_secs(15), || {
        log(&daemon)
            .contains("could not load the model")
            .then_some(())
    })
    .is_some();
    assert!(
        reported,
        "the child's load error not reported; log:\n{}",
        log(&daemon)
    );
    assert!(metric_value(&c, "safeyolo_detectors_down") >= 1);
    // While blind, a camera that goes offline still raises its alarm.
    std::fs::rename(
        app.path().join("media/spare"),
        app.path().join("media/gone"),
    )
    .unwrap();
    let offline = wait_until(Duration::from_secs(30), || {
        new_event(&c, "spare-offline", &[])
    })
    .unwrap_or_else(|| {
        panic!(
            "no camera-offline event while blind; log:\n{}",
            log(&daemon)
        )
    });
    assert!(
        metric_value(&c, "safeyolo_detectors_down") >= 1,
        "the detector came back before the camera-offline alarm: the test proves nothing"
    );
    assert!(offline["id"].as_u64().unwrap() > second_fault);
    // The siren of the intrusion kept its state through both faults.
    let siren = transitions(&app, "siren");
    assert!(
        siren[siren_before - 1..].iter().all(|t| t.1),
        "the siren changed while the detector was down: {siren:?}"
    );
    // The model is back: a new child loads it, the fault alarm clears.
    std::fs::rename(&parked, &model_dir).unwrap();
    let cleared = ended(&c, "walkway-blind", second_fault, Duration::from_secs(40));
    assert!(
        cleared.is_some(),
        "detector-fault alarm not cleared after the model came back; log:\n{}",
        log(&daemon)
    );
    assert!(
        detects_again(&c, "walkway"),
        "detection did not resume; log:\n{}",
        log(&daemon)
    );
    assert_eq!(metric_value(&c, "safeyolo_detectors_down"), 0);

    // Events kept their ids; the daemon never restarted.
    let (status, kept) = c.json("GET", &format!("/api/v1/events/{intrusion_id}"), None);
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["rule"], "walkway-intrusion");
    assert_eq!(daemon.pid(), pid);
    assert!(daemon.wait(Duration::ZERO).is_none(), "the daemon exited");
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        log(&daemon)
    );
}

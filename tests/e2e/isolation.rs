//! The detector runs in a supervised child process: a crash, an abort or a
//! hang of it is a detector fault the daemon survives (its PID never changes),
//! and detection resumes with a new child.

use std::process::Command;
use std::time::Duration;

use crate::client::{camera_counter, first_admin, free_port, metric_value, wait_until};
use crate::harness::Daemon;

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
    let healthy = crate::client::transitions(&app, "healthy");
    let first_on = healthy.iter().position(|t| t.1).expect("healthy never on");
    assert!(
        healthy[first_on..].iter().any(|t| !t.1),
        "healthy stayed on while the detector was down: {healthy:?}"
    );
    let back_on = wait_until(Duration::from_secs(5), || {
        crate::client::transitions(&app, "healthy")
            .last()
            .is_some_and(|t| t.1)
            .then_some(())
    });
    assert!(
        back_on.is_some(),
        "healthy not back on: {:?}",
        crate::client::transitions(&app, "healthy")
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

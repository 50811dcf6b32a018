//! The daemon's contract with systemd and with the plant: READY only when
//! everything is up, watchdog pings tied to pipeline liveness, an orderly
//! SIGTERM that leaves every output in its safe state.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Appliance, Daemon, NotifySocket};

/// Final logical level of every output in the simulated-output log.
fn final_levels(log: &Path) -> BTreeMap<String, bool> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut levels = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        levels.insert(
            v["output"].as_str().unwrap().to_owned(),
            v["on"].as_bool().unwrap(),
        );
    }
    levels
}

fn ever_on(log: &Path, output: &str) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["output"] == output && v["on"] == true
        })
}

#[test]
fn ready_watchdog_then_sigterm_exits_0_with_outputs_safe() {
    let app = Appliance::new();
    let config = app.write_config(2, "");
    let notify = NotifySocket::new();
    let mut daemon = Daemon::start(&config, Some(&notify), Some(Duration::from_secs(1)), &[]);

    let ready = notify.wait_for("READY=1", Duration::from_secs(120));
    assert!(
        ready.is_some(),
        "no READY; daemon log:\n{}",
        daemon.log_text()
    );
    // With WatchdogSec=1s the daemon pings every 0.5 s while healthy.
    std::thread::sleep(Duration::from_secs(3));
    let pings = notify.times_of("WATCHDOG=1");
    assert!(
        pings.len() >= 3,
        "expected >= 3 watchdog pings in 3 s, got {}; log:\n{}",
        pings.len(),
        daemon.log_text()
    );
    // The "healthy" output is held on while the pipeline is alive.
    assert!(
        ever_on(&app.sim_log(), "healthy"),
        "healthy never went on; log:\n{}",
        daemon.log_text()
    );
    assert!(
        !notify.messages().iter().any(|(_, m)| m.contains("STALLED")),
        "{:?}",
        notify.messages()
    );

    let t0 = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(5));
    let took = t0.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 5 s after SIGTERM; log:\n{}",
            daemon.log_text()
        )
    });
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        daemon.log_text()
    );
    assert!(took < Duration::from_secs(5));
    assert!(
        notify
            .wait_for("STOPPING=1", Duration::from_secs(1))
            .is_some(),
        "{:?}",
        notify.messages()
    );

    let levels = final_levels(&app.sim_log());
    for id in ["siren", "relay", "healthy"] {
        assert_eq!(
            levels.get(id),
            Some(&false),
            "{id} not in its safe state (off) after SIGTERM: {levels:?}"
        );
    }
    let log = daemon.log_text();
    assert!(log.contains("safe-yolo stopped"), "{log}");
}

#[test]
fn sigint_also_stops_cleanly() {
    let app = Appliance::new();
    let config = app.write_config(1, "");
    let (mut daemon, notify) = Daemon::start_ready(&config);
    daemon.signal("INT");
    let status = daemon
        .wait(Duration::from_secs(5))
        .expect("still running after SIGINT");
    assert!(status.success(), "{}", daemon.log_text());
    // No watchdog was requested, so none was sent.
    assert!(notify.times_of("WATCHDOG=1").is_empty());
}

/// A detect worker that stops making progress (injected after a few frames)
/// must stop the watchdog pings and drop the healthy output, while the
/// process itself stays up and still stops cleanly.
#[cfg(feature = "fault-injection")]
#[test]
fn a_stalled_pipeline_stops_the_watchdog_pings() {
    let app = Appliance::new();
    let config = app.write_config(1, "");
    let notify = NotifySocket::new();
    let mut daemon = Daemon::start(
        &config,
        Some(&notify),
        Some(Duration::from_secs(1)),
        &[("SAFEYOLO_FAULT_STALL_DETECT_AFTER", "15")],
    );
    assert!(
        notify
            .wait_for("READY=1", Duration::from_secs(120))
            .is_some(),
        "{}",
        daemon.log_text()
    );
    let stalled = notify.wait_for_prefix("STATUS=STALLED", Duration::from_secs(60));
    let stalled =
        stalled.unwrap_or_else(|| panic!("no stall reported; log:\n{}", daemon.log_text()));
    let before: Vec<Instant> = notify
        .times_of("WATCHDOG=1")
        .into_iter()
        .filter(|t| *t < stalled)
        .collect();
    assert!(!before.is_empty(), "no pings before the stall");
    // Watch for 3 s (three ping periods at WatchdogSec=1s): no ping at all.
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<Instant> = notify
        .times_of("WATCHDOG=1")
        .into_iter()
        .filter(|t| *t > stalled)
        .collect();
    assert!(after.is_empty(), "{} pings after the stall", after.len());
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon must stay up; systemd restarts it"
    );
    let levels = final_levels(&app.sim_log());
    assert_eq!(
        levels.get("healthy"),
        Some(&false),
        "healthy must drop on a stall: {levels:?}"
    );
    assert!(daemon.log_text().contains("pipeline stalled"));

    daemon.signal("TERM");
    let status = daemon
        .wait(Duration::from_secs(5))
        .expect("still running after SIGTERM");
    assert!(status.success(), "{}", daemon.log_text());
}

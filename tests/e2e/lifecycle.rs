//! The daemon's contract with systemd and with the plant: READY only when
//! everything is up, watchdog pings tied to pipeline liveness, an orderly
//! SIGTERM that leaves every output in its safe state.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::{Client, camera_counter, first_admin, free_port, transitions, wait_until};
use crate::harness::{Appliance, Daemon, NotifySocket, set_api_port};

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

/// A certificate pair (key first, then the certificate: the layout of
/// `state/api/tls.pem`) valid from `from` to `to` (years), or with another key.
fn planted_pair(from: i32, to: i32, mismatched: bool) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["box".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let served_key = if mismatched {
        rcgen::KeyPair::generate().unwrap()
    } else {
        key
    };
    format!("{}{}", served_key.serialize_pem(), cert.pem())
}

#[test]
fn an_expired_or_mismatched_certificate_never_stops_the_alarms() {
    use std::os::unix::fs::PermissionsExt;
    for (what, pem, reason) in [
        ("expired", planted_pair(2000, 2001, false), "expired"),
        (
            "mismatched",
            planted_pair(2020, 2090, true),
            "does not match",
        ),
    ] {
        let port = free_port();
        let app = Appliance::new();
        let config = app.write_config(1, "");
        set_api_port(&config, port);
        let api = app.path().join("state/api");
        std::fs::create_dir_all(&api).unwrap();
        std::fs::set_permissions(&api, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(api.join("tls.pem"), &pem).unwrap();
        std::fs::set_permissions(api.join("tls.pem"), std::fs::Permissions::from_mode(0o600))
            .unwrap();

        let (daemon, _notify) = Daemon::start_ready(&config);
        let c = first_admin(&daemon, port);
        let (status, sys) = c.json("GET", "/api/v1/system", None);
        assert_eq!(status, 200, "{what}: {sys}");
        let problem = sys["certificate_problem"].as_str().unwrap_or_default();
        assert!(problem.contains(reason), "{what}: {sys}");
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let served = &sys["certificate"];
        assert!(
            served["not_before"].as_i64().unwrap() <= now_s
                && served["not_after"].as_i64().unwrap() > now_s
                && served["self_signed"] == true,
            "{what}: the served certificate is not a fresh one: {served}"
        );
        // The planted pair was moved aside, and why is in the audit log.
        assert_eq!(
            std::fs::read_to_string(api.join("tls.pem.rejected")).unwrap(),
            pem,
            "{what}"
        );
        let (_, audit) = c.json("GET", "/api/v1/audit", None);
        assert!(
            audit["rows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "tls.fallback"
                    && r["before"].as_str().unwrap_or_default().contains(reason)),
            "{what}: {audit}"
        );
        // The safety path runs: the camera's frames are detected.
        assert!(
            wait_until(Duration::from_secs(60), || {
                (camera_counter(&c, "safeyolo_frames_detected_total", "cam-0") > 0).then_some(())
            })
            .is_some(),
            "{what}: no frame detected; log:\n{}",
            daemon.log_text()
        );
    }
}

#[test]
fn a_truncated_jwt_key_is_replaced_and_every_session_ends() {
    use std::os::unix::fs::PermissionsExt;
    let port = free_port();
    let app = Appliance::new();
    let config = app.write_config(1, "");
    set_api_port(&config, port);
    // First run: an admin with a session.
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, port);
    let (status, _) = c.json("GET", "/api/v1/auth/me", None);
    assert_eq!(status, 200);
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(10)).is_some());
    // An interrupted write leaves a short key.
    let key = app.path().join("state/api/jwt.key");
    std::fs::write(&key, b"trunc").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (daemon, _notify) = Daemon::start_ready(&config);
    // The old access token no longer works; logging in again does.
    let (status, _) = c.json("GET", "/api/v1/auth/me", None);
    assert_eq!(
        status, 401,
        "an access token signed with the old key still works"
    );
    let mut again = crate::client::Client {
        base: c.base.clone(),
        token: None,
    };
    again.login("safety", crate::client::PASSWORD);
    let (_, audit) = again.json("GET", "/api/v1/audit", None);
    let row = audit["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "jwt.key_replaced")
        .unwrap_or_else(|| panic!("no audit row: {audit}; log:\n{}", daemon.log_text()));
    assert!(
        row["before"]
            .as_str()
            .unwrap_or_default()
            .contains("fewer than 32"),
        "{row}"
    );
    // The alarms were never in question: the camera is analysed.
    assert!(
        wait_until(Duration::from_secs(60), || {
            (camera_counter(&again, "safeyolo_frames_detected_total", "cam-0") > 0).then_some(())
        })
        .is_some()
    );
}

#[test]
fn a_box_without_cameras_runs_and_says_it_guards_nothing() {
    // The factory configuration: no camera yet. The box is READY, serves its
    // API, and says it is not guarding (status, metric, healthy line off).
    let port = free_port();
    let app = Appliance::new();
    let config = app.write_config(0, "");
    set_api_port(&config, port);
    let (mut daemon, notify) = Daemon::start_ready(&config);
    assert!(
        notify
            .messages()
            .iter()
            .any(|(_, m)| m.contains("NOT GUARDING")),
        "{:?}",
        notify.messages()
    );
    let c = first_admin(&daemon, port);
    let (status, health) = c.json("GET", "/api/v1/health", None);
    assert_eq!(status, 200, "{health}");
    let (status, sys) = c.json("GET", "/api/v1/system", None);
    assert_eq!(status, 200, "{sys}");
    assert_eq!(sys["guarding"], false, "{sys}");
    assert_eq!(sys["cameras"].as_array().map(Vec::len), Some(0), "{sys}");
    assert_eq!(
        crate::client::metric_value(&c, "safeyolo_cameras_watched"),
        0
    );
    let (_, outputs) = c.json("GET", "/api/v1/outputs", None);
    assert_eq!(outputs["driver"]["guarding"], false, "{outputs}");
    assert_eq!(outputs["driver"]["mode"], "running", "{outputs}");
    // The healthy line stays off while the pipeline runs: a PLC reads "not guarding".
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !ever_on(&app.sim_log(), "healthy"),
        "healthy went on with nothing guarded; log:\n{}",
        daemon.log_text()
    );
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_busy_api_port_never_stops_the_alarms() {
    // Another program holds the HTTPS port when the box starts: the daemon is
    // READY anyway, says the API is not listening yet, raises the alarm for the
    // person in the zone, and serves the API as soon as the port is free.
    let port = free_port();
    let (app, config) = crate::alarms::walkway_appliance(port);
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (daemon, notify) = Daemon::start_ready(&config);
    assert!(
        notify
            .messages()
            .iter()
            .any(|(_, m)| m.lines().any(|l| l.starts_with("STATUS=running:")
                && l.contains(&format!("API not listening yet (port {port} busy")))),
        "{:?}",
        notify.messages()
    );
    let siren_on = wait_until(Duration::from_secs(150), || {
        crate::client::transitions(&app, "siren")
            .iter()
            .any(|t| t.1)
            .then_some(())
    });
    assert!(
        siren_on.is_some(),
        "no siren while the API port was held; log:\n{}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    assert!(
        log.contains("port busy") && log.contains(&format!("port={port}")),
        "the busy port is not logged with its number:\n{log}"
    );
    // The port is released: the API answers within a bounded wait (the retry
    // waits 1 s, doubling to 30 s).
    drop(holder);
    let released = Instant::now();
    let c = crate::client::Client {
        base: format!("https://127.0.0.1:{port}"),
        token: None,
    };
    let health = wait_until(Duration::from_secs(90), || {
        let (status, body) = c.json("GET", "/api/v1/health", None);
        (status == 200).then_some(body)
    });
    assert!(
        health.is_some(),
        "the API never took the freed port; log:\n{}",
        daemon.log_text()
    );
    // Reported, not asserted: the first retry is 1 s after start, then 2 s, 4 s...
    eprintln!(
        "busy port: the API answered {} ms after the port was released",
        released.elapsed().as_millis()
    );
    // And the status line says so.
    assert!(
        notify
            .wait_for(
                &format!("STATUS=running: 1 camera(s), 1 rule(s), https://127.0.0.1:{port}"),
                Duration::from_secs(10)
            )
            .is_some(),
        "{:?}",
        notify.messages()
    );
}

/// Storage degrades, the safety path does not. The state directory's database path
/// is a directory (a store that cannot be opened): the daemon still becomes ready,
/// says its storage is degraded, a person in the zone still sounds the siren (the
/// healthy line stays on: it is guarding), the API answers 503 where it needs the
/// store, and the events wait in memory. Once the blocking directory is gone the
/// store opens and the waiting events are in `GET /api/v1/events`, in order.
#[test]
fn a_store_that_cannot_be_opened_never_stops_the_alarms_and_its_events_wait() {
    let port = free_port();
    let (app, config) = crate::alarms::walkway_appliance(port);
    let blocker = app.path().join("state/store.redb");
    std::fs::create_dir_all(blocker.join("not-a-database")).unwrap();

    let (daemon, _notify) = Daemon::start_ready(&config);
    let anonymous = Client {
        base: format!("https://127.0.0.1:{port}"),
        token: None,
    };
    let health = || anonymous.json("GET", "/api/v1/health", None).1;
    let h = health();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["storage"], "degraded", "{h}");
    let (status, body) = anonymous.json("GET", "/api/v1/events", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "storage_unavailable", "{body}");

    // The alarm path runs: the siren goes on for a person in the zone, and the
    // events wait in memory.
    let siren_on = wait_until(Duration::from_secs(150), || {
        transitions(&app, "siren")
            .iter()
            .any(|(_, on)| *on)
            .then_some(())
    });
    assert!(
        siren_on.is_some(),
        "the siren never went on; log:\n{}",
        daemon.log_text()
    );
    let buffered = wait_until(Duration::from_secs(60), || {
        let n = health()["events_buffered"].as_u64().unwrap_or(0);
        (n > 0).then_some(n)
    })
    .expect("events waiting in memory");
    assert_eq!(
        transitions(&app, "healthy").last().map(|(_, on)| *on),
        Some(true),
        "guarding, so healthy stays on with the store down"
    );
    assert!(daemon.log_text().contains("STORE UNAVAILABLE"));

    // The fault goes away: the store opens, the events are written.
    std::fs::remove_dir_all(&blocker).unwrap();
    let healthy = wait_until(Duration::from_secs(90), || {
        let h = health();
        (h["storage"] == "ok").then_some(h)
    });
    assert!(
        healthy.is_some(),
        "storage never recovered: {}; log:\n{}",
        health(),
        daemon.log_text()
    );
    let c = first_admin(&daemon, port);
    let (status, page) = c.json(
        "GET",
        "/api/v1/events?rule=walkway-intrusion&order=asc",
        None,
    );
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert!(
        events.len() as u64 >= buffered,
        "{buffered} buffered, {} stored: {page}",
        events.len()
    );
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids[0], 1, "{page}");
    let started: Vec<u64> = events
        .iter()
        .map(|e| e["started_at"].as_u64().unwrap())
        .collect();
    assert!(
        started.windows(2).all(|w| w[0] <= w[1]),
        "written in the order they were raised: {started:?}"
    );
    let log = daemon.log_text();
    assert!(
        log.contains("store open again: writing the events kept in memory"),
        "{log}"
    );
    eprintln!(
        "{buffered} event(s) waited in memory; {} stored after the store opened",
        events.len()
    );
}

/// A firmware rollback: the state directory holds a database of a newer schema
/// than this firmware reads (written here by a reader of schema 99, with one
/// event). The daemon starts anyway: the newer file is set aside unchanged, the
/// store starts (no pre-migration copy here), and the audit log and the system
/// page say what happened.
#[test]
fn a_database_from_a_newer_firmware_is_set_aside_and_the_box_starts() {
    use safe_yolo_store::{NewEvent, Severity, Store, StoreConfig};
    let port = free_port();
    let app = Appliance::new();
    let config = app.write_config(1, "");
    set_api_port(&config, port);
    let state = app.path().join("state");
    {
        let newer = Store::open_as(StoreConfig::new(&state), 99).unwrap();
        newer
            .insert_events(&[NewEvent {
                camera: safe_yolo_domain::CameraId::new("cam-0").unwrap(),
                rule: safe_yolo_domain::RuleId::new("no-entry").unwrap(),
                zone: None,
                track: None,
                kind: "intrusion".into(),
                severity: Severity::Critical,
                started_at: 1_700_000_000_000,
                ended_at: None,
                message: "recorded by the newer firmware".into(),
                details: None,
                snapshot_jpeg: None,
                cleared: false,
            }])
            .unwrap();
    }
    let planted = std::fs::read(state.join("store.redb")).unwrap();

    let (daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, port);
    let (status, audit) = c.json("GET", "/api/v1/audit", None);
    assert_eq!(status, 200, "{audit}");
    let row = audit["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "store.rollback")
        .unwrap_or_else(|| panic!("no store.rollback row: {audit}"))
        .clone();
    assert_eq!(row["before"], "v99", "{row}");
    assert!(
        row["after"].as_str().unwrap().contains("1 newer event(s)"),
        "{row}"
    );
    let (_, sys) = c.json("GET", "/api/v1/system", None);
    let aside = sys["storage"]["set_aside"].as_array().unwrap();
    assert_eq!(aside.len(), 1, "{sys}");
    assert!(
        std::fs::read(aside[0].as_str().unwrap()).unwrap() == planted,
        "the newer database is kept unchanged"
    );
    // The new store's ids go on after the newer file's.
    assert_eq!(sys["storage"]["stats"]["event_seq"], 1, "{sys}");
    assert!(daemon.log_text().contains("STORE ROLLED BACK"));
}

//! Cameras are live settings: added, edited, disabled and deleted through the
//! API while the daemon runs, each change starting or stopping only that
//! camera's threads, and kept across a restart.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{
    Client, PASSWORD, camera_counter, first_admin, free_port, metric_value, wait_until,
};
use crate::harness::{Appliance, Daemon, set_api_port};

const DETECTED: &str = "safeyolo_frames_detected_total";

fn replay(path: &str, start_frame: u64) -> Value {
    json!({"doc": {"name": "Dock camera", "source": {"kind": "replay", "path": path, "fps": 10, "start_frame": start_frame}}})
}

/// Waits until `camera` has detected more frames than `above`; returns the count.
fn detected_above(c: &Client, camera: &str, above: u64, timeout: Duration) -> Option<u64> {
    wait_until(timeout, || {
        let n = camera_counter(c, DETECTED, camera);
        (n > above).then_some(n)
    })
}

/// How often the daemon logged that `camera` started.
fn starts(daemon: &Daemon, camera: &str) -> usize {
    let needle = format!("camera={camera}");
    daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("camera started") && l.contains(&needle))
        .count()
}

fn health_ids(c: &Client) -> Vec<String> {
    let (status, list) = c.json("GET", "/api/v1/cameras", None);
    assert_eq!(status, 200, "{list}");
    list["health"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn cameras_are_added_edited_and_removed_without_a_restart() {
    // The factory configuration: no camera.
    let port = free_port();
    let app = Appliance::new();
    let config = app.write_config(0, "");
    set_api_port(&config, port);
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, port);
    let (_, sys) = c.json("GET", "/api/v1/system", None);
    assert_eq!(sys["guarding"], false, "{sys}");

    // Bad sources are refused naming the field, and nothing starts.
    for (path, why) in [
        ("../etc", "must not contain"),
        ("nope", "not a file or folder inside the media directory"),
    ] {
        let (status, e) = c.json("PUT", "/api/v1/cameras/cam-a", Some(&replay(path, 0)));
        assert_eq!(
            (status, e["field"].as_str()),
            (422, Some("doc.source.path")),
            "{e}"
        );
        assert!(e.to_string().contains(why), "{why}: {e}");
    }
    assert!(health_ids(&c).is_empty());

    // Added: frames are detected within 10 s, without a restart.
    let (status, saved) = c.json("PUT", "/api/v1/cameras/cam-a", Some(&replay("people", 0)));
    assert_eq!(status, 200, "{saved}");
    let a = detected_above(&c, "cam-a", 0, Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "cam-a detects nothing 10 s after it was added; log:\n{}",
            daemon.log_text()
        )
    });
    let (_, sys) = c.json("GET", "/api/v1/system", None);
    assert_eq!(sys["guarding"], true, "{sys}");
    assert_eq!(metric_value(&c, "safeyolo_cameras_watched"), 1);
    let (_, outputs) = c.json("GET", "/api/v1/outputs", None);
    assert_eq!(outputs["driver"]["guarding"], true, "{outputs}");
    // Listed as written, with its health.
    let (_, list) = c.json("GET", "/api/v1/cameras", None);
    assert_eq!(list["running"][0]["id"], "cam-a", "{list}");
    assert_eq!(
        list["running"][0]["doc"]["source"]["path"], "people",
        "{list}"
    );

    // A second camera, a zone and a rule on it: the first camera runs on untouched.
    let (status, saved) = c.json("PUT", "/api/v1/cameras/cam-b", Some(&replay("people", 7)));
    assert_eq!(status, 200, "{saved}");
    detected_above(&c, "cam-b", 0, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("cam-b detects nothing; log:\n{}", daemon.log_text()));
    let (status, z) = c.json(
        "PUT",
        "/api/v1/zones/dock",
        Some(&json!({"doc": {"camera": "cam-b", "name": "Dock", "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}})),
    );
    assert_eq!(status, 200, "{z}");
    let (status, r) = c.json(
        "PUT",
        "/api/v1/rules/dock-intrusion",
        Some(&json!({"doc": {"name": "Dock", "kind": "intrusion", "zone": "dock", "severity": "warning"}})),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        starts(&daemon, "cam-a"),
        1,
        "cam-a restarted; log:\n{}",
        daemon.log_text()
    );

    // Deleting a camera a zone still names is refused at that zone.
    let (status, e) = c.json("DELETE", "/api/v1/cameras/cam-b", None);
    assert_eq!(
        (status, e["field"].as_str()),
        (422, Some("zones.dock.camera")),
        "{e}"
    );
    assert!(health_ids(&c).contains(&"cam-b".to_owned()));

    // Edited: a new source restarts that camera only.
    let (status, saved) = c.json("PUT", "/api/v1/cameras/cam-b", Some(&replay("people", 3)));
    assert_eq!(status, 200, "{saved}");
    assert_eq!(starts(&daemon, "cam-b"), 2, "log:\n{}", daemon.log_text());
    assert_eq!(starts(&daemon, "cam-a"), 1, "log:\n{}", daemon.log_text());

    // Deleted with its rule and zone: its threads stop, the other camera runs on.
    for path in [
        "/api/v1/rules/dock-intrusion",
        "/api/v1/zones/dock",
        "/api/v1/cameras/cam-b",
    ] {
        let (status, body) = c.call("DELETE", path, None);
        assert_eq!(status, 204, "{path}: {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(health_ids(&c), vec!["cam-a".to_owned()]);
    let b_stopped = camera_counter(&c, DETECTED, "cam-b");
    let a_now = camera_counter(&c, DETECTED, "cam-a");
    assert!(a_now >= a, "{a_now} < {a}");
    detected_above(&c, "cam-a", a_now, Duration::from_secs(10)).expect("cam-a stopped with cam-b");
    assert!(
        camera_counter(&c, DETECTED, "cam-b") <= b_stopped + 1,
        "cam-b still detected after it was deleted"
    );

    // Disabled: nothing is watched, the box says it does not guard.
    let mut doc = replay("people", 0);
    doc["doc"]["enabled"] = json!(false);
    let (status, saved) = c.json("PUT", "/api/v1/cameras/cam-a", Some(&doc));
    assert_eq!(status, 200, "{saved}");
    assert!(health_ids(&c).is_empty());
    let (_, sys) = c.json("GET", "/api/v1/system", None);
    assert_eq!(sys["guarding"], false, "{sys}");
    let watched = wait_until(Duration::from_secs(5), || {
        (metric_value(&c, "safeyolo_cameras_watched") == 0).then_some(())
    });
    assert!(watched.is_some(), "cameras_watched did not go to 0");

    // Enabled again, then a restart: the stored camera starts with the daemon.
    let (status, saved) = c.json("PUT", "/api/v1/cameras/cam-a", Some(&replay("people", 0)));
    assert_eq!(status, 200, "{saved}");
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        daemon.log_text()
    );
    let (daemon, notify) = Daemon::start_ready(&config);
    assert!(
        notify
            .messages()
            .iter()
            .any(|(_, m)| m.contains("running: 1 camera(s)")),
        "{:?}",
        notify.messages()
    );
    let mut c = Client {
        base: format!("https://127.0.0.1:{port}"),
        token: None,
    };
    c.login("safety", PASSWORD);
    detected_above(&c, "cam-a", 0, Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "the stored camera did not start; log:\n{}",
            daemon.log_text()
        )
    });
}

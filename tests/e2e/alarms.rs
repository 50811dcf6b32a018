//! The whole alarm path on real footage with the real detector: a zone over
//! part of the walkway in OpenCV's `vtest.avi` (people walking), an intrusion
//! rule driving a siren and a relay; the event and its snapshot through the
//! HTTPS API; acknowledgement silences the siren; event ids continue after a
//! restart on the same store.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::client::{
    Client, PASSWORD, camera_counter, first_admin, free_port, transitions, wait_until,
};
use crate::harness::{Appliance, Daemon, repo_root, set_api_port};

/// Frames of the demo footage (made by scripts/demo-media.sh, which the test
/// command runs first).
fn vtest_frames() -> PathBuf {
    repo_root().join("demo-media/vtest-frames")
}

pub(crate) fn open_intrusions(c: &Client) -> Vec<Value> {
    let (status, page) = c.json(
        "GET",
        "/api/v1/events?state=open&rule=walkway-intrusion",
        None,
    );
    if status != 200 {
        return Vec::new();
    }
    page["events"].as_array().cloned().unwrap_or_default()
}

/// An appliance replaying frames 150-350 of the demo footage (people walk
/// through the stretch in front of the tape) on camera `walkway`, with the
/// intrusion rule `walkway-intrusion` on zone `tape-front` driving the siren
/// and the relay, its API on `port`.
pub(crate) fn walkway_appliance(port: u16) -> (Appliance, std::path::PathBuf) {
    let frames = vtest_frames();
    assert!(
        frames.join("0200.jpg").exists(),
        "demo footage missing: run scripts/demo-media.sh (scripts/test.sh does)"
    );
    let app = Appliance::new();
    let walk = app.path().join("media/walk");
    std::fs::create_dir_all(&walk).unwrap();
    // Frames 150-350: people walk through the stretch in front of the tape.
    for i in 150..=350 {
        let name = format!("{i:04}.jpg");
        std::fs::copy(frames.join(&name), walk.join(&name)).unwrap();
    }
    let config = app.write_config(
        0,
        r#"
[[cameras]]
id = "walkway"
source = { kind = "replay", path = "walk", fps = 10 }

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
cooldown_s = 5
clear_after_s = 1
outputs = ["siren", "relay"]
"#,
    );
    set_api_port(&config, port);
    (app, config)
}

#[test]
fn intrusion_on_real_footage_siren_ack_snapshot_and_ids_across_restart() {
    let port = free_port();
    let (app, config) = walkway_appliance(port);

    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let mut c = first_admin(&daemon, port);
    let password = PASSWORD;

    // The system page reports the update state (no RAUC here: its reason).
    let (status, sys) = c.json("GET", "/api/v1/system", None);
    assert_eq!(status, 200, "{sys}");
    assert!(sys["update"].is_object(), "no update state in {sys}");

    // A rule edit naming a zone that does not exist is refused with every problem at
    // its key path (the object by id), the request's field first; nothing is stored.
    let (status, body) = c.json(
        "PUT",
        "/api/v1/rules/dock-intrusion",
        Some(&serde_json::json!({"doc": {
            "name": "Dock intrusion", "kind": "intrusion", "zone": "dok", "severity": "critical"
        }})),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "doc.zone", "{body}");
    let problem = &body["problems"][0];
    assert_eq!(problem["field"], "rules.dock-intrusion.zone", "{body}");
    assert!(
        problem["reason"].as_str().unwrap().contains("\"dok\""),
        "{body}"
    );
    let (status, rules) = c.json("GET", "/api/v1/rules", None);
    assert_eq!(status, 200, "{rules}");
    assert!(
        !rules.to_string().contains("dock-intrusion"),
        "a refused edit was stored: {rules}"
    );

    // An intrusion event appears for a person entering the zone.
    let event = wait_until(Duration::from_secs(150), || {
        open_intrusions(&c).into_iter().next()
    })
    .unwrap_or_else(|| panic!("no intrusion event; log:\n{}", daemon.log_text()));
    let id = event["id"].as_u64().unwrap();
    let started = event["started_at"].as_u64().unwrap();
    assert_eq!(event["camera"], "walkway");
    assert_eq!(event["zone"], "tape-front");
    assert!(event["track"].is_u64(), "{event}");

    // The siren and the relay went on, before the event was written.
    let siren_on = transitions(&app, "siren")
        .into_iter()
        .find(|(_, on)| *on)
        .expect("siren never on");
    let relay_on = transitions(&app, "relay")
        .into_iter()
        .find(|(_, on)| *on)
        .expect("relay never on");
    eprintln!(
        "siren on {} ms, relay on {} ms relative to the event's start",
        i128::from(siren_on.0) - i128::from(started),
        i128::from(relay_on.0) - i128::from(started)
    );

    // The snapshot is a JPEG.
    let (status, jpeg) = c.call("GET", &format!("/api/v1/events/{id}/snapshot"), None);
    assert_eq!(status, 200);
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");

    // Until acknowledged, the siren stays on (it is not timed in this rule).
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        transitions(&app, "siren").last().map(|t| t.1),
        Some(true),
        "siren stopped before the ack"
    );
    let acked_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (status, body) = c.json("POST", &format!("/api/v1/events/{id}/ack"), None);
    assert_eq!(status, 200, "ack: {body}");
    assert_eq!(
        body["acknowledged"]["by"].as_str().or(body["by"].as_str()),
        Some("safety"),
        "{body}"
    );
    let off = wait_until(Duration::from_secs(5), || {
        let s = transitions(&app, "siren");
        let r = transitions(&app, "relay");
        (s.last().is_some_and(|t| !t.1) && r.last().is_some_and(|t| !t.1)).then_some(())
    });
    assert!(
        off.is_some(),
        "siren/relay still on after the ack: {:?}",
        transitions(&app, "siren")
    );
    let siren_off = transitions(&app, "siren").last().unwrap().0;
    assert!(
        u128::from(siren_off) + 50 >= acked_at,
        "siren went off before the ack"
    );

    // Restart on the same store: new events get larger ids.
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(5))
            .is_some_and(|s| s.success()),
        "{}",
        daemon.log_text()
    );
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    c.login("safety", password);
    let newer = wait_until(Duration::from_secs(150), || {
        open_intrusions(&c)
            .into_iter()
            .find(|e| e["id"].as_u64().is_some_and(|n| n != id))
    })
    .unwrap_or_else(|| panic!("no event after the restart; log:\n{}", daemon.log_text()));
    let new_id = newer["id"].as_u64().unwrap();
    assert!(
        new_id > id,
        "event id {new_id} after restart is not above {id}"
    );
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(5))
            .is_some_and(|s| s.success())
    );
}

/// A camera whose footage disappears goes offline and raises its
/// camera-offline alarm through the whole alarm path (event in the store,
/// siren on), while the other camera keeps being analysed.
/// The first open event of `rule`, waiting up to `timeout` for one.
pub(crate) fn first_open_event(
    c: &Client,
    rule: &str,
    timeout: Duration,
) -> Option<serde_json::Value> {
    let path = format!("/api/v1/events?state=open&rule={rule}");
    wait_until(timeout, || {
        let (_, page) = c.json("GET", &path, None);
        page["events"].as_array().and_then(|e| e.first().cloned())
    })
}

#[test]
fn vanished_footage_raises_camera_offline_and_the_other_camera_runs_on() {
    let app = Appliance::new();
    let people = app.path().join("media/people");
    let second = app.path().join("media/people2");
    std::fs::create_dir_all(&second).unwrap();
    for f in std::fs::read_dir(&people).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, second.join(f.file_name().unwrap())).unwrap();
    }
    let port = free_port();
    let config = app.write_config(
        0,
        r#"
[[cameras]]
id = "cam-a"
source = { kind = "replay", path = "people", fps = 10 }

[[cameras]]
id = "cam-b"
source = { kind = "replay", path = "people2", fps = 10 }

[[rules]]
id = "cam-b-offline"
kind = "camera_offline"
camera = "cam-b"
offline_after_s = 2
severity = "critical"
outputs = ["siren"]
"#,
    );
    set_api_port(&config, port);
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, port);
    let detected = wait_until(Duration::from_secs(60), || {
        (camera_counter(&c, "safeyolo_frames_detected_total", "cam-b") > 0).then_some(())
    });
    assert!(
        detected.is_some(),
        "cam-b never analysed; log:\n{}",
        daemon.log_text()
    );
    let (status, page) = c.json("GET", "/api/v1/events?state=open&rule=cam-b-offline", None);
    assert_eq!(status, 200);
    assert_eq!(
        page["events"].as_array().map(Vec::len),
        Some(0),
        "offline before the footage vanished: {page}"
    );

    std::fs::rename(&second, app.path().join("media/gone")).unwrap();
    let event = first_open_event(&c, "cam-b-offline", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no camera-offline event; log:\n{}", daemon.log_text()));
    assert_eq!(event["camera"], "cam-b");
    assert!(
        transitions(&app, "siren").iter().any(|t| t.1),
        "siren not on for the offline camera"
    );

    // cam-a goes on being analysed.
    let before = camera_counter(&c, "safeyolo_frames_detected_total", "cam-a");
    let advanced = wait_until(Duration::from_secs(30), || {
        (camera_counter(&c, "safeyolo_frames_detected_total", "cam-a") > before).then_some(())
    });
    assert!(advanced.is_some(), "cam-a stopped after cam-b died");
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(5))
            .is_some_and(|s| s.success())
    );
}

#[test]
fn a_missing_camera_device_starts_offline_and_raises_camera_offline() {
    // The only camera is a V4L2 device that is not there (unplugged, wrong
    // port): the box still comes up, serves its API and says it is blind.
    let app = Appliance::new();
    let port = free_port();
    let config = app.write_config(
        0,
        r#"
[[cameras]]
id = "dock"
source = { kind = "v4l2", device = "/dev/video-absent-7", width = 640, height = 480, fps = 15 }

[[rules]]
id = "dock-blind"
kind = "camera_offline"
camera = "dock"
offline_after_s = 2
severity = "critical"
outputs = ["siren"]
"#,
    );
    set_api_port(&config, port);
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, port);
    let (status, _) = c.json("GET", "/api/v1/health", None);
    assert_eq!(status, 200);
    let event = first_open_event(&c, "dock-blind", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no camera-offline event; log:\n{}", daemon.log_text()));
    assert_eq!(event["camera"], "dock");
    assert_eq!(
        event["details"]["detail"]["kind"], "camera_offline",
        "{event}"
    );
    let (_, sys) = c.json("GET", "/api/v1/system", None);
    assert_eq!(sys["cameras"][0]["state"], "offline", "{sys}");
    assert!(
        transitions(&app, "siren").iter().any(|t| t.1),
        "siren not on for the blind camera"
    );
    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(5))
            .is_some_and(|s| s.success())
    );
}

//! Missing PPE on the live pipeline with real models on real images: the
//! person detector (NanoDet) and the helmet model (a YOLOv12m fine-tune,
//! AGPL test fixture, heads "With Helmet" / "Without Helmet") both run in the
//! daemon's detect workers; the rule engine associates heads to tracked
//! persons and decides by consensus.
//!
//! Two replay cameras loop one photo each: `bare` shows people without a
//! helmet (`bus.jpg`), `helmet` a rider wearing one (`person-horse-dog.jpg`).
//! Each camera has a zone over the whole frame and a missing-PPE rule. The
//! rule must fire on `bare` (siren on, event with snapshot) and must stay
//! silent on `helmet` although its frames went through the PPE model just as
//! often.

use std::time::Duration;

use serde_json::Value;

use crate::client::{Client, first_admin, free_port, metric_value, transitions, wait_until};
use crate::harness::{Appliance, Daemon, fixture_media, repo_root, set_api_port};

/// The helmet test manifest, pointed at the fixture weights.
fn helmet_manifest(app: &Appliance) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        repo_root().join("appliance/detect/tests/manifests/helmet-yolov12m-640.toml"),
    )
    .unwrap();
    let weights = safe_yolo_fixtures::model("helmet-yolov12m-640.onnx");
    let text = text.replace(
        "file = \"helmet-yolov12m-640.onnx\"",
        &format!("file = \"{}\"", weights.display()),
    );
    let path = app.path().join("helmet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn ppe_events(c: &Client, camera: &str) -> Vec<Value> {
    let (status, page) = c.json("GET", &format!("/api/v1/events?camera={camera}"), None);
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["kind"] == "missing_ppe")
        .collect()
}

/// Frames of `camera` that went through the PPE model.
fn ppe_frames(c: &Client, camera: &str) -> u64 {
    metric_value(
        c,
        &format!(
            "safeyolo_stage_latency_seconds_count{{camera=\"{camera}\",stage=\"ppe_inference\"}}"
        ),
    )
}

#[test]
fn missing_helmet_raises_an_event_and_a_worn_helmet_does_not() {
    let app = Appliance::new();
    for (dir, photo) in [("bare", "bus.jpg"), ("helmet", "person-horse-dog.jpg")] {
        let d = app.path().join("media").join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..4 {
            std::fs::copy(fixture_media(photo), d.join(format!("{i:04}.jpg"))).unwrap();
        }
    }
    let manifest = helmet_manifest(&app);
    let port = free_port();
    let mut rules = String::new();
    for cam in ["bare", "helmet"] {
        rules.push_str(&format!(
            r#"
[[cameras]]
id = "{cam}"
source = {{ kind = "replay", path = "{cam}", fps = 2, loop = true }}

[[zones]]
id = "{cam}-area"
camera = "{cam}"
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

[[rules]]
id = "{cam}-helmet"
kind = "missing_ppe"
zone = "{cam}-area"
min_frames = 2
grace_s = 0
severity = "critical"
outputs = ["siren"]
"#
        ));
    }
    rules.push_str("\n[features]\nppe = true\n");
    let config = app.write_config(0, &rules);
    // The helmet model takes seconds per frame on this CPU: a stall timeout
    // shorter than one inference would (rightly) be a pipeline fault.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "classes = [\"person\"]\n",
            &format!(
                "classes = [\"person\"]\nppe_model = \"{}\"\n",
                manifest.display()
            ),
        )
        .replace("threads = 1\n", "threads = 2\n")
        .replace("stall_timeout_s = 2\n", "stall_timeout_s = 20\n");
    std::fs::write(&config, text).unwrap();
    set_api_port(&config, port);

    let (daemon, _notify) = Daemon::start_ready(&config);
    let log = daemon.log_text();
    assert!(log.contains("PPE model loaded"), "{log}");
    let c = first_admin(&daemon, port);

    // People without helmets: the rule fires, with a person's track.
    let event = wait_until(Duration::from_secs(240), || {
        ppe_events(&c, "bare").into_iter().next()
    })
    .unwrap_or_else(|| {
        panic!(
            "no missing_ppe event on the bare-headed camera; PPE frames bare={} helmet={}\n{}",
            ppe_frames(&c, "bare"),
            ppe_frames(&c, "helmet"),
            daemon.log_text()
        )
    });
    assert_eq!(event["rule"], "bare-helmet", "{event}");
    assert_eq!(event["zone"], "bare-area", "{event}");
    assert_eq!(event["severity"], "critical", "{event}");
    assert!(
        event["track"].as_u64().is_some(),
        "a person, not a box: {event}"
    );
    let id = event["id"].as_u64().unwrap();
    let snapshot = wait_until(Duration::from_secs(20), || {
        let (status, jpeg) = c.call("GET", &format!("/api/v1/events/{id}/snapshot"), None);
        (status == 200).then_some(jpeg)
    })
    .expect("the event's snapshot is served");
    assert_eq!(&snapshot[..2], &[0xFF, 0xD8], "a JPEG");
    assert!(
        transitions(&app, "siren").iter().any(|(_, on)| *on),
        "siren switched on"
    );

    // The rider wears a helmet: at least as many frames went through the
    // PPE model as the consensus needs twice over, and the rule stays quiet.
    let bare_frames = ppe_frames(&c, "bare");
    assert!(
        bare_frames >= 2,
        "the consensus needed PPE frames: {bare_frames}"
    );
    wait_until(Duration::from_secs(240), || {
        (ppe_frames(&c, "helmet") >= 4).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the helmet camera's frames did not go through the PPE model: {}\n{}",
            ppe_frames(&c, "helmet"),
            daemon.log_text()
        )
    });
    let helmet_events = ppe_events(&c, "helmet");
    eprintln!(
        "PPE frames: bare {} helmet {}; event {event}",
        ppe_frames(&c, "bare"),
        ppe_frames(&c, "helmet")
    );
    assert!(
        helmet_events.is_empty(),
        "a worn helmet raised missing_ppe: {helmet_events:?}"
    );
}

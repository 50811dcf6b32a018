//! `safe-yolo detect IMAGE...`: an operator checks the model on a picture.

use std::process::Command;

use crate::harness::{Appliance, bin, fixture_media, model_manifest};

#[test]
fn detect_finds_the_people_on_the_bus_photo() {
    let bus = fixture_media("bus.jpg");
    // Table output, model given directly.
    let out = Command::new(bin())
        .args([
            "--log",
            "warn",
            "detect",
            "--backend",
            "tract",
            "--threads",
            "1",
            "--model",
        ])
        .arg(model_manifest())
        .arg(&bus)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let persons = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("person "))
        .count();
    // bus.jpg shows four people (one cut by the frame edge).
    assert!(persons >= 3, "{stdout}");
    assert!(stdout.contains("bus.jpg: "), "{stdout}");

    // JSON output, detector settings from a configuration (persons only).
    let app = Appliance::new();
    let config = app.write_config(1, "");
    let out = Command::new(bin())
        .args(["--log", "warn", "detect", "--json", "--config"])
        .arg(&config)
        .arg(&bus)
        .arg(fixture_media("zidane.jpg"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "{stdout}");
    assert!(docs[0]["image"].as_str().unwrap().ends_with("bus.jpg"));
    let dets = docs[0]["detections"].as_array().unwrap();
    assert!(dets.len() >= 3, "{stdout}");
    for d in dets {
        // The configuration keeps persons only.
        assert_eq!(d["class_name"], "person", "{stdout}");
        let score = d["score"].as_f64().unwrap();
        assert!(score > 0.0 && score <= 1.0, "{stdout}");
        let b: Vec<f64> = d["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // Boxes are in the pixels of the 810x1080 photo.
        assert!(
            b[0] < b[2] && b[1] < b[3] && b[2] <= 811.0 && b[3] <= 1081.0,
            "{stdout}"
        );
    }
    assert!(
        !docs[1]["detections"].as_array().unwrap().is_empty(),
        "{stdout}"
    );
}

#[test]
fn detect_reports_a_missing_image_and_a_bad_model() {
    let out = Command::new(bin())
        .args(["--log", "warn", "detect", "--backend", "tract", "--model"])
        .arg(model_manifest())
        .arg("/nonexistent/site.jpg")
        .arg(fixture_media("bus.jpg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read image /nonexistent/site.jpg"),
        "{stderr}"
    );
    // The other image is still processed.
    assert!(stdout.contains("bus.jpg: "), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("model.toml");
    std::fs::write(&bad, "this is not a manifest").unwrap();
    let out = Command::new(bin())
        .args(["--log", "warn", "detect", "--model"])
        .arg(&bad)
        .arg(fixture_media("bus.jpg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot load the model"), "{stderr}");
    assert!(stderr.contains("model.toml"), "{stderr}");
}

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

//! Loading whole configuration files: the shipped ones, and broken ones
//! whose every problem must be reported in one pass.

use std::path::{Path, PathBuf};

use safe_yolo_capture::SourceRequest;
use safe_yolo_config::{ConfigError, RuleKind, load, parse};

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn workspace_root() -> PathBuf {
    safe_yolo_fixtures::repo_root()
}

#[test]
fn shipped_configs_are_valid() {
    for name in ["demo.toml", "example-box.toml"] {
        let path = workspace_root().join("config").join(name);
        match load(&path, no_env()) {
            Ok(c) => assert!(!c.cameras.is_empty(), "{name} has no cameras"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

const MINIMAL: &str = r#"
[detector]
model = "models/m/manifest.toml"

[storage]
state_dir = "/tmp/sy"
media_dir = "/tmp/sy/media"

[[cameras]]
id = "cam-1"
source = { kind = "replay", path = "walk.mjpeg" }
"#;

#[test]
fn minimal_config_and_relative_paths() {
    let c = parse(MINIMAL, Path::new("/etc/safe-yolo"), no_env()).unwrap();
    assert_eq!(
        c.detector.model,
        Path::new("/etc/safe-yolo/models/m/manifest.toml")
    );
    match &c.cameras[0].source {
        SourceRequest::Replay { path, looping, .. } => {
            assert_eq!(path, Path::new("/tmp/sy/media/walk.mjpeg"));
            assert!(looping);
        }
        other => panic!("{other:?}"),
    }
    // Secure defaults.
    assert_eq!(c.api.cors_origins, Vec::<String>::new());
    assert_eq!(
        c.api.tls_min_version,
        safe_yolo_config::TlsMinVersion::Tls13
    );
}

/// The acceptance case: an unknown key, an out-of-range value, a bad polygon
/// and a duplicate camera id, all reported at once with their key paths.
const BROKEN: &str = r#"
[detector]
model = "m.toml"
colour = "blue"

[storage]
state_dir = "/tmp/sy"
media_dir = "/tmp/sy/media"

[[cameras]]
id = "dock"
source = { kind = "replay", path = "a.mjpeg" }
detect_every = 0

[[cameras]]
id = "dock"
source = { kind = "replay", path = "../../etc/shadow" }

[[cameras]]
id = "gate"
source = { kind = "v4l2", device = "/dev/video0", fps = 15, zoom = 2 }

[[zones]]
id = "bowtie"
camera = "dock"
polygon = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]

[[zones]]
id = "offframe"
camera = "nowhere"
polygon = [[0.1, 0.1], [1.4, 0.1], [0.5, 0.9]]

[[rules]]
id = "r1"
kind = "intrusion"
zone = "missing-zone"
max_persons = 3
severity = "apocalyptic"

[[rules]]
id = "r2"
kind = "dwell"
zone = "bowtie"

[api]
bind = "0.0.0.0:99999"
cors_origins = ["*"]
"#;

#[test]
fn every_problem_is_reported_at_once() {
    let problems = parse(BROKEN, Path::new("/etc/safe-yolo"), no_env()).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let has = |path: &str, needle: &str| {
        assert!(
            problems
                .iter()
                .any(|p| p.path == path && p.reason.contains(needle)),
            "expected a problem at {path} containing {needle:?}; got:\n{}",
            text.join("\n")
        );
    };
    has("detector.colour", "unknown field `colour`");
    has("cameras[0].detect_every", "between 1 and 100, got 0");
    has("cameras[1].id", "duplicate camera id \"dock\"");
    has("cameras[1].source.path", "must not contain `..`");
    has("cameras[2].source.zoom", "unknown field `zoom`");
    has("zones[0].polygon", "cross each other");
    has("zones[1].polygon", "outside the frame");
    has("rules[0].max_persons", "does not apply");
    has("rules[0].severity", "not one of: info, warning, critical");
    has("rules[1].seconds", "is required for a dwell rule");
    has("api.bind", "not an address:port");
    has("api.cors_origins[0]", "https://");
    // cameras[2] failed to parse, so references to unknown cameras/zones are
    // not reported as follow-on noise.
    assert!(
        !problems.iter().any(|p| p.path == "zones[1].camera"),
        "{text:?}"
    );
    // A section that failed to parse does not also report its keys missing.
    assert!(
        !problems.iter().any(|p| p.path == "detector.model"),
        "{text:?}"
    );
}

#[test]
fn load_error_names_the_file_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("box.toml");
    std::fs::write(&path, "[storage]\nstate_dir = \"\"\n[nonsense]\n").unwrap();
    let err = load(&path, no_env()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("box.toml has"), "{msg}");
    assert!(msg.contains("nonsense: unknown section"), "{msg}");
    assert!(
        msg.contains("storage.state_dir: must not be empty"),
        "{msg}"
    );
    assert!(msg.contains("detector.model: is required"), "{msg}");
    assert!(matches!(err, ConfigError::Invalid { .. }));

    let missing = load(&dir.path().join("nope.toml"), no_env()).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }), "{missing}");
}

#[test]
fn syntax_error_is_reported() {
    let problems = parse("[api\nbind=", Path::new("/"), no_env()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].reason.contains("not valid TOML"),
        "{problems:?}"
    );
}

#[test]
fn env_overrides_apply_and_are_validated() {
    let env = vec![
        (
            "SAFEYOLO_STORAGE__STATE_DIR".to_string(),
            "/data/sy".to_string(),
        ),
        (
            "SAFEYOLO_API__BIND".to_string(),
            "127.0.0.1:9443".to_string(),
        ),
    ];
    let c = parse(MINIMAL, Path::new("/etc"), env).unwrap();
    assert_eq!(c.storage.state_dir, Path::new("/data/sy"));
    assert_eq!(c.api.bind.port(), 9443);

    let env = vec![("SAFEYOLO_API__BLIND".to_string(), "x".to_string())];
    let p = parse(MINIMAL, Path::new("/etc"), env).unwrap_err();
    assert!(
        p.iter()
            .any(|p| p.path == "api.blind" && p.reason.contains("unknown field `blind`")),
        "{p:?}"
    );
}

#[test]
fn rule_kinds_map_to_parameters() {
    let text = format!(
        "{MINIMAL}\n{}",
        r#"
[[zones]]
id = "tape"
camera = "cam-1"
polygon = [[0.1, 0.5], [0.5, 0.5], [0.5, 0.9], [0.1, 0.9]]

[[lines]]
id = "door-line"
camera = "cam-1"
from = [0.5, 0.0]
to = [0.5, 1.0]

[[outputs.lines]]
id = "siren"
role = "siren"
offset = 3

[[rules]]
id = "keep-out"
kind = "intrusion"
zone = "tape"
min_frames = 4
outputs = ["siren"]
siren = { pattern = "pulsed", period_ms = 500, duration_s = 30 }
schedule = { days = ["mon", "fri"], from = "22:00", to = "06:00" }

[[rules]]
id = "crowd"
kind = "occupancy"
zone = "tape"
max_persons = 2

[[rules]]
id = "enter"
kind = "line_crossing"
zone = "door-line"
direction = "a_to_b"

[[rules]]
id = "cam-down"
kind = "camera_offline"
camera = "cam-1"

[[rules]]
id = "blind"
kind = "detector_fault"
camera = "cam-1"
down_after_s = 1.5
outputs = ["siren"]
"#
    );
    let c = parse(&text, Path::new("/etc"), no_env()).unwrap();
    assert_eq!(c.rules.len(), 5);
    assert_eq!(
        c.rules[4].kind,
        RuleKind::DetectorFault {
            min_duration: std::time::Duration::from_millis(1500)
        }
    );
    // Out of range or on the wrong kind: the field is named.
    let long = text.replace("down_after_s = 1.5", "down_after_s = 7200");
    let p = parse(&long, Path::new("/etc"), no_env()).unwrap_err();
    assert!(p.iter().any(|p| p.path == "rules[4].down_after_s"), "{p:?}");
    let misplaced = text.replace(
        "kind = \"occupancy\"",
        "kind = \"occupancy\"\ndown_after_s = 1",
    );
    let p = parse(&misplaced, Path::new("/etc"), no_env()).unwrap_err();
    assert!(p.iter().any(|p| p.path.contains("down_after_s")), "{p:?}");
    assert_eq!(c.rules[0].kind, RuleKind::Intrusion { min_frames: 4 });
    let sched = c.rules[0].schedule.as_ref().unwrap();
    assert_eq!((sched.from_min(), sched.to_min()), (22 * 60, 6 * 60));
    assert_eq!(
        c.rules[1].kind,
        RuleKind::Occupancy {
            max_persons: 2,
            min_frames: 2
        }
    );
    assert_eq!(c.rules[3].zone, None);

    // A line rule must name a line, a zone rule a zone.
    let wrong = text.replace("zone = \"door-line\"", "zone = \"tape\"");
    let p = parse(&wrong, Path::new("/etc"), no_env()).unwrap_err();
    assert!(
        p.iter()
            .any(|p| p.path == "rules[2].zone" && p.reason.contains("must name a line")),
        "{p:?}"
    );
}

/// A `camera_tamper` rule: its reasons default to all, its keys are its own, and
/// every mistake names its key; `[cameras.tamper]` refuses unknown keys.
#[test]
fn camera_tamper_rules_and_thresholds() {
    use safe_yolo_domain::alarm::{TamperReason, TamperSet};
    let text = format!(
        "{MINIMAL}
[cameras.tamper]
moved_after_s = 45
defocus_max_ratio = 0.3

[[rules]]
id = \"cam-tamper\"
kind = \"camera_tamper\"
camera = \"cam-1\"

[[rules]]
id = \"cam-covered\"
kind = \"camera_tamper\"
camera = \"cam-1\"
reasons = [\"covered\", \"blinded\"]
tamper_after_s = 2.5
"
    );
    let c = parse(&text, Path::new("/etc"), no_env()).unwrap();
    assert_eq!(
        c.rules[0].kind,
        RuleKind::CameraTamper {
            reasons: TamperSet::all(),
            min_duration: std::time::Duration::ZERO
        }
    );
    assert_eq!(
        c.rules[1].kind,
        RuleKind::CameraTamper {
            reasons: [TamperReason::Covered, TamperReason::Blinded]
                .into_iter()
                .collect(),
            min_duration: std::time::Duration::from_millis(2500)
        }
    );
    let t = c.cameras[0].tamper;
    assert_eq!(t.moved_after, std::time::Duration::from_secs(45));
    assert!((t.defocus_max_ratio - 0.3).abs() < 1e-6);
    assert_eq!(
        t.frozen_after,
        std::time::Duration::from_secs(10),
        "a default"
    );
    // Each mistake at its key.
    for (from, to, path) in [
        (
            "\"covered\", \"blinded\"",
            "\"covered\", \"smudged\"",
            "rules[1].reasons[1]",
        ),
        (
            "reasons = [\"covered\", \"blinded\"]",
            "reasons = []",
            "rules[1].reasons",
        ),
        (
            "tamper_after_s = 2.5",
            "tamper_after_s = -1",
            "rules[1].tamper_after_s",
        ),
        (
            "moved_after_s = 45",
            "moved_after_s = 0",
            "cameras[0].tamper.moved_after_s",
        ),
        (
            "defocus_max_ratio = 0.3",
            "defocus_max_ratio = 2",
            "cameras[0].tamper.defocus_max_ratio",
        ),
    ] {
        let bad = text.replace(from, to);
        let p = parse(&bad, Path::new("/etc"), no_env()).unwrap_err();
        assert!(p.iter().any(|p| p.path == path), "{path}: {p:?}");
    }
    // Keys of another kind, and unknown keys, are refused by name.
    let misplaced = text.replace("tamper_after_s = 2.5", "offline_after_s = 3");
    let p = parse(&misplaced, Path::new("/etc"), no_env()).unwrap_err();
    assert!(
        p.iter().any(|p| p.path.contains("offline_after_s")),
        "{p:?}"
    );
    let misplaced = text.replace(
        "kind = \"camera_tamper\"\ncamera = \"cam-1\"\n\n",
        "kind = \"camera_offline\"\ncamera = \"cam-1\"\nreasons = [\"moved\"]\n\n",
    );
    let p = parse(&misplaced, Path::new("/etc"), no_env()).unwrap_err();
    assert!(p.iter().any(|p| p.path.contains("reasons")), "{p:?}");
    let unknown = text.replace("moved_after_s = 45", "moved_after = 45");
    let p = parse(&unknown, Path::new("/etc"), no_env()).unwrap_err();
    assert!(
        p.iter().any(|p| p.path.starts_with("cameras")
            && format!("{} {}", p.path, p.reason).contains("moved_after")),
        "{p:?}"
    );
}

/// A rule armed by the interlock `press-running`.
const ARMED_RULE: &str = r#"
[[rules]]
id = "cam-offline"
kind = "camera_offline"
camera = "cam-1"
armed_by = "press-running"
"#;

#[test]
fn a_rule_is_armed_by_an_interlock_the_file_declares() {
    let text = format!(
        "{MINIMAL}{ARMED_RULE}
[integrations.modbus]
bind = \"127.0.0.1:1502\"
allow = [\"127.0.0.1\"]

[[integrations.interlocks]]
id = \"press-running\"
source = \"modbus\"
coil = 1
"
    );
    let c = parse(&text, Path::new("/etc"), no_env()).unwrap();
    assert_eq!(
        c.rules[0].spec.armed_by.as_ref().map(|i| i.as_str()),
        Some("press-running")
    );
    assert_eq!(c.integrations.interlocks.len(), 1);
    // An interlock nobody declared: refused at the rule's key.
    let bad = text.replace(
        "armed_by = \"press-running\"",
        "armed_by = \"press-stopped\"",
    );
    let problems = parse(&bad, Path::new("/etc"), no_env()).unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths.len(), 1, "{problems:?}");
    assert!(paths[0].ends_with(".armed_by"), "{problems:?}");
}

#[test]
fn a_gpio_interlock_reads_the_machine_state_input() {
    let text = format!(
        "{MINIMAL}{ARMED_RULE}
[outputs]
backend = \"simulated\"
machine_state = {{ offset = 6, debounce_ms = 50 }}

[[integrations.interlocks]]
id = \"press-running\"
source = \"gpio\"
"
    );
    let c = parse(&text, Path::new("/etc"), no_env()).unwrap();
    assert!(c.outputs.inputs.machine_state.is_some());
    // Without the input: refused at the interlock's source.
    let bad = text.replace("machine_state = { offset = 6, debounce_ms = 50 }\n", "");
    let problems = parse(&bad, Path::new("/etc"), no_env()).unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["integrations.interlocks[0].source"], "{problems:?}");
}

//! IP cameras over RTSP against a real server: Debian's gst-rtsp-server (through
//! python3-gi, `tests/rtsp/rtsp-server.py`) serving the demo footage as H.264 and
//! H.265 (`scripts/rtsp-media.sh`), with HTTP Basic authentication.
//!
//! The whole daemon: persons detected on both codecs, an intrusion stored, the
//! server killed -> the camera offline and its camera-offline alarm raised, the
//! server back -> the camera back without a restart; wrong credentials -> a camera
//! error naming the 401; the password in no log line, API answer, audit row or
//! backup.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::alarms::first_open_event;
use crate::client::{Client, camera_counter, first_admin, free_port, wait_until};
use crate::harness::{Appliance, Daemon, repo_root, set_api_port};

const DETECTED: &str = "safeyolo_frames_detected_total";
const USER: &str = "viewer";
const PASSWORD: &str = "Rtsp-Pa55-7d1c";
const WRONG: &str = "Wrong-Pa55-88e2";

/// The encoded demo footage (`scripts/rtsp-media.sh`, run by `scripts/test.sh`).
fn media() -> PathBuf {
    let dir = repo_root().join("demo-media");
    assert!(
        dir.join("vtest.h264.mkv").exists() && dir.join("vtest.h265.mkv").exists(),
        "RTSP footage missing: run scripts/rtsp-media.sh (scripts/test.sh does)"
    );
    dir
}

/// The RTSP server on `port`, asking for `USER` / `PASSWORD`.
struct RtspServer {
    child: Child,
}

impl RtspServer {
    fn start(port: u16, password_file: &Path) -> Self {
        let mut child = Command::new("/usr/bin/python3")
            .arg(repo_root().join("tests/rtsp/rtsp-server.py"))
            .args(["--port", &port.to_string(), "--media"])
            .arg(media())
            .args(["--user", USER, "--password-file"])
            .arg(password_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with python3-gi (scripts/install-deps.sh installs it)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("ready"),
            "the RTSP server did not start: {line:?}"
        );
        RtspServer { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn health(c: &Client, camera: &str) -> Value {
    let (status, list) = c.json("GET", "/api/v1/cameras", None);
    assert_eq!(status, 200, "{list}");
    list["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == camera)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn rtsp_cameras_detect_alarm_go_offline_and_come_back_and_keep_their_passwords_secret() {
    let rtsp_port = free_port();
    let app = Appliance::new();
    let secrets = app.path().join("etc");
    std::fs::create_dir_all(&secrets).unwrap();
    let good = secrets.join("gate.pw");
    let bad = secrets.join("wrong.pw");
    std::fs::write(&good, format!("{PASSWORD}\n")).unwrap();
    std::fs::write(&bad, format!("{WRONG}\n")).unwrap();
    let mut server = RtspServer::start(rtsp_port, &good);

    let port = free_port();
    let url = |mount: &str| format!("rtsp://127.0.0.1:{rtsp_port}/{mount}");
    let config = app.write_config(
        0,
        &format!(
            r#"
[[cameras]]
id = "gate"
source = {{ kind = "rtsp", url = "{h264}", username = "{USER}", password_file = "{good}" }}

[[cameras]]
id = "yard"
source = {{ kind = "rtsp", url = "{h265}", username = "{USER}", password_file = "{good}", latency_ms = 100 }}

[[cameras]]
id = "wrong"
source = {{ kind = "rtsp", url = "{h264}", username = "{USER}", password_file = "{bad}" }}

[[zones]]
id = "tape-front"
camera = "gate"
polygon = [[0.20, 0.36], [0.50, 0.36], [0.50, 0.56], [0.20, 0.56]]

[[rules]]
id = "gate-intrusion"
kind = "intrusion"
zone = "tape-front"
min_frames = 3
severity = "critical"
outputs = ["siren"]

[[rules]]
id = "gate-offline"
kind = "camera_offline"
camera = "gate"
offline_after_s = 3
severity = "critical"
outputs = ["relay"]
"#,
            h264 = url("h264"),
            h265 = url("h265"),
            good = good.display(),
            bad = bad.display(),
        ),
    );
    set_api_port(&config, port);
    let (mut daemon, _notify) = Daemon::start_ready(&config);
    let c = first_admin(&daemon, port);

    // Persons detected on both codecs.
    for camera in ["gate", "yard"] {
        let n = wait_until(Duration::from_secs(90), || {
            let n = camera_counter(&c, DETECTED, camera);
            (n >= 10).then_some(n)
        });
        assert!(
            n.is_some(),
            "{camera}: no detections over RTSP; health {}; log:\n{}",
            health(&c, camera),
            daemon.log_text()
        );
    }
    // People walk through the zone 15-35 s into the footage.
    let intrusion = first_open_event(&c, "gate-intrusion", Duration::from_secs(90))
        .unwrap_or_else(|| panic!("no intrusion over RTSP; log:\n{}", daemon.log_text()));
    assert_eq!(intrusion["camera"], "gate");

    // Wrong credentials: the camera is offline and says why.
    let wrong = wait_until(Duration::from_secs(30), || {
        let h = health(&c, "wrong");
        h["reason"]
            .as_str()
            .is_some_and(|r| r.contains("401"))
            .then_some(h)
    })
    .unwrap_or_else(|| panic!("no 401 for the wrong password: {}", health(&c, "wrong")));
    assert_eq!(wrong["state"], "offline", "{wrong}");

    // The server dies: the camera goes offline and its alarm is raised.
    let killed = Instant::now();
    server.kill();
    let offline = first_open_event(&c, "gate-offline", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no camera-offline event; log:\n{}", daemon.log_text()));
    assert_eq!(offline["camera"], "gate");
    eprintln!(
        "rtsp: camera-offline raised {:.1} s after the server died (offline_after_s = 3)",
        killed.elapsed().as_secs_f64()
    );

    // The server comes back: the camera recovers without a daemon restart.
    let _server = RtspServer::start(rtsp_port, &good);
    let before = camera_counter(&c, DETECTED, "gate");
    let back = Instant::now();
    let resumed = wait_until(Duration::from_secs(60), || {
        (camera_counter(&c, DETECTED, "gate") > before + 5).then_some(())
    });
    assert!(
        resumed.is_some(),
        "gate did not come back; health {}; log:\n{}",
        health(&c, "gate"),
        daemon.log_text()
    );
    eprintln!(
        "rtsp: detections resumed {:.1} s after the server came back",
        back.elapsed().as_secs_f64()
    );
    assert_eq!(health(&c, "gate")["state"], "online");

    // A camera added through the API with its password: the password goes into
    // a private file, never into the document, its read-back, the audit or a backup.
    let (status, body) = c.json(
        "PUT",
        "/api/v1/cameras/dock",
        Some(&json!({"doc": {"source": {
            "kind": "rtsp", "url": url("h264"), "username": USER, "password": PASSWORD,
        }}})),
    );
    assert_eq!(status, 200, "{body}");
    let stored = app.path().join("state/secrets/camera-dock.password");
    assert_eq!(std::fs::read_to_string(&stored).unwrap().trim(), PASSWORD);
    let (_, cameras) = c.json("GET", "/api/v1/cameras", None);
    let (_, audit) = c.json("GET", "/api/v1/audit?limit=100", None);
    let (status, backup) = c.call("GET", "/api/v1/system/backup", None);
    assert_eq!(status, 200);
    let answers = [
        body.to_string(),
        cameras.to_string(),
        audit.to_string(),
        String::from_utf8_lossy(&backup).into_owned(),
    ];
    // The API's camera keeps running on its stored password (a 401 would show).
    let dock = wait_until(Duration::from_secs(60), || {
        (camera_counter(&c, DETECTED, "dock") > 0).then_some(())
    });
    assert!(dock.is_some(), "dock: {}", health(&c, "dock"));

    daemon.signal("TERM");
    assert!(
        daemon
            .wait(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    let log = daemon.log_text();
    for secret in [PASSWORD, WRONG] {
        assert!(!log.contains(secret), "{secret} in the log");
        for a in &answers {
            assert!(!a.contains(secret), "{secret} in an API answer");
        }
    }
    assert!(
        !std::fs::read(&config)
            .map(|b| String::from_utf8_lossy(&b).contains(PASSWORD))
            .unwrap(),
        "the configuration itself names only files"
    );
}

//! Shared helpers: paths, a media folder, config files, a fake systemd
//! notify socket, and a daemon process guard.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_safe-yolo")
}

pub fn repo_root() -> PathBuf {
    safe_yolo_fixtures::manifest_dir!()
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A photo of the test fixtures (`scripts/fixtures.sh`); a missing one fails the
/// test with its name and how to get it.
pub fn fixture_media(name: &str) -> PathBuf {
    safe_yolo_fixtures::media(name)
}

pub fn model_manifest() -> PathBuf {
    repo_root().join("models/nanodet-m-416-coco/model.toml")
}

/// A temporary appliance: state dir, media dir with a short JPEG "recording"
/// made of real photos with people, and a config file.
pub struct Appliance {
    pub dir: tempfile::TempDir,
}

impl Appliance {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let frames = dir.path().join("media/people");
        std::fs::create_dir_all(&frames).unwrap();
        // Alternate two real photos with people so detections change.
        for i in 0..20 {
            let src = if i % 2 == 0 { "bus.jpg" } else { "zidane.jpg" };
            std::fs::copy(fixture_media(src), frames.join(format!("{i:04}.jpg"))).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn sim_log(&self) -> PathBuf {
        self.dir.path().join("state/outputs.jsonl")
    }

    /// Writes a config with `cameras` replay cameras and `extra` appended.
    pub fn write_config(&self, cameras: usize, extra: &str) -> PathBuf {
        let mut text = format!(
            r#"
[system]
stall_timeout_s = 2
shutdown_timeout_s = 4

[detector]
backend = "tract"
model = "{model}"
threads = 1
classes = ["person"]

[storage]
state_dir = "state"
media_dir = "media"

[api]
bind = "127.0.0.1:0"

[outputs]
backend = "simulated"
sim_log = "state/outputs.jsonl"

[[outputs.lines]]
id = "siren"
role = "siren"
offset = 0

[[outputs.lines]]
id = "relay"
role = "relay"
offset = 1

[[outputs.lines]]
id = "healthy"
role = "healthy"
offset = 2
"#,
            model = model_manifest().display()
        );
        for i in 0..cameras {
            text.push_str(&format!(
                "\n[[cameras]]\nid = \"cam-{i}\"\nsource = {{ kind = \"replay\", path = \"people\", fps = 10, start_frame = {} }}\n",
                i * 3
            ));
        }
        text.push_str(extra);
        let path = self.dir.path().join("safe-yolo.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Gives a config written by [`Appliance::write_config`] (which binds the
/// API to port 0) a known API port, for tests that talk to the API.
pub fn set_api_port(config: &Path, port: u16) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(config, text).unwrap();
}

/// A fake systemd notify socket that records every datagram with its time.
pub struct NotifySocket {
    pub path: PathBuf,
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m2 = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        let s = String::from_utf8_lossy(&buf[..n]).into_owned();
                        m2.lock().unwrap().push((Instant::now(), s));
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&m2) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Self {
            path,
            messages,
            _dir: dir,
        }
    }

    pub fn messages(&self) -> Vec<(Instant, String)> {
        self.messages.lock().unwrap().clone()
    }

    /// Times of messages that contain `needle` as a line.
    pub fn times_of(&self, needle: &str) -> Vec<Instant> {
        self.messages()
            .into_iter()
            .filter(|(_, m)| m.lines().any(|l| l == needle))
            .map(|(t, _)| t)
            .collect()
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<Instant> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(t) = self.times_of(needle).first() {
                return Some(*t);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A running daemon; killed on drop. Its stderr goes to a log file.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `safe-yolo run --config <config>` the way systemd would for a
    /// `Type=notify` unit with `WatchdogSec=` (`WATCHDOG_PID` is the
    /// daemon's own pid, hence the `exec` through a shell).
    pub fn start(
        config: &Path,
        notify: Option<&NotifySocket>,
        watchdog: Option<Duration>,
        env: &[(&str, &str)],
    ) -> Self {
        let log = config.with_extension("log");
        let stderr = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" --log-format text --log info run --config \"$1\"")
            .arg(bin())
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM");
        if let Some(n) = notify {
            cmd.env("NOTIFY_SOCKET", &n.path);
        }
        if let Some(w) = watchdog {
            cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Self { child, log }
    }

    /// Starts the daemon with a notify socket and waits (up to 120 s) for
    /// READY; panics with the daemon's log when it does not come.
    pub fn start_ready(config: &Path) -> (Self, NotifySocket) {
        let notify = NotifySocket::new();
        let daemon = Self::start(config, Some(&notify), None, &[]);
        assert!(
            notify
                .wait_for("READY=1", Duration::from_secs(120))
                .is_some(),
            "daemon not ready; log:\n{}",
            daemon.log_text()
        );
        (daemon, notify)
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then asserts a clean exit within `timeout` (the log on failure).
    pub fn stop_cleanly(&mut self, timeout: Duration) {
        self.signal("TERM");
        let status = self.wait(timeout);
        assert!(
            status.is_some_and(|s| s.success()),
            "{status:?}: {}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NotifySocket {
    /// First time a message had a line starting with `prefix`.
    pub fn wait_for_prefix(&self, prefix: &str, timeout: Duration) -> Option<Instant> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some((t, _)) = self
                .messages()
                .into_iter()
                .find(|(_, m)| m.lines().any(|l| l.starts_with(prefix)))
            {
                return Some(t);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

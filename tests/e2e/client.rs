//! A small HTTPS client of the daemon's API (curl underneath, so the TLS
//! stack on the other end is a real, independent one), first-boot setup,
//! and readers of the simulated outputs' log and of `/metrics`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Appliance, Daemon};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Client {
    pub base: String,
    pub token: Option<String>,
}

impl Client {
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sk",
            "--max-time",
            "20",
            "-X",
            method,
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            cmd.arg("-H").arg(format!("authorization: Bearer {t}"));
        }
        if let Some(b) = body {
            cmd.args(["-H", "content-type: application/json", "--data-binary"])
                .arg(b.to_string());
        }
        let out = cmd.output().expect("curl runs");
        let mut raw = out.stdout;
        let nl = raw.iter().rposition(|b| *b == b'\n').expect("status line");
        let status = String::from_utf8_lossy(&raw[nl + 1..])
            .trim()
            .parse()
            .unwrap_or(0);
        raw.truncate(nl);
        (status, raw)
    }

    /// Logs in as `user` and keeps the access token for the next calls.
    pub fn login(&mut self, user: &str, password: &str) {
        self.token = None;
        let (status, body) = self.json(
            "POST",
            "/api/v1/auth/login",
            Some(&serde_json::json!({"username": user, "password": password})),
        );
        assert_eq!(status, 200, "login as {user}: {body}");
        self.token = Some(body["access_token"].as_str().unwrap().to_owned());
    }

    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, raw) = self.call(method, path, body);
        (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
    }
}

pub fn setup_token(daemon: &Daemon) -> Option<String> {
    let log = daemon.log_text();
    let at = log.find("setup_token=")? + "setup_token=".len();
    Some(
        log[at..]
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .to_owned(),
    )
}

/// (unix ms, on) transitions of one output in the simulated-output log.
pub fn transitions(app: &Appliance, output: &str) -> Vec<(u64, bool)> {
    std::fs::read_to_string(app.sim_log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["output"] == output)
        .map(|v| (v["unix_ms"].as_u64().unwrap(), v["on"].as_bool().unwrap()))
        .collect()
}

pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// The first admin's password in these tests.
pub const PASSWORD: &str = "correct horse battery staple";

/// Completes first-boot setup with the token from the log and logs in.
pub fn first_admin(daemon: &Daemon, port: u16) -> Client {
    let token = setup_token(daemon).expect("setup token in the log");
    let mut c = Client {
        base: format!("https://127.0.0.1:{port}"),
        token: None,
    };
    let password = PASSWORD;
    let (status, body) = c.json(
        "POST",
        "/api/v1/setup",
        Some(
            &serde_json::json!({"username": "safety", "password": password, "setup_token": token}),
        ),
    );
    assert!((200..300).contains(&status), "setup: {status} {body}");
    c.login("safety", password);
    c
}

/// A counter of `/metrics` for one camera.
pub fn camera_counter(c: &Client, metric: &str, camera: &str) -> u64 {
    metric_value(c, &format!("{metric}{{camera=\"{camera}\"}}"))
}

/// One sample of `/metrics`, named with its labels exactly as exposed
/// (`name{a="x",b="y"}`); 0 when absent.
pub fn metric_value(c: &Client, series: &str) -> u64 {
    let (status, raw) = c.call("GET", "/metrics", None);
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

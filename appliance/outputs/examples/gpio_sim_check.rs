//! Exercises [`GpioCdevBackend`] against the kernel's `gpio-sim` (run inside a VM by
//! `vm/gpio-sim-check.sh`; it needs root, configfs and the gpio-sim module).
//!
//! The init script creates bank0 of gpio-sim device `sim0` with 8 lines named
//! SIREN, RELAY, HEALTHY, ACK, DOOR (offsets 0-4). This program requests them through
//! the real uAPI v2 backend, drives them through the runner, presses the simulated
//! button and door contact through sysfs `pull`, and checks the electrical levels
//! gpio-sim reports. It prints one `PASS`/`FAIL` line per check and a closing
//! `N passed, N failed` line, and exits non-zero on any failure.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a check program: it reports on stdout and a failed unwrap is a failed check"
)]

use std::fs;
use std::process::ExitCode;
use std::time::Duration;

use safe_yolo_domain::{OutputId, RuleId};
use safe_yolo_outputs::config::{
    BackendKind, InputConfig, InputsConfig, LineConfig, LineRef, OutputsConfig,
};
use safe_yolo_outputs::{
    ActionSpec, Driver, GpioCdevBackend, InputRole, OutputRole, OutputsRunner, SafeState, Source,
};

const CONFIGFS: &str = "/sys/kernel/config/gpio-sim/sim0";

#[derive(Default)]
struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("PASS {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
    }
}

/// The sysfs view of the simulated chip.
struct Sim {
    dir: String,
}

impl Sim {
    fn value(&self, n: u32) -> u8 {
        let v = fs::read_to_string(format!("{}/sim_gpio{n}/value", self.dir)).unwrap();
        v.trim().parse().unwrap()
    }

    fn values(&self) -> [u8; 3] {
        [self.value(0), self.value(1), self.value(2)]
    }

    fn pull(&self, n: u32, pull: &str) {
        fs::write(format!("{}/sim_gpio{n}/pull", self.dir), pull).unwrap();
    }
}

fn id(s: &str) -> OutputId {
    OutputId::new(s).unwrap()
}

fn source(event: &str) -> Source {
    Source {
        rule: RuleId::new("no-go").unwrap(),
        event: event.into(),
    }
}

async fn settle(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut r = Report::default();
    let read = |p: &str| {
        fs::read_to_string(format!("{CONFIGFS}/{p}"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let chip_name = read("bank0/chip_name");
    let dev_name = read("dev_name");
    let sim = Sim {
        dir: format!("/sys/devices/platform/{dev_name}/{chip_name}"),
    };
    let chip = gpiocdev::Chip::from_name(&chip_name).unwrap();
    let label = chip.info().unwrap().label;
    println!("chip {chip_name}, label {label}, device {dev_name}");
    // At rest the active-low button is pulled up and the door contact down.
    sim.pull(3, "pull-up");
    sim.pull(4, "pull-down");

    // The chip is selected by its label here, by name and path below.
    let line = |id: &str, role, line, active_low, safe_state| LineConfig {
        id: OutputId::new(id).unwrap(),
        role,
        line,
        active_low,
        safe_state,
    };
    let v = OutputsConfig {
        backend: BackendKind::Gpio,
        chip: label.clone(),
        lines: vec![
            line(
                "siren",
                OutputRole::Siren,
                LineRef::Name("SIREN".into()),
                true,
                SafeState::Off,
            ),
            line(
                "stop",
                OutputRole::Relay,
                LineRef::Offset(1),
                false,
                SafeState::On,
            ),
            line(
                "healthy",
                OutputRole::Healthy,
                LineRef::Name("HEALTHY".into()),
                false,
                SafeState::Off,
            ),
        ],
        inputs: InputsConfig {
            ack_button: Some(InputConfig {
                line: LineRef::Name("ACK".into()),
                active_low: true,
                debounce: Duration::from_millis(20),
            }),
            door_contact: Some(InputConfig {
                line: LineRef::Offset(4),
                active_low: false,
                debounce: Duration::from_millis(30),
            }),
            machine_state: None,
        },
        health_timeout: Duration::from_millis(500),
        sim_log: None,
    }
    .validate()
    .unwrap();
    let backend = GpioCdevBackend::open(&v).unwrap();
    // Siren: active-low and safe off, so electrically high. Stop relay: safe on. Healthy: low.
    r.check(
        "safe levels from the request itself",
        sim.values() == [1, 1, 0],
        format!("{:?}", sim.values()),
    );

    let info = chip.line_info(0).unwrap();
    r.check(
        "consumer label",
        info.used && info.consumer == "safe-yolo",
        format!("{info:?}"),
    );
    let info = chip.line_info(3).unwrap();
    r.check(
        "inputs: both edges and kernel debounce",
        info.edge_detection == Some(gpiocdev::line::EdgeDetection::BothEdges)
            && info.debounce_period == Some(Duration::from_millis(20)),
        format!("{info:?}"),
    );
    match GpioCdevBackend::open(&v) {
        Err(e) => r.check(
            "busy lines refused",
            e.to_string().contains("in use by \"safe-yolo\""),
            e,
        ),
        Ok(_) => r.check("busy lines refused", false, "a second open succeeded"),
    }
    for chip_ref in [chip_name.clone(), format!("/dev/{chip_name}")] {
        let b = GpioCdevBackend::open(
            &OutputsConfig {
                backend: BackendKind::Gpio,
                chip: chip_ref.clone(),
                lines: vec![line(
                    "x",
                    OutputRole::Generic,
                    LineRef::Offset(7),
                    false,
                    SafeState::On,
                )],
                ..OutputsConfig::simulated()
            }
            .validate()
            .unwrap(),
        );
        r.check(
            &format!("chip selected by {chip_ref}"),
            b.is_ok() && sim.value(7) == 1,
            format!("{:?}", b.err()),
        );
    }

    let driver = Driver::new(v.specs.clone(), v.settings).unwrap();
    let (runner, h) = OutputsRunner::new(backend, driver, v.debounce_periods(), v.tick);
    let task = runner.spawn();
    let mut events = h.subscribe_inputs();
    let beat = h.clone();
    let beats = tokio::spawn(async move {
        loop {
            let _ = beat.pipeline_health(true);
            settle(100).await;
        }
    });
    settle(100).await;
    r.check(
        "alive: healthy high, relay released",
        sim.values() == [1, 0, 1],
        format!("{:?}", sim.values()),
    );
    h.activate(source("1"), vec![id("siren")], ActionSpec::latch())
        .await
        .unwrap();
    settle(50).await;
    r.check(
        "siren on drives the active-low line low",
        sim.value(0) == 0,
        sim.value(0),
    );

    // Press the button (pull the line down) with a bounce, hold, release.
    for (pull, ms) in [("pull-down", 3), ("pull-up", 3), ("pull-down", 150)] {
        sim.pull(3, pull);
        settle(ms).await;
    }
    r.check(
        "ack button acknowledges the siren",
        sim.value(0) == 1,
        sim.value(0),
    );
    sim.pull(3, "pull-up");
    settle(150).await;
    let mut got = Vec::new();
    while let Ok(e) = events.try_recv() {
        got.push((e.role, e.active));
    }
    r.check(
        "one press and one release",
        got == [(InputRole::AckButton, true), (InputRole::AckButton, false)],
        format!("{got:?}"),
    );

    // Door: a glitch shorter than the debounce period, then a real opening.
    for (pull, ms) in [("pull-up", 10), ("pull-down", 150), ("pull-up", 150)] {
        sim.pull(4, pull);
        settle(ms).await;
    }
    let mut got = Vec::new();
    while let Ok(e) = events.try_recv() {
        got.push((e.role, e.active));
    }
    r.check(
        "door glitch ignored, opening reported",
        got == [(InputRole::DoorContact, true)],
        format!("{got:?}"),
    );

    beats.abort();
    h.pipeline_health(false).unwrap();
    settle(50).await;
    r.check(
        "fault: siren off, relay safe on, healthy low",
        sim.values() == [1, 1, 0],
        format!("{:?}", sim.values()),
    );
    h.pipeline_health(true).unwrap();
    h.activate(source("2"), vec![id("siren")], ActionSpec::latch())
        .await
        .unwrap();
    settle(30).await;
    r.check(
        "recovered: siren on, healthy high",
        sim.values() == [0, 0, 1],
        format!("{:?}", sim.values()),
    );

    h.shutdown().await.unwrap();
    let report = task.await.unwrap();
    r.check(
        "shutdown confirmed safe",
        report.safe && report.write_errors == 0,
        format!("{report:?}"),
    );
    let info = chip.line_info(0).unwrap();
    r.check(
        "lines released after shutdown",
        !info.used,
        format!("{info:?}"),
    );

    println!("{} passed, {} failed", r.passed, r.failed);
    if r.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

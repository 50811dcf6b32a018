//! Rule engine behaviour: table-driven cases for every rule kind (with their
//! boundaries), validation, run-time replacement, and property tests of the
//! engine's invariants.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail loudly on broken fixtures"
)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use safe_yolo_domain::{BBox, CameraId, Detection, Line, OutputId, Polygon, RuleId, ZoneId};
use safe_yolo_rules::{
    Alarm, AlarmDetail, Anchor, CameraHealth, ClearAfter, Crossing, Decision, FrameInput,
    InterlockLevel, InterlockStates, LineDirection, LocalTime, PpeSpec, RuleEngine, RuleKind,
    RuleSpec, RulesError, Schedule, Severity, TamperReason, TamperSet, Track, TrackState, Weekday,
    WeekdaySet, ZoneShape, ZoneSpec,
};

const W: f32 = 1000.0;
const H: f32 = 1000.0;
const STEP: Duration = Duration::from_millis(100);

// === Builders ===

fn cam() -> CameraId {
    CameraId::new("cam-1").unwrap()
}

fn zid(s: &str) -> ZoneId {
    ZoneId::new(s).unwrap()
}

fn area(id: &str, pts: &[[f32; 2]]) -> ZoneSpec {
    ZoneSpec {
        id: zid(id),
        camera: cam(),
        shape: ZoneShape::Area(Polygon::new(pts).unwrap()),
    }
}

fn line(id: &str, a: [f32; 2], b: [f32; 2]) -> ZoneSpec {
    ZoneSpec {
        id: zid(id),
        camera: cam(),
        shape: ZoneShape::Line(Line::new(a, b).unwrap()),
    }
}

/// The square "dock" zone from (0.2, 0.2) to (0.6, 0.6).
fn dock() -> ZoneSpec {
    area("dock", &[[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]])
}

/// A vertical counting line at x = 0.5 from y = 0.1 to y = 0.9, drawn top
/// to bottom: side A is x > 0.5, side B is x < 0.5.
fn gate() -> ZoneSpec {
    line("gate", [0.5, 0.1], [0.5, 0.9])
}

fn rule(id: &str, zone: Option<&str>, kind: RuleKind) -> RuleSpec {
    RuleSpec::new(RuleId::new(id).unwrap(), cam(), zone.map(zid), kind)
}

/// A person track whose feet are at normalised `(x, y)`.
fn person(id: u64, x: f32, y: f32) -> Track {
    track(id, x, y, "person", TrackState::Tracked)
}

fn track(id: u64, x: f32, y: f32, class: &str, state: TrackState) -> Track {
    Track {
        id,
        bbox: BBox {
            x1: x * W - 20.0,
            y1: y * H - 100.0,
            x2: x * W + 20.0,
            y2: y * H,
        },
        class_id: 0,
        class_name: Arc::from(class),
        score: 0.9,
        age: 10,
        hits: 10,
        frames_lost: 0,
        lost_for: Duration::ZERO,
        state,
    }
}

/// A head detection on the person with feet at `(x, y)`.
fn head(class: &str, x: f32, y: f32) -> Detection {
    Detection {
        class_id: 0,
        class_name: Arc::from(class),
        score: 0.8,
        bbox: BBox {
            x1: x * W - 10.0,
            y1: y * H - 100.0,
            x2: x * W + 10.0,
            y2: y * H - 80.0,
        },
    }
}

fn monday(minute: u16) -> LocalTime {
    LocalTime {
        weekday: Weekday::Mon,
        minute_of_day: minute,
    }
}

/// One frame of a scripted scene.
#[derive(Clone, Default)]
struct Frame {
    tracks: Vec<Track>,
    ppe: Vec<Detection>,
    health: CameraHealth,
    door_open: bool,
    detector_down: bool,
    tamper: TamperSet,
    interlocks: InterlockStates,
    /// Time since the previous frame; `None` means [`STEP`].
    dt: Option<Duration>,
    minute: u16,
}

fn f(tracks: Vec<Track>) -> Frame {
    Frame {
        tracks,
        minute: 600,
        ..Frame::default()
    }
}

fn empty() -> Frame {
    f(Vec::new())
}

fn repeat(n: usize, frame: Frame) -> Vec<Frame> {
    vec![frame; n]
}

/// Runs `frames` through `engine` starting at t = 0 and returns every
/// decision with the index of its frame.
fn run(engine: &mut RuleEngine, frames: &[Frame]) -> Vec<(usize, Decision)> {
    let camera = cam();
    let mut now = Duration::ZERO;
    let mut out = Vec::new();
    for (i, fr) in frames.iter().enumerate() {
        if i > 0 {
            now += fr.dt.unwrap_or(STEP);
        }
        let input = FrameInput {
            camera: &camera,
            now,
            local: monday(fr.minute),
            frame_w: W,
            frame_h: H,
            tracks: &fr.tracks,
            ppe: &fr.ppe,
            health: fr.health,
            door_open: fr.door_open,
            detector_down: fr.detector_down,
            tamper: fr.tamper,
            interlocks: &fr.interlocks,
        };
        out.extend(engine.evaluate(&input).into_iter().map(|d| (i, d)));
    }
    out
}

/// A compact timeline: `"3:raise#1 5:clear"` (`#id` is the alarm's track).
fn timeline(decisions: &[(usize, Decision)]) -> String {
    decisions
        .iter()
        .map(|(i, d)| match d {
            Decision::Raise(a) => match a.track {
                Some(t) => format!("{i}:raise#{t}"),
                None => format!("{i}:raise"),
            },
            Decision::Clear { .. } => format!("{i}:clear"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The one table-test helper: runs a rule over zones and frames and compares
/// the timeline.
fn check(rule: RuleSpec, zones: Vec<ZoneSpec>, frames: &[Frame], expected: &str) {
    let name = rule.id.to_string();
    let mut engine = RuleEngine::new(vec![rule], zones).unwrap();
    let got = timeline(&run(&mut engine, frames));
    assert_eq!(got, expected, "rule {name}");
}

fn concat(parts: Vec<Vec<Frame>>) -> Vec<Frame> {
    parts.into_iter().flatten().collect()
}

fn intrusion(min_frames: u32) -> RuleSpec {
    rule(
        "intrusion",
        Some("dock"),
        RuleKind::Intrusion { min_frames },
    )
}

fn ppe_rule(min_frames: u32, window_frames: u32, grace: Duration) -> RuleSpec {
    rule(
        "hard-hat",
        Some("dock"),
        RuleKind::MissingPpe(PpeSpec {
            present_classes: vec![Arc::from("With Helmet")],
            absent_classes: vec![Arc::from("Without Helmet")],
            window_frames,
            min_frames,
            grace,
            head_fraction: 0.3,
            min_score: 0.3,
        }),
    )
}

// === Intrusion ===

#[test]
fn intrusion_table() {
    let inside = || f(vec![person(1, 0.4, 0.4)]);
    let outside = || f(vec![person(1, 0.8, 0.8)]);
    let lost = || f(vec![track(1, 0.4, 0.4, "person", TrackState::Lost)]);
    let cases: Vec<(&str, RuleSpec, Vec<Frame>, &str)> = vec![
        // Exactly N frames raises on the N-th; the first frame without the
        // condition clears (clear_after = 1 frame).
        (
            "exactly N frames",
            intrusion(3),
            concat(vec![repeat(3, inside()), vec![empty()]]),
            "2:raise#1 3:clear",
        ),
        (
            "N - 1 frames",
            intrusion(3),
            concat(vec![
                repeat(2, inside()),
                vec![outside()],
                repeat(2, inside()),
            ]),
            "",
        ),
        ("never inside", intrusion(1), repeat(5, outside()), ""),
        (
            "min_frames 1",
            intrusion(1),
            vec![inside(), outside()],
            "0:raise#1 1:clear",
        ),
        // A lost frame neither counts nor resets the count.
        (
            "lost frame holds the count",
            intrusion(3),
            vec![inside(), inside(), lost(), inside()],
            "3:raise#1",
        ),
        (
            "a lost track raises nothing",
            RuleSpec {
                cooldown: Duration::from_millis(150),
                ..intrusion(1)
            },
            vec![inside(), lost(), lost()],
            "0:raise#1 1:clear",
        ),
        (
            "tentative and other classes are ignored",
            intrusion(1),
            vec![
                f(vec![track(1, 0.4, 0.4, "person", TrackState::Tentative)]),
                f(vec![track(2, 0.4, 0.4, "forklift", TrackState::Tracked)]),
            ],
            "",
        ),
        (
            "the longest inside is reported",
            intrusion(2),
            vec![
                f(vec![person(5, 0.3, 0.3)]),
                f(vec![person(5, 0.3, 0.3), person(2, 0.4, 0.4)]),
            ],
            "1:raise#5",
        ),
        (
            "clear_after 3 frames",
            RuleSpec {
                clear_after: ClearAfter::Frames(3),
                ..intrusion(1)
            },
            concat(vec![
                vec![inside()],
                repeat(2, empty()),
                vec![inside()],
                repeat(3, empty()),
            ]),
            "0:raise#1 6:clear",
        ),
        (
            "clear_after exactly 1 s",
            RuleSpec {
                clear_after: ClearAfter::Time(Duration::from_secs(1)),
                ..intrusion(1)
            },
            concat(vec![vec![inside()], repeat(11, empty())]),
            // First empty frame at t = 0.1 s, cleared at t = 1.1 s.
            "0:raise#1 11:clear",
        ),
    ];
    for (name, spec, frames, expected) in cases {
        let spec = RuleSpec {
            id: RuleId::new(
                name.to_lowercase()
                    .replace([' ', '-'], "_")
                    .replace(['.'], ""),
            )
            .unwrap(),
            ..spec
        };
        check(spec, vec![dock()], &frames, expected);
    }
}

#[test]
fn box_touching_edges() {
    // Feet exactly on the frame's bottom edge, in a zone drawn down to it.
    let bottom = area("dock", &[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]);
    let mut cut = person(1, 0.5, 1.0);
    cut.bbox.y2 = 1200.0; // The box runs out of the frame.
    check(intrusion(1), vec![bottom], &[f(vec![cut])], "0:raise#1");

    // A box overlapping the zone with its feet just below it: outside by the
    // feet anchor, inside by the centre anchor.
    let below = person(1, 0.4, 0.62);
    check(intrusion(1), vec![dock()], &[f(vec![below.clone()])], "");
    let centre = RuleSpec {
        anchor: Anchor::Centre,
        ..intrusion(1)
    };
    check(centre, vec![dock()], &[f(vec![below])], "0:raise#1");

    // Feet a hair inside the zone's edge count; a hair outside do not.
    check(
        intrusion(1),
        vec![dock()],
        &[f(vec![person(1, 0.4, 0.5999)])],
        "0:raise#1",
    );
    check(
        intrusion(1),
        vec![dock()],
        &[f(vec![person(1, 0.4, 0.6001)])],
        "",
    );
}

// === Dwell ===

#[test]
fn dwell_table() {
    let dwell = |ms: u64| {
        rule(
            "loiter",
            Some("dock"),
            RuleKind::Dwell {
                min_duration: Duration::from_millis(ms),
            },
        )
    };
    let inside = || f(vec![person(1, 0.4, 0.4)]);
    // Enters at t = 0; frame 10 is at exactly 1 s.
    check(
        dwell(1000),
        vec![dock()],
        &repeat(11, inside()),
        "10:raise#1",
    );
    check(dwell(1000), vec![dock()], &repeat(10, inside()), "");
    // Stepping out restarts the clock.
    let frames = concat(vec![
        repeat(8, inside()),
        vec![f(vec![person(1, 0.9, 0.9)])],
        repeat(11, inside()),
    ]);
    check(dwell(1000), vec![dock()], &frames, "19:raise#1");
    // Occlusion (a lost track) does not restart it.
    let frames = concat(vec![
        repeat(5, inside()),
        repeat(3, f(vec![track(1, 0.4, 0.4, "person", TrackState::Lost)])),
        repeat(3, inside()),
    ]);
    check(dwell(1000), vec![dock()], &frames, "10:raise#1");
    // Uneven frame spacing: the time, not the frame count, matters.
    let slow = Frame {
        dt: Some(Duration::from_millis(600)),
        ..inside()
    };
    check(
        dwell(1000),
        vec![dock()],
        &[inside(), slow.clone(), slow, empty()],
        "2:raise#1 3:clear",
    );
}

// === Occupancy ===

#[test]
fn occupancy_table() {
    let occ = |max_persons, min_frames| {
        rule(
            "crowd",
            Some("dock"),
            RuleKind::Occupancy {
                max_persons,
                min_frames,
            },
        )
    };
    let people = |n: u64| {
        f((1..=n)
            .map(|i| person(i, 0.25 + 0.05 * i as f32, 0.4))
            .collect())
    };
    // K persons: no alarm; K + 1: alarm; back to K: clear.
    check(
        occ(2, 1),
        vec![dock()],
        &[people(2), people(3), people(2)],
        "1:raise 2:clear",
    );
    check(occ(0, 1), vec![dock()], &[people(0), people(1)], "1:raise");
    // Debounce: K + 1 must last min_frames frames.
    check(
        occ(2, 3),
        vec![dock()],
        &[
            people(3),
            people(3),
            people(2),
            people(3),
            people(3),
            people(3),
        ],
        "5:raise",
    );
    // Persons outside do not count.
    let mixed = f(vec![
        person(1, 0.3, 0.3),
        person(2, 0.4, 0.4),
        person(3, 0.9, 0.9),
    ]);
    check(occ(2, 1), vec![dock()], &[mixed], "");
    let mut engine = RuleEngine::new(vec![occ(1, 1)], vec![dock()]).unwrap();
    let d = run(&mut engine, &[people(3)]);
    assert_eq!(d[0].1.alarm().detail, AlarmDetail::Occupancy { count: 3 });
}

// === Line crossing ===

#[test]
fn line_crossing_table() {
    let lc = |direction, min_frames| {
        rule(
            "gate-count",
            Some("gate"),
            RuleKind::LineCrossing {
                direction,
                min_frames,
            },
        )
    };
    let at = |x: f32| f(vec![person(1, x, 0.5)]);
    let b_to_a = [at(0.3), at(0.45), at(0.55), at(0.7)];
    let a_to_b = [at(0.7), at(0.55), at(0.45), at(0.3)];
    check(
        lc(LineDirection::BToA, 1),
        vec![gate()],
        &b_to_a,
        "2:raise#1 3:clear",
    );
    check(lc(LineDirection::AToB, 1), vec![gate()], &b_to_a, "");
    check(
        lc(LineDirection::AToB, 1),
        vec![gate()],
        &a_to_b,
        "2:raise#1 3:clear",
    );
    check(
        lc(LineDirection::Either, 1),
        vec![gate()],
        &a_to_b,
        "2:raise#1 3:clear",
    );
    // Hysteresis: a step over and back is no crossing; staying is.
    let jitter = [at(0.45), at(0.55), at(0.45), at(0.55), at(0.45)];
    check(lc(LineDirection::Either, 2), vec![gate()], &jitter, "");
    check(
        lc(LineDirection::Either, 2),
        vec![gate()],
        &[at(0.45), at(0.55), at(0.56)],
        "2:raise#1",
    );
    // Passing around the end of the drawn segment is no crossing.
    let around = [f(vec![person(1, 0.3, 0.95)]), f(vec![person(1, 0.7, 0.95)])];
    check(lc(LineDirection::Either, 1), vec![gate()], &around, "");
    // A person who appears on side A has crossed nothing.
    check(
        lc(LineDirection::Either, 1),
        vec![gate()],
        &[at(0.7), at(0.7)],
        "",
    );
    let mut engine = RuleEngine::new(vec![lc(LineDirection::Either, 1)], vec![gate()]).unwrap();
    let d = run(&mut engine, &a_to_b);
    assert_eq!(
        d[0].1.alarm().detail,
        AlarmDetail::LineCrossing {
            crossing: Crossing::AToB
        }
    );
    let state = &engine.zone_states(&cam())[0];
    assert_eq!((state.crossings_a_to_b, state.crossings_b_to_a), (1, 0));
}

// === Camera health ===

#[test]
fn camera_offline_table() {
    let off = |ms: u64| {
        rule(
            "cam-health",
            None,
            RuleKind::CameraOffline {
                min_duration: Duration::from_millis(ms),
            },
        )
    };
    let health = |h| Frame {
        health: h,
        ..empty()
    };
    let frames = concat(vec![
        vec![health(CameraHealth::Ok)],
        repeat(6, health(CameraHealth::Offline)),
        vec![health(CameraHealth::Ok)],
    ]);
    // Offline from t = 0.1 s; 0.5 s later (frame 6) the alarm rises.
    check(off(500), vec![], &frames, "6:raise 7:clear");
    check(off(600), vec![], &frames, "");
    // A tampered camera is the camera-tamper rule's, not this one's.
    check(
        off(0),
        vec![],
        &[health(CameraHealth::Tampered), health(CameraHealth::Ok)],
        "",
    );
    let mut engine = RuleEngine::new(vec![off(0)], vec![]).unwrap();
    let d = run(&mut engine, &[health(CameraHealth::Offline)]);
    assert_eq!(
        d[0].1.alarm().detail,
        AlarmDetail::CameraOffline {
            health: CameraHealth::Offline
        }
    );
}

// === Camera tamper ===

#[test]
fn camera_tamper_table() {
    let tamper = |ms: u64, reasons: &[TamperReason]| {
        rule(
            "tamper",
            None,
            RuleKind::CameraTamper {
                reasons: reasons.iter().copied().collect(),
                min_duration: Duration::from_millis(ms),
            },
        )
    };
    let all = [
        TamperReason::Frozen,
        TamperReason::Covered,
        TamperReason::Blinded,
        TamperReason::Defocused,
        TamperReason::Moved,
    ];
    let at = |reasons: &[TamperReason]| Frame {
        tamper: reasons.iter().copied().collect(),
        health: if reasons.is_empty() {
            CameraHealth::Ok
        } else {
            CameraHealth::Tampered
        },
        ..empty()
    };
    let moved = [TamperReason::Moved];
    let frames = concat(vec![vec![at(&[])], repeat(6, at(&moved)), vec![at(&[])]]);
    // Reported from t = 0.1 s: 0.5 s later (frame 6) the alarm rises, with
    // its reason; it clears on the first frame without a watched reason.
    check(tamper(500, &all), vec![], &frames, "6:raise 7:clear");
    check(tamper(600, &all), vec![], &frames, "");
    check(tamper(0, &moved), vec![], &frames, "1:raise 7:clear");
    // A reason the rule does not watch raises nothing.
    check(tamper(0, &[TamperReason::Frozen]), vec![], &frames, "");
    let mut engine = RuleEngine::new(vec![tamper(0, &all)], vec![]).unwrap();
    let d = run(
        &mut engine,
        &[at(&[TamperReason::Moved, TamperReason::Covered]), at(&[])],
    );
    assert_eq!(timeline(&d), "0:raise 1:clear");
    assert_eq!(
        d[0].1.alarm().detail,
        AlarmDetail::CameraTamper {
            reason: TamperReason::Covered
        },
        "the first reason in the vocabulary's order"
    );
    // An offline camera is the offline rule's: no tamper alarm, and an
    // active one clears.
    let offline = Frame {
        health: CameraHealth::Offline,
        ..at(&moved)
    };
    check(
        tamper(0, &all),
        vec![],
        &[at(&moved), offline],
        "0:raise 1:clear",
    );
    // A rule watching no reason is refused, naming the field.
    let err = RuleEngine::new(vec![tamper(0, &[])], vec![]).unwrap_err();
    assert!(err.to_string().contains("`reasons`"), "{err}");
}

// === Door contact ===

#[test]
fn door_open_table() {
    let door = |ms: u64| {
        rule(
            "gate-open",
            None,
            RuleKind::DoorOpen {
                min_duration: Duration::from_millis(ms),
            },
        )
    };
    let at = |open: bool| Frame {
        door_open: open,
        detector_down: false,
        ..empty()
    };
    let frames = concat(vec![vec![at(false)], repeat(6, at(true)), vec![at(false)]]);
    // Open from t = 0.1 s: exactly 0.5 s later (frame 6) the alarm rises;
    // it clears when the door closes.
    check(door(500), vec![], &frames, "6:raise 7:clear");
    check(door(600), vec![], &frames, "");
    check(door(0), vec![], &[at(true), at(false)], "0:raise 1:clear");
    // A door that closes resets the timer: open-closed-open is not "open long".
    let bouncy = concat(vec![
        repeat(4, at(true)),
        vec![at(false)],
        repeat(4, at(true)),
    ]);
    check(door(400), vec![], &bouncy, "");
    // People and camera health do not matter to it.
    let with_person = Frame {
        door_open: true,
        detector_down: false,
        health: CameraHealth::Offline,
        ..f(vec![person(1, 0.5, 0.5)])
    };
    let mut engine = RuleEngine::new(vec![door(0)], vec![]).unwrap();
    let d = run(&mut engine, &[with_person]);
    assert_eq!(d[0].1.alarm().detail, AlarmDetail::DoorOpen);
    assert_eq!(d[0].1.alarm().track, None);
    // Outside its schedule the rule is quiet.
    let mut scheduled = door(0);
    // (The frames are at 10:00 on a Monday.)
    scheduled.schedule = Some(Schedule::new(WeekdaySet::WORKDAYS, 0, 60).unwrap());
    check(scheduled, vec![], &repeat(3, at(true)), "");
}

// === Detector fault ===

#[test]
fn detector_fault_table() {
    let fault = |ms: u64| {
        rule(
            "blind",
            None,
            RuleKind::DetectorFault {
                min_duration: Duration::from_millis(ms),
            },
        )
    };
    let at = |down: bool| Frame {
        detector_down: down,
        ..empty()
    };
    let frames = concat(vec![vec![at(false)], repeat(6, at(true)), vec![at(false)]]);
    // Down from t = 0.1 s: 0.5 s later (frame 6) the alarm rises; it clears
    // when the detector is back.
    check(fault(500), vec![], &frames, "6:raise 7:clear");
    check(fault(600), vec![], &frames, "");
    check(fault(0), vec![], &[at(true), at(false)], "0:raise 1:clear");
    // A detector that comes back resets the timer.
    let flapping = concat(vec![
        repeat(4, at(true)),
        vec![at(false)],
        repeat(4, at(true)),
    ]);
    check(fault(400), vec![], &flapping, "");
    // Persons, the door and the camera's health do not matter to it, and a
    // camera-offline rule of the same camera is independent of it.
    let offline = |ms: u64| {
        rule(
            "offline",
            None,
            RuleKind::CameraOffline {
                min_duration: Duration::from_millis(ms),
            },
        )
    };
    let blind_person = Frame {
        detector_down: true,
        door_open: true,
        ..f(vec![person(1, 0.5, 0.5)])
    };
    let mut engine = RuleEngine::new(vec![fault(0), offline(0)], vec![]).unwrap();
    let d = run(&mut engine, &[blind_person]);
    assert_eq!(timeline(&d), "0:raise");
    assert_eq!(d[0].1.alarm().detail, AlarmDetail::DetectorFault);
    assert_eq!(d[0].1.alarm().track, None);
    let blind_offline = Frame {
        detector_down: true,
        health: CameraHealth::Offline,
        ..empty()
    };
    let mut engine = RuleEngine::new(vec![fault(0), offline(0)], vec![]).unwrap();
    let d = run(&mut engine, &[blind_offline]);
    let mut kinds: Vec<_> = d.iter().map(|(_, d)| d.alarm().rule.to_string()).collect();
    kinds.sort();
    assert_eq!(kinds, ["blind", "offline"]);
    // Signal evaluation steps it without a frame.
    let camera = cam();
    let mut engine = RuleEngine::new(vec![fault(0)], vec![]).unwrap();
    assert!(engine.has_signal_rules(&camera));
    let input = FrameInput {
        camera: &camera,
        now: Duration::ZERO,
        local: monday(600),
        frame_w: W,
        frame_h: H,
        tracks: &[],
        ppe: &[],
        health: CameraHealth::Ok,
        door_open: false,
        detector_down: true,
        tamper: TamperSet::EMPTY,
        interlocks: &InterlockStates::EMPTY,
    };
    assert_eq!(engine.evaluate_signals(&input).len(), 1);
}

// === Missing PPE ===

#[test]
fn missing_ppe_table() {
    let (x, y) = (0.4, 0.4);
    let bare = || Frame {
        ppe: vec![head("Without Helmet", x, y)],
        ..f(vec![person(1, x, y)])
    };
    let helmet = || Frame {
        ppe: vec![head("With Helmet", x, y)],
        ..f(vec![person(1, x, y)])
    };
    let unseen = || f(vec![person(1, x, y)]);
    let zero = Duration::ZERO;
    // Exactly min_frames "without" votes in the window raise.
    check(
        ppe_rule(3, 5, zero),
        vec![dock()],
        &repeat(3, bare()),
        "2:raise#1",
    );
    check(ppe_rule(3, 5, zero), vec![dock()], &repeat(2, bare()), "");
    check(ppe_rule(3, 5, zero), vec![dock()], &repeat(8, helmet()), "");
    // Misses of the head detector do not count either way.
    check(
        ppe_rule(3, 5, zero),
        vec![dock()],
        &[bare(), unseen(), bare(), unseen(), bare()],
        "4:raise#1",
    );
    // Votes older than the window are forgotten.
    check(
        ppe_rule(3, 3, zero),
        vec![dock()],
        &[bare(), bare(), unseen(), bare()],
        "",
    );
    // Consensus: as much "with" as "without" evidence is no violation.
    check(
        ppe_rule(2, 4, zero),
        vec![dock()],
        &[helmet(), bare(), helmet(), bare()],
        "",
    );
    // Grace: evidence during the first second after entering is ignored.
    let grace = Duration::from_secs(1);
    check(ppe_rule(3, 5, grace), vec![dock()], &repeat(12, bare()), "");
    check(
        ppe_rule(3, 5, grace),
        vec![dock()],
        &repeat(13, bare()),
        "12:raise#1",
    );
    // Putting the helmet on clears the alarm once "with" evidence in the
    // window matches "without" (3 each at frame 5).
    let frames = concat(vec![repeat(3, bare()), repeat(3, helmet())]);
    check(
        ppe_rule(3, 5, zero),
        vec![dock()],
        &frames,
        "2:raise#1 5:clear",
    );
    // A person outside the zone without a helmet is not this rule's concern.
    let outside = Frame {
        ppe: vec![head("Without Helmet", 0.9, 0.9)],
        ..f(vec![person(1, 0.9, 0.9)])
    };
    check(ppe_rule(1, 1, zero), vec![dock()], &repeat(3, outside), "");
    // A bare head far from the person's upper body is not theirs.
    let stray = Frame {
        ppe: vec![head("Without Helmet", 0.4, 0.55)],
        ..f(vec![person(1, 0.4, 0.4)])
    };
    check(ppe_rule(1, 1, zero), vec![dock()], &repeat(3, stray), "");
}

// === Cooldown and schedule ===

#[test]
fn cooldown_suppresses_raises_but_not_clears() {
    let spec = RuleSpec {
        cooldown: Duration::from_secs(1),
        ..intrusion(1)
    };
    let inside = || f(vec![person(1, 0.4, 0.4)]);
    // In at 0, out at 0.1 (clear), in again 0.2..0.9 (blocked), raised at
    // exactly 1.0 s (frame 10).
    let frames = concat(vec![vec![inside(), empty()], repeat(9, inside())]);
    check(spec, vec![dock()], &frames, "0:raise#1 1:clear 10:raise#1");
}

#[test]
fn schedule_gates_the_condition() {
    let spec = RuleSpec {
        schedule: Some(Schedule::new(WeekdaySet::WORKDAYS, 8 * 60, 17 * 60).unwrap()),
        ..intrusion(1)
    };
    let at = |minute| Frame {
        minute,
        ..f(vec![person(1, 0.4, 0.4)])
    };
    check(
        spec,
        vec![dock()],
        &[at(479), at(480), at(1019), at(1020)],
        "1:raise#1 3:clear",
    );
}

#[test]
fn an_interlock_arms_the_rule_and_only_an_explicit_disarm_disarms_it() {
    let press = safe_yolo_domain::InterlockId::new("press-running").unwrap();
    let spec = RuleSpec {
        armed_by: Some(press.clone()),
        ..intrusion(1)
    };
    let at = |level: Option<InterlockLevel>| Frame {
        interlocks: InterlockStates::new(level.map(|l| (press.clone(), l))),
        ..f(vec![person(1, 0.4, 0.4)])
    };
    // Never heard (fail-safe: armed) -> raised; disarmed -> cleared; disarmed
    // -> nothing; armed -> raised again; unknown (stale) -> still raised.
    check(
        spec,
        vec![dock()],
        &[
            at(None),
            at(Some(InterlockLevel::Disarmed)),
            at(Some(InterlockLevel::Disarmed)),
            at(Some(InterlockLevel::Armed)),
            at(Some(InterlockLevel::Unknown)),
        ],
        "0:raise#1 1:clear 3:raise#1",
    );
}

// === Decisions carry the rule's data ===

#[test]
fn decisions_carry_rule_data() {
    let spec = RuleSpec {
        severity: Severity::Critical,
        outputs: vec![OutputId::new("siren-1").unwrap()],
        ..intrusion(1)
    };
    let mut engine = RuleEngine::new(vec![spec], vec![dock()]).unwrap();
    let d = run(&mut engine, &[f(vec![person(7, 0.4, 0.4)]), empty()]);
    let Decision::Raise(a) = &d[0].1 else {
        panic!("{d:?}")
    };
    assert_eq!(a.zone, Some(zid("dock")));
    assert_eq!(
        (a.severity, a.track, a.raised_at),
        (Severity::Critical, Some(7), Duration::ZERO)
    );
    assert_eq!(&*a.outputs, &[OutputId::new("siren-1").unwrap()]);
    let Decision::Clear { alarm, at } = &d[1].1 else {
        panic!("{d:?}")
    };
    assert_eq!((alarm, *at), (a, STEP));
    assert_eq!(engine.active_alarms().count(), 0);
}

#[test]
fn zone_states_for_the_live_view() {
    let mut engine = RuleEngine::new(
        vec![intrusion(5)],
        vec![
            dock(),
            area("yard", &[[0.7, 0.7], [0.9, 0.7], [0.9, 0.9]]),
            gate(),
        ],
    )
    .unwrap();
    run(
        &mut engine,
        &[f(vec![
            person(3, 0.3, 0.3),
            person(1, 0.4, 0.4),
            person(2, 0.95, 0.95),
        ])],
    );
    let states = engine.zone_states(&cam());
    assert_eq!(states.len(), 3);
    assert_eq!(
        (states[0].zone.as_str(), states[0].inside.clone()),
        ("dock", vec![1, 3])
    );
    assert_eq!(states[0].occupancy(), 2);
    assert_eq!(states[1].occupancy(), 0);
    assert!(
        engine
            .zone_states(&CameraId::new("other").unwrap())
            .is_empty()
    );
}

#[test]
fn cameras_are_independent() {
    let other = CameraId::new("cam-2").unwrap();
    let mut engine = RuleEngine::new(vec![intrusion(1)], vec![dock()]).unwrap();
    let tracks = [person(1, 0.4, 0.4)];
    let input = FrameInput {
        camera: &other,
        now: Duration::ZERO,
        local: monday(600),
        frame_w: W,
        frame_h: H,
        tracks: &tracks,
        ppe: &[],
        health: CameraHealth::Ok,
        door_open: false,
        detector_down: false,
        tamper: TamperSet::EMPTY,
        interlocks: &InterlockStates::EMPTY,
    };
    assert!(engine.evaluate(&input).is_empty());
    // A zero-sized frame cannot place anybody and raises nothing.
    let input = FrameInput {
        camera: &cam(),
        frame_w: 0.0,
        ..input
    };
    assert!(engine.evaluate(&input).is_empty());
}

// === Tracker and engine together ===

#[test]
fn a_person_walking_through_an_occlusion_raises_one_alarm() {
    let spec = RuleSpec {
        clear_after: ClearAfter::Frames(5),
        ..intrusion(3)
    };
    // Walks right along y = 0.4 through the dock (x 0.2..0.6) at 10
    // detections/s, hidden behind a pallet for frames 12..=14.
    let walk = |frame: u32| (0.11 + 0.02 * frame as f32, 0.4);
    let (run, ids) = tracked_run(spec, dock(), STEP, 45, walk, &[12, 13, 14]);
    // Tentative on frame 0, tracked from frame 1, inside from frame 5
    // (x = 0.21): the third frame inside is frame 7; the occlusion neither
    // clears nor re-raises. Last inside at frame 24 (x = 0.59); the fifth
    // frame outside, 29, clears.
    assert_eq!(
        (run.as_str(), ids.as_slice()),
        ("7:raise#1 29:clear", &[1][..])
    );
}

/// Tracker and engine together, an update `every` so often, with the
/// person's detections `missing` at some updates: the timeline of decisions
/// and every track id the tracker gave.
fn tracked_run(
    rule: RuleSpec,
    zone: ZoneSpec,
    every: Duration,
    updates: u32,
    feet: impl Fn(u32) -> (f32, f32),
    missing: &[u32],
) -> (String, Vec<u64>) {
    use safe_yolo_rules::{Tracker, TrackerConfig};
    let mut engine = RuleEngine::new(vec![rule], vec![zone]).unwrap();
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let camera = cam();
    let mut decisions = Vec::new();
    let mut ids = Vec::new();
    for k in 0..updates {
        let now = every * k;
        let (x, y) = feet(k);
        let dets = if missing.contains(&k) {
            vec![]
        } else {
            vec![Detection {
                class_id: 0,
                class_name: Arc::from("person"),
                score: 0.8,
                bbox: person(0, x, y).bbox,
            }]
        };
        let tracks = tracker.update(&dets, W, H, now);
        for t in &tracks {
            if !ids.contains(&t.id) {
                ids.push(t.id);
            }
        }
        let input = FrameInput {
            camera: &camera,
            now,
            local: monday(600),
            frame_w: W,
            frame_h: H,
            tracks: &tracks,
            ppe: &[],
            health: CameraHealth::Ok,
            door_open: false,
            detector_down: false,
            tamper: TamperSet::EMPTY,
            interlocks: &InterlockStates::EMPTY,
        };
        for d in engine.evaluate(&input) {
            decisions.push((k as usize, d));
        }
    }
    (timeline(&decisions), ids)
}

/// 3.3 detections/s.
const LOW_RATE: Duration = Duration::from_millis(300);

#[test]
fn a_line_crossing_survives_two_lost_detections_at_a_low_rate() {
    // Walks left to right (side B to side A of the gate at x = 0.5) at
    // 0.1 of the frame per second; the two detections nearest the line
    // are lost. One person, one id, one crossing.
    let walk = |k: u32| (0.3 + 0.03 * k as f32, 0.5);
    let crossing = rule(
        "crossing",
        Some("gate"),
        RuleKind::LineCrossing {
            direction: LineDirection::Either,
            min_frames: 2,
        },
    );
    // Without losses: on side A from update 7 (x = 0.51), confirmed at 8
    // (a crossing is an event: it clears on the next update).
    let (clean, ids) = tracked_run(crossing.clone(), gate(), LOW_RATE, 14, walk, &[]);
    assert_eq!(
        (clean.as_str(), ids.as_slice()),
        ("8:raise#1 9:clear", &[1][..])
    );
    // Updates 6 and 7 (x = 0.48 and 0.51) lost: the track coasts over the
    // line and is found again at 8; the crossing is confirmed at 9.
    let (lossy, ids) = tracked_run(crossing, gate(), LOW_RATE, 14, walk, &[6, 7]);
    assert_eq!(
        (lossy.as_str(), ids.as_slice()),
        ("9:raise#1 10:clear", &[1][..])
    );
}

#[test]
fn dwell_survives_lost_detections_at_a_low_rate() {
    // Stands in the dock, swaying a little; two detections in a row are
    // lost three times. The dwell clock runs from the first confirmed
    // sighting (update 1, 0.3 s): 10 s later is 10.3 s, the first update
    // at or after it is 35 (10.5 s), within one update of the truth.
    let sway = |k: u32| (0.4 + 0.005 * (k % 3) as f32, 0.5);
    let dwell = rule(
        "dwell",
        Some("dock"),
        RuleKind::Dwell {
            min_duration: Duration::from_secs(10),
        },
    );
    let (run, ids) = tracked_run(dwell, dock(), LOW_RATE, 40, sway, &[10, 11, 20, 21, 30, 31]);
    assert_eq!((run.as_str(), ids.as_slice()), ("35:raise#1", &[1][..]));
}

// === Validation ===

#[test]
fn validation_names_rule_and_reason() {
    let other_cam = ZoneSpec {
        camera: CameraId::new("cam-2").unwrap(),
        ..area("far", &[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]])
    };
    let cases: Vec<(Vec<RuleSpec>, Vec<ZoneSpec>, RulesError)> = vec![
        (
            vec![intrusion(1), intrusion(2)],
            vec![dock()],
            RulesError::DuplicateRule {
                rule: RuleId::new("intrusion").unwrap(),
            },
        ),
        (
            vec![],
            vec![dock(), dock()],
            RulesError::DuplicateZone { zone: zid("dock") },
        ),
        (
            vec![intrusion(1)],
            vec![],
            RulesError::UnknownZone {
                rule: RuleId::new("intrusion").unwrap(),
                zone: zid("dock"),
            },
        ),
        (
            vec![rule(
                "r",
                None,
                RuleKind::Dwell {
                    min_duration: Duration::ZERO,
                },
            )],
            vec![],
            RulesError::MissingZone {
                rule: RuleId::new("r").unwrap(),
            },
        ),
        (
            vec![rule(
                "r",
                Some("far"),
                RuleKind::Intrusion { min_frames: 1 },
            )],
            vec![other_cam],
            RulesError::ZoneOnOtherCamera {
                rule: RuleId::new("r").unwrap(),
                zone: zid("far"),
                rule_camera: cam(),
                zone_camera: CameraId::new("cam-2").unwrap(),
            },
        ),
        (
            vec![rule(
                "r",
                Some("gate"),
                RuleKind::Intrusion { min_frames: 1 },
            )],
            vec![gate()],
            RulesError::WrongZoneShape {
                rule: RuleId::new("r").unwrap(),
                zone: zid("gate"),
                expected: "an area",
            },
        ),
        (
            vec![rule(
                "r",
                Some("dock"),
                RuleKind::LineCrossing {
                    direction: LineDirection::Either,
                    min_frames: 1,
                },
            )],
            vec![dock()],
            RulesError::WrongZoneShape {
                rule: RuleId::new("r").unwrap(),
                zone: zid("dock"),
                expected: "a line",
            },
        ),
        (
            vec![intrusion(0)],
            vec![dock()],
            RulesError::BadThreshold {
                rule: RuleId::new("intrusion").unwrap(),
                field: "min_frames",
                reason: "must be at least 1",
            },
        ),
        (
            vec![RuleSpec {
                clear_after: ClearAfter::Frames(0),
                ..intrusion(1)
            }],
            vec![dock()],
            RulesError::BadThreshold {
                rule: RuleId::new("intrusion").unwrap(),
                field: "clear_after",
                reason: "must be at least 1 frame",
            },
        ),
        (
            vec![ppe_rule(6, 5, Duration::ZERO)],
            vec![dock()],
            RulesError::BadThreshold {
                rule: RuleId::new("hard-hat").unwrap(),
                field: "min_frames",
                reason: "must be between 1 and window_frames",
            },
        ),
        (
            vec![ppe_rule(1, 65, Duration::ZERO)],
            vec![dock()],
            RulesError::BadThreshold {
                rule: RuleId::new("hard-hat").unwrap(),
                field: "window_frames",
                reason: "must be between 1 and 64",
            },
        ),
    ];
    for (rules, zones, expected) in cases {
        let got = RuleEngine::new(rules, zones).unwrap_err();
        assert_eq!(got, expected);
        assert!(!got.to_string().is_empty());
    }
    let e = RuleEngine::new(vec![intrusion(1)], vec![]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "rule `intrusion` refers to zone `dock`, which does not exist"
    );
}

// === Run-time replacement ===

#[test]
fn replace_keeps_unchanged_rules_and_clears_removed_ones() {
    let dwell = rule(
        "loiter",
        Some("dock"),
        RuleKind::Dwell {
            min_duration: Duration::from_millis(500),
        },
    );
    let mut engine = RuleEngine::new(vec![intrusion(1), dwell.clone()], vec![dock()]).unwrap();
    let inside = || f(vec![person(1, 0.4, 0.4)]);
    let d = run(&mut engine, &repeat(3, inside()));
    assert_eq!(timeline(&d), "0:raise#1");
    // Keep intrusion unchanged, change the dwell rule, add nothing else.
    let faster = RuleSpec {
        severity: Severity::Critical,
        ..dwell.clone()
    };
    let cleared = engine
        .replace(vec![intrusion(1), faster], vec![dock()])
        .unwrap();
    assert!(cleared.is_empty(), "dwell was not active: {cleared:?}");
    assert_eq!(
        engine.active_alarms().count(),
        1,
        "the intrusion alarm survives"
    );
    // The dwell timer kept running through zone membership: raised at 0.5 s.
    let camera = cam();
    let tracks = [person(1, 0.4, 0.4)];
    let input = FrameInput {
        camera: &camera,
        now: Duration::from_millis(500),
        local: monday(600),
        frame_w: W,
        frame_h: H,
        tracks: &tracks,
        ppe: &[],
        health: CameraHealth::Ok,
        door_open: false,
        detector_down: false,
        tamper: TamperSet::EMPTY,
        interlocks: &InterlockStates::EMPTY,
    };
    let d = engine.evaluate(&input);
    assert_eq!(d.len(), 1, "no second intrusion raise: {d:?}");
    assert_eq!(d[0].alarm().rule.as_str(), "loiter");
    // Removing the active intrusion rule clears its alarm.
    let cleared = engine.replace(vec![dwell], vec![dock()]).unwrap();
    let rules: Vec<&str> = cleared.iter().map(|d| d.alarm().rule.as_str()).collect();
    assert_eq!(rules, ["intrusion", "loiter"]);
    assert!(cleared.iter().all(|d| !d.is_raise()));
    // Moving the zone resets the rules on it: the active alarm is cleared.
    let moved = area("dock", &[[0.1, 0.1], [0.6, 0.1], [0.6, 0.6], [0.1, 0.6]]);
    let dwell = rule(
        "loiter",
        Some("dock"),
        RuleKind::Dwell {
            min_duration: Duration::ZERO,
        },
    );
    let mut engine = RuleEngine::new(vec![dwell.clone()], vec![dock()]).unwrap();
    assert_eq!(
        timeline(&run(&mut engine, &[f(vec![person(1, 0.4, 0.4)])])),
        "0:raise#1"
    );
    let same = engine.replace(vec![dwell.clone()], vec![dock()]).unwrap();
    assert!(
        same.is_empty(),
        "identical config keeps the alarm: {same:?}"
    );
    let cleared = engine.replace(vec![dwell], vec![moved]).unwrap();
    assert_eq!(cleared.len(), 1);
    assert_eq!(engine.active_alarms().count(), 0);
    // A bad replacement leaves the engine as it was.
    let before = engine.rules().count();
    assert!(engine.replace(vec![intrusion(1)], vec![]).is_err());
    assert_eq!(engine.rules().count(), before);
}

// === Property tests ===

#[derive(Debug, Clone)]
struct PTrack {
    id: u64,
    x: f32,
    y: f32,
    state: TrackState,
    head: Option<bool>,
}

/// A coordinate, usually inside the dock zone (0.2..0.6) so that people
/// stay in it for several frames, sometimes anywhere.
fn coord() -> impl Strategy<Value = f32> {
    prop_oneof![3 => prop::sample::select(vec![0.3f32, 0.4, 0.5]), 1 => 0.0f32..=1.0]
}

fn ptrack() -> impl Strategy<Value = PTrack> {
    (
        1u64..=6,
        coord(),
        coord(),
        prop_oneof![6 => Just(TrackState::Tracked), 1 => Just(TrackState::Lost), 1 => Just(TrackState::Tentative)],
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
    )
        .prop_map(|(id, x, y, state, head)| PTrack { id, x, y, state, head })
}

#[derive(Debug, Clone)]
struct PFrame {
    dt_ms: u64,
    tracks: Vec<PTrack>,
    health: CameraHealth,
    door_open: bool,
    detector_down: bool,
}

fn pframe() -> impl Strategy<Value = PFrame> {
    (
        0u64..400,
        prop::collection::vec(ptrack(), 0..6),
        prop_oneof![4 => Just(CameraHealth::Ok), 1 => Just(CameraHealth::Offline)],
        prop_oneof![3 => Just(false), 1 => Just(true)],
        prop_oneof![3 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(dt_ms, tracks, health, door_open, detector_down)| PFrame {
            dt_ms,
            tracks,
            health,
            door_open,
            detector_down,
        })
}

fn pclear() -> impl Strategy<Value = ClearAfter> {
    prop_oneof![
        (1u32..4).prop_map(ClearAfter::Frames),
        (0u64..1500).prop_map(|ms| ClearAfter::Time(Duration::from_millis(ms))),
    ]
}

fn pkind() -> impl Strategy<Value = RuleKind> {
    prop_oneof![
        (1u32..4).prop_map(|min_frames| RuleKind::Intrusion { min_frames }),
        (0u64..1500).prop_map(|ms| RuleKind::Dwell {
            min_duration: Duration::from_millis(ms)
        }),
        (0u32..3, 1u32..3).prop_map(|(max_persons, min_frames)| RuleKind::Occupancy {
            max_persons,
            min_frames
        }),
        (1u32..3, 0u64..500).prop_map(|(min_frames, grace)| {
            let RuleKind::MissingPpe(mut p) = ppe_rule(1, 3, Duration::ZERO).kind else {
                unreachable!()
            };
            p.min_frames = min_frames;
            p.grace = Duration::from_millis(grace);
            RuleKind::MissingPpe(p)
        }),
        (
            prop_oneof![
                Just(LineDirection::AToB),
                Just(LineDirection::BToA),
                Just(LineDirection::Either)
            ],
            1u32..3
        )
            .prop_map(|(direction, min_frames)| RuleKind::LineCrossing {
                direction,
                min_frames
            }),
        (0u64..600).prop_map(|ms| RuleKind::CameraOffline {
            min_duration: Duration::from_millis(ms)
        }),
        (0u64..600).prop_map(|ms| RuleKind::DoorOpen {
            min_duration: Duration::from_millis(ms)
        }),
        (0u64..600).prop_map(|ms| RuleKind::DetectorFault {
            min_duration: Duration::from_millis(ms)
        }),
    ]
}

fn prule() -> impl Strategy<Value = (RuleKind, u64, ClearAfter, bool)> {
    (pkind(), 0u64..1500, pclear(), any::<bool>())
}

fn specs(rules: &[(RuleKind, u64, ClearAfter, bool)]) -> Vec<RuleSpec> {
    rules
        .iter()
        .enumerate()
        .map(|(i, (kind, cooldown, clear_after, centre))| {
            let zone = match kind {
                RuleKind::CameraOffline { .. } => None,
                RuleKind::LineCrossing { .. } => Some("gate"),
                _ => Some("dock"),
            };
            RuleSpec {
                cooldown: Duration::from_millis(*cooldown),
                clear_after: *clear_after,
                anchor: if *centre {
                    Anchor::Centre
                } else {
                    Anchor::Feet
                },
                ..rule(&format!("r{i}"), zone, kind.clone())
            }
        })
        .collect()
}

/// Tracks and PPE detections of a generated frame (duplicate ids dropped).
fn materialise(fr: &PFrame) -> (Vec<Track>, Vec<Detection>) {
    let mut tracks: Vec<Track> = Vec::new();
    let mut ppe = Vec::new();
    for t in &fr.tracks {
        if tracks.iter().any(|o| o.id == t.id) {
            continue;
        }
        tracks.push(track(t.id, t.x, t.y, "person", t.state));
        if let Some(worn) = t.head {
            ppe.push(head(
                if worn {
                    "With Helmet"
                } else {
                    "Without Helmet"
                },
                t.x,
                t.y,
            ));
        }
    }
    (tracks, ppe)
}

/// Runs generated frames, checking per-frame invariants, and returns every
/// decision with its time.
fn run_checked(
    engine: &mut RuleEngine,
    frames: &[PFrame],
    zone: &Polygon,
) -> Result<Vec<(Duration, Decision)>, TestCaseError> {
    let camera = cam();
    let mut now = Duration::ZERO;
    let mut all = Vec::new();
    let rules: Vec<RuleSpec> = engine.rules().cloned().collect();
    for fr in frames {
        now += Duration::from_millis(fr.dt_ms);
        let (tracks, ppe) = materialise(fr);
        let input = FrameInput {
            camera: &camera,
            now,
            local: monday(600),
            frame_w: W,
            frame_h: H,
            tracks: &tracks,
            ppe: &ppe,
            health: fr.health,
            door_open: fr.door_open,
            detector_down: fr.detector_down,
            tamper: TamperSet::EMPTY,
            interlocks: &InterlockStates::EMPTY,
        };
        for d in engine.evaluate(&input) {
            if let Decision::Raise(a) = &d {
                let spec = rules.iter().find(|r| r.id == a.rule).unwrap();
                check_qualifying(spec, a, &tracks, zone, fr)?;
            }
            all.push((now, d));
        }
    }
    Ok(all)
}

/// No alarm without a qualifying track in the zone.
fn check_qualifying(
    spec: &RuleSpec,
    a: &Alarm,
    tracks: &[Track],
    zone: &Polygon,
    fr: &PFrame,
) -> Result<(), TestCaseError> {
    let health = fr.health;
    let inside = |t: &Track| {
        t.state == TrackState::Tracked && zone.contains(spec.anchor.point(&t.bbox, W, H))
    };
    match &spec.kind {
        RuleKind::Intrusion { .. } | RuleKind::Dwell { .. } | RuleKind::MissingPpe(_) => {
            let id = a.track.ok_or_else(|| TestCaseError::fail("no track"))?;
            let t = tracks.iter().find(|t| t.id == id);
            prop_assert!(
                t.is_some_and(inside),
                "raise {a:?} without track {id} inside"
            );
        }
        RuleKind::Occupancy { max_persons, .. } => {
            let n = tracks.iter().filter(|t| inside(t)).count();
            prop_assert!(n > *max_persons as usize, "occupancy raise with {n} inside");
        }
        RuleKind::CameraOffline { .. } => prop_assert_eq!(health, CameraHealth::Offline),
        RuleKind::CameraTamper { .. } => prop_assert!(false, "no tamper reason in these frames"),
        RuleKind::DoorOpen { .. } => prop_assert!(fr.door_open, "door alarm with the door shut"),
        RuleKind::DetectorFault { .. } => {
            prop_assert!(
                fr.detector_down,
                "detector-fault alarm with the detector up"
            )
        }
        RuleKind::LineCrossing { .. } => {
            let id = a.track.ok_or_else(|| TestCaseError::fail("no track"))?;
            let t = tracks.iter().find(|t| t.id == id);
            prop_assert!(
                t.is_some_and(|t| t.state == TrackState::Tracked),
                "crossing {a:?} by a track not seen"
            );
        }
    }
    Ok(())
}

fn star_polygon(radii: &[f32], rot: usize) -> Option<(Polygon, Polygon)> {
    let n = radii.len();
    let pts: Vec<[f32; 2]> = radii
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let t = i as f32 / n as f32 * std::f32::consts::TAU;
            [0.5 + r * t.cos(), 0.5 + r * t.sin()]
        })
        .collect();
    let mut rotated = pts.clone();
    rotated.rotate_left(rot % n);
    Some((Polygon::new(&pts).ok()?, Polygon::new(&rotated).ok()?))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No alarm without a qualifying track in the zone; cooldown always
    /// holds; raises and clears alternate; and every alarm clears once the
    /// condition has ended for `clear_after`.
    #[test]
    fn engine_invariants(
        rules in prop::collection::vec(prule(), 1..5),
        frames in prop::collection::vec(pframe(), 1..50),
    ) {
        let specs = specs(&rules);
        let zone = dock();
        let ZoneShape::Area(poly) = zone.shape.clone() else { unreachable!() };
        let mut engine = RuleEngine::new(specs.clone(), vec![zone, gate()]).unwrap();
        let mut all = run_checked(&mut engine, &frames, &poly)?;

        // The condition ends: empty frames, 100 ms apart, healthy camera.
        let mut now = all.last().map_or(Duration::ZERO, |(t, _)| *t);
        now += frames.iter().map(|f| Duration::from_millis(f.dt_ms)).sum::<Duration>();
        let camera = cam();
        for k in 1..=20u32 {
            now += STEP;
            let input = FrameInput {
                camera: &camera, now, local: monday(600), frame_w: W, frame_h: H,
                tracks: &[], ppe: &[], health: CameraHealth::Ok, door_open: false, detector_down: false,
                tamper: TamperSet::EMPTY,
                interlocks: &InterlockStates::EMPTY,
            };
            for d in engine.evaluate(&input) {
                prop_assert!(!d.is_raise(), "raise without any track: {d:?}");
                // Cleared no later than clear_after allows.
                let spec = specs.iter().find(|s| s.id == d.alarm().rule).unwrap();
                let bound = match spec.clear_after {
                    ClearAfter::Frames(n) => n,
                    ClearAfter::Time(t) => u32::try_from(t.as_millis().div_ceil(100)).unwrap() + 1,
                };
                prop_assert!(k <= bound, "cleared after {k} frames, bound {bound}");
                all.push((now, d));
            }
        }
        prop_assert_eq!(engine.active_alarms().count(), 0);

        for spec in &specs {
            let mine: Vec<&(Duration, Decision)> = all.iter().filter(|(_, d)| d.alarm().rule == spec.id).collect();
            // Raises and clears alternate, starting with a raise.
            for (i, (_, d)) in mine.iter().enumerate() {
                prop_assert_eq!(d.is_raise(), i % 2 == 0, "{:?}", mine);
            }
            // Cooldown: consecutive raises are at least `cooldown` apart.
            let raises: Vec<Duration> = mine.iter().filter(|(_, d)| d.is_raise()).map(|(t, _)| *t).collect();
            for w in raises.windows(2) {
                prop_assert!(w[1] - w[0] >= spec.cooldown, "raises at {:?} with cooldown {:?}", w, spec.cooldown);
            }
        }
    }

    /// A zone test does not depend on which vertex the outline starts at.
    #[test]
    fn zone_invariant_under_vertex_rotation(
        radii in prop::collection::vec(0.05f32..0.45, 3..12),
        rot in 0usize..12,
        frames in prop::collection::vec(pframe(), 1..30),
        rule in prule(),
    ) {
        let Some((a, b)) = star_polygon(&radii, rot) else { return Ok(()) };
        let zone = |p: Polygon| ZoneSpec { id: zid("dock"), camera: cam(), shape: ZoneShape::Area(p) };
        let specs = specs(&[rule]);
        let mut ea = RuleEngine::new(specs.clone(), vec![zone(a.clone()), gate()]).unwrap();
        let mut eb = RuleEngine::new(specs, vec![zone(b), gate()]).unwrap();
        let da = run_checked(&mut ea, &frames, &a)?;
        let db = run_checked(&mut eb, &frames, &a)?;
        prop_assert_eq!(da, db);
        prop_assert_eq!(ea.zone_states(&cam()), eb.zone_states(&cam()));
    }

    /// Line crossing is symmetric: reversing the line swaps A->B and B->A,
    /// and so does walking the path backwards.
    #[test]
    fn line_crossing_direction_is_symmetric(
        a in (0.0f32..=1.0, 0.0f32..=1.0),
        b in (0.0f32..=1.0, 0.0f32..=1.0),
        path in prop::collection::vec((0.0f32..=1.0, 0.0f32..=1.0), 2..8),
        min_frames in 1u32..3,
    ) {
        let (a, b) = ([a.0, a.1], [b.0, b.1]);
        prop_assume!(Line::new(a, b).is_ok());
        let raises = |from: [f32; 2], to: [f32; 2], direction, path: &[(f32, f32)]| {
            let spec = rule("count", Some("gate"), RuleKind::LineCrossing { direction, min_frames });
            let mut engine = RuleEngine::new(vec![spec], vec![line("gate", from, to)]).unwrap();
            let frames: Vec<Frame> = path.iter().map(|&(x, y)| f(vec![person(1, x, y)])).collect();
            timeline(&run(&mut engine, &frames))
        };
        let reversed: Vec<(f32, f32)> = path.iter().rev().copied().collect();
        let ab = raises(a, b, LineDirection::AToB, &path);
        prop_assert_eq!(&ab, &raises(b, a, LineDirection::BToA, &path));
        prop_assert_eq!(raises(a, b, LineDirection::BToA, &path), raises(b, a, LineDirection::AToB, &path));
        if path.len() == 2 || min_frames == 1 {
            // Without hysteresis (or with too few frames to confirm anything),
            // walking the path backwards crosses the other way.
            let back = raises(a, b, LineDirection::BToA, &reversed);
            prop_assert_eq!(ab.is_empty(), back.is_empty());
        }
        // Either direction raises when one of the two does.
        let either = raises(a, b, LineDirection::Either, &path);
        let ba = raises(a, b, LineDirection::BToA, &path);
        prop_assert_eq!(either.is_empty(), ab.is_empty() && ba.is_empty());
    }
}

//! Per-frame cost of tracking plus rule evaluation for 20 zones and 50
//! people (the sizing target: under 1 ms per frame).
//!
//! Run with `cargo bench -p safe-yolo-rules --bench frame`. Reports medians
//! (and tails) of the tracker, the engine and both together, and, as a
//! reference measured in the same run, a bare loop of the 1000 point-in-
//! polygon tests the frame implies.
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(clippy::panic, reason = "a benchmark stops on a broken setup")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use safe_yolo_domain::{BBox, CameraId, Detection, Line, NormPoint, Polygon, RuleId, ZoneId};
use safe_yolo_rules::{
    Anchor, CameraHealth, FrameInput, InterlockStates, LineDirection, LocalTime, PpeSpec,
    RuleEngine, RuleKind, RuleSpec, TamperSet, Tracker, TrackerConfig, Weekday, ZoneShape,
    ZoneSpec,
};

const W: f32 = 1920.0;
const H: f32 = 1080.0;
const PEOPLE: usize = 50;
const FRAMES: usize = 3000;
const WARMUP: usize = 200;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

fn id<T>(f: impl Fn(String) -> Result<T, safe_yolo_domain::IdError>, s: String) -> T {
    match f(s) {
        Ok(v) => v,
        Err(e) => panic!("bad id: {e}"),
    }
}

fn setup(camera: &CameraId) -> (Vec<RuleSpec>, Vec<ZoneSpec>) {
    let mut zones = Vec::new();
    let mut rules = Vec::new();
    // 16 hexagonal areas on a 4 x 4 grid, and 4 counting lines.
    for i in 0..16 {
        let (cx, cy) = (0.125 + 0.25 * (i % 4) as f32, 0.125 + 0.25 * (i / 4) as f32);
        let pts: Vec<[f32; 2]> = (0..6)
            .map(|k| {
                let t = k as f32 / 6.0 * std::f32::consts::TAU;
                [cx + 0.12 * t.cos(), cy + 0.12 * t.sin()]
            })
            .collect();
        let zone = id(ZoneId::new, format!("area-{i}"));
        let shape = match Polygon::new(&pts) {
            Ok(p) => ZoneShape::Area(p),
            Err(e) => panic!("zone {i}: {e}"),
        };
        zones.push(ZoneSpec {
            id: zone.clone(),
            camera: camera.clone(),
            shape,
        });
        let rule = |name: &str, kind| {
            RuleSpec::new(
                id(RuleId::new, format!("{name}-{i}")),
                camera.clone(),
                Some(zone.clone()),
                kind,
            )
        };
        rules.push(rule("intrusion", RuleKind::Intrusion { min_frames: 3 }));
        rules.push(match i % 3 {
            0 => rule(
                "dwell",
                RuleKind::Dwell {
                    min_duration: Duration::from_secs(5),
                },
            ),
            1 => rule(
                "occupancy",
                RuleKind::Occupancy {
                    max_persons: 3,
                    min_frames: 2,
                },
            ),
            _ => RuleSpec {
                anchor: Anchor::Centre,
                ..rule(
                    "ppe",
                    RuleKind::MissingPpe(PpeSpec {
                        present_classes: vec![Arc::from("With Helmet")],
                        absent_classes: vec![Arc::from("Without Helmet")],
                        window_frames: 10,
                        min_frames: 5,
                        grace: Duration::from_secs(2),
                        head_fraction: 0.3,
                        min_score: 0.3,
                    }),
                )
            },
        });
    }
    for i in 0..4 {
        let x = 0.2 + 0.2 * i as f32;
        let zone = id(ZoneId::new, format!("line-{i}"));
        let line = match Line::new([x, 0.05], [x, 0.95]) {
            Ok(l) => l,
            Err(e) => panic!("line {i}: {e}"),
        };
        zones.push(ZoneSpec {
            id: zone.clone(),
            camera: camera.clone(),
            shape: ZoneShape::Line(line),
        });
        rules.push(RuleSpec::new(
            id(RuleId::new, format!("crossing-{i}")),
            camera.clone(),
            Some(zone),
            RuleKind::LineCrossing {
                direction: LineDirection::Either,
                min_frames: 2,
            },
        ));
    }
    rules.push(RuleSpec::new(
        id(RuleId::new, "offline".to_string()),
        camera.clone(),
        None,
        RuleKind::CameraOffline {
            min_duration: Duration::from_secs(2),
        },
    ));
    (rules, zones)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn pct(v: &[Duration], p: f64) -> Duration {
    // `v` is sorted by `median`.
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

fn main() {
    let camera = id(CameraId::new, "bench-cam".to_string());
    let (rules, zones) = setup(&camera);
    let n_rules = rules.len();
    let polys: Vec<Polygon> = zones
        .iter()
        .filter_map(|z| match &z.shape {
            ZoneShape::Area(p) => Some(p.clone()),
            ZoneShape::Line(_) => None,
        })
        .collect();
    let mut engine = match RuleEngine::new(rules, zones) {
        Ok(e) => e,
        Err(e) => panic!("rules: {e}"),
    };
    let mut tracker = match Tracker::new(TrackerConfig::default()) {
        Ok(t) => t,
        Err(e) => panic!("tracker: {e}"),
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let person: Arc<str> = Arc::from("person");
    let heads = [
        Arc::<str>::from("With Helmet"),
        Arc::<str>::from("Without Helmet"),
    ];
    // People walk with constant velocity and bounce off the frame's edges.
    let mut people: Vec<[f32; 4]> = (0..PEOPLE)
        .map(|_| {
            [
                rng.range(50.0, W - 50.0),
                rng.range(200.0, H),
                rng.range(-6.0, 6.0),
                rng.range(-4.0, 4.0),
            ]
        })
        .collect();
    let (mut t_track, mut t_rules, mut t_both, mut t_ref) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut decisions = 0usize;
    let mut tracked = 0usize;
    let mut dets = Vec::with_capacity(PEOPLE);
    let mut ppe = Vec::with_capacity(PEOPLE);
    for frame in 0..FRAMES + WARMUP {
        dets.clear();
        ppe.clear();
        for (k, p) in people.iter_mut().enumerate() {
            p[0] += p[2];
            p[1] += p[3];
            if p[0] < 30.0 || p[0] > W - 30.0 {
                p[2] = -p[2];
            }
            if p[1] < 180.0 || p[1] > H {
                p[3] = -p[3];
            }
            let jitter = rng.range(-2.0, 2.0);
            let bbox = BBox {
                x1: p[0] - 30.0 + jitter,
                y1: p[1] - 170.0,
                x2: p[0] + 30.0 + jitter,
                y2: p[1],
            };
            // One person in ten is missed in a frame; scores vary.
            if rng.next() > 0.1 {
                dets.push(Detection {
                    class_id: 0,
                    class_name: Arc::clone(&person),
                    score: rng.range(0.3, 0.95),
                    bbox,
                });
            }
            ppe.push(Detection {
                class_id: 1,
                class_name: Arc::clone(&heads[k % 2]),
                score: 0.7,
                bbox: BBox {
                    x1: p[0] - 12.0,
                    y1: p[1] - 170.0,
                    x2: p[0] + 12.0,
                    y2: p[1] - 140.0,
                },
            });
        }
        let now = Duration::from_millis(frame as u64 * 100);
        let start = Instant::now();
        let tracks = tracker.update(&dets, W, H, now);
        let mid = Instant::now();
        let input = FrameInput {
            camera: &camera,
            now,
            local: LocalTime {
                weekday: Weekday::Wed,
                minute_of_day: 600,
            },
            frame_w: W,
            frame_h: H,
            tracks: &tracks,
            ppe: &ppe,
            health: CameraHealth::Ok,
            door_open: false,
            detector_down: false,
            tamper: TamperSet::EMPTY,
            interlocks: &InterlockStates::EMPTY,
        };
        let out = engine.evaluate(&input);
        let end = Instant::now();
        // Reference: the bare zone tests of this frame.
        let r0 = Instant::now();
        let mut inside = 0usize;
        for t in &tracks {
            let p = t.bbox.feet(W, H);
            for poly in &polys {
                inside += usize::from(poly.contains(black_box(p)));
            }
            inside += usize::from(black_box(NormPoint::new(p.x, p.y)).is_some());
        }
        black_box(inside);
        let r1 = Instant::now();
        if frame >= WARMUP {
            t_track.push(mid - start);
            t_rules.push(end - mid);
            t_both.push(end - start);
            t_ref.push(r1 - r0);
            decisions += out.len();
            tracked += tracks.len();
        }
    }
    let (mt, mr, mb, mref) = (
        median(&mut t_track),
        median(&mut t_rules),
        median(&mut t_both),
        median(&mut t_ref),
    );
    println!(
        "rule engine + tracker, {PEOPLE} people, 16 areas + 4 lines (20 zones), {n_rules} rules, {FRAMES} frames"
    );
    println!(
        "  tracks per frame (mean): {:.1}; decisions: {decisions}",
        tracked as f64 / FRAMES as f64
    );
    println!(
        "  tracker  median {:>8.1} us  p99 {:>8.1} us",
        us(mt),
        us(pct(&t_track, 0.99))
    );
    println!(
        "  engine   median {:>8.1} us  p99 {:>8.1} us",
        us(mr),
        us(pct(&t_rules, 0.99))
    );
    println!(
        "  total    median {:>8.1} us  p90 {:>8.1} us  p99 {:>8.1} us  max {:>8.1} us",
        us(mb),
        us(pct(&t_both, 0.90)),
        us(pct(&t_both, 0.99)),
        us(pct(&t_both, 1.0))
    );
    println!(
        "  reference (bare 20x50 zone tests) median {:>8.1} us; total / reference = {:.1}x",
        us(mref),
        us(mb) / us(mref).max(0.001)
    );
    println!(
        "  budget 1000 us per frame: median uses {:.1}%",
        us(mb) / 10.0
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

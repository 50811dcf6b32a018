//! What the process boundary adds to one detection, measured against the
//! same detector called in this process, in the same run (no absolute target
//! is asserted).
//!
//! The detector is a stand-in that does no inference and returns a fixed set
//! of boxes, so what is timed is only the boundary: the frame copied into the
//! shared slot, the request, the child's copy out of the slot, the answer
//! (JSON over `SOCK_SEQPACKET`) and its decoding. The child is this benchmark
//! re-executed with the argument `null-worker`, serving through the same
//! `process::serve` the daemon's detector role uses (without its sandbox: the
//! seccomp filter adds tens of nanoseconds per system call, a few calls per frame).
//!
//! Run: `cargo bench -p safe-yolo-detect --bench process_boundary`.
//! Environment: `SAFEYOLO_BENCH_ITERS` (default 400 per frame size).
#![allow(clippy::print_stdout, reason = "a benchmark's report is its output")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark aborts when its set-up fails"
)]

use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use safe_yolo_detect::process::{ChildSpec, ProcessDetector, serve};
use safe_yolo_detect::{BackendKind, DetectError, Detector, ModelInfo, Precision};
use safe_yolo_domain::{BBox, Detection, RgbFrame};

/// Boxes per answer: a busy scene.
const BOXES: usize = 8;

/// No inference: a fixed answer.
struct Null {
    info: ModelInfo,
    found: Vec<Detection>,
}

impl Null {
    fn new() -> Self {
        let person: Arc<str> = Arc::from("person");
        Self {
            info: ModelInfo {
                name: "null".into(),
                weights: "null.onnx".into(),
                precision: Precision::Fp32,
                backend: BackendKind::Tract,
                input_width: 416,
                input_height: 416,
                resize: safe_yolo_detect::manifest::ResizeMode::Stretch,
                classes: Arc::from(vec![Arc::clone(&person)]),
                licence: "none".into(),
            },
            found: (0..BOXES)
                .map(|i| {
                    #[allow(clippy::cast_precision_loss, reason = "a small index")]
                    let x = 40.0 * i as f32;
                    Detection {
                        class_id: 0,
                        class_name: Arc::clone(&person),
                        score: 0.87,
                        bbox: BBox {
                            x1: x,
                            y1: 100.0,
                            x2: x + 35.0,
                            y2: 220.0,
                        },
                    }
                })
                .collect(),
        }
    }
}

impl Detector for Null {
    fn detect(&mut self, frame: &RgbFrame) -> Result<Vec<Detection>, DetectError> {
        // Touch the frame as a model's pre-processing would.
        std::hint::black_box(
            frame
                .data()
                .iter()
                .step_by(4096)
                .map(|b| u64::from(*b))
                .sum::<u64>(),
        );
        Ok(self.found.clone())
    }

    fn info(&self) -> &ModelInfo {
        &self.info
    }
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

/// Per-call times of `detector` on `frame`, after a warm-up.
fn time(detector: &mut dyn Detector, frame: &RgbFrame, iters: usize) -> Vec<Duration> {
    for _ in 0..20 {
        detector.detect(frame).expect("warm-up");
    }
    (0..iters)
        .map(|_| {
            let t0 = Instant::now();
            let found = detector.detect(frame).expect("detect");
            let t = t0.elapsed();
            assert_eq!(found.len(), BOXES);
            t
        })
        .collect()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("null-worker") {
        let control = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .expect("stdin");
        serve(control, None, None, || {
            Ok(Box::new(Null::new()) as Box<dyn Detector>)
        })
        .expect("serve");
        return;
    }
    let iters = std::env::var("SAFEYOLO_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let spec = ChildSpec {
        model: "null".into(),
        program: std::env::current_exe().expect("own executable"),
        args: vec!["null-worker".into()],
        max_wait: Duration::from_secs(5),
        load_timeout: Duration::from_secs(10),
        scratch_root: std::env::temp_dir(),
        events: Arc::new(|e| println!("child event: {e:?}")),
    };
    let mut child = ProcessDetector::start(spec).expect("child starts");
    let mut local = Null::new();
    println!(
        "process boundary: {BOXES} boxes per answer, {iters} calls per size, medians and p99 in µs"
    );
    println!(
        "{:>10} {:>12} {:>12} {:>12} {:>12} {:>14}",
        "frame", "in-process", "child p50", "child p99", "added p50", "added p50/MB"
    );
    for (w, h) in [(416u32, 416u32), (768, 576), (1280, 720), (1920, 1080)] {
        let frame = RgbFrame::new(w, h, vec![90u8; (w * h * 3) as usize]).expect("frame");
        // Interleaved rounds: both paths see the same machine state.
        let (mut inproc, mut boundary) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            inproc.extend(time(&mut local, &frame, iters / 4));
            boundary.extend(time(&mut child, &frame, iters / 4));
        }
        let base = percentile(&mut inproc, 50.0);
        let p50 = percentile(&mut boundary, 50.0);
        let p99 = percentile(&mut boundary, 99.0);
        #[allow(clippy::cast_precision_loss, reason = "a frame size")]
        let mb = f64::from(w * h * 3) / 1e6;
        println!(
            "{:>10} {base:>12.1} {p50:>12.1} {p99:>12.1} {:>12.1} {:>14.1}",
            format!("{w}x{h}"),
            p50 - base,
            (p50 - base) / mb
        );
    }
}

//! Five replay cameras through the real pipeline and the real detector
//! (tract, NanoDet-m): detections arrive for every camera, queues stay
//! within their bounds, memory stays bounded, and a camera whose footage
//! disappears goes offline while the others keep running.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "test code"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use safe_yolo_capture::{Pacing, SourcePolicy, SourceRequest};
use safe_yolo_domain::CameraId;
use safe_yolo_pipeline::{CameraSpec, CameraState, DetectorFactory, Pipeline, PipelineConfig};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio_util::sync::CancellationToken;

fn repo() -> PathBuf {
    safe_yolo_fixtures::manifest_dir!().join("../..")
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const CAMERAS: usize = 5;
const DEPTH: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_cameras_real_detector_bounded_and_isolated() {
    let media = tempfile::tempdir().unwrap();
    for c in 0..CAMERAS {
        let dir = media.path().join(format!("cam{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..12 {
            let src = if (i + c) % 2 == 0 {
                "bus.jpg"
            } else {
                "zidane.jpg"
            };
            std::fs::copy(
                safe_yolo_fixtures::media(src),
                dir.join(format!("{i:04}.jpg")),
            )
            .unwrap();
        }
    }
    let cameras: Vec<CameraSpec> = (0..CAMERAS)
        .map(|c| CameraSpec {
            id: CameraId::new(format!("cam-{c}")).unwrap(),
            source: SourceRequest::Replay {
                path: PathBuf::from(format!("cam{c}")),
                looping: true,
                pacing: Pacing::RealTime,
                fps: 10.0,
                start_frame: 0,
            },
            detect_every: 2,
            queue_depth: DEPTH,
            offline_after: Duration::from_secs(2),
            tamper: safe_yolo_pipeline::TamperConfig::default(),
        })
        .collect();
    let manifest = repo().join("models/nanodet-m-416-coco/model.toml");
    let factory: DetectorFactory = Arc::new(move || {
        safe_yolo_detect::load(
            &manifest,
            &safe_yolo_detect::LoadOptions {
                backend: safe_yolo_detect::BackendChoice::Tract,
                threads: 1,
                classes: Some(vec!["person".into()]),
                ..Default::default()
            },
        )
    });
    let liveness = Liveness::new();
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let config = PipelineConfig {
        cameras,
        sources: {
            let policy = SourcePolicy::new(media.path());
            Arc::new(move |request: &safe_yolo_capture::SourceRequest| {
                safe_yolo_capture::open(request, &policy)
            })
        },
        detect_workers: 1,
        analysis_queue: 8,
        detect_nice: 0,
    };
    let (pipeline, mut rx) =
        Pipeline::start(config, factory, &liveness, &metrics, shutdown.clone()).unwrap();

    let check_bounds = |m: &Metrics| {
        for c in 0..CAMERAS {
            let cam = format!("cam-{c}");
            for q in ["raw_queue", "detect_queue"] {
                let d = m.queue_depth.get_or_create(&Metrics::stage(&cam, q)).get();
                assert!(d <= DEPTH as i64, "{cam} {q} depth {d} > {DEPTH}");
            }
        }
    };

    // Phase 1: every camera delivers frames with people found in them.
    let mut with_people: HashMap<String, u32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rss_warm = None;
    let mut frames_seen = 0u32;
    while with_people.len() < CAMERAS || with_people.values().any(|n| *n < 2) {
        assert!(
            Instant::now() < deadline,
            "not every camera got detections: {with_people:?}"
        );
        let f = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        check_bounds(&metrics);
        frames_seen += 1;
        if frames_seen == 10 {
            rss_warm = Some(rss_kib());
        }
        if f.detections
            .iter()
            .any(|d| &*d.class_name == "person" && d.score > 0.5)
        {
            *with_people.entry(f.meta.camera.to_string()).or_default() += 1;
        }
    }

    // Phase 2: remove cam-4's footage; it must go offline within ~2 s
    // (plus one poll), while the others keep producing detections.
    let t_kill = Instant::now();
    std::fs::rename(media.path().join("cam4"), media.path().join("gone")).unwrap();
    let tap = pipeline
        .taps()
        .get(&CameraId::new("cam-4").unwrap())
        .unwrap();
    let mut health = tap.health.clone();
    // (`is_ok()` drops the watch guard at once: a held guard would block
    // the capture thread's next health update.)
    let offline = tokio::time::timeout(
        Duration::from_secs(4),
        health.wait_for(|h| h.state == CameraState::Offline),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    assert!(offline, "cam-4 not offline 4 s after its footage vanished");
    let took = t_kill.elapsed();
    let reason = tap.health.borrow().reason.clone().unwrap_or_default();
    eprintln!("cam-4 offline after {took:?}: {reason}");

    let mut after: HashMap<String, u32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..4).any(|c| after.get(&format!("cam-{c}")).copied().unwrap_or(0) < 2) {
        assert!(
            Instant::now() < deadline,
            "other cameras stalled after cam-4 died: {after:?}"
        );
        let f = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        check_bounds(&metrics);
        *after.entry(f.meta.camera.to_string()).or_default() += 1;
    }
    for c in 0..4 {
        let h = pipeline.taps().current()[c].health.borrow().state;
        assert_eq!(h, CameraState::Online, "cam-{c}");
    }

    // Memory: steady state after warm-up, not growing with frames.
    let rss_end = rss_kib();
    let warm = rss_warm.unwrap();
    eprintln!("RSS warm {warm} KiB, end {rss_end} KiB, {frames_seen} frames before the kill");
    assert!(
        rss_end < warm + 64 * 1024,
        "RSS grew from {warm} to {rss_end} KiB"
    );
    let dropped: u64 = (0..CAMERAS)
        .map(|c| {
            metrics
                .frames_dropped
                .get_or_create(&Metrics::stage(&format!("cam-{c}"), "detect_queue"))
                .get()
        })
        .sum();
    eprintln!("frames dropped at the detect queues (drop-oldest): {dropped}");
    assert!(
        liveness
            .check(Instant::now(), Duration::from_secs(5))
            .is_ok(),
        "a stage stalled"
    );

    let left = pipeline.stop(Duration::from_secs(5)).await;
    assert!(left.is_empty(), "threads did not stop: {left:?}");
}

// === Camera tamper on real footage ===

/// Where the demo footage is (`SAFEYOLO_DEMO_MEDIA` or `<repo>/demo-media`, made
/// by `scripts/demo-media.sh`).
fn demo_media() -> PathBuf {
    std::env::var_os("SAFEYOLO_DEMO_MEDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("demo-media"))
}

/// The demo footage's frames (10 fps, 768x576), decoded at the DCT scale that
/// still gives the tamper check's 160x90 (192x144): the check sees what a
/// detect worker decoded, at the small scale to keep the test fast.
fn demo_frames(min: (u32, u32)) -> Vec<safe_yolo_domain::RgbFrame> {
    let dir = demo_media().join("vtest-frames");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/demo-media.sh demo-media",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 795, "the demo footage's frames");
    names
        .iter()
        .map(|p| {
            let jpeg: Arc<[u8]> = Arc::from(std::fs::read(p).unwrap());
            safe_yolo_capture::Picture::new(safe_yolo_capture::Payload::Jpeg(jpeg))
                .unwrap()
                .decode_at_least(min.0, min.1)
                .unwrap()
        })
        .collect()
}

/// A manipulation of a camera's picture.
#[derive(Debug, Clone, Copy)]
enum Manipulation {
    /// The same frame again and again.
    Frozen,
    /// Lens covered: black.
    BlackedOut,
    /// Blinded: white.
    WhitedOut,
    /// A box blur of this radius (pixels of the small frame).
    Blurred(usize),
    /// Turned: translated by this fraction of the width.
    Shifted(f32),
}

fn manipulate(
    m: Manipulation,
    f: &safe_yolo_domain::RgbFrame,
    first: &safe_yolo_domain::RgbFrame,
) -> safe_yolo_domain::RgbFrame {
    use safe_yolo_domain::RgbFrame;
    let (w, h) = (f.width() as usize, f.height() as usize);
    let d = f.data();
    let px = |x: usize, y: usize, c: usize| d[(y * w + x) * 3 + c];
    let out: Vec<u8> = match m {
        Manipulation::Frozen => return first.clone(),
        Manipulation::BlackedOut => vec![0; w * h * 3],
        Manipulation::WhitedOut => vec![255; w * h * 3],
        Manipulation::Blurred(r) => {
            let mut o = vec![0u8; w * h * 3];
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        let (mut s, mut n) = (0u32, 0u32);
                        for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                            for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                                s += u32::from(px(xx, yy, c));
                                n += 1;
                            }
                        }
                        o[(y * w + x) * 3 + c] = (s / n) as u8;
                    }
                }
            }
            o
        }
        Manipulation::Shifted(fraction) => {
            let dx = (w as f32 * fraction) as usize;
            let mut o = vec![0u8; w * h * 3];
            for y in 0..h {
                for x in 0..w {
                    let sx = x.saturating_sub(dx);
                    for c in 0..3 {
                        o[(y * w + x) * 3 + c] = px(sx, y, c);
                    }
                }
            }
            o
        }
    };
    RgbFrame::new(f.width(), f.height(), out).unwrap()
}

const DEMO_FPS: u64 = 10;

/// Feeds `frames` (looped) to a tamper check as a camera at 10 fps would,
/// from frame `from` for `n` frames, with the manipulation `m` from frame
/// `start` on (`None`: none); returns the reasons after each frame and the
/// measures.
struct Feed {
    check: safe_yolo_rules::TamperCheck,
    i: u64,
}

impl Feed {
    fn new(config: safe_yolo_rules::TamperConfig) -> Self {
        Self {
            check: safe_yolo_rules::TamperCheck::new(config),
            i: 0,
        }
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.i * 1000 / DEMO_FPS)
    }

    fn step(
        &mut self,
        f: &safe_yolo_domain::RgbFrame,
    ) -> (safe_yolo_rules::TamperSet, safe_yolo_rules::TamperMeasures) {
        let now = self.now();
        let captured = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + now;
        self.i += 1;
        self.check
            .step(safe_yolo_rules::Luma::from_rgb(f), captured, now)
    }
}

/// Ten minutes of normal demo footage (the 80 s recording looped, 6000 frames
/// at its 10 fps) through a camera's tamper check with the default thresholds:
/// no reason is ever reported. Prints how close each measure came to its
/// threshold.
#[test]
fn tamper_check_is_quiet_on_ten_minutes_of_demo_footage() {
    use safe_yolo_rules::{LUMA_H, LUMA_W, TamperConfig};
    let frames = demo_frames((LUMA_W as u32, LUMA_H as u32));
    let config = TamperConfig::default();
    let mut feed = Feed::new(config);
    let (mut min_change, mut min_std, mut min_ratio, mut min_corr) =
        (f32::MAX, f32::MAX, f32::MAX, f32::MAX);
    for k in 0..(10 * 60 * DEMO_FPS) as usize {
        let (reasons, m) = feed.step(&frames[k % frames.len()]);
        assert!(
            reasons.is_empty(),
            "frame {k} ({:?}): {reasons:?} {m:?}",
            feed.now()
        );
        min_change = min_change.min(m.change.unwrap_or(f32::MAX));
        min_std = min_std.min(m.std);
        min_ratio = min_ratio.min(m.sharpness_ratio.unwrap_or(f32::MAX));
        min_corr = min_corr.min(m.correlation.unwrap_or(f32::MAX));
    }
    eprintln!(
        "10 min of demo footage: least change {min_change:.3} (frozen at <= {}), least std {min_std:.1} \
         (uniform below {}), least sharpness ratio {min_ratio:.3} (defocused at <= {}), \
         least correlation {min_corr:.3} (moved below {})",
        config.frozen_max_change,
        config.uniform_max_std,
        config.defocus_max_ratio,
        config.moved_min_correlation
    );
}

/// Each manipulation of the real footage (frozen, blacked out, whited out,
/// blurred, shifted by 15% of the width) is reported with its reason once it
/// has lasted that reason's duration (within one frame), and clears within a
/// second of the normal footage coming back.
#[test]
fn tamper_check_reports_each_manipulation_of_real_footage_within_its_threshold() {
    use safe_yolo_rules::{LUMA_H, LUMA_W, TamperConfig, TamperReason};
    let frames = demo_frames((LUMA_W as u32, LUMA_H as u32));
    let config = TamperConfig::default();
    let frame_time = Duration::from_millis(1000 / DEMO_FPS);
    let cases = [
        (
            Manipulation::Frozen,
            TamperReason::Frozen,
            config.frozen_after,
        ),
        (
            Manipulation::BlackedOut,
            TamperReason::Covered,
            config.covered_after,
        ),
        (
            Manipulation::WhitedOut,
            TamperReason::Blinded,
            config.covered_after,
        ),
        (
            Manipulation::Blurred(2),
            TamperReason::Defocused,
            config.defocused_after,
        ),
        (
            Manipulation::Shifted(0.15),
            TamperReason::Moved,
            config.moved_after,
        ),
    ];
    for (m, want, after) in cases {
        let mut feed = Feed::new(config);
        // 30 s of normal footage: the check learns the camera.
        let mut k = 0usize;
        while feed.now() < Duration::from_secs(30) {
            let (r, meas) = feed.step(&frames[k % frames.len()]);
            assert!(r.is_empty(), "{m:?}: before: {r:?} {meas:?}");
            k += 1;
        }
        let first = frames[k % frames.len()].clone();
        let start = feed.now();
        let mut raised = None;
        let mut last = None;
        while feed.now() < start + after + Duration::from_secs(5) {
            let f = manipulate(m, &frames[k % frames.len()], &first);
            let at = feed.now();
            let (r, meas) = feed.step(&f);
            if r.contains(want) && raised.is_none() {
                raised = Some(at - start);
            }
            last = Some((r, meas));
            k += 1;
        }
        let raised =
            raised.unwrap_or_else(|| panic!("{m:?}: {want} never reported; last {last:?}"));
        assert!(
            raised >= after && raised <= after + frame_time,
            "{m:?}: {want} reported after {raised:?}, its threshold is {after:?}"
        );
        eprintln!("{m:?}: {want} after {raised:?} (threshold {after:?}); last measures {last:?}");
        // Back to normal: cleared within a second.
        let back = feed.now();
        let mut cleared = None;
        while feed.now() < back + Duration::from_secs(3) {
            let at = feed.now();
            let (r, _) = feed.step(&frames[k % frames.len()]);
            if r.is_empty() && cleared.is_none() {
                cleared = Some(at - back);
            }
            k += 1;
        }
        let cleared = cleared.unwrap_or_else(|| panic!("{m:?}: never cleared"));
        assert!(
            cleared <= Duration::from_secs(1),
            "{m:?}: cleared after {cleared:?}"
        );
    }
}

/// Through the real pipeline and detector: a camera replaying one photo over
/// and over (frames arrive, the picture never changes) is reported frozen on
/// its detected frames and in its health (`tampered`), while a camera of real
/// footage next to it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_camera_is_tampered_through_the_real_pipeline() {
    let media = tempfile::tempdir().unwrap();
    let frozen = media.path().join("frozen");
    std::fs::create_dir_all(&frozen).unwrap();
    for i in 0..4 {
        std::fs::copy(
            safe_yolo_fixtures::media("bus.jpg"),
            frozen.join(format!("{i:04}.jpg")),
        )
        .unwrap();
    }
    let live = media.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    for i in 1..=80 {
        std::fs::copy(
            demo_media().join(format!("vtest-frames/{i:04}.jpg")),
            live.join(format!("{i:04}.jpg")),
        )
        .unwrap();
    }
    let tamper = safe_yolo_pipeline::TamperConfig {
        frozen_after: Duration::from_secs(1),
        ..safe_yolo_pipeline::TamperConfig::default()
    };
    let spec = |id: &str, dir: &str| CameraSpec {
        id: CameraId::new(id).unwrap(),
        source: SourceRequest::Replay {
            path: PathBuf::from(dir),
            looping: true,
            pacing: Pacing::RealTime,
            fps: 10.0,
            start_frame: 0,
        },
        detect_every: 1,
        queue_depth: DEPTH,
        offline_after: Duration::from_secs(5),
        tamper,
    };
    let manifest = repo().join("models/nanodet-m-416-coco/model.toml");
    let factory: DetectorFactory = Arc::new(move || {
        safe_yolo_detect::load(
            &manifest,
            &safe_yolo_detect::LoadOptions {
                backend: safe_yolo_detect::BackendChoice::Tract,
                threads: 1,
                classes: Some(vec!["person".into()]),
                ..Default::default()
            },
        )
    });
    let liveness = Liveness::new();
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let config = PipelineConfig {
        cameras: vec![spec("frozen", "frozen"), spec("live", "live")],
        sources: {
            let policy = SourcePolicy::new(media.path());
            Arc::new(move |request: &safe_yolo_capture::SourceRequest| {
                safe_yolo_capture::open(request, &policy)
            })
        },
        detect_workers: 1,
        analysis_queue: 8,
        detect_nice: 0,
    };
    let (pipeline, mut rx) =
        Pipeline::start(config, factory, &liveness, &metrics, shutdown.clone()).unwrap();
    let frozen_reason = safe_yolo_rules::TamperReason::Frozen;
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut frozen_seen, mut live_frames) = (false, 0u32);
    while !frozen_seen || live_frames < 20 {
        assert!(
            Instant::now() < deadline,
            "frozen seen {frozen_seen}, live frames {live_frames}"
        );
        let f = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        match f.meta.camera.as_str() {
            "frozen" => frozen_seen |= f.tamper.contains(frozen_reason),
            _ => {
                assert!(f.tamper.is_empty(), "live footage reported {:?}", f.tamper);
                live_frames += 1;
            }
        }
    }
    let taps = pipeline.taps().current();
    let health = |id: &str| {
        let tap = taps.iter().find(|t| t.id.as_str() == id).unwrap();
        tap.health.borrow().clone()
    };
    let h = health("frozen");
    assert!(h.tamper.contains(frozen_reason), "{h:?}");
    assert_eq!(
        h.alarm_health(),
        safe_yolo_domain::alarm::CameraHealth::Tampered
    );
    assert_eq!(
        metrics
            .camera_tampered
            .get_or_create(&Metrics::camera("frozen"))
            .get(),
        1
    );
    assert_eq!(
        health("live").alarm_health(),
        safe_yolo_domain::alarm::CameraHealth::Ok
    );
    shutdown.cancel();
    let left = pipeline.stop(Duration::from_secs(5)).await;
    assert!(left.is_empty(), "threads did not stop: {left:?}");
}

/// The tamper check's cost per detected frame on the demo footage, at the size
/// the detect worker decodes for NanoDet-m 416 (768x576: no DCT scale reaches
/// 416x416) and at a quarter: the 160x90 reduction plus the step. Reports
/// medians; asserts nothing about time.
/// `cargo test -p safe-yolo-pipeline --test pipeline -- --ignored --nocapture bench_tamper`.
#[test]
#[ignore = "benchmark; needs demo-media"]
fn bench_tamper_check_per_frame() {
    for min in [(416, 416), (160, 90)] {
        let frames = demo_frames(min);
        let mut feed = Feed::new(safe_yolo_rules::TamperConfig::default());
        let mut reduce = Vec::new();
        let mut step = Vec::new();
        for f in frames.iter().chain(&frames) {
            let t = Instant::now();
            let luma = safe_yolo_rules::Luma::from_rgb(f);
            reduce.push(t.elapsed());
            let now = feed.now();
            feed.i += 1;
            let t = Instant::now();
            let _ = feed
                .check
                .step(luma, std::time::SystemTime::UNIX_EPOCH + now, now);
            step.push(t.elapsed());
        }
        reduce.sort();
        step.sort();
        eprintln!(
            "tamper check on {}x{}: reduce to 160x90 median {:?} (p99 {:?}), step median {:?} (p99 {:?})",
            frames[0].width(),
            frames[0].height(),
            reduce[reduce.len() / 2],
            reduce[reduce.len() * 99 / 100],
            step[step.len() / 2],
            step[step.len() * 99 / 100],
        );
    }
}

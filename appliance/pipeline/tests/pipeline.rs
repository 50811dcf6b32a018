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

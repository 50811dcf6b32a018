//! The shared pool of detector workers.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use safe_yolo_capture::Picture;
use safe_yolo_detect::Detector;
use safe_yolo_domain::{BBox, Detection, FrameMeta, RgbFrame, error_chain};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::queue::{Lanes, Pop};
use crate::{
    DetectedFrame, Detectors, PERSON_CLASS, POLL, PipelineError, PpeSwitch, StageTimes, nap,
};

/// The newest detections of one camera, shared with its decode stage.
pub(crate) type LatestDetections = Arc<Mutex<Arc<Vec<Detection>>>>;

/// The models of one worker.
pub(crate) struct Models {
    pub main: Box<dyn Detector>,
    pub ppe: Option<Box<dyn Detector>>,
}

/// A frame waiting for the detector, still as captured.
#[derive(Debug)]
pub(crate) struct DetectJob {
    pub meta: FrameMeta,
    pub picture: Picture,
    /// When the job was handed to the detect lanes.
    pub queued_at: Instant,
    /// Where the camera's decode stage reads the newest detections (live view).
    pub latest: LatestDetections,
    /// The camera's tamper check, stepped with the decoded frame.
    pub tamper: Arc<crate::tamper::TamperSlot>,
}

/// Everything one detect worker needs.
pub(crate) struct Worker {
    pub index: usize,
    pub factories: Detectors,
    pub nice: i32,
    /// Where the worker reports whether its models loaded.
    pub loaded: std::sync::mpsc::Sender<Result<(), PipelineError>>,
    pub lanes: Arc<Lanes<DetectJob>>,
    pub ppe: PpeSwitch,
    pub tx: mpsc::Sender<DetectedFrame>,
    pub shutdown: CancellationToken,
}

/// A camera's turn at a worker; ends (and lets its next frame go) on drop,
/// whichever way the worker's iteration ends.
struct Lease<'a> {
    lanes: &'a Lanes<DetectJob>,
    lane: usize,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.lanes.release(self.lane);
    }
}

/// Loads the worker's models on the calling thread.
fn load(factories: &Detectors, worker: usize) -> Result<Models, PipelineError> {
    let main = (factories.main)().map_err(|source| PipelineError::Detector {
        model: "main",
        worker,
        source: Box::new(source),
    })?;
    let ppe = match &factories.ppe {
        Some(f) => Some(f().map_err(|source| PipelineError::Detector {
            model: "ppe",
            worker,
            source: Box::new(source),
        })?),
        None => None,
    };
    Ok(Models { main, ppe })
}

/// Starts a worker thread: it lowers its priority, loads its models,
/// reports the outcome on `w.loaded`, then serves the lanes.
pub(crate) fn start_worker(
    w: Worker,
    liveness: &Liveness,
    metrics: &Metrics,
) -> Result<JoinHandle<()>, PipelineError> {
    let Worker {
        index: worker,
        factories,
        nice,
        loaded,
        lanes,
        ppe: ppe_switch,
        tx,
        shutdown,
    } = w;
    let hb = liveness.register(format!("detect/worker-{worker}"));
    let metrics = metrics.clone();
    let name = format!("detect-{worker}");
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if nice > 0
                && let Err(e) = crate::priority::set_thread_nice(nice)
            {
                tracing::warn!(worker, error = %error_chain(&e), "detect worker keeps the default priority");
            }
            let models = match load(&factories, worker) {
                Ok(m) => {
                    let _ = loaded.send(Ok(()));
                    m
                }
                Err(e) => {
                    let _ = loaded.send(Err(e));
                    hb.retire();
                    return;
                }
            };
            drop(loaded);
            hb.beat();
            let Models { main: mut detector, ppe: mut ppe_detector } = models;
            let stall_after = crate::injected_stall_after();
            let mut done: u64 = 0;
            while !shutdown.is_cancelled() {
                if stall_after.is_some_and(|n| done >= n) {
                    // Fault injection: keep the thread but stop beating, as a
                    // wedged accelerator would.
                    nap(POLL);
                    continue;
                }
                hb.beat();
                let (lane, job) = match lanes.pop(POLL) {
                    Pop::Item(lane, job) => (lane, job),
                    Pop::Empty => continue,
                    Pop::Closed => break,
                };
                // Released at the end of this iteration, after the frame was
                // handed to analysis: the camera's next frame goes to a worker
                // only then, so its frames reach the tracker in order.
                let _lease = Lease { lanes: &lanes, lane };
                let cam = job.meta.camera.as_str().to_owned();
                let t0 = Instant::now();
                let waited = t0.saturating_duration_since(job.queued_at);
                metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "detect_wait")).observe(waited.as_secs_f64());
                // Decoded here, once it is sure to be detected, at the
                // smallest size the models need.
                let (need_w, need_h) = need(&*detector, ppe_detector.as_deref(), &job.picture);
                let frame = match job.picture.decode_at_least(need_w, need_h) {
                    Ok(f) => f,
                    Err(e) => {
                        metrics.frames_dropped.get_or_create(&Metrics::stage(&cam, "decode_error")).inc();
                        tracing::warn!(camera = %cam, seq = job.meta.seq, error = %error_chain(&e), "cannot decode frame; skipped");
                        continue;
                    }
                };
                let decode = t0.elapsed();
                metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "decode")).observe(decode.as_secs_f64());
                // On the pixels just decoded: one pass over them and a 160x90 picture.
                let t0 = Instant::now();
                let tamper = job.tamper.step(&frame, job.meta.captured_at);
                metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "tamper")).observe(t0.elapsed().as_secs_f64());
                metrics.camera_tampered.get_or_create(&Metrics::camera(&cam)).set(i64::from(!tamper.is_empty()));
                let t0 = Instant::now();
                let result = detector.detect(&frame);
                let detect = t0.elapsed();
                hb.beat();
                let detections = match result {
                    Ok(d) => Arc::new(to_picture(d, &frame, &job.picture)),
                    Err(e) => {
                        metrics.frames_dropped.get_or_create(&Metrics::stage(&cam, "detect_error")).inc();
                        if e.is_unavailable() {
                            // The supervisor logged the fault once; the live
                            // view shows no stale boxes while the camera is blind.
                            *job.latest.lock() = Arc::new(Vec::new());
                            tracing::debug!(camera = %cam, seq = job.meta.seq, "no detector runs: frame not analysed");
                        } else {
                            tracing::warn!(camera = %cam, seq = job.meta.seq, error = %error_chain(&e), "detector failed on a frame");
                        }
                        continue;
                    }
                };
                // The PPE model runs only where a rule needs it and only
                // when there is somebody to wear the equipment.
                let mut ppe_time = Duration::ZERO;
                let ppe = match ppe_detector.as_mut() {
                    Some(p) if ppe_switch.is_on(&job.meta.camera) && detections.iter().any(|d| &*d.class_name == PERSON_CLASS) => {
                        let t1 = Instant::now();
                        let r = p.detect(&frame);
                        ppe_time = t1.elapsed();
                        hb.beat();
                        metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "ppe_inference")).observe(ppe_time.as_secs_f64());
                        match r {
                            Ok(d) => Arc::new(to_picture(d, &frame, &job.picture)),
                            Err(e) => {
                                // Without PPE evidence the consensus sees "unknown", never "worn".
                                metrics.frames_dropped.get_or_create(&Metrics::stage(&cam, "ppe_error")).inc();
                                tracing::warn!(camera = %cam, seq = job.meta.seq, error = %error_chain(&e), "PPE model failed on a frame");
                                Arc::new(Vec::new())
                            }
                        }
                    }
                    _ => Arc::new(Vec::new()),
                };
                done += 1;
                let detected_at = SystemTime::now();
                let capture_to_detected = detected_at.duration_since(job.meta.captured_at).unwrap_or_default();
                tracing::trace!(
                    camera = %cam,
                    seq = job.meta.seq,
                    worker,
                    waited_ms = waited.as_secs_f64() * 1e3,
                    inference_ms = detect.as_secs_f64() * 1e3,
                    capture_to_detected_ms = capture_to_detected.as_secs_f64() * 1e3,
                    "frame detected"
                );
                metrics.frames_detected.get_or_create(&Metrics::camera(&cam)).inc();
                metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "inference")).observe(detect.as_secs_f64());
                metrics
                    .stage_latency
                    .get_or_create(&Metrics::stage(&cam, "capture_to_detected"))
                    .observe(capture_to_detected.as_secs_f64());
                // The live view shows both models' boxes.
                *job.latest.lock() = if ppe.is_empty() {
                    Arc::clone(&detections)
                } else {
                    Arc::new(detections.iter().chain(ppe.iter()).cloned().collect())
                };
                let frame = DetectedFrame {
                    meta: job.meta,
                    picture: job.picture,
                    frame,
                    detections,
                    ppe,
                    times: StageTimes { decode, detect, ppe: ppe_time, capture_to_detected },
                    detected_at,
                    tamper,
                };
                if tx.try_send(frame).is_err() {
                    metrics.frames_dropped.get_or_create(&Metrics::stage(&cam, "analysis_queue")).inc();
                }
            }
            lanes.close();
            tracing::debug!(worker, "detect worker stopped");
        })
        .map_err(|source| PipelineError::Spawn { name, source })
}

/// The smallest size `picture` can be decoded at for the models of a worker
/// (the PPE model's needs count only when it is loaded).
fn need(main: &dyn Detector, ppe: Option<&dyn Detector>, picture: &Picture) -> (u32, u32) {
    let (w, h) = (picture.width(), picture.height());
    let (mw, mh) = main.info().min_frame_size(w, h);
    match ppe {
        Some(p) => {
            let (pw, ph) = p.info().min_frame_size(w, h);
            (mw.max(pw), mh.max(ph))
        }
        None => (mw, mh),
    }
}

/// `detections` found in `frame` (the picture decoded at a reduced size) in the
/// picture's full-frame pixels.
fn to_picture(
    mut detections: Vec<Detection>,
    frame: &RgbFrame,
    picture: &Picture,
) -> Vec<Detection> {
    if (frame.width(), frame.height()) == (picture.width(), picture.height()) {
        return detections;
    }
    #[allow(clippy::cast_precision_loss, reason = "frame sides are at most 8192")]
    let (sx, sy) = (
        picture.width() as f32 / frame.width() as f32,
        picture.height() as f32 / frame.height() as f32,
    );
    #[allow(clippy::cast_precision_loss, reason = "frame sides are at most 8192")]
    let (pw, ph) = (picture.width() as f32, picture.height() as f32);
    for d in &mut detections {
        let b = d.bbox;
        d.bbox = BBox {
            x1: b.x1 * sx,
            y1: b.y1 * sy,
            x2: b.x2 * sx,
            y2: b.y2 * sy,
        }
        .clamp_to(pw, ph);
    }
    detections
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code on plain threads"
)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use safe_yolo_capture::Picture;
    use safe_yolo_capture::{
        CaptureError, CapturedFrame, FrameSource, Pacing, Payload, PixelFormat, SourceInfo,
        SourceKind, SourceRequest,
    };
    use safe_yolo_detect::{BackendKind, DetectError, Detector, ModelInfo, Precision};
    use safe_yolo_domain::{BBox, CameraId, Detection, RgbFrame};
    use safe_yolo_telemetry::{Liveness, Metrics};
    use tokio_util::sync::CancellationToken;

    use crate::{CameraSpec, DetectorFactory, Pipeline, PipelineConfig, SourceFactory};

    /// Slow on every other call, fast in between: with two workers and
    /// nothing keeping a camera's frames apart, a fast frame overtakes the
    /// slow one before it.
    struct Uneven {
        info: ModelInfo,
        calls: u64,
    }

    impl Detector for Uneven {
        fn detect(&mut self, _frame: &RgbFrame) -> Result<Vec<Detection>, DetectError> {
            self.calls += 1;
            let ms = if self.calls % 2 == 1 { 60 } else { 2 };
            std::thread::sleep(Duration::from_millis(ms));
            Ok(Vec::new())
        }
        fn info(&self) -> &ModelInfo {
            &self.info
        }
    }

    /// A synthetic camera: grey RGB frames at about 50 fps, no footage.
    struct Synthetic {
        seq: u64,
        opened: std::time::Instant,
    }

    impl FrameSource for Synthetic {
        fn next_frame(&mut self, _timeout: Duration) -> Result<CapturedFrame, CaptureError> {
            std::thread::sleep(Duration::from_millis(20));
            let (width, height) = (32, 24);
            let frame = CapturedFrame {
                seq: self.seq,
                captured_at: std::time::SystemTime::now(),
                since_start: self.opened.elapsed(),
                media_position: None,
                payload: Payload::Raw {
                    format: PixelFormat::Rgb24,
                    width,
                    height,
                    stride: width as usize * 3,
                    data: Arc::from(vec![128u8; width as usize * 3 * height as usize]),
                },
            };
            self.seq += 1;
            Ok(frame)
        }
        fn info(&self) -> SourceInfo {
            SourceInfo {
                kind: SourceKind::ReplayFolder {
                    path: PathBuf::from("synthetic"),
                },
                format: PixelFormat::Rgb24,
                width: 32,
                height: 24,
                fps: Some(50.0),
                frame_count: None,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cameras_frames_leave_in_order_with_several_workers() {
        // The pipeline opens whatever its source factory gives: here a
        // synthetic camera, so the test needs no footage and no sandbox.
        let sources: SourceFactory = Arc::new(|_request: &SourceRequest| {
            Ok(Box::new(Synthetic {
                seq: 0,
                opened: std::time::Instant::now(),
            }) as Box<dyn FrameSource>)
        });
        let spec = CameraSpec {
            id: CameraId::new("cam").unwrap(),
            source: SourceRequest::Replay {
                path: PathBuf::from("cam"),
                looping: true,
                pacing: Pacing::RealTime,
                fps: 50.0,
                start_frame: 0,
            },
            detect_every: 1,
            queue_depth: 2,
            offline_after: Duration::from_secs(5),
            tamper: crate::TamperConfig::default(),
        };
        let factory: DetectorFactory = Arc::new(|| {
            Ok(Box::new(Uneven {
                info: ModelInfo {
                    name: "uneven".into(),
                    weights: PathBuf::new(),
                    precision: Precision::Fp32,
                    backend: BackendKind::Tract,
                    input_width: 32,
                    input_height: 32,
                    resize: safe_yolo_detect::manifest::ResizeMode::Stretch,
                    classes: Arc::from(Vec::<Arc<str>>::new()),
                    licence: String::new(),
                },
                calls: 0,
            }) as Box<dyn Detector>)
        });
        let shutdown = CancellationToken::new();
        let config = PipelineConfig {
            cameras: vec![spec],
            sources,
            detect_workers: 3,
            analysis_queue: 64,
            detect_nice: 0,
        };
        let (pipeline, mut rx) = Pipeline::start(
            config,
            factory,
            &Liveness::new(),
            &Metrics::new(),
            shutdown.clone(),
        )
        .unwrap();
        let mut seqs = Vec::new();
        while seqs.len() < 30 {
            let f = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            seqs.push(f.meta.seq);
        }
        drop(rx);
        shutdown.cancel();
        let stuck = pipeline.stop(Duration::from_secs(5)).await;
        assert!(stuck.is_empty(), "{stuck:?}");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "frames out of order: {seqs:?}"
        );
    }

    /// `image` (a fixture photo) enlarged `times` times (nearest neighbour) and
    /// encoded as JPEG, as a camera of that resolution would deliver it.
    fn enlarged_jpeg(image: &str, times: u32) -> Picture {
        let data = std::fs::read(safe_yolo_fixtures::media(image)).unwrap();
        let src = safe_yolo_capture::convert::decode_jpeg(&data).unwrap();
        let (w, h) = (src.width() * times, src.height() * times);
        let mut px = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let at = (((y / times) * src.width() + x / times) * 3) as usize;
                px.extend_from_slice(&src.data()[at..at + 3]);
            }
        }
        let big = RgbFrame::new(w, h, px).unwrap();
        let jpeg = safe_yolo_capture::JpegEncoder::new(92)
            .unwrap()
            .encode(&big)
            .unwrap();
        Picture::new(Payload::Jpeg(Arc::from(jpeg))).unwrap()
    }

    /// Decoding at the smallest DCT-scaled size the model needs, then mapping
    /// the boxes back, finds the persons a full decode finds, each box within
    /// IoU 0.9 of its full-decode twin: the golden photos at two and three times
    /// their size (1620x2160 and 2430x3240 for bus.jpg, 2560x1440 and
    /// 3840x2160 for zidane.jpg), on the shipped model.
    #[test]
    fn a_scaled_decode_finds_the_boxes_of_the_full_decode() {
        let manifest =
            safe_yolo_fixtures::manifest_dir!().join("../../models/nanodet-m-416-coco/model.toml");
        let mut detector = safe_yolo_detect::load(
            &manifest,
            &safe_yolo_detect::LoadOptions {
                backend: safe_yolo_detect::BackendChoice::Tract,
                threads: 1,
                classes: Some(vec!["person".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        let mut worst = 1.0f32;
        for (image, times) in [
            ("bus.jpg", 2),
            ("zidane.jpg", 2),
            ("bus.jpg", 3),
            ("zidane.jpg", 3),
        ] {
            let picture = enlarged_jpeg(image, times);
            let full = picture.decode().unwrap();
            let want = detector.detect(&full).unwrap();
            let (nw, nh) = super::need(&*detector, None, &picture);
            let scaled = picture.decode_at_least(nw, nh).unwrap();
            assert!(
                scaled.width() < picture.width() && scaled.width() >= nw && scaled.height() >= nh,
                "{image} x{times}: decoded at {}x{} for a {nw}x{nh} need",
                scaled.width(),
                scaled.height()
            );
            let got = super::to_picture(detector.detect(&scaled).unwrap(), &scaled, &picture);
            let confident = |d: &&Detection| d.score >= 0.5;
            for (a, b, which) in [(&want, &got, "full decode"), (&got, &want, "scaled decode")] {
                for d in a.iter().filter(confident) {
                    let best = b.iter().map(|o| d.bbox.iou(&o.bbox)).fold(0.0f32, f32::max);
                    worst = worst.min(best);
                    assert!(
                        best >= 0.9,
                        "{image} x{times}: a person of the {which} ({:?}, score {}) has no twin within IoU 0.9 (best {best})",
                        d.bbox,
                        d.score
                    );
                }
            }
            assert!(
                want.iter().filter(confident).count() >= 2,
                "{image}: {want:?}"
            );
        }
        eprintln!(
            "scaled decode: worst IoU of a confident person to its full-decode twin {worst:.3}"
        );
    }

    #[test]
    fn boxes_map_back_to_the_full_frame() {
        let picture =
            Picture::from_rgb(&RgbFrame::new(800, 600, vec![0u8; 800 * 600 * 3]).unwrap());
        let small = RgbFrame::new(200, 150, vec![0u8; 200 * 150 * 3]).unwrap();
        let d = Detection {
            class_id: 0,
            class_name: Arc::from("person"),
            score: 0.8,
            bbox: BBox {
                x1: 10.0,
                y1: 20.0,
                x2: 30.0,
                y2: 160.0,
            },
        };
        let got = super::to_picture(vec![d.clone()], &small, &picture);
        assert_eq!(
            got[0].bbox,
            BBox {
                x1: 40.0,
                y1: 80.0,
                x2: 120.0,
                y2: 600.0
            }
        );
        let same = super::to_picture(vec![d.clone()], &small, &Picture::from_rgb(&small));
        assert_eq!(same[0].bbox, d.bbox);
    }

    /// Waits for a detected frame of camera `want`.
    async fn frame_of(rx: &mut tokio::sync::mpsc::Receiver<crate::DetectedFrame>, want: &str) {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if f.meta.camera.as_str() == want {
                return;
            }
        }
    }

    fn synthetic_spec(id: &str) -> CameraSpec {
        CameraSpec {
            id: CameraId::new(id).unwrap(),
            source: SourceRequest::Replay {
                path: PathBuf::from(id),
                looping: true,
                pacing: Pacing::RealTime,
                fps: 50.0,
                start_frame: 0,
            },
            detect_every: 1,
            queue_depth: 2,
            offline_after: Duration::from_secs(5),
            tamper: crate::TamperConfig::default(),
        }
    }

    /// Cameras start, restart and stop one by one while the pipeline runs: an
    /// unchanged camera keeps its run, a stopped one leaves the liveness
    /// registry (no false stall) and sends no more frames.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cameras_come_and_go_while_the_pipeline_runs() {
        let sources: SourceFactory = Arc::new(|_request: &SourceRequest| {
            Ok(Box::new(Synthetic {
                seq: 0,
                opened: std::time::Instant::now(),
            }) as Box<dyn FrameSource>)
        });
        let factory: DetectorFactory = Arc::new(|| {
            Ok(Box::new(Uneven {
                info: ModelInfo {
                    name: "uneven".into(),
                    weights: PathBuf::new(),
                    precision: Precision::Fp32,
                    backend: BackendKind::Tract,
                    input_width: 32,
                    input_height: 32,
                    resize: safe_yolo_detect::manifest::ResizeMode::Stretch,
                    classes: Arc::from(Vec::<Arc<str>>::new()),
                    licence: String::new(),
                },
                calls: 0,
            }) as Box<dyn Detector>)
        });
        let liveness = Liveness::new();
        let shutdown = CancellationToken::new();
        let config = PipelineConfig {
            cameras: vec![synthetic_spec("a")],
            sources,
            detect_workers: 2,
            analysis_queue: 64,
            detect_nice: 0,
        };
        let (pipeline, mut rx) = Pipeline::start(
            config,
            factory,
            &liveness,
            &Metrics::new(),
            shutdown.clone(),
        )
        .unwrap();
        let cameras = pipeline.cameras();
        let mut taps = pipeline.taps();
        let first_a = taps.get(&CameraId::new("a").unwrap()).unwrap();
        frame_of(&mut rx, "a").await;

        // Add b: a keeps its run.
        let both = [synthetic_spec("a"), synthetic_spec("b")];
        let changed = tokio::task::block_in_place(|| cameras.apply(&both)).unwrap();
        assert_eq!(changed.started, vec![CameraId::new("b").unwrap()]);
        assert!(changed.stopped.is_empty() && changed.restarted.is_empty());
        assert!(taps.changed().await);
        let now = taps.seen();
        assert_eq!(now.len(), 2);
        assert!(now[0].same_run(&first_a), "a was restarted");
        frame_of(&mut rx, "b").await;

        // Change a's spec: a restarts, b is untouched.
        let mut a2 = synthetic_spec("a");
        a2.detect_every = 2;
        let first_b = taps.get(&CameraId::new("b").unwrap()).unwrap();
        let changed =
            tokio::task::block_in_place(|| cameras.apply(&[a2.clone(), synthetic_spec("b")]))
                .unwrap();
        assert_eq!(changed.restarted, vec![CameraId::new("a").unwrap()]);
        assert!(changed.late_threads.is_empty(), "{changed:?}");
        let a_now = taps.get(&CameraId::new("a").unwrap()).unwrap();
        assert!(!a_now.same_run(&first_a));
        assert!(
            taps.get(&CameraId::new("b").unwrap())
                .unwrap()
                .same_run(&first_b)
        );
        assert_eq!(cameras.specs(), vec![a2.clone(), synthetic_spec("b")]);

        // Remove b: its stages leave the liveness registry, no frame of it follows.
        let changed = tokio::task::block_in_place(|| cameras.apply(&[a2])).unwrap();
        assert_eq!(changed.stopped, vec![CameraId::new("b").unwrap()]);
        assert!(
            !liveness.stages().iter().any(|s| s.starts_with("camera/b/")),
            "{:?}",
            liveness.stages()
        );
        assert!(
            liveness
                .check(std::time::Instant::now(), Duration::from_secs(5))
                .is_ok()
        );
        // Frames of b already on their way may still arrive; after those, only a's.
        let (mut tail, mut after) = (0, 0);
        while after < 10 {
            let f = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if f.meta.camera.as_str() == "b" {
                tail += 1;
                assert!(tail <= 4, "b keeps sending frames after it stopped");
            } else {
                after += 1;
            }
        }
        // And none at all: zero cameras is a running pipeline too.
        let changed = tokio::task::block_in_place(|| cameras.apply(&[])).unwrap();
        assert_eq!(changed.stopped, vec![CameraId::new("a").unwrap()]);
        assert!(taps.current().is_empty());
        drop(rx);
        shutdown.cancel();
        let stuck = pipeline.stop(Duration::from_secs(5)).await;
        assert!(stuck.is_empty(), "{stuck:?}");
    }
}

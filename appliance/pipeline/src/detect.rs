//! The shared pool of detector workers.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use safe_yolo_detect::Detector;
use safe_yolo_domain::{Detection, FrameMeta, RgbFrame};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::camera::error_chain;
use crate::queue::{Lanes, Pop};
use crate::{DetectedFrame, POLL, PipelineError, StageTimes, nap};

/// The newest detections of one camera, shared with its decode stage.
pub(crate) type LatestDetections = Arc<Mutex<Arc<Vec<Detection>>>>;

/// A decoded frame waiting for the detector.
#[derive(Debug)]
pub(crate) struct DetectJob {
    pub meta: FrameMeta,
    pub frame: RgbFrame,
    pub decode: Duration,
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site in Pipeline::start; each is a distinct shared handle"
)]
pub(crate) fn start_worker(
    worker: usize,
    mut detector: Box<dyn Detector>,
    lanes: Arc<Lanes<DetectJob>>,
    latest: Arc<Vec<LatestDetections>>,
    tx: mpsc::Sender<DetectedFrame>,
    liveness: &Liveness,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, PipelineError> {
    let hb = liveness.register(format!("detect/worker-{worker}"));
    let metrics = metrics.clone();
    let name = format!("detect-{worker}");
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
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
                let cam = job.meta.camera.as_str().to_owned();
                let t0 = Instant::now();
                let result = detector.detect(&job.frame);
                let detect = t0.elapsed();
                hb.beat();
                let detections = match result {
                    Ok(d) => Arc::new(d),
                    Err(e) => {
                        metrics.frames_dropped.get_or_create(&Metrics::stage(&cam, "detect_error")).inc();
                        tracing::warn!(camera = %cam, seq = job.meta.seq, error = %error_chain(&e), "detector failed on a frame");
                        continue;
                    }
                };
                done += 1;
                let detected_at = SystemTime::now();
                let capture_to_detected = detected_at.duration_since(job.meta.captured_at).unwrap_or_default();
                metrics.frames_detected.get_or_create(&Metrics::camera(&cam)).inc();
                metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "inference")).observe(detect.as_secs_f64());
                metrics
                    .stage_latency
                    .get_or_create(&Metrics::stage(&cam, "capture_to_detected"))
                    .observe(capture_to_detected.as_secs_f64());
                if let Some(slot) = latest.get(lane) {
                    *slot.lock() = Arc::clone(&detections);
                }
                let frame = DetectedFrame {
                    meta: job.meta,
                    frame: job.frame,
                    detections,
                    times: StageTimes { decode: job.decode, detect, capture_to_detected },
                    detected_at,
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

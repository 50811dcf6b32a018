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

/// A decoded frame waiting for the detector.
#[derive(Debug)]
pub(crate) struct DetectJob {
    pub meta: FrameMeta,
    pub frame: RgbFrame,
    pub decode: Duration,
}

/// Everything one detect worker needs.
pub(crate) struct Worker {
    pub index: usize,
    pub factories: Detectors,
    pub nice: i32,
    /// Where the worker reports whether its models loaded.
    pub loaded: std::sync::mpsc::Sender<Result<(), PipelineError>>,
    pub lanes: Arc<Lanes<DetectJob>>,
    pub latest: Arc<Vec<LatestDetections>>,
    pub ppe: PpeSwitch,
    pub tx: mpsc::Sender<DetectedFrame>,
    pub shutdown: CancellationToken,
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
        latest,
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
                // The PPE model runs only where a rule needs it and only
                // when there is somebody to wear the equipment.
                let mut ppe_time = Duration::ZERO;
                let ppe = match ppe_detector.as_mut() {
                    Some(p) if ppe_switch.is_on(lane) && detections.iter().any(|d| &*d.class_name == PERSON_CLASS) => {
                        let t1 = Instant::now();
                        let r = p.detect(&job.frame);
                        ppe_time = t1.elapsed();
                        hb.beat();
                        metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "ppe_inference")).observe(ppe_time.as_secs_f64());
                        match r {
                            Ok(d) => Arc::new(d),
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
                metrics.frames_detected.get_or_create(&Metrics::camera(&cam)).inc();
                metrics.stage_latency.get_or_create(&Metrics::stage(&cam, "inference")).observe(detect.as_secs_f64());
                metrics
                    .stage_latency
                    .get_or_create(&Metrics::stage(&cam, "capture_to_detected"))
                    .observe(capture_to_detected.as_secs_f64());
                if let Some(slot) = latest.get(lane) {
                    // The live view shows both models' boxes.
                    *slot.lock() = if ppe.is_empty() {
                        Arc::clone(&detections)
                    } else {
                        Arc::new(detections.iter().chain(ppe.iter()).cloned().collect())
                    };
                }
                let frame = DetectedFrame {
                    meta: job.meta,
                    frame: job.frame,
                    detections,
                    ppe,
                    times: StageTimes { decode: job.decode, detect, ppe: ppe_time, capture_to_detected },
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

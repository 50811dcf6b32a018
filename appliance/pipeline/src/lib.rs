//! The frame pipeline: one chain of stages per camera, joined by bounded
//! queues that drop the oldest frame when full, feeding a shared pool of
//! detector workers.
//!
//! ```text
//!  capture thread ──raw q──▶ decode thread ──detect lane──▶ detect workers ──▶ analysis (mpsc)
//!   (FrameSource)            (to RGB, live view)            (shared pool,      (tracks, rules:
//!   health, reopen           every Nth frame                 round-robin)       outside this crate)
//! ```
//!
//! Capture, decode and inference block, so they run on dedicated OS threads,
//! never on the async reactor. Every stage beats a liveness heartbeat at
//! least every [`POLL`], idle or not; a stage that stops beating is a stall.
#![forbid(unsafe_code)]

mod camera;
mod detect;
pub mod priority;
pub mod queue;
mod scene;
mod turns;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use safe_yolo_capture::{CaptureError, FrameSource, SourceRequest};
use safe_yolo_detect::{DetectError, Detector};
use safe_yolo_domain::{CameraId, Detection, FrameMeta, RgbFrame};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use camera::{CameraHealth, CameraState};
pub use scene::{PpeSwitch, Scene, SceneSlot, SceneTrack, SceneZone};

/// Longest a stage waits before it beats its heartbeat and looks at the
/// shutdown flag again.
pub const POLL: Duration = Duration::from_millis(250);

/// Builds one detector per worker thread.
pub type DetectorFactory = Arc<dyn Fn() -> Result<Box<dyn Detector>, DetectError> + Send + Sync>;

/// Opens a camera's frame source; called again (with backoff) whenever the
/// source fails. The mirror of [`DetectorFactory`]: the daemon passes the real
/// one (`safe_yolo_capture::open` under the sandbox policy), tests may feed a
/// synthetic source.
pub type SourceFactory =
    Arc<dyn Fn(&SourceRequest) -> Result<Box<dyn FrameSource>, CaptureError> + Send + Sync>;

/// The models every detect worker loads: the main detector and, optionally,
/// a protective-equipment model run on the frames of the cameras switched on
/// through [`Pipeline::ppe_switch`] whenever the main detector found a person.
#[derive(Clone)]
pub struct Detectors {
    /// The main detector (persons and other classes).
    pub main: DetectorFactory,
    /// The PPE model (e.g. heads with and without a helmet).
    pub ppe: Option<DetectorFactory>,
}

impl std::fmt::Debug for Detectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detectors")
            .field("ppe", &self.ppe.is_some())
            .finish_non_exhaustive()
    }
}

impl From<DetectorFactory> for Detectors {
    fn from(main: DetectorFactory) -> Self {
        Self { main, ppe: None }
    }
}

/// Class name of the main detector that triggers the PPE model.
pub const PERSON_CLASS: &str = "person";

/// One camera of the pipeline.
#[derive(Debug, Clone)]
pub struct CameraSpec {
    /// Identifier.
    pub id: CameraId,
    /// Where frames come from (checked against the sandbox at every open).
    pub source: SourceRequest,
    /// Run detection on every Nth decoded frame.
    pub detect_every: u32,
    /// Bound of this camera's queues.
    pub queue_depth: usize,
    /// Silence after which the camera is marked offline.
    pub offline_after: Duration,
}

/// The pipeline's settings.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Cameras to run (enabled ones only).
    pub cameras: Vec<CameraSpec>,
    /// Opens the cameras' sources.
    pub sources: SourceFactory,
    /// Detector worker threads.
    pub detect_workers: usize,
    /// Bound of the queue towards analysis.
    pub analysis_queue: usize,
    /// Nice value of the detect workers and of the threads their inference
    /// libraries start (0 = default priority; see [`priority`]).
    pub detect_nice: i32,
}

impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("cameras", &self.cameras)
            .field("detect_workers", &self.detect_workers)
            .field("analysis_queue", &self.analysis_queue)
            .field("detect_nice", &self.detect_nice)
            .finish_non_exhaustive()
    }
}

/// Time spent in each stage for one detected frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Decode/convert to RGB.
    pub decode: Duration,
    /// Detector call (pre-processing, inference, decoding).
    pub detect: Duration,
    /// PPE model call (zero when it did not run on this frame).
    pub ppe: Duration,
    /// Capture timestamp to detections ready.
    pub capture_to_detected: Duration,
}

/// A frame with its detections, on its way to tracking and rules.
#[derive(Debug, Clone)]
pub struct DetectedFrame {
    /// Where and when it was captured.
    pub meta: FrameMeta,
    /// The pixels (for snapshots).
    pub frame: RgbFrame,
    /// What the detector found, in frame pixels.
    pub detections: Arc<Vec<Detection>>,
    /// What the PPE model found (empty when it did not run on this frame).
    pub ppe: Arc<Vec<Detection>>,
    /// Stage timings.
    pub times: StageTimes,
    /// When the detections were ready (for detected->rules latency).
    pub detected_at: SystemTime,
}

/// The newest frame of a camera, with the newest detections (which may be
/// from an earlier frame when detection runs on every Nth frame only).
#[derive(Debug, Clone)]
pub struct LiveFrame {
    /// Frame metadata.
    pub meta: FrameMeta,
    /// The pixels.
    pub frame: RgbFrame,
    /// Latest detections of this camera (main and PPE models).
    pub detections: Arc<Vec<Detection>>,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A detector could not be loaded.
    #[error("cannot load the {model} model for worker {worker}")]
    Detector {
        /// Which model (`main` or `ppe`).
        model: &'static str,
        /// Worker index.
        worker: usize,
        /// The load error.
        #[source]
        source: Box<DetectError>,
    },
    /// An OS thread could not be spawned.
    #[error("cannot start thread {name}")]
    Spawn {
        /// Thread name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A detect worker ended before reporting whether its models loaded.
    #[error("a detect worker ended while loading its models")]
    WorkerDied,
}

/// Per-camera handles for consumers (API, live view, rules).
#[derive(Debug, Clone)]
pub struct CameraTap {
    /// Camera id.
    pub id: CameraId,
    /// Health, updated on every change.
    pub health: watch::Receiver<CameraHealth>,
    /// Newest frame (full frame rate).
    pub live: watch::Receiver<Option<LiveFrame>>,
    /// Tracks and zone states of the newest analysed frame (written by the
    /// analysis task, which lives outside this crate).
    pub scene: SceneSlot,
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    threads: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
    taps: Vec<CameraTap>,
    ppe: PpeSwitch,
}

impl Pipeline {
    /// Loads the detectors (so a bad model fails start-up, before READY),
    /// then starts every stage. Detected frames go to the returned receiver.
    pub fn start(
        config: PipelineConfig,
        detectors: impl Into<Detectors>,
        liveness: &Liveness,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> Result<(Pipeline, mpsc::Receiver<DetectedFrame>), PipelineError> {
        let factories: Detectors = detectors.into();
        // A failed start stops what it started without touching the caller's token.
        let shutdown = shutdown.child_token();
        let ppe = PpeSwitch::new(
            config.cameras.iter().map(|c| c.id.clone()).collect(),
            factories.ppe.is_some(),
        );
        let lanes = Arc::new(queue::Lanes::exclusive(config.cameras.len(), 1));
        let (tx, rx) = mpsc::channel(config.analysis_queue.max(1));
        let latest: Arc<Vec<detect::LatestDetections>> =
            Arc::new(config.cameras.iter().map(|_| Arc::default()).collect());
        let mut threads = Vec::new();
        // Detectors load on their worker threads (after those lowered their
        // priority, which inference libraries' own threads then inherit);
        // a bad model still fails start-up before any camera opens.
        let workers = config.detect_workers.max(1);
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
        for worker in 0..workers {
            let started = detect::start_worker(
                detect::Worker {
                    index: worker,
                    factories: factories.clone(),
                    nice: config.detect_nice,
                    loaded: loaded_tx.clone(),
                    lanes: Arc::clone(&lanes),
                    latest: Arc::clone(&latest),
                    ppe: ppe.clone(),
                    tx: tx.clone(),
                    shutdown: shutdown.clone(),
                },
                liveness,
                metrics,
            );
            match started {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shutdown.cancel();
                    return Err(e);
                }
            }
        }
        drop(loaded_tx);
        for _ in 0..workers {
            let outcome = loaded_rx.recv().unwrap_or(Err(PipelineError::WorkerDied));
            if let Err(e) = outcome {
                shutdown.cancel();
                return Err(e);
            }
        }
        let mut taps = Vec::new();
        for (lane, cam) in config.cameras.iter().enumerate() {
            let started = camera::start(
                lane,
                cam.clone(),
                Arc::clone(&config.sources),
                Arc::clone(&lanes),
                Arc::clone(&latest[lane]),
                liveness,
                metrics,
                shutdown.clone(),
            );
            match started {
                Ok(started) => {
                    threads.extend(started.threads);
                    taps.push(started.tap);
                }
                Err(e) => {
                    shutdown.cancel();
                    return Err(e);
                }
            }
        }
        Ok((
            Pipeline {
                threads,
                shutdown,
                taps,
                ppe,
            },
            rx,
        ))
    }

    /// Per-camera handles.
    pub fn taps(&self) -> &[CameraTap] {
        &self.taps
    }

    /// Turns the PPE model on and off per camera.
    pub fn ppe_switch(&self) -> PpeSwitch {
        self.ppe.clone()
    }

    /// Stops every stage and waits up to `timeout` for the threads to end.
    /// Returns the names of the threads that did not end in time (they are
    /// left detached; the process is about to exit).
    pub async fn stop(self, timeout: Duration) -> Vec<String> {
        self.shutdown.cancel();
        let threads = self.threads;
        let names: Vec<String> = threads
            .iter()
            .map(|t| t.thread().name().unwrap_or("?").to_owned())
            .collect();
        let join = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + timeout;
            let mut left = Vec::new();
            for t in threads {
                while !t.is_finished() && std::time::Instant::now() < deadline {
                    nap(Duration::from_millis(10));
                }
                if t.is_finished() {
                    let _ = t.join();
                } else {
                    left.push(t.thread().name().unwrap_or("?").to_owned());
                }
            }
            left
        });
        join.await.unwrap_or(names)
    }
}

/// Sleeps the calling thread. Only for the pipeline's own OS threads and the
/// blocking pool, never on the async reactor.
#[allow(
    clippy::disallowed_methods,
    reason = "callers are dedicated OS threads or the blocking pool, never the reactor"
)]
pub(crate) fn nap(d: Duration) {
    std::thread::sleep(d);
}

/// The stall injected by the `fault-injection` feature: the number of
/// detections after which detect workers stop beating.
#[cfg(feature = "fault-injection")]
fn injected_stall_after() -> Option<u64> {
    std::env::var("SAFEYOLO_FAULT_STALL_DETECT_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
}

#[cfg(not(feature = "fault-injection"))]
fn injected_stall_after() -> Option<u64> {
    None
}

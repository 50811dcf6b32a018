//! The frame pipeline: one chain of stages per camera, joined by bounded
//! queues that drop the oldest frame when full, feeding a shared pool of
//! detector workers.
//!
//! ```text
//!  capture thread ──raw q──▶ decode thread ──detect lane──▶ detect workers ──▶ analysis (mpsc)
//!   (FrameSource)            (frame size,                   (shared pool,      (tracks, rules:
//!   health, reopen           live view,                      round-robin;       outside this crate)
//!                            every Nth frame)                decode to pixels)
//! ```
//!
//! Frames stay as captured (a JPEG stays a JPEG) until a consumer needs
//! pixels: the detect worker decodes the frame it is about to detect, at the
//! smallest size its models need (libjpeg-turbo DCT scaling), and maps the
//! boxes back to full-frame pixels; a frame replaced while it waited, or
//! skipped by `detect_every`, is never decoded. The live view gets the frame
//! as captured.
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
mod tamper;
mod turns;

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use std::time::{Duration, SystemTime};

use safe_yolo_capture::{CaptureError, FrameSource, Picture, SourceRequest};
use safe_yolo_detect::{DetectError, Detector};
use safe_yolo_domain::alarm::TamperSet;
use safe_yolo_domain::{CameraId, Detection, FrameMeta, RgbFrame, ZoneId};
pub use safe_yolo_rules::TamperConfig;
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use camera::{CameraHealth, CameraState};
pub use scene::{PpeSwitch, Scene, SceneSlot, SceneTrack, SceneZone};
pub use tamper::TamperHandle;

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
#[derive(Debug, Clone, PartialEq)]
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
    /// The camera's tamper check thresholds.
    pub tamper: TamperConfig,
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
    /// Decode/convert to RGB (at the size the detector needs, by its worker).
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
    /// The frame as captured, at full size (snapshots decode it).
    pub picture: Picture,
    /// The pixels the detector saw: the picture decoded at the smallest size
    /// its models need (see [`Picture::decode_at_least`]), possibly smaller
    /// than the picture.
    pub frame: RgbFrame,
    /// What the detector found, in full-frame pixels (the picture's).
    pub detections: Arc<Vec<Detection>>,
    /// What the PPE model found (empty when it did not run on this frame).
    pub ppe: Arc<Vec<Detection>>,
    /// Stage timings.
    pub times: StageTimes,
    /// When the detections were ready (for detected->rules latency).
    pub detected_at: SystemTime,
    /// What the camera's tamper check reports after this frame.
    pub tamper: TamperSet,
}

/// The newest frame of a camera, with the newest detections (which may be
/// from an earlier frame when detection runs on every Nth frame only).
#[derive(Debug, Clone)]
pub struct LiveFrame {
    /// Frame metadata.
    pub meta: FrameMeta,
    /// The frame as captured, not decoded: a JPEG camera's live view forwards
    /// its bytes; a consumer that needs pixels decodes it.
    pub picture: Picture,
    /// Latest detections of this camera (main and PPE models), in full-frame pixels.
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
    /// The camera's tamper check, for relearning its view.
    pub tamper: TamperHandle,
}

/// The cameras running now, as consumers see them: a watch that changes
/// whenever a camera starts, stops or is replaced. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CameraTaps(watch::Receiver<Arc<[CameraTap]>>);

impl CameraTaps {
    /// A fixed set (tests, benchmarks, a consumer without a pipeline).
    pub fn fixed(taps: Vec<CameraTap>) -> Self {
        let (tx, rx) = watch::channel(Arc::from(taps));
        // The sender goes: the set never changes.
        drop(tx);
        Self(rx)
    }

    /// The cameras running now.
    pub fn current(&self) -> Arc<[CameraTap]> {
        Arc::clone(&self.0.borrow())
    }

    /// The tap of camera `id`, if it runs.
    pub fn get(&self, id: &CameraId) -> Option<CameraTap> {
        self.0.borrow().iter().find(|t| &t.id == id).cloned()
    }

    /// Waits until the set changes; `false` once it never will again.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }

    /// Persons in each zone of the running cameras, as of each camera's newest
    /// analysed frame (lines are listed with 0: they count crossings).
    pub fn zone_counts(&self) -> Vec<(ZoneId, u32)> {
        self.current()
            .iter()
            .flat_map(|t| {
                t.scene
                    .latest()
                    .zones
                    .iter()
                    .map(|z| {
                        (
                            z.id.clone(),
                            u32::try_from(z.inside.len()).unwrap_or(u32::MAX),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The set, marking it seen (after [`CameraTaps::changed`]).
    pub fn seen(&mut self) -> Arc<[CameraTap]> {
        Arc::clone(&self.0.borrow_and_update())
    }
}

impl CameraTap {
    /// Whether `other` is this very camera run (not a later run of the same id).
    pub fn same_run(&self, other: &CameraTap) -> bool {
        self.id == other.id && self.health.same_channel(&other.health)
    }
}

/// One running camera: its spec, detect lane and threads.
#[derive(Debug)]
struct Running {
    spec: CameraSpec,
    lane: usize,
    tap: CameraTap,
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

/// What [`Cameras::apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CamerasChanged {
    /// Cameras started (new ids).
    pub started: Vec<CameraId>,
    /// Cameras restarted with a new spec.
    pub restarted: Vec<CameraId>,
    /// Cameras stopped (gone or disabled).
    pub stopped: Vec<CameraId>,
    /// Threads of stopped cameras that did not end in time (left detached).
    pub late_threads: Vec<String>,
}

/// Starts and stops single cameras while the rest of the pipeline runs.
/// Cheap to clone; usable from any blocking thread.
#[derive(Clone)]
pub struct Cameras {
    inner: Arc<CamerasInner>,
}

struct CamerasInner {
    running: Mutex<Vec<Running>>,
    taps: watch::Sender<Arc<[CameraTap]>>,
    lanes: Arc<queue::Lanes<detect::DetectJob>>,
    sources: SourceFactory,
    liveness: Liveness,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Cameras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .inner
            .running
            .lock()
            .iter()
            .map(|r| r.spec.id.to_string())
            .collect();
        f.debug_struct("Cameras").field("running", &ids).finish()
    }
}

/// How long a stopping camera's threads get to end (they look at their stop
/// flag at least every [`POLL`]).
pub const CAMERA_STOP: Duration = Duration::from_secs(2);

impl Cameras {
    /// The running cameras, as a watch.
    pub fn taps(&self) -> CameraTaps {
        CameraTaps(self.inner.taps.subscribe())
    }

    /// The specs of the running cameras, in order.
    pub fn specs(&self) -> Vec<CameraSpec> {
        self.inner
            .running
            .lock()
            .iter()
            .map(|r| r.spec.clone())
            .collect()
    }

    /// Makes the running cameras exactly `wanted` (the enabled ones): starts
    /// the new ones, restarts the ones whose spec changed, stops the others.
    /// A camera whose spec is unchanged is not touched (its frames keep
    /// flowing). Blocks while stopping cameras (up to [`CAMERA_STOP`] each):
    /// call it from a blocking thread.
    pub fn apply(&self, wanted: &[CameraSpec]) -> Result<CamerasChanged, PipelineError> {
        let inner = &self.inner;
        let mut running = inner.running.lock();
        let mut changed = CamerasChanged::default();
        // Stop what goes or changes.
        let mut keep = Vec::new();
        let mut stopping = Vec::new();
        for r in running.drain(..) {
            match wanted.iter().find(|w| w.id == r.spec.id) {
                Some(w) if *w == r.spec => keep.push(r),
                Some(_) => {
                    changed.restarted.push(r.spec.id.clone());
                    stopping.push(r);
                }
                None => {
                    changed.stopped.push(r.spec.id.clone());
                    stopping.push(r);
                }
            }
        }
        *running = keep;
        for r in &stopping {
            r.stop.cancel();
        }
        changed.late_threads = join_all(stopping.iter_mut().flat_map(|r| r.threads.drain(..)));
        for r in &stopping {
            // Frames of the old run still waiting for a worker are dropped.
            inner.lanes.close_lane(r.lane);
            tracing::info!(camera = %r.spec.id, "camera stopped");
        }
        // Start what is new or changed, in the wanted order.
        let mut result = Ok(());
        for w in wanted {
            if running.iter().any(|r| r.spec.id == w.id) {
                continue;
            }
            match self.start_one(w.clone()) {
                Ok(r) => {
                    if !changed.restarted.contains(&w.id) {
                        changed.started.push(w.id.clone());
                    }
                    tracing::info!(camera = %w.id, "camera started");
                    running.push(r);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        running.sort_by_key(|r| wanted.iter().position(|w| w.id == r.spec.id));
        let taps: Arc<[CameraTap]> = running.iter().map(|r| r.tap.clone()).collect();
        inner.taps.send_replace(taps);
        result.map(|()| changed)
    }

    fn start_one(&self, spec: CameraSpec) -> Result<Running, PipelineError> {
        let inner = &self.inner;
        let lane = inner.lanes.open_lane();
        let stop = inner.shutdown.child_token();
        let started = camera::start(
            lane,
            spec.clone(),
            camera::Shared {
                sources: Arc::clone(&inner.sources),
                detect_lanes: Arc::clone(&inner.lanes),
                liveness: &inner.liveness,
                metrics: &inner.metrics,
            },
            stop.clone(),
        );
        match started {
            Ok(s) => Ok(Running {
                spec,
                lane,
                tap: s.tap,
                stop,
                threads: s.threads,
            }),
            Err(e) => {
                inner.lanes.close_lane(lane);
                Err(e)
            }
        }
    }

    /// Every thread of every camera (the pipeline is stopping).
    fn take_threads(&self) -> Vec<JoinHandle<()>> {
        self.inner
            .running
            .lock()
            .iter_mut()
            .flat_map(|r| r.threads.drain(..))
            .collect()
    }
}

/// Waits up to [`CAMERA_STOP`] for `threads` to end; returns the names of
/// those that did not (left detached).
fn join_all(threads: impl Iterator<Item = JoinHandle<()>>) -> Vec<String> {
    let deadline = std::time::Instant::now() + CAMERA_STOP;
    let mut late = Vec::new();
    for t in threads {
        while !t.is_finished() && std::time::Instant::now() < deadline {
            nap(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            late.push(t.thread().name().unwrap_or("?").to_owned());
        }
    }
    late
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    workers: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
    cameras: Cameras,
    ppe: PpeSwitch,
}

impl Pipeline {
    /// Loads the detectors (so a bad model fails start-up, before READY),
    /// then starts every stage. Detected frames go to the returned receiver.
    /// Cameras can be started and stopped later through [`Pipeline::cameras`].
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
        let ppe = PpeSwitch::new(factories.ppe.is_some());
        let lanes = Arc::new(queue::Lanes::exclusive(0, 1));
        let (tx, rx) = mpsc::channel(config.analysis_queue.max(1));
        let mut workers = Vec::new();
        // Detectors load on their worker threads (after those lowered their
        // priority, which inference libraries' own threads then inherit);
        // a bad model still fails start-up before any camera opens.
        let count = config.detect_workers.max(1);
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
        for worker in 0..count {
            let started = detect::start_worker(
                detect::Worker {
                    index: worker,
                    factories: factories.clone(),
                    nice: config.detect_nice,
                    loaded: loaded_tx.clone(),
                    lanes: Arc::clone(&lanes),
                    ppe: ppe.clone(),
                    tx: tx.clone(),
                    shutdown: shutdown.clone(),
                },
                liveness,
                metrics,
            );
            match started {
                Ok(t) => workers.push(t),
                Err(e) => {
                    shutdown.cancel();
                    return Err(e);
                }
            }
        }
        drop(loaded_tx);
        for _ in 0..count {
            let outcome = loaded_rx.recv().unwrap_or(Err(PipelineError::WorkerDied));
            if let Err(e) = outcome {
                shutdown.cancel();
                return Err(e);
            }
        }
        let (taps, _) = watch::channel(Arc::from(Vec::new()));
        let cameras = Cameras {
            inner: Arc::new(CamerasInner {
                running: Mutex::new(Vec::new()),
                taps,
                lanes,
                sources: Arc::clone(&config.sources),
                liveness: liveness.clone(),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
            }),
        };
        if let Err(e) = cameras.apply(&config.cameras) {
            shutdown.cancel();
            return Err(e);
        }
        Ok((
            Pipeline {
                workers,
                shutdown,
                cameras,
                ppe,
            },
            rx,
        ))
    }

    /// The running cameras' handles (a watch: cameras come and go).
    pub fn taps(&self) -> CameraTaps {
        self.cameras.taps()
    }

    /// Starts and stops single cameras while the pipeline runs.
    pub fn cameras(&self) -> Cameras {
        self.cameras.clone()
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
        let mut threads = self.cameras.take_threads();
        threads.extend(self.workers);
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

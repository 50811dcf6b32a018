//! One camera's capture and decode stages (the decode stage reads each
//! frame's size and hands frames on; pixels are decoded by the detect worker).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use safe_yolo_capture::{CapturedFrame, FrameSource, Picture};
use safe_yolo_domain::alarm::TamperSet;
use safe_yolo_domain::{CameraId, FrameMeta, error_chain};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::detect::DetectJob;
use crate::queue::{Lanes, Pop};
use crate::tamper::TamperSlot;
use crate::turns::{Offer, Turns};
use crate::{CameraSpec, CameraTap, LiveFrame, POLL, PipelineError, SourceFactory, nap};

/// Whether a camera delivers frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraState {
    /// Opened, no frame yet.
    Starting,
    /// Frames arrive.
    Online,
    /// No frame for longer than the offline threshold, or the source failed.
    Offline,
}

/// A camera's health, as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraHealth {
    /// Current state.
    pub state: CameraState,
    /// When the state was entered.
    pub since: SystemTime,
    /// Why the camera is offline.
    pub reason: Option<String>,
    /// What the camera's tamper check reports (empty while offline).
    pub tamper: TamperSet,
}

impl CameraHealth {
    /// The health the rules and the integrations know (starting counts as ok: no frame
    /// yet is not an outage; a camera whose tamper check reports a reason is
    /// tampered with).
    pub fn alarm_health(&self) -> safe_yolo_domain::alarm::CameraHealth {
        use safe_yolo_domain::alarm::CameraHealth as Alarm;
        match self.state {
            CameraState::Offline => Alarm::Offline,
            CameraState::Online | CameraState::Starting if !self.tamper.is_empty() => {
                Alarm::Tampered
            }
            CameraState::Online | CameraState::Starting => Alarm::Ok,
        }
    }
}

pub(crate) struct Started {
    pub threads: Vec<JoinHandle<()>>,
    pub tap: CameraTap,
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|source| PipelineError::Spawn { name, source })
}

/// What one camera's stages share with the rest of the pipeline.
pub(crate) struct Shared<'a> {
    pub sources: SourceFactory,
    pub detect_lanes: Arc<Lanes<DetectJob>>,
    pub liveness: &'a Liveness,
    pub metrics: &'a Metrics,
}

/// Starts the capture and decode threads of `spec`, feeding detect lane
/// `lane`, until `shutdown` is cancelled. A stage that ends on purpose
/// leaves the liveness registry; one that panics is reported dead.
pub(crate) fn start(
    lane: usize,
    spec: CameraSpec,
    shared: Shared<'_>,
    shutdown: CancellationToken,
) -> Result<Started, PipelineError> {
    let Shared {
        sources,
        detect_lanes,
        liveness,
        metrics,
    } = shared;
    let (health_tx, health_rx) = watch::channel(CameraHealth {
        state: CameraState::Starting,
        since: SystemTime::now(),
        reason: None,
        tamper: TamperSet::EMPTY,
    });
    let health_tx = Arc::new(health_tx);
    let tamper = Arc::new(TamperSlot::new(
        spec.id.clone(),
        spec.tamper,
        Arc::clone(&health_tx),
    ));
    let tamper_handle = crate::tamper::TamperHandle::new(Arc::clone(&tamper));
    let (live_tx, live_rx) = watch::channel(None);
    let raw: Arc<Lanes<CapturedFrame>> = Arc::new(Lanes::new(1, spec.queue_depth));

    let capture = {
        let ctx = Capture {
            spec: spec.clone(),
            sources,
            raw: Arc::clone(&raw),
            health: health_tx,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        let hb = liveness.register(format!("camera/{}/capture", spec.id));
        spawn(format!("cap-{}", spec.id), move || {
            ctx.run(&hb);
            hb.retire();
        })?
    };
    let decode = {
        let ctx = Decode {
            lane,
            spec: spec.clone(),
            raw: Arc::clone(&raw),
            detect: detect_lanes,
            live: live_tx,
            latest: Arc::default(),
            tamper,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        let hb = liveness.register(format!("camera/{}/decode", spec.id));
        match spawn(format!("dec-{}", spec.id), move || {
            ctx.run(&hb);
            hb.retire();
        }) {
            Ok(t) => t,
            Err(e) => {
                // The capture thread is already running: stop it.
                shutdown.cancel();
                raw.close();
                return Err(e);
            }
        }
    };
    Ok(Started {
        threads: vec![capture, decode],
        tap: CameraTap {
            id: spec.id,
            health: health_rx,
            live: live_rx,
            scene: crate::SceneSlot::default(),
            tamper: tamper_handle,
        },
    })
}

struct Capture {
    spec: CameraSpec,
    sources: SourceFactory,
    raw: Arc<Lanes<CapturedFrame>>,
    health: Arc<watch::Sender<CameraHealth>>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

fn set_state(
    tx: &watch::Sender<CameraHealth>,
    camera: &CameraId,
    state: CameraState,
    reason: Option<String>,
) {
    tx.send_if_modified(|h| {
        if h.state == state {
            return false;
        }
        match state {
            CameraState::Online => tracing::info!(%camera, "camera online"),
            CameraState::Offline => {
                tracing::warn!(%camera, reason = reason.as_deref().unwrap_or(""), "camera offline")
            }
            CameraState::Starting => {}
        }
        // An offline camera is not judged; back online, its check reports again.
        *h = CameraHealth {
            state,
            since: SystemTime::now(),
            reason,
            tamper: if state == CameraState::Offline {
                TamperSet::EMPTY
            } else {
                h.tamper
            },
        };
        true
    });
}

impl Capture {
    fn run(self, hb: &safe_yolo_telemetry::Heartbeat) {
        let id = self.spec.id.clone();
        let online = self
            .metrics
            .camera_online
            .get_or_create(&Metrics::camera(id.as_str()))
            .clone();
        let captured = self
            .metrics
            .frames_captured
            .get_or_create(&Metrics::camera(id.as_str()))
            .clone();
        let reconnects = self
            .metrics
            .camera_reconnects
            .get_or_create(&Metrics::camera(id.as_str()))
            .clone();
        let dropped = self
            .metrics
            .frames_dropped
            .get_or_create(&Metrics::stage(id.as_str(), "raw_queue"))
            .clone();
        let depth = self
            .metrics
            .queue_depth
            .get_or_create(&Metrics::stage(id.as_str(), "raw_queue"))
            .clone();
        let mut source: Option<Box<dyn FrameSource>> = None;
        let mut backoff = BACKOFF_MIN;
        let mut next_open = Instant::now();
        let mut last_frame = Instant::now();
        let mut ended = false;
        // A silent source is reopened after this long (a wedged driver
        // sometimes needs it); it is marked offline much earlier.
        let reopen_after = (self.spec.offline_after * 3).max(Duration::from_secs(5));
        while !self.shutdown.is_cancelled() {
            hb.beat();
            let now = Instant::now();
            let silent = now.duration_since(last_frame);
            if silent > self.spec.offline_after {
                online.set(0);
                set_state(
                    &self.health,
                    &id,
                    CameraState::Offline,
                    Some(format!("no frame for {:.1} s", silent.as_secs_f64())),
                );
            }
            let Some(src) = source.as_mut() else {
                if ended || now < next_open {
                    nap(POLL
                        .min(next_open.saturating_duration_since(now))
                        .max(Duration::from_millis(10)));
                    continue;
                }
                match (self.sources)(&self.spec.source) {
                    Ok(s) => {
                        tracing::info!(camera = %id, source = ?s.info().kind, "camera source opened");
                        // The backoff is reset by the first frame, not by the open:
                        // an RTSP source opens at once and fails on the wire, and
                        // must not be retried every half second for ever.
                        source = Some(s);
                    }
                    Err(e) => {
                        reconnects.inc();
                        tracing::warn!(camera = %id, error = %error_chain(&e), retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), "cannot open camera source");
                        online.set(0);
                        set_state(
                            &self.health,
                            &id,
                            CameraState::Offline,
                            Some(error_chain(&e)),
                        );
                        next_open = now + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
                continue;
            };
            match src.next_frame(POLL) {
                Ok(frame) => {
                    backoff = BACKOFF_MIN;
                    last_frame = Instant::now();
                    captured.inc();
                    online.set(1);
                    set_state(&self.health, &id, CameraState::Online, None);
                    if self.raw.push(0, frame).is_some() {
                        dropped.inc();
                    }
                    depth.set(i64::try_from(self.raw.depth(0)).unwrap_or(i64::MAX));
                }
                Err(e) if e.is_timeout() => {
                    if silent > reopen_after {
                        tracing::warn!(camera = %id, silent_s = silent.as_secs_f64(), "camera silent; reopening it");
                        source = None;
                        next_open = now + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
                Err(e) if e.is_end() => {
                    tracing::info!(camera = %id, "replay reached its end");
                    online.set(0);
                    set_state(
                        &self.health,
                        &id,
                        CameraState::Offline,
                        Some("replay ended".into()),
                    );
                    source = None;
                    ended = true;
                }
                Err(e) => {
                    tracing::warn!(camera = %id, error = %error_chain(&e), "camera source failed; reopening");
                    online.set(0);
                    set_state(
                        &self.health,
                        &id,
                        CameraState::Offline,
                        Some(error_chain(&e)),
                    );
                    source = None;
                    next_open = now + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.raw.close();
        tracing::debug!(camera = %id, "capture stopped");
    }
}

struct Decode {
    lane: usize,
    spec: CameraSpec,
    raw: Arc<Lanes<CapturedFrame>>,
    detect: Arc<Lanes<DetectJob>>,
    live: watch::Sender<Option<LiveFrame>>,
    latest: crate::detect::LatestDetections,
    tamper: Arc<TamperSlot>,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl Decode {
    fn run(self, hb: &safe_yolo_telemetry::Heartbeat) {
        let id = self.spec.id.clone();
        let cam = id.as_str();
        let decode_errors = self
            .metrics
            .frames_dropped
            .get_or_create(&Metrics::stage(cam, "decode_error"))
            .clone();
        let dropped = self
            .metrics
            .frames_dropped
            .get_or_create(&Metrics::stage(cam, "detect_queue"))
            .clone();
        let depth = self
            .metrics
            .queue_depth
            .get_or_create(&Metrics::stage(cam, "detect_queue"))
            .clone();
        let mut turns = Turns::new(self.lane, self.spec.detect_every);
        while !self.shutdown.is_cancelled() {
            hb.beat();
            let frame = match self.raw.pop(POLL) {
                Pop::Item(_, f) => f,
                Pop::Empty => continue,
                Pop::Closed => break,
            };
            // Only the size is read here (a JPEG's start-of-frame header):
            // pixels are decoded by the detect worker, for the frames it
            // detects, and by consumers that need them.
            let picture = match Picture::new(frame.payload) {
                Ok(p) => p,
                Err(e) => {
                    decode_errors.inc();
                    tracing::warn!(camera = %id, seq = frame.seq, error = %error_chain(&e), "cannot read frame; skipped");
                    continue;
                }
            };
            let meta = FrameMeta {
                camera: id.clone(),
                seq: frame.seq,
                captured_at: frame.captured_at,
                since_start: frame.since_start,
            };
            let detections = Arc::clone(&self.latest.lock());
            self.live.send_replace(Some(LiveFrame {
                meta: meta.clone(),
                picture: picture.clone(),
                detections,
            }));
            let job = || DetectJob {
                meta,
                picture,
                queued_at: Instant::now(),
                latest: Arc::clone(&self.latest),
                tamper: Arc::clone(&self.tamper),
            };
            match turns.offer(&self.detect, self.lane, job) {
                Offer::Skipped => continue,
                Offer::Queued => {}
                // The frame it replaced never reaches the detector.
                Offer::Replaced => {
                    dropped.inc();
                }
            }
            depth.set(i64::try_from(self.detect.depth(self.lane)).unwrap_or(i64::MAX));
        }
        tracing::debug!(camera = %id, "decode stopped");
    }
}

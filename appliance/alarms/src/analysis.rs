//! The analysis task: per camera, a tracker turns person detections into
//! tracks, then the rule engine decides; decisions go to the dispatcher.
//!
//! It runs on the async runtime: tracking and rules take well under a
//! millisecond per frame and never block. While a camera is not delivering
//! frames, its health is fed to the engine every tick so camera-offline
//! rules fire on time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{Datelike, Timelike};
use safe_yolo_domain::CameraId;
use safe_yolo_pipeline::{
    CameraTap, CameraTaps, DetectedFrame, PERSON_CLASS, PpeSwitch, Scene, SceneTrack, SceneZone,
};
use safe_yolo_rules::{
    CameraHealth, Decision, FrameInput, InterlockStates, LocalTime, RuleEngine, RuleKind, RuleSpec,
    TamperSet, Track, TrackState, Tracker, TrackerConfig, ZoneSpec,
};
use safe_yolo_telemetry::{Liveness, Metrics};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{Dispatcher, Evidence};

const TICK: Duration = Duration::from_millis(250);
/// How long the live view keeps showing a lost track (its predicted box,
/// dashed): the tracker keeps it longer to find the person again, but an
/// operator reading the view at a glance should not see stale boxes.
pub const SHOW_LOST: Duration = Duration::from_secs(1);

/// Why analysis could not start.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The rule engine refused the rules or zones.
    #[error("the rules are inconsistent")]
    Rules(#[source] safe_yolo_rules::RulesError),
    /// The tracker refused its settings.
    #[error("the tracker settings are invalid")]
    Tracker(#[source] safe_yolo_rules::TrackerError),
    /// A live rules swap found no analysis task to take it.
    #[error("the analysis task is not running")]
    NotRunning,
}

/// A request to swap the rules and zones of the running engine.
struct Replace {
    rules: Vec<RuleSpec>,
    zones: Vec<ZoneSpec>,
    reply: oneshot::Sender<Result<(), safe_yolo_rules::RulesError>>,
}

/// A running analysis task.
#[derive(Debug)]
pub struct Analysis {
    task: JoinHandle<()>,
    dispatcher: Dispatcher,
    control: RulesControl,
}

/// Replaces the running rules and zones; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct RulesControl {
    tx: mpsc::Sender<Replace>,
}

impl std::fmt::Debug for Replace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replace")
            .field("rules", &self.rules.len())
            .field("zones", &self.zones.len())
            .finish()
    }
}

impl RulesControl {
    /// Swaps the rules and zones, from a blocking thread (the API's
    /// settings transaction). Rules whose spec is unchanged keep their state;
    /// alarms of removed rules are cleared.
    pub fn blocking_replace(
        &self,
        rules: Vec<RuleSpec>,
        zones: Vec<ZoneSpec>,
    ) -> Result<(), AnalysisError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .blocking_send(Replace {
                rules,
                zones,
                reply,
            })
            .map_err(|_| AnalysisError::NotRunning)?;
        rx.blocking_recv()
            .map_err(|_| AnalysisError::NotRunning)?
            .map_err(AnalysisError::Rules)
    }
}

struct CameraCtx {
    tracker: Tracker,
    tap: CameraTap,
    last_frame: Option<Instant>,
}

/// The local weekday and minute for schedules.
fn local_now() -> LocalTime {
    let now = chrono::Local::now();
    let weekday = match now.weekday() {
        chrono::Weekday::Mon => safe_yolo_rules::Weekday::Mon,
        chrono::Weekday::Tue => safe_yolo_rules::Weekday::Tue,
        chrono::Weekday::Wed => safe_yolo_rules::Weekday::Wed,
        chrono::Weekday::Thu => safe_yolo_rules::Weekday::Thu,
        chrono::Weekday::Fri => safe_yolo_rules::Weekday::Fri,
        chrono::Weekday::Sat => safe_yolo_rules::Weekday::Sat,
        chrono::Weekday::Sun => safe_yolo_rules::Weekday::Sun,
    };
    LocalTime {
        weekday,
        minute_of_day: u16::try_from(now.hour() * 60 + now.minute()).unwrap_or(0),
    }
}

/// Turns the PPE model on for the cameras that have a missing-PPE rule.
fn switch_ppe(ppe: &PpeSwitch, engine: &RuleEngine) {
    ppe.set(
        engine
            .rules()
            .filter(|r| matches!(r.kind, RuleKind::MissingPpe(_)))
            .map(|r| r.camera.clone()),
    );
}

/// What the live view shows of one analysed frame: confirmed tracks (lost
/// ones for [`SHOW_LOST`] only; tentative ones never) and the state of
/// every zone of the camera.
fn scene(seq: u64, camera: &CameraId, tracks: &[Track], engine: &RuleEngine) -> Scene {
    Scene {
        seq,
        tracks: tracks
            .iter()
            .filter(|t| match t.state {
                TrackState::Tentative => false,
                TrackState::Tracked => true,
                TrackState::Lost => t.lost_for <= SHOW_LOST,
            })
            .map(|t| SceneTrack {
                id: t.id,
                class_name: t.class_name.clone(),
                bbox: t.bbox,
                lost: t.state == TrackState::Lost,
            })
            .collect(),
        zones: engine
            .zone_states(camera)
            .iter()
            .map(|z| SceneZone {
                id: z.zone.clone(),
                inside: z.inside.clone(),
                crossings_a_to_b: z.crossings_a_to_b,
                crossings_b_to_a: z.crossings_b_to_a,
                alarm: engine
                    .active_alarms()
                    .any(|a| &a.camera == camera && a.zone.as_ref() == Some(&z.zone)),
            })
            .collect(),
    }
}

/// The signals rules watch besides what the camera sees.
#[derive(Debug, Clone)]
struct Signals {
    /// The door contact is open.
    door_open: bool,
    /// A detector is down.
    detector_down: bool,
    /// The interlocks' levels.
    interlocks: InterlockStates,
}

/// An engine input without a frame (a silent or blind camera, a door contact
/// change): nobody seen, only health and the signals.
fn frameless<'a>(
    camera: &'a CameraId,
    now: Duration,
    health: CameraHealth,
    signals: &'a Signals,
) -> FrameInput<'a> {
    FrameInput {
        camera,
        now,
        local: local_now(),
        frame_w: 1.0,
        frame_h: 1.0,
        tracks: &[],
        ppe: &[],
        health,
        door_open: signals.door_open,
        detector_down: signals.detector_down,
        tamper: TamperSet::EMPTY,
        interlocks: &signals.interlocks,
    }
}

/// The camera's newest frame as evidence (the borrow of the live watch is
/// released at once).
fn live_evidence(tap: &CameraTap) -> Option<Evidence> {
    let live = tap.live.borrow();
    let f = live.as_ref()?;
    Some(Evidence {
        picture: f.picture.clone(),
        detections: f.detections.clone(),
        culprit: None,
        captured_at: f.meta.captured_at,
        capture_to_detected: Duration::ZERO,
        inference: Duration::ZERO,
        frame_raised: false,
    })
}

fn health(tap: &CameraTap) -> CameraHealth {
    tap.health.borrow().alarm_health()
}

/// Follows the running cameras: a new camera (or a new run of one, after
/// its source changed) gets a fresh tracker, a camera gone is forgotten. Its
/// alarms stay with the rule engine, which clears them when its rules go.
fn follow_cameras(
    cams: &mut HashMap<CameraId, CameraCtx>,
    taps: &[CameraTap],
    tracker: &TrackerConfig,
) {
    cams.retain(|id, cam| taps.iter().any(|t| &t.id == id && t.same_run(&cam.tap)));
    for tap in taps {
        if cams.contains_key(&tap.id) {
            continue;
        }
        match Tracker::new(*tracker) {
            Ok(t) => {
                cams.insert(
                    tap.id.clone(),
                    CameraCtx {
                        tracker: t,
                        tap: tap.clone(),
                        last_frame: None,
                    },
                );
            }
            // Checked at start: the settings do not change.
            Err(e) => tracing::error!(camera = %tap.id, error = %e, "no tracker for camera"),
        }
    }
}

/// What the analysis task reads.
#[derive(Debug)]
pub struct AnalysisInputs {
    /// Every detected frame of every camera (the pipeline's output).
    pub frames: mpsc::Receiver<DetectedFrame>,
    /// The running cameras (health, live frame and scene publication); they
    /// come and go while the task runs.
    pub taps: CameraTaps,
    /// Switches the PPE model per camera.
    pub ppe: PpeSwitch,
    /// The door contact's debounced level (always `false` without one).
    pub door: tokio::sync::watch::Receiver<bool>,
    /// How many detector processes are down (crashed, hung, or their model
    /// does not load): while any is, every camera is blind.
    pub detectors_down: tokio::sync::watch::Receiver<usize>,
    /// The tracker settings (the model manifest's calibration), for every
    /// camera's tracker.
    pub tracker: TrackerConfig,
    /// The interlocks' levels ([`crate::Interlocks::watch`]): a rule armed by a
    /// disarmed one is not evaluated.
    pub interlocks: tokio::sync::watch::Receiver<InterlockStates>,
}

impl Analysis {
    /// Starts the task. The PPE model is switched on for the cameras whose
    /// rules need it, now and whenever the rules are replaced. Signal rules
    /// (door open, detector fault) see their signal with their camera's next
    /// analysed frame, at once when it changes, and on every tick.
    pub fn start(
        rules: Vec<RuleSpec>,
        zones: Vec<ZoneSpec>,
        inputs: AnalysisInputs,
        dispatcher: Dispatcher,
        liveness: &Liveness,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> Result<Self, AnalysisError> {
        let AnalysisInputs {
            mut frames,
            mut taps,
            ppe,
            mut door,
            mut detectors_down,
            tracker,
            mut interlocks,
        } = inputs;
        let mut engine = RuleEngine::new(rules, zones).map_err(AnalysisError::Rules)?;
        switch_ppe(&ppe, &engine);
        // The tracker's settings are checked once, here: a camera joining
        // later gets a tracker of the same settings.
        Tracker::new(tracker).map_err(AnalysisError::Tracker)?;
        let mut cams: HashMap<CameraId, CameraCtx> = HashMap::new();
        follow_cameras(&mut cams, &taps.seen(), &tracker);
        let mut taps_live = true;
        let (control_tx, mut control_rx) = mpsc::channel::<Replace>(4);
        let hb = liveness.register("analysis");
        let metrics = metrics.clone();
        let d = dispatcher.clone();
        let epoch = Instant::now();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut door_live = true;
            let mut down_live = true;
            let mut interlocks_live = true;
            let signals =
                |door: &tokio::sync::watch::Receiver<bool>,
                 down: &tokio::sync::watch::Receiver<usize>,
                 interlocks: &tokio::sync::watch::Receiver<InterlockStates>| {
                    Signals {
                        door_open: *door.borrow(),
                        detector_down: *down.borrow() > 0,
                        interlocks: interlocks.borrow().clone(),
                    }
                };
            // Signal rules (door open, detector fault) are stepped at once
            // when their signal changes and on every tick (for their
            // longer-than times), besides frames: a blind camera has none.
            let signal_step =
                |engine: &mut RuleEngine, cams: &HashMap<CameraId, CameraCtx>, sig: &Signals| {
                    for (id, cam) in cams {
                        if !engine.has_signal_rules(id) {
                            continue;
                        }
                        let input = frameless(id, epoch.elapsed(), health(&cam.tap), sig);
                        for decision in engine.evaluate_signals(&input) {
                            // The evidence is the camera's newest live frame.
                            let evidence = decision
                                .is_raise()
                                .then(|| live_evidence(&cam.tap))
                                .flatten();
                            d.handle(decision, evidence);
                        }
                    }
                };
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    changed = door.changed(), if door_live => {
                        if changed.is_err() {
                            door_live = false;
                            continue;
                        }
                        door.borrow_and_update();
                        signal_step(&mut engine, &cams, &signals(&door, &detectors_down, &interlocks));
                    }
                    changed = detectors_down.changed(), if down_live => {
                        if changed.is_err() {
                            down_live = false;
                            continue;
                        }
                        detectors_down.borrow_and_update();
                        signal_step(&mut engine, &cams, &signals(&door, &detectors_down, &interlocks));
                    }
                    changed = interlocks.changed(), if interlocks_live => {
                        if changed.is_err() {
                            interlocks_live = false;
                            continue;
                        }
                        interlocks.borrow_and_update();
                        signal_step(&mut engine, &cams, &signals(&door, &detectors_down, &interlocks));
                    }
                    changed = taps.changed(), if taps_live => {
                        if !changed {
                            taps_live = false;
                            continue;
                        }
                        follow_cameras(&mut cams, &taps.seen(), &tracker);
                    }
                    Some(req) = control_rx.recv() => {
                        let result = engine.replace(req.rules, req.zones).map(|clears| {
                            for decision in clears {
                                d.handle(decision, None);
                            }
                            tracing::info!("rules and zones replaced at run time");
                        });
                        switch_ppe(&ppe, &engine);
                        let _ = req.reply.send(result);
                    }
                    f = frames.recv() => {
                        let Some(f) = f else { break };
                        hb.beat();
                        let Some(cam) = cams.get_mut(&f.meta.camera) else { continue };
                        cam.last_frame = Some(Instant::now());
                        let t0 = Instant::now();
                        let persons: Vec<_> = f.detections.iter().filter(|d| &*d.class_name == PERSON_CLASS).cloned().collect();
                        let (w, h) = (f.picture.width() as f32, f.picture.height() as f32);
                        let tracks = cam.tracker.update(&persons, w, h, epoch.elapsed());
                        let sig = signals(&door, &detectors_down, &interlocks);
                        let input = FrameInput {
                            camera: &f.meta.camera,
                            now: epoch.elapsed(),
                            local: local_now(),
                            frame_w: w,
                            frame_h: h,
                            tracks: &tracks,
                            ppe: &f.ppe,
                            health: health(&cam.tap),
                            door_open: sig.door_open,
                            detector_down: sig.detector_down,
                            tamper: f.tamper,
                            interlocks: &sig.interlocks,
                        };
                        let decisions = engine.evaluate(&input);
                        cam.tap.scene.publish(scene(f.meta.seq, &f.meta.camera, &tracks, &engine));
                        metrics
                            .stage_latency
                            .get_or_create(&Metrics::stage(f.meta.camera.as_str(), "rules"))
                            .observe(t0.elapsed().as_secs_f64());
                        if let Ok(lat) = std::time::SystemTime::now().duration_since(f.detected_at) {
                            metrics
                                .stage_latency
                                .get_or_create(&Metrics::stage(f.meta.camera.as_str(), "detected_to_rules"))
                                .observe(lat.as_secs_f64());
                        }
                        for decision in decisions {
                            let evidence = match &decision {
                                Decision::Raise(a) => Some(Evidence {
                                    picture: f.picture.clone(),
                                    detections: f.detections.clone(),
                                    culprit: a.track.and_then(|t| tracks.iter().find(|tr| tr.id == t)).map(|tr| tr.bbox),
                                    captured_at: f.meta.captured_at,
                                    capture_to_detected: f.times.capture_to_detected,
                                    inference: f.times.detect + f.times.ppe,
                                    frame_raised: true,
                                }),
                                Decision::Clear { .. } => None,
                            };
                            d.handle(decision, evidence);
                        }
                    }
                    _ = ticker.tick() => {
                        hb.beat();
                        let sig = signals(&door, &detectors_down, &interlocks);
                        signal_step(&mut engine, &cams, &sig);
                        // Cameras without recent frames: feed their health so
                        // camera-offline rules fire (and clear) on time.
                        for (id, cam) in &mut cams {
                            let silent = cam.last_frame.is_none_or(|t| t.elapsed() > TICK * 2);
                            if !silent {
                                continue;
                            }
                            let health = health(&cam.tap);
                            if health != CameraHealth::Offline {
                                // Slow detection, not a dead camera: person
                                // rules keep their state until frames arrive
                                // (a tampered camera's frames carry its reasons).
                                continue;
                            }
                            let input = frameless(id, epoch.elapsed(), health, &sig);
                            // An offline camera shows nobody: its person
                            // alarms end (sirens still wait for an
                            // acknowledgement) and its offline rules fire.
                            for decision in engine.evaluate(&input) {
                                d.handle(decision, None);
                            }
                        }
                    }
                }
            }
            hb.retire();
            tracing::debug!("analysis stopped");
        });
        Ok(Self {
            task,
            dispatcher,
            control: RulesControl { tx: control_tx },
        })
    }

    /// A handle that swaps the running rules and zones.
    pub fn control(&self) -> RulesControl {
        self.control.clone()
    }

    /// Stops the task and waits for in-flight event writes.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        self.dispatcher.drain(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use safe_yolo_domain::BBox;

    use super::*;

    fn track(id: u64, state: TrackState, lost_ms: u64) -> Track {
        Track {
            id,
            bbox: BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 10.0,
                y2: 20.0,
            },
            class_id: 0,
            class_name: Arc::from("person"),
            score: 0.8,
            age: 5,
            hits: 3,
            frames_lost: u32::from(lost_ms > 0),
            lost_for: Duration::from_millis(lost_ms),
            state,
        }
    }

    #[test]
    fn the_scene_hides_tentative_and_long_lost_tracks() {
        let engine = RuleEngine::new(Vec::new(), Vec::new()).unwrap();
        let camera = CameraId::new("cam").unwrap();
        let tracks = [
            track(1, TrackState::Tracked, 0),
            track(2, TrackState::Tentative, 0),
            track(3, TrackState::Lost, 400),
            track(4, TrackState::Lost, 1000),
            track(5, TrackState::Lost, 1100),
        ];
        let s = scene(7, &camera, &tracks, &engine);
        let shown: Vec<(u64, bool)> = s.tracks.iter().map(|t| (t.id, t.lost)).collect();
        assert_eq!(shown, vec![(1, false), (3, true), (4, true)]);
    }
}

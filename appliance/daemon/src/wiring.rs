//! Picks the real or simulated backend for every edge and builds the
//! subsystems from the configuration. The only place that knows both the
//! configuration model and every subsystem's own settings types.

use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use safe_yolo_config::Config;
use safe_yolo_outputs as outputs;
use safe_yolo_pipeline::{CameraSpec, PipelineConfig, SourceFactory};
use safe_yolo_store::{Opener, RetentionPolicy, Storage, StorageSettings, Store, StoreConfig};
use safe_yolo_telemetry::Metrics;

/// The running outputs: a runner thread that owns the backend.
#[derive(Debug)]
pub struct Outputs {
    handle: outputs::OutputsHandle,
    thread: Option<JoinHandle<outputs::RunnerReport>>,
}

/// Opens the outputs backend and starts the runner, which puts every line
/// in its safe state before it serves anything.
pub async fn start_outputs(config: &Config, metrics: &Metrics) -> anyhow::Result<Outputs> {
    let validated = config
        .outputs
        .clone()
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("invalid outputs configuration")?;
    let (backend, _sim) =
        outputs::open_backend(&validated).context("cannot open the outputs backend")?;
    let driver = outputs::Driver::new(validated.specs.clone(), validated.settings)
        .context("invalid output lines")?;
    let (runner, handle) = outputs::OutputsRunner::new(
        backend,
        driver,
        validated.debounce_periods(),
        validated.tick,
    );
    let histogram = metrics.glass_to_output.clone();
    let runner = runner.with_latency_observer(outputs::LatencyObserver::new(move |source, d| {
        histogram.observe(d.as_secs_f64());
        tracing::info!(
            rule = %source.rule,
            event = %source.event,
            glass_to_output_ms = d.as_secs_f64() * 1000.0,
            "alarm reached the output lines"
        );
    }));
    let thread = runner
        .spawn_thread()
        .context("cannot start the outputs thread")?;
    // Mirror line levels into the metrics.
    let mut status = handle.watch_status();
    let m = metrics.clone();
    tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let s = status.borrow().clone();
            for o in &s.outputs {
                m.output_level
                    .get_or_create(&safe_yolo_telemetry::metrics::OutputLabels {
                        output: o.id.to_string(),
                    })
                    .set(i64::from(o.on));
            }
        }
    });
    Ok(Outputs {
        handle,
        thread: Some(thread),
    })
}

impl Outputs {
    /// The handle rules and the API command the outputs through.
    pub fn handle(&self) -> &outputs::OutputsHandle {
        &self.handle
    }

    /// Feeds the pipeline's health to the "healthy" line (called by the
    /// liveness monitor on every check).
    pub fn health_callback(&self) -> impl Fn(bool) + Send + 'static {
        let h = self.handle.clone();
        move |alive| {
            if let Err(e) = h.pipeline_health(alive) {
                tracing::warn!(error = %e, "cannot report pipeline health to the outputs");
            }
        }
    }

    /// Puts every line in its safe state and stops the runner.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.handle.shutdown().await {
            tracing::error!(error = %e, "outputs did not confirm their safe state");
        }
        if let Some(t) = self.thread.take() {
            match tokio::task::spawn_blocking(move || t.join()).await {
                Ok(Ok(report)) => tracing::info!(report = ?report, "outputs in safe state"),
                _ => tracing::error!("outputs thread ended abnormally"),
            }
        }
    }
}

/// The box's name in the integrations' topics and messages: `integrations.box_name`,
/// else the host name (as a topic level: `/`, `+`, `#` and spaces become `-`).
pub fn box_name(config: &Config) -> String {
    if let Some(n) = &config.integrations.box_name {
        return n.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "safe-yolo".to_owned()
    } else {
        name
    }
}

/// The store: opened (and migrated, or rolled back) off the reactor, with its writer
/// thread and retention. Never a reason not to start: a store that cannot be opened is
/// logged loudly, the events wait in memory (`safeyolo_events_buffered`) and it is retried
/// until it opens (see [`Storage`]).
pub async fn start_store(config: &Config, metrics: &Metrics) -> Storage {
    let s = &config.storage;
    let store_config = StoreConfig {
        retention: RetentionPolicy {
            event_max_age: Some(s.event_retention),
            snapshot_max_age: Some(s.event_retention),
            snapshot_quota_bytes: s.snapshot_quota_bytes,
            audit_max_age: Some(s.audit_retention),
            ..RetentionPolicy::default()
        },
        outbox_max_entries: config.integrations.outbox_max_entries,
        ..StoreConfig::new(s.state_dir.clone())
    };
    let opener: Opener = std::sync::Arc::new(move || Store::open(store_config.clone()));
    let gauge = metrics.events_buffered.clone();
    Storage::start(
        opener,
        StorageSettings {
            retention_every: RETENTION_EVERY,
            ..StorageSettings::default()
        },
        Some(Box::new(move |depth| {
            gauge.set(i64::try_from(depth).unwrap_or(i64::MAX));
        })),
    )
    .await
}

/// How often retention runs (it also runs early when the snapshot quota is hit).
pub const RETENTION_EVERY: Duration = Duration::from_secs(600);

/// The pipeline's settings from the configuration (enabled cameras only), its
/// cameras opened under `policy`.
pub fn pipeline_config(config: &Config, policy: safe_yolo_capture::SourcePolicy) -> PipelineConfig {
    PipelineConfig {
        cameras: camera_specs(config),
        sources: camera_sources(policy),
        detect_workers: config.system.detect_workers.get(),
        analysis_queue: 64,
        detect_nice: config.system.detect_nice,
    }
}

/// Shortest silence after which a camera is marked offline; a camera-offline
/// rule's `min_duration` counts from then.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(2);

/// Frame intervals of silence after which a slow camera is marked offline.
const OFFLINE_FRAMES: f32 = 3.0;

/// The enabled cameras as the pipeline runs them. A camera's spec depends on
/// its own settings only, so editing a rule or another camera never restarts it.
pub fn camera_specs(config: &Config) -> Vec<CameraSpec> {
    config
        .cameras
        .iter()
        .filter(|c| c.enabled)
        .map(|c| {
            // An RTSP camera sends at its own rate: the default silence applies.
            let fps = match &c.source {
                safe_yolo_capture::SourceRequest::V4l2 { fps, .. }
                | safe_yolo_capture::SourceRequest::Replay { fps, .. } => *fps,
                safe_yolo_capture::SourceRequest::Rtsp(_) => {
                    OFFLINE_FRAMES / OFFLINE_AFTER.as_secs_f32()
                }
            };
            let frames = Duration::try_from_secs_f32(OFFLINE_FRAMES / fps.max(0.01))
                .unwrap_or(OFFLINE_AFTER);
            CameraSpec {
                id: c.id.clone(),
                source: c.source.clone(),
                detect_every: c.detect_every.get(),
                queue_depth: c.queue_depth.get(),
                offline_after: OFFLINE_AFTER.max(frames),
                tamper: c.tamper,
            }
        })
        .collect()
}

/// The capture sandbox: the media directory, and the board profile's video
/// decoders for RTSP cameras (none without a board: whatever is installed).
pub fn source_policy(
    config: &Config,
    board: Option<&safe_yolo_board::profile::Profile>,
) -> safe_yolo_capture::SourcePolicy {
    let decoders = board.map(|p| p.video_decoders.clone()).unwrap_or_default();
    safe_yolo_capture::SourcePolicy::new(config.storage.media_dir.clone()).with_decoders(decoders)
}

/// The configuration's board profile, if it names one (`None` also when it does
/// not load: the daemon's board check reports that and stops the start).
pub fn board_profile(config: &Config) -> Option<safe_yolo_board::profile::Profile> {
    let board = config.system.board.as_deref()?;
    safe_yolo_board::profile::load_named(&config.system.board_dir, board).ok()
}

/// The real camera sources: `safe_yolo_capture::open`, every (re)open checked
/// against the sandbox (the media directory, video devices only).
pub fn camera_sources(policy: safe_yolo_capture::SourcePolicy) -> SourceFactory {
    std::sync::Arc::new(move |request: &safe_yolo_capture::SourceRequest| {
        safe_yolo_capture::open(request, &policy)
    })
}

/// The tracker settings for a model: the defaults, with what the model
/// manifest's `[tracking]` section calibrates. Checked here, so a bad
/// calibration stops the start with the field named.
pub fn tracker_config(
    m: &safe_yolo_detect::Manifest,
) -> Result<safe_yolo_rules::TrackerConfig, safe_yolo_rules::TrackerError> {
    let k = &m.spec.tracking;
    let d = safe_yolo_rules::TrackerConfig::default();
    let secs = |v: Option<f32>, default: Duration| {
        v.and_then(|s| Duration::try_from_secs_f32(s).ok())
            .unwrap_or(default)
    };
    let cfg = safe_yolo_rules::TrackerConfig {
        high_score: k.high_score.unwrap_or(d.high_score),
        low_score: k.low_score.unwrap_or(d.low_score),
        new_track_score: k.new_track_score.unwrap_or(d.new_track_score),
        match_iou: k.match_iou.unwrap_or(d.match_iou),
        min_hits: k.min_hits.unwrap_or(d.min_hits),
        tentative_timeout: secs(k.tentative_timeout_s, d.tentative_timeout),
        lost_timeout: secs(k.lost_timeout_s, d.lost_timeout),
        gate: k.gate.unwrap_or(d.gate),
        gate_per_second: k.gate_per_second.unwrap_or(d.gate_per_second),
        ..d
    };
    cfg.validate()?;
    Ok(cfg)
}

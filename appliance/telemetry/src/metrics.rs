//! Prometheus metrics.
//!
//! One [`Metrics`] value is built at start-up and passed (cloned, cheaply) to
//! every part that records something. `/metrics` renders it in the
//! Prometheus text format.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels: one camera.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabels {
    /// Camera id.
    pub camera: String,
}

/// Labels: a camera and a pipeline stage or queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// Camera id.
    pub camera: String,
    /// Stage or queue name.
    pub stage: String,
}

/// Labels: a rule and its severity.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// Rule id.
    pub rule: String,
    /// Severity.
    pub severity: String,
}

/// Labels: one output line.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabels {
    /// Output id.
    pub output: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The appliance's metric families.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Frames delivered by each camera's source.
    pub frames_captured: Family<CameraLabels, Counter>,
    /// Frames that went through the detector.
    pub frames_detected: Family<CameraLabels, Counter>,
    /// Frames dropped, by the queue that dropped them.
    pub frames_dropped: Family<StageLabels, Counter>,
    /// Current depth of each bounded queue.
    pub queue_depth: Family<StageLabels, Gauge>,
    /// Stage latencies in seconds (`capture_to_detected`, `detected_to_rules`, `inference`, ...).
    pub stage_latency: Family<StageLabels, Histogram, fn() -> Histogram>,
    /// 1 while the camera delivers frames, 0 when offline.
    pub camera_online: Family<CameraLabels, Gauge>,
    /// 1 while the camera's tamper check reports a reason (frozen, covered,
    /// blinded, defocused, moved), 0 otherwise.
    pub camera_tampered: Family<CameraLabels, Gauge>,
    /// Source (re)open attempts that failed.
    pub camera_reconnects: Family<CameraLabels, Counter>,
    /// Alarm events raised.
    pub events_raised: Family<RuleLabels, Counter>,
    /// Current level of each output line (1 active).
    pub output_level: Family<OutputLabels, Gauge>,
    /// 1 while a pipeline stage is stalled (watchdog not fed).
    pub pipeline_stalled: Gauge,
    /// Frame capture to the output line write of the alarm it raised, seconds.
    pub glass_to_output: Histogram,
    /// Enabled cameras the rules watch; 0: the appliance guards nothing (not
    /// configured yet).
    pub cameras_watched: Gauge,
    /// Events waiting in memory because the store cannot take them (not open, or
    /// its writes fail); 0 when storage is healthy.
    pub events_buffered: Gauge,
    /// Detector child processes that crashed, exited, hung or broke the protocol
    /// (each was killed and restarted).
    pub detector_faults: Counter,
    /// Detector child processes down now (their frames are not detected).
    pub detectors_down: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("safeyolo");
        let m = Metrics {
            registry: Arc::new(Mutex::new(Registry::default())),
            frames_captured: Family::default(),
            frames_detected: Family::default(),
            frames_dropped: Family::default(),
            queue_depth: Family::default(),
            stage_latency: Family::new_with_constructor(latency_histogram),
            camera_online: Family::default(),
            camera_tampered: Family::default(),
            camera_reconnects: Family::default(),
            events_raised: Family::default(),
            output_level: Family::default(),
            pipeline_stalled: Gauge::default(),
            glass_to_output: latency_histogram(),
            cameras_watched: Gauge::default(),
            events_buffered: Gauge::default(),
            detector_faults: Counter::default(),
            detectors_down: Gauge::default(),
        };
        registry.register(
            "frames_captured",
            "Frames delivered by the camera source",
            m.frames_captured.clone(),
        );
        registry.register(
            "frames_detected",
            "Frames run through the detector",
            m.frames_detected.clone(),
        );
        registry.register(
            "frames_dropped",
            "Frames dropped by a full queue (drop-oldest)",
            m.frames_dropped.clone(),
        );
        registry.register(
            "queue_depth",
            "Frames waiting in a bounded queue",
            m.queue_depth.clone(),
        );
        registry.register(
            "stage_latency_seconds",
            "Latency of a pipeline stage",
            m.stage_latency.clone(),
        );
        registry.register(
            "camera_online",
            "1 while the camera delivers frames",
            m.camera_online.clone(),
        );
        registry.register(
            "camera_tampered",
            "1 while the camera's tamper check reports a reason",
            m.camera_tampered.clone(),
        );
        registry.register(
            "camera_reconnects",
            "Failed attempts to (re)open a camera",
            m.camera_reconnects.clone(),
        );
        registry.register(
            "events_raised",
            "Alarm events raised",
            m.events_raised.clone(),
        );
        registry.register(
            "output_level",
            "Current level of an output line (1 = active)",
            m.output_level.clone(),
        );
        registry.register(
            "pipeline_stalled",
            "1 while a pipeline stage is stalled",
            m.pipeline_stalled.clone(),
        );
        registry.register(
            "glass_to_output_seconds",
            "Frame capture to the output line change of the alarm it raised",
            m.glass_to_output.clone(),
        );
        registry.register(
            "cameras_watched",
            "Enabled cameras the rules watch (0: not configured, nothing is guarded)",
            m.cameras_watched.clone(),
        );
        registry.register(
            "events_buffered",
            "Events kept in memory because the store cannot take them (written in order when it can)",
            m.events_buffered.clone(),
        );
        registry.register(
            "detector_faults",
            "Detector processes that crashed, exited or hung (killed and restarted)",
            m.detector_faults.clone(),
        );
        registry.register(
            "detectors_down",
            "Detector processes down now: their frames are not detected",
            m.detectors_down.clone(),
        );
        *m.registry.lock() = registry;
        m
    }

    /// Registers an extra metric (for subsystems that own their own counters).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry.lock().register(name, help, metric);
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }

    /// Shorthand for a camera's labels.
    pub fn camera(camera: &str) -> CameraLabels {
        CameraLabels {
            camera: camera.to_owned(),
        }
    }

    /// Shorthand for a camera + stage's labels.
    pub fn stage(camera: &str, stage: &str) -> StageLabels {
        StageLabels {
            camera: camera.to_owned(),
            stage: stage.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.frames_captured
            .get_or_create(&Metrics::camera("dock"))
            .inc_by(3);
        m.stage_latency
            .get_or_create(&Metrics::stage("dock", "inference"))
            .observe(0.040);
        let text = m.render();
        assert!(
            text.contains("safeyolo_frames_captured_total{camera=\"dock\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("safeyolo_stage_latency_seconds_bucket"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

//! The validated configuration. Every value here has passed its checks.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use safe_yolo_domain::{CameraId, Line, Polygon, ZoneId};

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Daemon-wide settings.
    pub system: SystemConfig,
    /// The detector and its model.
    pub detector: DetectorConfig,
    /// Cameras, in file order.
    pub cameras: Vec<CameraConfig>,
    /// Zones (polygons), in file order.
    pub zones: Vec<ZoneConfig>,
    /// Counting lines, in file order.
    pub lines: Vec<LineConfig>,
    /// Safety rules, in file order.
    pub rules: Vec<crate::rules::RuleConfig>,
    /// Physical outputs and inputs.
    pub outputs: OutputsConfig,
    /// The HTTPS API.
    pub api: ApiConfig,
    /// Where state lives and how long it is kept.
    pub storage: StorageConfig,
    /// Feature switches.
    pub features: Features,
}

impl Config {
    /// Zones and lines, as the rule engine sees them.
    pub fn zone_specs(&self) -> Vec<safe_yolo_rules::ZoneSpec> {
        use safe_yolo_rules::{ZoneShape, ZoneSpec};
        self.zones
            .iter()
            .map(|z| ZoneSpec {
                id: z.id.clone(),
                camera: z.camera.clone(),
                shape: ZoneShape::Area(z.polygon.clone()),
            })
            .chain(self.lines.iter().map(|l| ZoneSpec {
                id: l.id.clone(),
                camera: l.camera.clone(),
                shape: ZoneShape::Line(l.line),
            }))
            .collect()
    }
}

/// Daemon-wide settings.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// Board profile name (a file in `board_dir`), if any.
    pub board: Option<String>,
    /// Where board profiles are installed.
    pub board_dir: PathBuf,
    /// A pipeline stage silent for this long counts as stalled: the systemd
    /// watchdog pings stop and the "healthy" output drops.
    pub stall_timeout: Duration,
    /// How long shutdown may take before the daemon gives up waiting.
    pub shutdown_timeout: Duration,
    /// Detector worker threads (inference runs there, never on the reactor).
    pub detect_workers: NonZeroUsize,
    /// Nice value of inference (detect workers and their libraries' threads):
    /// below capture, rules and outputs, which keep the default 0.
    pub detect_nice: i32,
    /// Nice value of the HTTPS API and live view: below inference.
    pub api_nice: i32,
}

/// Which inference backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The fastest backend present on this box.
    Auto,
    /// tract-onnx, pure Rust, every box.
    Tract,
    /// ONNX Runtime (x86 and NVIDIA boxes).
    OnnxRuntime,
    /// Rockchip NPU.
    Rknn,
}

/// The detector and its model.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// Backend choice.
    pub backend: Backend,
    /// Path of the model manifest (TOML).
    pub model: PathBuf,
    /// Optional second model for PPE (helmets, vests) manifest.
    pub ppe_model: Option<PathBuf>,
    /// Intra-op threads per inference.
    pub threads: NonZeroUsize,
    /// Overrides the model's default score threshold.
    pub score_threshold: Option<f32>,
    /// Only these class names are kept (empty: all).
    pub classes: Vec<String>,
}

/// How a replay source is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// At the footage's frame rate, as a live camera would.
    Realtime,
    /// As fast as the pipeline takes frames.
    Fast,
}

/// Preferred V4L2 pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Let the driver's list decide (MJPEG preferred for bandwidth).
    Auto,
    /// Motion JPEG.
    Mjpeg,
    /// Packed YUV 4:2:2.
    Yuyv,
    /// Semi-planar YUV 4:2:0.
    Nv12,
    /// Packed RGB 8:8:8.
    Rgb24,
}

/// Where a camera's frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// A real V4L2 capture device.
    V4l2 {
        /// Device path (`/dev/video0` or a stable `/dev/v4l/by-id/...` link).
        device: PathBuf,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Requested frame rate.
        fps: f32,
        /// Preferred pixel format.
        format: PixelFormat,
    },
    /// Recorded footage: a folder of JPEG frames or an MJPEG file.
    Replay {
        /// Path inside the media directory (absolute after loading).
        path: PathBuf,
        /// Start again at the end.
        looping: bool,
        /// Pacing.
        pace: Pace,
        /// Frame rate used for pacing.
        fps: f32,
        /// First frame to play (staggers cameras that share footage).
        start_frame: u64,
    },
}

/// One camera.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Identifier.
    pub id: CameraId,
    /// Human name shown in the UI.
    pub name: String,
    /// Disabled cameras are not opened.
    pub enabled: bool,
    /// Frame source.
    pub source: SourceConfig,
    /// Detection runs on every Nth frame (a turn at the shared detector; a
    /// frame still waiting at the next frame's arrival is replaced by it).
    pub detect_every: NonZeroU32,
    /// Bound of each inter-stage queue, in frames.
    pub queue_depth: NonZeroUsize,
}

/// Which point of a person's box is tested against zones (the rule engine's word).
pub use safe_yolo_rules::Anchor;

/// A polygonal zone.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// Identifier (shared namespace with lines).
    pub id: ZoneId,
    /// Camera the zone is drawn on.
    pub camera: CameraId,
    /// Human name.
    pub name: String,
    /// Outline in normalised coordinates.
    pub polygon: Polygon,
    /// Default anchor for rules on this zone.
    pub anchor: Anchor,
}

/// A counting line.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// Identifier (shared namespace with zones).
    pub id: ZoneId,
    /// Camera the line is drawn on.
    pub camera: CameraId,
    /// Human name.
    pub name: String,
    /// The line; side A is on the left walking from `from` to `to`.
    pub line: Line,
}

/// Event severity.
pub use safe_yolo_domain::Severity;

/// Crossing direction for a line rule (the rule engine's word).
pub use safe_yolo_rules::LineDirection;

pub use safe_yolo_domain::Weekday;

/// The outputs section is the outputs crate's own model, checked by its own
/// validator as part of the configuration's (`OutputsConfig::problems`).
pub use safe_yolo_outputs::config::{
    BackendKind, InputConfig, InputsConfig, LineConfig as OutputLineConfig, LineRef, OutputsConfig,
};
pub use safe_yolo_outputs::{OutputRole, SafeState};

/// TLS protocol floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    /// TLS 1.3 only (default).
    Tls13,
    /// TLS 1.2 allowed (explicit opt-in for old clients).
    Tls12,
}

/// An IP network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The HTTPS API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// HTTPS listen address.
    pub bind: SocketAddr,
    /// TLS floor.
    pub tls_min_version: TlsMinVersion,
    /// Certificate chain (PEM); generated on first boot when absent.
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// Plain-HTTP listener that only redirects to HTTPS.
    pub http_redirect_bind: Option<SocketAddr>,
    /// Origins allowed by CORS (none by default).
    pub cors_origins: Vec<String>,
    /// Networks from which first-boot setup is allowed without the token.
    pub setup_networks: Vec<IpNet>,
    /// Live-stream JPEG quality.
    pub jpeg_quality: u8,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Sustained API requests per second allowed per credential (and per
    /// source address for unauthenticated attempts).
    pub rate_limit_per_s: u32,
    /// Requests allowed at once after an idle period.
    pub rate_limit_burst: u32,
}

/// Where state lives and how long it is kept.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Database, snapshots, keys and certificates.
    pub state_dir: PathBuf,
    /// Replay sources must be inside this directory.
    pub media_dir: PathBuf,
    /// Events older than this are pruned.
    pub event_retention: Duration,
    /// Audit rows older than this are pruned.
    pub audit_retention: Duration,
    /// Disk quota for snapshots.
    pub snapshot_quota_bytes: u64,
}

/// Feature switches.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// PPE rules and the PPE model.
    pub ppe: bool,
    /// MJPEG and WebSocket live streams.
    pub live_stream: bool,
    /// The embedded web UI.
    pub web_ui: bool,
    /// JPEG snapshots with events.
    pub snapshots: bool,
}

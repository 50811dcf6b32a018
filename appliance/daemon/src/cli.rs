//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// SAFE-YOLO: people-safety CCTV appliance.
///
/// Watches cameras with an on-box person detector, raises alarms when a
/// person enters a forbidden zone, lacks protective equipment, lingers or
/// crowds a zone, and drives sirens and relays.
#[derive(Debug, Parser)]
#[command(name = "safe-yolo", version, propagate_version = true)]
pub struct Cli {
    /// Log output: auto (journald under systemd, text on a terminal), text, json, journald.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Auto, global = true)]
    pub log_format: LogFormatArg,

    /// Log filter, e.g. `info` or `info,safe_yolo_pipeline=debug`.
    #[arg(long, env = "SAFEYOLO_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance (this is what the systemd unit starts).
    ///
    /// Refuses to start when the configuration has any problem; run
    /// `check-config` to see them all.
    Run {
        /// Configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration file and list every problem in it.
    ///
    /// Exits 0 when the file is valid, 1 when it has problems (each line
    /// names the key and the reason), 2 when it cannot be read.
    CheckConfig {
        /// Configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the Modbus register map of a configuration file, as a Markdown table.
    ///
    /// For the plant's documentation and the PLC programmer: the map of the
    /// file's rules, cameras and zones (the running box's map, with the edits
    /// made through the API, is `GET /api/v1/system/modbus`). Exits 1 when the
    /// file has problems or no `[integrations.modbus]`, 2 when it cannot be read.
    ModbusMap {
        /// Configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the version and build details.
    Version,
    /// Run the detector on image files and print what it finds.
    ///
    /// For checking a model on pictures of the site. Prints a table per
    /// image, or one JSON object per line with `--json`. Exits 1 when the
    /// model cannot be loaded or any image cannot be read.
    Detect(DetectArgs),
    /// Measure the frame pipeline on the configured cameras.
    ///
    /// Runs capture, decode, detection and a live-stream JPEG encode of every
    /// frame (no API, no rules, no outputs) for a while, then prints per
    /// camera: frame rates, drops, per-frame overhead outside inference,
    /// memory and glass-to-detection latency.
    Bench(BenchArgs),
    /// Measure how well persons keep one track id at low detection rates.
    ///
    /// Runs the detector on every frame of the demo footage once (cached),
    /// tracks at the full rate for reference trajectories, then tracks the
    /// same detections at 1/2 ... 1/10 of the frames and prints IDF1 and ID
    /// switches against the reference per detection rate.
    BenchTracking(BenchTrackingArgs),
    /// Restore a backup into the state directory of a stopped appliance.
    ///
    /// BACKUP is the tar file downloaded from `GET /api/v1/system/backup`
    /// (or its unpacked folder). Every file is checked against the backup's
    /// manifest first; the current database and snapshots are moved aside,
    /// never deleted. Refuses while the daemon runs. Exits 0 when restored,
    /// 1 on failure, 2 when the configuration cannot be read.
    Restore(RestoreArgs),
    /// The detector role: started by `run` itself, one process per model and
    /// worker; talks to the daemon over its standard input (a socket).
    #[command(hide = true)]
    DetectorWorker {
        /// The model manifest.
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The load options, as JSON.
        #[arg(long, value_name = "JSON")]
        options: String,
        /// The child's private scratch directory (the one place it may write).
        #[arg(long, value_name = "DIR")]
        scratch: Option<PathBuf>,
        /// An accelerator device node (or directory of them) it may use.
        #[arg(long = "device", value_name = "PATH")]
        devices: Vec<PathBuf>,
        /// Runs without the sandbox (`detector.sandbox = false`).
        #[arg(long)]
        no_sandbox: bool,
    },
}

/// `safe-yolo restore` arguments.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Configuration file (names the state directory).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Also replace the configuration file with the backup's copy (the
    /// current file is kept beside it).
    #[arg(long)]
    pub with_config: bool,
    /// Restore a backup that this box did not sign (another box's, one taken
    /// before the box had a signing key, or one changed after signing). The
    /// restored audit log records that it was foreign and why.
    #[arg(long)]
    pub accept_foreign: bool,
    /// The backup: a `.tar` file or a folder.
    #[arg(value_name = "BACKUP")]
    pub backup: PathBuf,
}

/// `safe-yolo detect` arguments.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["config", "model"])))]
pub struct DetectArgs {
    /// Take the detector settings from this configuration file's `[detector]`
    /// section (the options below override them).
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model manifest (`model.toml`).
    #[arg(long, value_name = "MANIFEST")]
    pub model: Option<PathBuf>,
    /// Inference backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Inference threads.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// Score threshold (0..1), overriding the model's default.
    #[arg(long, value_name = "S", value_parser = parse_score)]
    pub score: Option<f32>,
    /// One JSON object per image and line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// JPEG or PNG images.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
}

/// `safe-yolo bench` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Configuration file (its cameras and detector are used).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Length of the measured window.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Start-up time excluded from the figures (detector warm-up, first frames).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup: u64,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Length of the bare-detector run before the cameras start (the ceiling
    /// the pipeline is compared with); 0 skips it.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub bare_seconds: u64,
    /// No viewer on the cameras' live streams (by default every camera has one,
    /// served by the API's own live hub).
    #[arg(long)]
    pub no_viewers: bool,
}

/// `safe-yolo bench-tracking` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchTrackingArgs {
    /// Model manifest (`model.toml`); its fp32 weights are run.
    #[arg(
        long,
        value_name = "MANIFEST",
        default_value = "models/nanodet-m-416-coco/model.toml"
    )]
    pub model: PathBuf,
    /// Folder of the footage's JPEG frames, in name order.
    #[arg(long, value_name = "DIR", default_value = "demo-media/vtest-frames")]
    pub frames: PathBuf,
    /// Frame rate of the footage.
    #[arg(long, value_name = "FPS", default_value_t = 10.0, value_parser = parse_fps)]
    pub fps: f64,
    /// Detection cache (default: `.cache/tracking-<model>-<sha>.tsv` beside the frames folder).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Inference backend for the detection pass.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Inference threads for the detection pass.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses a number in `lo..=hi`.
fn parse_within<T>(s: &str, lo: T, hi: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let v: T = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if lo <= v && v <= hi {
        Ok(v)
    } else {
        Err(format!("must be between {lo} and {hi}, got {v}"))
    }
}

/// Parses a frame rate: a number in `1..=120`.
fn parse_fps(s: &str) -> Result<f64, String> {
    parse_within(s, 1.0, 120.0)
}

/// Parses a score threshold: a number in `0..=1`.
fn parse_score(s: &str) -> Result<f32, String> {
    parse_within(s, 0.0, 1.0)
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The fastest backend available on this box.
    Auto,
    /// tract (pure Rust, always available).
    Tract,
    /// ONNX Runtime (when built in and its library is installed).
    Onnxruntime,
    /// Rockchip NPU (when built in and librknnrt is installed).
    Rknn,
}

impl From<BackendArg> for safe_yolo_detect::BackendChoice {
    fn from(v: BackendArg) -> Self {
        match v {
            BackendArg::Auto => Self::Auto,
            BackendArg::Tract => Self::Tract,
            BackendArg::Onnxruntime => Self::OnnxRuntime,
            BackendArg::Rknn => Self::Rknn,
        }
    }
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Journald under systemd, text on a terminal.
    Auto,
    /// Readable text on stderr.
    Text,
    /// JSON lines on stderr.
    Json,
    /// The systemd journal.
    Journald,
}

impl From<LogFormatArg> for safe_yolo_telemetry::LogFormat {
    fn from(v: LogFormatArg) -> Self {
        match v {
            LogFormatArg::Auto => Self::Auto,
            LogFormatArg::Text => Self::Text,
            LogFormatArg::Json => Self::Json,
            LogFormatArg::Journald => Self::Journald,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}

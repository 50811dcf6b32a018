//! Model manifests: one TOML file per model describing its weights (with sha256),
//! input tensor, preprocessing, decoder family, classes, thresholds and provenance.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a manifest or its weights could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest file could not be read.
    #[error("cannot read model manifest {path}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O cause.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML for the manifest schema.
    #[error("model manifest {path} is malformed")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The TOML cause (names the field).
        #[source]
        source: toml::de::Error,
    },
    /// A field holds a value outside its allowed range.
    #[error("model manifest {path}: field `{field}` {reason}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// The offending field.
        field: String,
        /// Why the value is rejected.
        reason: String,
    },
    /// The manifest lists no weights of the requested precision.
    #[error("model manifest {path} has no `[weights.{precision}]` entry")]
    NoSuchPrecision {
        /// The manifest path.
        path: PathBuf,
        /// The precision asked for.
        precision: Precision,
    },
    /// The `.rknn` model was compiled for another SoC than this board's.
    #[error(
        "{file} was compiled for {platform} (rknn.platform) but this board is {board}; convert the model for this SoC (models/rknn/convert.sh --platform)"
    )]
    WrongSoc {
        /// The `.rknn` file.
        file: PathBuf,
        /// The SoC it was compiled for.
        platform: RknnPlatform,
        /// The board's device-tree `compatible` entries.
        board: String,
    },
    /// The weights file could not be read.
    #[error("cannot read model weights {path}")]
    ReadWeights {
        /// The weights path.
        path: PathBuf,
        /// The I/O cause.
        #[source]
        source: std::io::Error,
    },
    /// The weights file does not have the checksum the manifest records.
    #[error("model weights {path} have sha256 {actual}, but the manifest expects {expected}")]
    ChecksumMismatch {
        /// The weights path.
        path: PathBuf,
        /// The checksum in the manifest.
        expected: String,
        /// The checksum of the file on disk.
        actual: String,
    },
}

/// Numeric precision of a weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floating point.
    Fp32,
    /// 8-bit integer (quantised) weights and activations.
    Int8,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fp32 => "fp32",
            Self::Int8 => "int8",
        })
    }
}

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorLayout {
    /// `[1, 3, H, W]`, planar channels.
    Nchw,
    /// `[1, H, W, 3]`, interleaved channels.
    Nhwc,
}

/// How a frame is fitted into the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Scale each axis independently to the input size (aspect ratio changes).
    Stretch,
    /// Scale uniformly to fit, pad the rest with `letterbox_fill`.
    Letterbox,
}

/// Where a letterboxed image sits inside the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterboxAlign {
    /// Centred, padding split between both sides (Ultralytics).
    #[default]
    Center,
    /// Top-left, padding on the right and bottom (YOLOX).
    TopLeft,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV-trained models).
    Bgr,
}

/// The output decoder a model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderFamily {
    /// NanoDet / GFL: per stride a score tensor `[1, g*g, nc]` and a distribution box tensor `[1, g*g, 4*(reg_max+1)]`.
    Nanodet,
    /// YOLOv8 / YOLO11 / YOLOv12: `[1, 4+nc, N]`, boxes `cx, cy, w, h` in input pixels, no objectness.
    Yolov8,
    /// YOLOv5 / YOLOv7: `[1, N, 5+nc]`, boxes `cx, cy, w, h` in input pixels, objectness then class scores.
    Yolov5,
    /// YOLOX: `[1, N, 5+nc]` with grid-relative boxes (decoded here) unless `decoded = true`.
    Yolox,
}

/// Input tensor and preprocessing description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Tensor layout.
    pub layout: TensorLayout,
    /// Resize mode.
    pub resize: ResizeMode,
    /// Grey level of letterbox padding.
    #[serde(default = "default_fill")]
    pub letterbox_fill: u8,
    /// Letterbox placement.
    #[serde(default)]
    pub letterbox_align: LetterboxAlign,
    /// Channel order.
    pub channels: ChannelOrder,
    /// Per-channel mean, in the model's channel order, on the 0-255 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in the model's channel order, on the 0-255 scale.
    pub std: [f32; 3],
}

fn default_fill() -> u8 {
    114
}

/// Decoder settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderSpec {
    /// Decoder family.
    pub family: DecoderFamily,
    /// Feature-map strides (NanoDet, YOLOX).
    #[serde(default = "default_strides")]
    pub strides: Vec<u32>,
    /// Largest distribution bin index (NanoDet/GFL), so `reg_max + 1` bins per side.
    #[serde(default = "default_reg_max")]
    pub reg_max: u32,
    /// YOLOX only: the export already decoded boxes to input pixels.
    #[serde(default)]
    pub decoded: bool,
}

fn default_strides() -> Vec<u32> {
    vec![8, 16, 32]
}

fn default_reg_max() -> u32 {
    10
}

/// Default thresholds for post-processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// Minimum score for any class.
    pub score: f32,
    /// IoU above which a lower-scored box of the same class is suppressed.
    pub nms_iou: f32,
    /// Maximum detections per frame after NMS.
    pub max_detections: usize,
    /// Per-class score thresholds by class name, overriding `score`.
    #[serde(default)]
    pub per_class: BTreeMap<String, f32>,
}

/// One weights file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsSpec {
    /// File name, relative to the manifest directory (or absolute).
    pub file: PathBuf,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
}

/// Class list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// Names by class index.
    pub names: Vec<String>,
}

/// Preferred precision per backend when the caller does not choose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultPrecision {
    /// For tract.
    pub tract: Option<Precision>,
    /// For ONNX Runtime.
    pub onnxruntime: Option<Precision>,
    /// For RKNN.
    pub rknn: Option<Precision>,
}

/// A compiled RKNN model for Rockchip NPUs (produced by rknn-toolkit2 from the ONNX file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RknnSpec {
    /// The `.rknn` file.
    pub file: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Precision the model was compiled at.
    pub precision: Precision,
    /// The SoC family it was compiled for (rknn-toolkit2's `target_platform`):
    /// a `.rknn` runs only on that family's NPU.
    pub platform: RknnPlatform,
}

/// Rockchip SoC families with an NPU, as rknn-toolkit2 names its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RknnPlatform {
    /// RK3588 and RK3588S.
    Rk3588,
    /// RK3576.
    Rk3576,
    /// RK3568.
    Rk3568,
    /// RK3566.
    Rk3566,
    /// RK3562.
    Rk3562,
}

impl RknnPlatform {
    /// The name rknn-toolkit2 and the manifest use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rk3588 => "rk3588",
            Self::Rk3576 => "rk3576",
            Self::Rk3568 => "rk3568",
            Self::Rk3566 => "rk3566",
            Self::Rk3562 => "rk3562",
        }
    }

    /// Device-tree SoC names (`rockchip,<name>`) whose NPU runs a model
    /// compiled for this platform. RK3566 and RK3568 share one NPU; so do
    /// RK3588 and RK3588S.
    fn socs(self) -> &'static [&'static str] {
        match self {
            Self::Rk3588 => &["rk3588", "rk3588s"],
            Self::Rk3576 => &["rk3576"],
            Self::Rk3568 | Self::Rk3566 => &["rk3568", "rk3566"],
            Self::Rk3562 => &["rk3562"],
        }
    }

    /// Whether a board whose device tree root has `compatible` (the raw
    /// contents of `/proc/device-tree/compatible`: NUL-separated strings)
    /// carries an NPU that runs a model compiled for this platform.
    pub fn runs_on(self, compatible: &[u8]) -> bool {
        compatible_entries(compatible)
            .filter_map(|e| e.strip_prefix("rockchip,"))
            .any(|soc| self.socs().contains(&soc))
    }
}

/// The entries of a raw device-tree `compatible` (NUL-separated strings).
fn compatible_entries(raw: &[u8]) -> impl Iterator<Item = &str> {
    raw.split(|&b| b == 0)
        .filter_map(|e| std::str::from_utf8(e).ok())
        .filter(|e| !e.is_empty())
}

impl RknnSpec {
    /// Checks that this box's SoC runs the model, given the raw device-tree
    /// `compatible` of the board (`None` when it could not be read: the
    /// model is then tried unchecked and the runtime has the last word).
    /// [`ManifestError::WrongSoc`] says what the model was built for and what
    /// the board is.
    pub fn check_soc(&self, compatible: Option<&[u8]>) -> Result<(), ManifestError> {
        let Some(c) = compatible else { return Ok(()) };
        if self.platform.runs_on(c) {
            return Ok(());
        }
        let board: Vec<&str> = compatible_entries(c).collect();
        Err(ManifestError::WrongSoc {
            file: self.file.clone(),
            platform: self.platform,
            board: if board.is_empty() {
                "unnamed".to_owned()
            } else {
                board.join(", ")
            },
        })
    }
}

impl fmt::Display for RknnPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the tracker follows this model's person detections: its score
/// thresholds and buffers, calibrated on `safe-yolo bench-tracking`
/// (BENCHMARKS.md, "Tracking"). Every field is optional: a missing one
/// keeps the tracker's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingSpec {
    /// Detections at or above this score take part in the first association.
    pub high_score: Option<f32>,
    /// Detections below it are ignored by the tracker.
    pub low_score: Option<f32>,
    /// An unmatched detection starts a track at or above this score.
    pub new_track_score: Option<f32>,
    /// Least IoU with the predicted box that pairs whatever the gate says.
    pub match_iou: Option<f32>,
    /// Matched detections before a track is confirmed.
    pub min_hits: Option<u32>,
    /// Seconds a tentative track waits for its next match.
    pub tentative_timeout_s: Option<f32>,
    /// Seconds a lost track is kept before it is forgotten.
    pub lost_timeout_s: Option<f32>,
    /// Gate (centre distance in box heights) right after a track was seen.
    pub gate: Option<f32>,
    /// What the gate grows by per second unseen.
    pub gate_per_second: Option<f32>,
}

/// The manifest as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSpec {
    /// Model name.
    pub name: String,
    /// SPDX licence of the weights.
    pub licence: String,
    /// Where the weights came from and how they were produced.
    pub provenance: String,
    /// ONNX weights by precision.
    pub weights: BTreeMap<Precision, WeightsSpec>,
    /// Preferred precision per backend.
    #[serde(default)]
    pub default_precision: DefaultPrecision,
    /// Input tensor and preprocessing.
    pub input: InputSpec,
    /// Decoder.
    pub decoder: DecoderSpec,
    /// Thresholds.
    pub thresholds: ThresholdSpec,
    /// Class names; when absent they come from the ONNX metadata `names`.
    #[serde(default)]
    pub classes: Option<ClassSpec>,
    /// Optional RKNN build of the model.
    #[serde(default)]
    pub rknn: Option<RknnSpec>,
    /// Tracker calibration for this model.
    #[serde(default)]
    pub tracking: TrackingSpec,
}

/// A parsed and validated manifest plus the directory its relative paths resolve against.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where the manifest came from (for error messages).
    pub path: PathBuf,
    /// Directory relative weight paths are resolved against.
    pub base_dir: PathBuf,
    /// The manifest content.
    pub spec: ManifestSpec,
}

impl Manifest {
    /// Reads and validates the manifest at `path`; weights resolve next to it.
    pub fn from_path(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, path, &base_dir)
    }

    /// Parses and validates manifest `text`; `path` names it in errors and
    /// relative weight paths resolve against `base_dir`.
    pub fn from_toml(text: &str, path: &Path, base_dir: &Path) -> Result<Self, ManifestError> {
        let spec: ManifestSpec = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let manifest = Self {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            spec,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    fn invalid(&self, field: &str, reason: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.clone(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let s = &self.spec;
        if s.name.trim().is_empty() {
            return Err(self.invalid("name", "is empty"));
        }
        if s.weights.is_empty() {
            return Err(self.invalid("weights", "lists no weights file"));
        }
        for (precision, w) in &s.weights {
            check_sha(&w.sha256)
                .map_err(|r| self.invalid(&format!("weights.{precision}.sha256"), r))?;
        }
        if let Some(r) = &s.rknn {
            check_sha(&r.sha256).map_err(|e| self.invalid("rknn.sha256", e))?;
        }
        let i = &s.input;
        for (field, v) in [("input.width", i.width), ("input.height", i.height)] {
            if !(1..=8192).contains(&v) {
                return Err(self.invalid(field, format!("is {v}, expected 1..=8192")));
            }
        }
        if i.std.iter().any(|v| !v.is_finite() || *v == 0.0)
            || i.mean.iter().any(|v| !v.is_finite())
        {
            return Err(self.invalid("input.std", "must be finite and non-zero (mean finite)"));
        }
        let d = &s.decoder;
        if matches!(d.family, DecoderFamily::Nanodet | DecoderFamily::Yolox) {
            if d.strides.is_empty()
                || d.strides.iter().any(|st| {
                    *st == 0 || !i.width.is_multiple_of(*st) || !i.height.is_multiple_of(*st)
                })
            {
                return Err(self.invalid(
                    "decoder.strides",
                    "must be non-empty and divide the input size",
                ));
            }
            if d.reg_max == 0 || d.reg_max > 64 {
                return Err(self.invalid("decoder.reg_max", "must be in 1..=64"));
            }
        }
        let t = &s.thresholds;
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        if !unit(t.score) {
            return Err(self.invalid("thresholds.score", "must be in [0, 1]"));
        }
        if !unit(t.nms_iou) {
            return Err(self.invalid("thresholds.nms_iou", "must be in [0, 1]"));
        }
        if t.max_detections == 0 {
            return Err(self.invalid("thresholds.max_detections", "must be at least 1"));
        }
        for (name, v) in &t.per_class {
            if !unit(*v) {
                return Err(
                    self.invalid(&format!("thresholds.per_class.{name}"), "must be in [0, 1]")
                );
            }
            if let Some(c) = &s.classes
                && !c.names.iter().any(|n| n == name)
            {
                return Err(self.invalid(
                    &format!("thresholds.per_class.{name}"),
                    "names no class of the model",
                ));
            }
        }
        if let Some(c) = &s.classes
            && c.names.is_empty()
        {
            return Err(self.invalid("classes.names", "is empty"));
        }
        let k = &s.tracking;
        for (field, v) in [
            ("tracking.high_score", k.high_score),
            ("tracking.low_score", k.low_score),
            ("tracking.new_track_score", k.new_track_score),
            ("tracking.match_iou", k.match_iou),
        ] {
            if v.is_some_and(|v| !unit(v)) {
                return Err(self.invalid(field, "must be in [0, 1]"));
            }
        }
        for (field, v) in [
            ("tracking.tentative_timeout_s", k.tentative_timeout_s),
            ("tracking.lost_timeout_s", k.lost_timeout_s),
            ("tracking.gate", k.gate),
            ("tracking.gate_per_second", k.gate_per_second),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && (0.0..=10.0).contains(&v))) {
                return Err(self.invalid(field, "must be in [0, 10]"));
            }
        }
        if k.min_hits.is_some_and(|n| !(1..=10).contains(&n)) {
            return Err(self.invalid("tracking.min_hits", "must be in 1..=10"));
        }
        Ok(())
    }

    /// Precisions this manifest has ONNX weights for.
    pub fn precisions(&self) -> impl Iterator<Item = Precision> + '_ {
        self.spec.weights.keys().copied()
    }

    /// Resolves `file` against the manifest directory.
    pub fn resolve(&self, file: &Path) -> PathBuf {
        if file.is_absolute() {
            file.to_path_buf()
        } else {
            self.base_dir.join(file)
        }
    }

    /// Every weights file the manifest names (ONNX and RKNN), resolved.
    pub fn weight_files(&self) -> Vec<PathBuf> {
        self.spec
            .weights
            .values()
            .map(|w| self.resolve(&w.file))
            .chain(self.spec.rknn.iter().map(|r| self.resolve(&r.file)))
            .collect()
    }

    /// Path of the ONNX weights of `precision`.
    pub fn weights_path(&self, precision: Precision) -> Result<PathBuf, ManifestError> {
        self.spec
            .weights
            .get(&precision)
            .map(|w| self.resolve(&w.file))
            .ok_or_else(|| ManifestError::NoSuchPrecision {
                path: self.path.clone(),
                precision,
            })
    }

    /// Reads the ONNX weights of `precision` and checks their sha256.
    pub fn read_weights(&self, precision: Precision) -> Result<(PathBuf, Vec<u8>), ManifestError> {
        let path = self.weights_path(precision)?;
        let expected = self
            .spec
            .weights
            .get(&precision)
            .map(|w| w.sha256.as_str())
            .unwrap_or_default();
        let bytes = read_verified(&path, expected)?;
        Ok((path, bytes))
    }
}

fn check_sha(s: &str) -> Result<(), String> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!("is {s:?}, expected 64 lowercase hex digits"))
    }
}

/// Reads `path` and checks its sha256 against `expected` (lowercase hex).
pub fn read_verified(path: &Path, expected: &str) -> Result<Vec<u8>, ManifestError> {
    let bytes = std::fs::read(path).map_err(|source| ManifestError::ReadWeights {
        path: path.to_path_buf(),
        source,
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        return Err(ManifestError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small valid manifest for unit tests.
    pub(crate) const SAMPLE: &str = r#"
name = "t"
licence = "Apache-2.0"
provenance = "test"
[weights.fp32]
file = "m.onnx"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[input]
width = 64
height = 32
layout = "nchw"
resize = "letterbox"
channels = "rgb"
mean = [0.0, 0.0, 0.0]
std = [255.0, 255.0, 255.0]
[decoder]
family = "yolov8"
[thresholds]
score = 0.25
nms_iou = 0.45
max_detections = 10
per_class = { b = 0.5 }
[classes]
names = ["a", "b"]
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::from_toml(text, Path::new("m.toml"), Path::new("/models"))
    }

    #[test]
    fn rknn_models_name_their_platform() {
        let rknn = "[rknn]\nfile = \"m.rknn\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nprecision = \"int8\"\n";
        let with = |extra: &str| SAMPLE.replace("[input]", &format!("{rknn}{extra}[input]"));
        let m = parse(&with("platform = \"rk3588\"\n")).unwrap();
        assert_eq!(m.spec.rknn.unwrap().platform, RknnPlatform::Rk3588);
        // Missing or unknown: a parse error naming the field.
        for (extra, needle) in [("", "platform"), ("platform = \"rk9999\"\n", "rk9999")] {
            let err = parse(&with(extra)).unwrap_err();
            let text = format!(
                "{err}: {}",
                std::error::Error::source(&err)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            assert!(text.contains(needle), "{text}");
        }
    }

    #[test]
    fn a_model_for_another_soc_is_refused_with_both_names() {
        let spec = RknnSpec {
            file: "m.rknn".into(),
            sha256: String::new(),
            precision: Precision::Int8,
            platform: RknnPlatform::Rk3588,
        };
        assert!(
            spec.check_soc(Some(b"radxa,rock-5b\0rockchip,rk3588\0"))
                .is_ok()
        );
        assert!(spec.check_soc(None).is_ok());
        let err = spec
            .check_soc(Some(b"pine64,quartz64-a\0rockchip,rk3566\0"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rk3588") && err.contains("rockchip,rk3566"),
            "{err}"
        );
    }

    #[test]
    fn an_rknn_platform_runs_on_its_socs_only() {
        // /proc/device-tree/compatible of real boards.
        let rock5b = b"radxa,rock-5b\0rockchip,rk3588\0";
        let opi5 = b"xunlong,orangepi-5\0rockchip,rk3588s\0";
        let quartz64 = b"pine64,quartz64-a\0rockchip,rk3566\0";
        let rpi = b"raspberrypi,5-model-b\0brcm,bcm2712\0";
        assert!(RknnPlatform::Rk3588.runs_on(rock5b));
        assert!(RknnPlatform::Rk3588.runs_on(opi5));
        assert!(!RknnPlatform::Rk3588.runs_on(quartz64));
        assert!(RknnPlatform::Rk3568.runs_on(quartz64));
        assert!(RknnPlatform::Rk3566.runs_on(quartz64));
        assert!(!RknnPlatform::Rk3576.runs_on(rock5b));
        assert!(!RknnPlatform::Rk3588.runs_on(rpi));
        assert!(!RknnPlatform::Rk3588.runs_on(b""));
        // A board name that merely contains the SoC's name is not the SoC.
        assert!(!RknnPlatform::Rk3588.runs_on(b"vendor,rockchip-rk3588-clone\0"));
    }

    #[test]
    fn parses_sample() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.spec.input.letterbox_fill, 114);
        assert_eq!(
            m.weights_path(Precision::Fp32).unwrap(),
            PathBuf::from("/models/m.onnx")
        );
        assert!(matches!(
            m.weights_path(Precision::Int8),
            Err(ManifestError::NoSuchPrecision { .. })
        ));
    }

    #[test]
    fn rejects_bad_fields_with_their_name() {
        let cases = [
            (
                SAMPLE.replace("sha256 = \"0000", "sha256 = \"zz00"),
                "weights.fp32.sha256",
            ),
            (SAMPLE.replace("width = 64", "width = 0"), "input.width"),
            (
                SAMPLE.replace("score = 0.25", "score = 1.5"),
                "thresholds.score",
            ),
            (
                SAMPLE.replace("b = 0.5", "c = 0.5"),
                "thresholds.per_class.c",
            ),
            (
                SAMPLE.replace("[255.0, 255.0, 255.0]", "[255.0, 0.0, 255.0]"),
                "input.std",
            ),
        ];
        for (text, field) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
        let err =
            parse(&SAMPLE.replace("family = \"yolov8\"", "family = \"yolo9000\"")).unwrap_err();
        assert!(matches!(err, ManifestError::Parse { .. }), "{err}");
        let err = parse(&format!("{SAMPLE}\nsurprise = 1\n")).unwrap_err();
        assert!(matches!(err, ManifestError::Parse { .. }), "{err}");
    }

    #[test]
    fn checksum_is_verified() {
        let dir = std::env::temp_dir().join(format!("safe-yolo-detect-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("w.bin");
        std::fs::write(&file, b"abc").unwrap();
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(read_verified(&file, good).unwrap(), b"abc");
        let err = read_verified(&file, &"0".repeat(64)).unwrap_err();
        assert!(matches!(err, ManifestError::ChecksumMismatch { .. }));
        assert!(err.to_string().contains(good), "{err}");
        let err = read_verified(&dir.join("missing.onnx"), good).unwrap_err();
        assert!(matches!(err, ManifestError::ReadWeights { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

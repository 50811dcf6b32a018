//! Object detection for SAFE-YOLO: model manifests (with sha256-verified weights),
//! fast preprocessing, decoders for the NanoDet/GFL, YOLOv8/11, YOLOv5/7 and YOLOX
//! families, class-wise NMS, and pluggable inference backends (tract, ONNX Runtime,
//! RKNN) behind the [`Detector`] trait.
//!
//! ```no_run
//! # fn main() -> Result<(), safe_yolo_detect::DetectError> {
//! let mut det = safe_yolo_detect::load(
//!     std::path::Path::new("models/nanodet-m-416-coco/model.toml"),
//!     &safe_yolo_detect::LoadOptions::default(),
//! )?;
//! # let frame = safe_yolo_domain::RgbFrame::new(1, 1, vec![0u8; 3]).unwrap();
//! let detections = det.detect(&frame)?;
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

pub mod backend;
pub mod decode;
pub mod detector;
pub mod manifest;
pub mod onnx_meta;
pub mod postprocess;
pub mod preprocess;
pub mod process;
pub mod report;

pub use backend::{BackendChoice, BackendKind};
pub use detector::{
    DetectError, Detector, LoadOptions, ModelDetector, ModelInfo, load, load_manifest,
};
pub use manifest::{Manifest, Precision, RknnPlatform, TrackingSpec};

//! Inference backends: a model runner behind one trait, chosen at load time.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::decode::OutputTensor;
use crate::preprocess::InputTensor;

#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
#[cfg(feature = "rknn")]
pub mod rknn;
pub mod rknn_layout;
#[cfg(feature = "tract")]
pub mod tract;

/// A boxed error from a third-party runtime.
pub type RuntimeError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a backend could not load or run a model.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend was not compiled into this build.
    #[error("backend {backend} is not compiled in (enable cargo feature `{backend}`)")]
    NotCompiled {
        /// The backend.
        backend: BackendKind,
    },
    /// The backend's runtime library or device is not present on this box.
    #[error("backend {backend} is not available: {reason}")]
    Unavailable {
        /// The backend.
        backend: BackendKind,
        /// What is missing.
        reason: String,
    },
    /// The runtime failed to load the model file.
    #[error("backend {backend} could not load model {path}")]
    Load {
        /// The backend.
        backend: BackendKind,
        /// The model file.
        path: PathBuf,
        /// The runtime's cause.
        #[source]
        source: RuntimeError,
    },
    /// The model's input is not the one the manifest declares.
    #[error("model {path} input is {found}, but the manifest declares {expected:?}")]
    InputShape {
        /// The model file.
        path: PathBuf,
        /// Shape in the manifest.
        expected: [usize; 4],
        /// What the model has.
        found: String,
    },
    /// Inference failed.
    #[error("backend {backend} inference failed")]
    Run {
        /// The backend.
        backend: BackendKind,
        /// The runtime's cause.
        #[source]
        source: RuntimeError,
    },
    /// An output tensor could not be read as `f32`.
    #[error("backend {backend}: output {index} is not a readable f32 tensor ({reason})")]
    Output {
        /// The backend.
        backend: BackendKind,
        /// Output index.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// The backends this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// tract-onnx, pure Rust.
    Tract,
    /// ONNX Runtime through the `ort` crate, loaded at run time.
    #[serde(rename = "onnxruntime")]
    OnnxRuntime,
    /// Rockchip RKNN NPU runtime.
    Rknn,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tract => "tract",
            Self::OnnxRuntime => "onnxruntime",
            Self::Rknn => "rknn",
        })
    }
}

/// Which backend to load: a fixed one, or the fastest present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// RKNN if compiled in, its library is present and the manifest has an RKNN
    /// model; else ONNX Runtime if compiled in and its library is found; else tract.
    #[default]
    Auto,
    /// tract.
    Tract,
    /// ONNX Runtime.
    #[serde(rename = "onnxruntime")]
    OnnxRuntime,
    /// RKNN.
    Rknn,
}

/// A loaded model that maps an input tensor to output tensors.
pub trait Backend: Send {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Output shapes, known after load (used to bind the decoder).
    fn output_shapes(&self) -> &[Vec<usize>];
    /// Runs one inference.
    fn run(&mut self, input: &InputTensor) -> Result<Vec<OutputTensor>, BackendError>;
}

/// Checks a model's declared input dims (`None` = dynamic) against the manifest.
#[cfg_attr(
    not(any(feature = "tract", feature = "onnxruntime", feature = "rknn")),
    allow(dead_code)
)]
pub(crate) fn check_input_dims(
    path: &std::path::Path,
    dims: &[Option<usize>],
    expected: [usize; 4],
) -> Result<(), BackendError> {
    let fits = dims.len() == 4
        && dims
            .iter()
            .zip(expected)
            .all(|(d, e)| d.is_none_or(|d| d == e));
    if fits {
        Ok(())
    } else {
        let found = dims
            .iter()
            .map(|d| d.map_or("?".to_owned(), |d| d.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        Err(BackendError::InputShape {
            path: path.to_path_buf(),
            expected,
            found: format!("[{found}]"),
        })
    }
}

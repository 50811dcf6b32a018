//! The `Detector` seam and its one implementation: preprocess -> backend -> decode -> NMS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use safe_yolo_domain::{Detection, RgbFrame};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendChoice, BackendError, BackendKind};
use crate::decode::{Candidate, DecodeError, Decoder, OutputTensor};
use crate::manifest::{Manifest, ManifestError, Precision, ResizeMode};
use crate::onnx_meta::{self, OnnxMetaError};
use crate::postprocess::PostProcess;
use crate::preprocess::{FrameTransform, InputTensor, PreprocessError, Preprocessor};

/// Why a detector could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The manifest or weights are unusable.
    #[error("model manifest or weights rejected")]
    Manifest(#[source] ManifestError),
    /// The backend failed.
    #[error("inference backend failed")]
    Backend(#[source] BackendError),
    /// The model outputs do not fit the declared decoder family.
    #[error("model {path} does not fit its manifest's decoder")]
    Decode {
        /// The weights file.
        path: PathBuf,
        /// The mismatch.
        #[source]
        source: DecodeError,
    },
    /// Preprocessing a frame failed.
    #[error("preprocessing failed")]
    Preprocess(#[source] PreprocessError),
    /// The ONNX metadata could not be read.
    #[error("cannot read metadata of {path}")]
    Metadata {
        /// The weights file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: OnnxMetaError,
    },
    /// The manifest's class list disagrees with the ONNX metadata, or neither has one.
    #[error("class list of {path}: {reason}")]
    Classes {
        /// The weights file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A class name in the load options or thresholds is not a class of the model.
    #[error("unknown class `{name}` in {field}; the model has {known}")]
    UnknownClass {
        /// The name.
        name: String,
        /// Where it came from.
        field: &'static str,
        /// The model's classes, comma-separated.
        known: String,
    },
    /// The detector's child process failed, or is restarting.
    #[error("detector process")]
    Process(#[source] crate::process::ProcessError),
    /// `run_backend` was called before `preprocess`.
    #[error("no preprocessed frame to run the backend on")]
    NoInput,
}

impl DetectError {
    /// Whether no detector runs now (its process failed and a new one is
    /// starting): every frame is refused at once until it runs again, so this
    /// is a state the supervisor reports, not a per-frame failure.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DetectError::Process(crate::process::ProcessError::Restarting { .. })
        )
    }
}

/// What a loaded detector is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name from the manifest.
    pub name: String,
    /// The weights file loaded.
    pub weights: PathBuf,
    /// Precision of those weights.
    pub precision: Precision,
    /// Backend running them.
    pub backend: BackendKind,
    /// Input width.
    pub input_width: u32,
    /// Input height.
    pub input_height: u32,
    /// How a frame is fitted into the input.
    pub resize: ResizeMode,
    /// Class names by index.
    #[serde(skip)]
    pub classes: Arc<[Arc<str>]>,
    /// Licence of the weights.
    pub licence: String,
}

impl ModelInfo {
    /// The smallest frame size from which this model's input loses nothing,
    /// for a `width x height` frame: the size the frame is resized to inside
    /// the input (see [`crate::preprocess::fitted_size`]). A frame decoded at
    /// least this large and mapped back gives the same detections as the full
    /// frame, up to resampling.
    pub fn min_frame_size(&self, width: u32, height: u32) -> (u32, u32) {
        crate::preprocess::fitted_size(
            self.resize,
            (self.input_width, self.input_height),
            (width, height),
        )
    }
}

/// How to load a detector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Backend choice.
    pub backend: BackendChoice,
    /// Weights precision; `None` uses the manifest's preference for the chosen backend.
    pub precision: Option<Precision>,
    /// Inference threads (0 = 1).
    pub threads: usize,
    /// Overrides the manifest's default score threshold (per-class thresholds still apply).
    pub score_threshold: Option<f32>,
    /// Report only these classes (by name); `None` reports all.
    pub classes: Option<Vec<String>>,
    /// Path of `libonnxruntime.so` (else `ORT_DYLIB_PATH`, else the usual directories).
    pub onnxruntime_library: Option<PathBuf>,
    /// Path of `librknnrt.so` (else the usual directories).
    pub rknn_library: Option<PathBuf>,
}

/// Frame in, detections in frame pixels out. `Send`, so it can live on a worker thread.
pub trait Detector: Send {
    /// Detects objects in `frame`.
    fn detect(&mut self, frame: &RgbFrame) -> Result<Vec<Detection>, DetectError>;
    /// What model and backend this is.
    fn info(&self) -> &ModelInfo;
}

/// The standard detector, with its stages exposed so a pipeline can time them.
pub struct ModelDetector {
    info: ModelInfo,
    pre: Preprocessor,
    backend: Box<dyn Backend>,
    decoder: Decoder,
    post: PostProcess,
    input: InputTensor,
    transform: Option<FrameTransform>,
    candidates: Vec<Candidate>,
}

impl std::fmt::Debug for ModelDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelDetector")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl ModelDetector {
    /// Stage 1: resizes and normalises `frame` into the internal input tensor.
    pub fn preprocess(&mut self, frame: &RgbFrame) -> Result<(), DetectError> {
        let t = self
            .pre
            .run(frame, &mut self.input)
            .map_err(DetectError::Preprocess)?;
        self.transform = Some(t);
        Ok(())
    }

    /// Stage 2: runs the backend on the preprocessed tensor.
    pub fn run_backend(&mut self) -> Result<Vec<OutputTensor>, DetectError> {
        if self.transform.is_none() {
            return Err(DetectError::NoInput);
        }
        self.backend.run(&self.input).map_err(DetectError::Backend)
    }

    /// Stage 3: decodes, suppresses and maps `outputs` back to the last frame.
    pub fn decode(&mut self, outputs: &[OutputTensor]) -> Result<Vec<Detection>, DetectError> {
        let transform = self.transform.ok_or(DetectError::NoInput)?;
        self.decoder
            .decode(outputs, &self.post.thresholds, &mut self.candidates)
            .map_err(|source| DetectError::Decode {
                path: self.info.weights.clone(),
                source,
            })?;
        Ok(self.post.run(&mut self.candidates, &transform))
    }

    /// The preprocessed input tensor (for tests and benchmarks).
    pub fn input(&self) -> &InputTensor {
        &self.input
    }
}

impl Detector for ModelDetector {
    fn detect(&mut self, frame: &RgbFrame) -> Result<Vec<Detection>, DetectError> {
        self.preprocess(frame)?;
        let outputs = self.run_backend()?;
        self.decode(&outputs)
    }

    fn info(&self) -> &ModelInfo {
        &self.info
    }
}

/// Loads the model described by the manifest at `manifest`.
pub fn load(manifest: &Path, opts: &LoadOptions) -> Result<Box<dyn Detector>, DetectError> {
    let m = Manifest::from_path(manifest).map_err(DetectError::Manifest)?;
    Ok(Box::new(load_manifest(&m, opts)?))
}

/// Backends to try, in order. `Auto` lists every compiled backend that looks present,
/// fastest first; the first that loads wins.
fn backend_candidates(m: &Manifest, opts: &LoadOptions) -> Vec<BackendKind> {
    match opts.backend {
        BackendChoice::Tract => vec![BackendKind::Tract],
        BackendChoice::OnnxRuntime => vec![BackendKind::OnnxRuntime],
        BackendChoice::Rknn => vec![BackendKind::Rknn],
        BackendChoice::Auto => {
            let mut v = Vec::new();
            #[cfg(feature = "rknn")]
            if m.spec.rknn.is_some()
                && crate::backend::rknn::find_library(opts.rknn_library.as_deref()).is_some()
            {
                v.push(BackendKind::Rknn);
            }
            #[cfg(feature = "onnxruntime")]
            if crate::backend::onnxruntime::find_library(opts.onnxruntime_library.as_deref())
                .is_some()
            {
                v.push(BackendKind::OnnxRuntime);
            }
            let _ = m;
            v.push(BackendKind::Tract);
            v
        }
    }
}

fn choose_precision(m: &Manifest, backend: BackendKind, opts: &LoadOptions) -> Precision {
    if let Some(p) = opts.precision {
        return p;
    }
    let d = &m.spec.default_precision;
    let preferred = match backend {
        BackendKind::Tract => d.tract,
        BackendKind::OnnxRuntime => d.onnxruntime,
        BackendKind::Rknn => d.rknn.or(m.spec.rknn.as_ref().map(|r| r.precision)),
    };
    preferred
        .filter(|p| m.spec.weights.contains_key(p) || backend == BackendKind::Rknn)
        .or_else(|| {
            m.spec
                .weights
                .contains_key(&Precision::Fp32)
                .then_some(Precision::Fp32)
        })
        .or_else(|| m.precisions().next())
        .unwrap_or(Precision::Fp32)
}

/// Resolves class names: the manifest's list and/or the ONNX `names` metadata.
fn class_names(
    m: &Manifest,
    path: &Path,
    model: Option<&[u8]>,
) -> Result<Vec<String>, DetectError> {
    let from_meta = match model {
        Some(bytes) => {
            let meta =
                onnx_meta::metadata_props(bytes).map_err(|source| DetectError::Metadata {
                    path: path.to_path_buf(),
                    source,
                })?;
            meta.get("names")
                .map(|n| onnx_meta::parse_names(n))
                .transpose()
                .map_err(|source| DetectError::Metadata {
                    path: path.to_path_buf(),
                    source,
                })?
        }
        None => None,
    };
    let classes_err = |reason: String| DetectError::Classes {
        path: path.to_path_buf(),
        reason,
    };
    match (m.spec.classes.as_ref().map(|c| &c.names), from_meta) {
        (Some(listed), Some(meta)) if *listed != meta => Err(classes_err(format!(
            "the manifest lists {} classes ({}...) but the ONNX metadata has {} ({}...)",
            listed.len(),
            listed
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            meta.len(),
            meta.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ))),
        (Some(listed), _) => Ok(listed.clone()),
        (None, Some(meta)) => Ok(meta),
        (None, None) => Err(classes_err(
            "the manifest has no [classes] and the ONNX metadata has no `names`".into(),
        )),
    }
}

/// Loads a detector from an already parsed manifest. With `BackendChoice::Auto`, a
/// backend whose runtime turns out unusable (for example a library that fails to
/// load) is skipped with a warning and the next one is tried.
pub fn load_manifest(m: &Manifest, opts: &LoadOptions) -> Result<ModelDetector, DetectError> {
    let mut candidates = backend_candidates(m, opts).into_iter().peekable();
    loop {
        let Some(kind) = candidates.next() else {
            return Err(DetectError::Backend(BackendError::Unavailable {
                backend: BackendKind::Tract,
                reason: "no backend could be loaded".into(),
            }));
        };
        match load_with_backend(m, opts, kind) {
            Err(DetectError::Backend(
                e @ (BackendError::Unavailable { .. } | BackendError::NotCompiled { .. }),
            )) if candidates.peek().is_some() => {
                tracing::warn!(backend = %kind, error = %e, "backend unusable, trying the next one");
            }
            other => return other,
        }
    }
}

fn load_with_backend(
    m: &Manifest,
    opts: &LoadOptions,
    backend_kind: BackendKind,
) -> Result<ModelDetector, DetectError> {
    let precision = choose_precision(m, backend_kind, opts);
    let threads = opts.threads.max(1);
    let pre = Preprocessor::new(&m.spec.input);
    let shape = pre.shape();
    let (weights, onnx) = if backend_kind == BackendKind::Rknn {
        (m.weights_path(precision).unwrap_or_default(), None)
    } else {
        let (path, bytes) = m.read_weights(precision).map_err(DetectError::Manifest)?;
        (path, Some(bytes))
    };
    let names = class_names(m, &weights, onnx.as_deref())?;
    let backend = open_backend(
        backend_kind,
        m,
        opts,
        &weights,
        onnx.as_deref(),
        shape,
        threads,
    )
    .map_err(DetectError::Backend)?;
    let (w, h) = (m.spec.input.width, m.spec.input.height);
    let decoder = Decoder::new(&m.spec.decoder, names.len(), w, h, backend.output_shapes())
        .map_err(|source| DetectError::Decode {
            path: weights.clone(),
            source,
        })?;
    let known = || names.join(", ");
    let index_of = |name: &str, field: &'static str| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| DetectError::UnknownClass {
                name: name.to_owned(),
                field,
                known: known(),
            })
    };
    let t = &m.spec.thresholds;
    let mut thresholds = vec![opts.score_threshold.unwrap_or(t.score); names.len()];
    for (name, v) in &t.per_class {
        thresholds[index_of(name, "thresholds.per_class")?] = *v;
    }
    let class_filter = match &opts.classes {
        Some(list) => Some(
            list.iter()
                .map(|n| index_of(n, "classes").map(|i| u32::try_from(i).unwrap_or(u32::MAX)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let classes: Arc<[Arc<str>]> = names.iter().map(|n| Arc::from(n.as_str())).collect();
    let post = PostProcess {
        thresholds,
        nms_iou: t.nms_iou,
        max_detections: t.max_detections,
        names: classes.clone(),
        class_filter,
    };
    let info = ModelInfo {
        name: m.spec.name.clone(),
        weights,
        precision,
        backend: backend.kind(),
        input_width: w,
        input_height: h,
        resize: m.spec.input.resize,
        classes,
        licence: m.spec.licence.clone(),
    };
    tracing::info!(model = %info.name, backend = %info.backend, precision = %info.precision, threads, "detector loaded");
    let input = pre.new_tensor();
    Ok(ModelDetector {
        info,
        pre,
        backend,
        decoder,
        post,
        input,
        transform: None,
        candidates: Vec::new(),
    })
}

fn open_backend(
    kind: BackendKind,
    m: &Manifest,
    opts: &LoadOptions,
    weights: &Path,
    onnx: Option<&[u8]>,
    shape: [usize; 4],
    threads: usize,
) -> Result<Box<dyn Backend>, BackendError> {
    let onnx = onnx.unwrap_or_default();
    match kind {
        BackendKind::Tract => open_tract(weights, onnx, shape, threads),
        BackendKind::OnnxRuntime => open_onnxruntime(opts, weights, onnx, shape, threads),
        BackendKind::Rknn => open_rknn(m, opts, shape),
    }
}

#[cfg(feature = "tract")]
fn open_tract(
    weights: &Path,
    onnx: &[u8],
    shape: [usize; 4],
    threads: usize,
) -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(crate::backend::tract::TractBackend::load(
        weights, onnx, shape, threads,
    )?))
}

#[cfg(not(feature = "tract"))]
fn open_tract(
    _: &Path,
    _: &[u8],
    _: [usize; 4],
    _: usize,
) -> Result<Box<dyn Backend>, BackendError> {
    Err(BackendError::NotCompiled {
        backend: BackendKind::Tract,
    })
}

#[cfg(feature = "onnxruntime")]
fn open_onnxruntime(
    opts: &LoadOptions,
    weights: &Path,
    onnx: &[u8],
    shape: [usize; 4],
    threads: usize,
) -> Result<Box<dyn Backend>, BackendError> {
    use crate::backend::onnxruntime::{OrtBackend, find_library};
    let lib = find_library(opts.onnxruntime_library.as_deref()).ok_or_else(|| {
        BackendError::Unavailable {
            backend: BackendKind::OnnxRuntime,
            reason: "no libonnxruntime.so found (set onnxruntime_library or ORT_DYLIB_PATH)".into(),
        }
    })?;
    Ok(Box::new(OrtBackend::load(
        &lib, weights, onnx, shape, threads,
    )?))
}

#[cfg(not(feature = "onnxruntime"))]
fn open_onnxruntime(
    _: &LoadOptions,
    _: &Path,
    _: &[u8],
    _: [usize; 4],
    _: usize,
) -> Result<Box<dyn Backend>, BackendError> {
    Err(BackendError::NotCompiled {
        backend: BackendKind::OnnxRuntime,
    })
}

#[cfg(feature = "rknn")]
fn open_rknn(
    m: &Manifest,
    opts: &LoadOptions,
    shape: [usize; 4],
) -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(crate::backend::rknn::RknnBackend::load(
        m,
        opts.rknn_library.as_deref(),
        shape,
    )?))
}

#[cfg(not(feature = "rknn"))]
fn open_rknn(
    _: &Manifest,
    _: &LoadOptions,
    _: [usize; 4],
) -> Result<Box<dyn Backend>, BackendError> {
    Err(BackendError::NotCompiled {
        backend: BackendKind::Rknn,
    })
}

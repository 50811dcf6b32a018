//! ONNX Runtime backend through the `ort` crate with `load-dynamic`: the shared
//! library (`libonnxruntime.so`) is opened at run time, nothing is downloaded at
//! build time. The library path comes from [`LoadOptions`](crate::LoadOptions),
//! else `ORT_DYLIB_PATH`, else the usual library directories.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use ort::session::Session;
use ort::value::{Tensor, ValueType};

use super::{Backend, BackendError, BackendKind, check_input_dims};
use crate::decode::OutputTensor;
use crate::preprocess::InputTensor;

/// Directories searched for `libonnxruntime.so*` when no path is configured.
const SEARCH_DIRS: &[&str] = &[
    "/usr/lib",
    "/usr/local/lib",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/opt/onnxruntime/lib",
];

/// Finds an ONNX Runtime shared library: `explicit`, else `ORT_DYLIB_PATH`, else a
/// `libonnxruntime.so*` in the usual directories.
pub fn find_library(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from)
        && p.is_file()
    {
        return Some(p);
    }
    SEARCH_DIRS.iter().find_map(|dir| {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .collect();
        found.sort();
        found.pop()
    })
}

/// ONNX Runtime allows one environment per process, and `ort` loads the library once:
/// the first successful (or failed) initialisation is kept for the life of the process.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

fn environment(library: &Path) -> Result<Environment, String> {
    ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(library)
                .map_err(|e| format!("cannot load {}: {e}", library.display()))?
                .with_name("safe-yolo")
                .build()
                .map_err(|e| {
                    format!(
                        "cannot create an environment from {}: {e}",
                        library.display()
                    )
                })
        })
        .clone()
}

/// An ONNX Runtime session on the CPU execution provider.
pub struct OrtBackend {
    session: Session,
    input_name: String,
    shapes: Vec<Vec<usize>>,
}

impl std::fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtBackend")
            .field("input", &self.input_name)
            .field("outputs", &self.shapes)
            .finish_non_exhaustive()
    }
}

fn load_err(path: &Path, source: impl Into<super::RuntimeError>) -> BackendError {
    BackendError::Load {
        backend: BackendKind::OnnxRuntime,
        path: path.to_path_buf(),
        source: source.into(),
    }
}

fn dims(vt: &ValueType) -> Option<Vec<Option<usize>>> {
    vt.tensor_shape()
        .map(|s| s.iter().map(|d| usize::try_from(*d).ok()).collect())
}

impl OrtBackend {
    /// Loads `model` (the bytes of `path`) with ONNX Runtime from `library`, for a
    /// fixed input `shape`, on `threads` intra-op threads.
    pub fn load(
        library: &Path,
        path: &Path,
        model: &[u8],
        shape: [usize; 4],
        threads: usize,
    ) -> Result<Self, BackendError> {
        let env = environment(library).map_err(|reason| BackendError::Unavailable {
            backend: BackendKind::OnnxRuntime,
            reason,
        })?;
        let session = Session::builder(&env)
            .map_err(|e| load_err(path, e))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| load_err(path, ort::Error::<()>::from(e)))?
            .commit_from_memory(model)
            .map_err(|e| load_err(path, e))?;
        let [input] = session.inputs() else {
            return Err(BackendError::InputShape {
                path: path.to_path_buf(),
                expected: shape,
                found: format!("{} inputs", session.inputs().len()),
            });
        };
        let input_name = input.name().to_owned();
        check_input_dims(path, &dims(input.dtype()).unwrap_or_default(), shape)?;
        let mut shapes = Vec::new();
        for (i, o) in session.outputs().iter().enumerate() {
            let d = dims(o.dtype()).unwrap_or_default();
            let concrete: Option<Vec<usize>> = d.into_iter().collect();
            shapes.push(concrete.ok_or_else(|| {
                load_err(
                    path,
                    format!("output {i} ({}) has a dynamic shape", o.name()),
                )
            })?);
        }
        Ok(Self {
            session,
            input_name,
            shapes,
        })
    }
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::OnnxRuntime
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    fn run(&mut self, input: &InputTensor) -> Result<Vec<OutputTensor>, BackendError> {
        let run_err = |e: ort::Error| BackendError::Run {
            backend: BackendKind::OnnxRuntime,
            source: e.into(),
        };
        let tensor = Tensor::from_array((input.shape, input.data.clone())).map_err(run_err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(run_err)?;
        let mut out = Vec::with_capacity(outputs.len());
        for (index, (_, value)) in outputs.iter().enumerate() {
            let (shape, data) =
                value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| BackendError::Output {
                        backend: BackendKind::OnnxRuntime,
                        index,
                        reason: e.to_string(),
                    })?;
            let shape = shape
                .iter()
                .map(|d| usize::try_from(*d).unwrap_or(0))
                .collect();
            out.push(OutputTensor {
                shape,
                data: data.to_vec(),
            });
        }
        Ok(out)
    }
}

//! tract-onnx backend: pure Rust, available on every box. tract has no int8 speed-up
//! (QDQ models run at fp32 speed or slower), so manifests prefer fp32 weights here.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use super::{Backend, BackendError, BackendKind, check_input_dims};
use crate::decode::OutputTensor;
use crate::preprocess::InputTensor;

type Plan = Arc<TypedRunnableModel>;

/// A model optimised and planned by tract.
pub struct TractBackend {
    plan: Plan,
    state: TypedSimpleState,
    shapes: Vec<Vec<usize>>,
}

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend")
            .field("outputs", &self.shapes)
            .finish_non_exhaustive()
    }
}

fn load_err(path: &Path, e: TractError) -> BackendError {
    BackendError::Load {
        backend: BackendKind::Tract,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

impl TractBackend {
    /// Loads the ONNX `model` bytes (read from `path`) for a fixed input `shape`,
    /// running matrix products on `threads` threads.
    pub fn load(
        path: &Path,
        model: &[u8],
        shape: [usize; 4],
        threads: usize,
    ) -> Result<Self, BackendError> {
        let mut reader = std::io::Cursor::new(model);
        let mut inference = tract_onnx::onnx()
            .model_for_read(&mut reader)
            .map_err(|e| load_err(path, e))?;
        let inputs = inference
            .input_outlets()
            .map_err(|e| load_err(path, e))?
            .len();
        if inputs != 1 {
            return Err(BackendError::InputShape {
                path: path.to_path_buf(),
                expected: shape,
                found: format!("{inputs} inputs"),
            });
        }
        let fact = inference.input_fact(0).map_err(|e| load_err(path, e))?;
        let dims: Vec<Option<usize>> = match fact
            .shape
            .dims()
            .map(|d| d.concretize())
            .collect::<Option<Vec<_>>>()
        {
            Some(dims) => dims.iter().map(|d| d.to_usize().ok()).collect(),
            None => Vec::new(),
        };
        if !dims.is_empty() {
            check_input_dims(path, &dims, shape)?;
        }
        inference
            .set_input_fact(0, f32::fact(shape).into())
            .map_err(|e| load_err(path, e))?;
        let typed = inference.into_optimized().map_err(|e| load_err(path, e))?;
        let shapes = (0..typed.outputs.len())
            .map(|i| {
                typed.output_fact(i).and_then(|f| {
                    f.shape
                        .as_concrete()
                        .map(<[usize]>::to_vec)
                        .ok_or_else(|| TractError::msg(format!("output {i} has a symbolic shape")))
                })
            })
            .collect::<TractResult<Vec<_>>>()
            .map_err(|e| load_err(path, e))?;
        let mut options = RunOptions::default();
        if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("tract-{i}"))
                .build()
                .map_err(|e| BackendError::Load {
                    backend: BackendKind::Tract,
                    path: path.to_path_buf(),
                    source: e.into(),
                })?;
            options.executor = Some(tract_linalg::multithread::Executor::MultiThread(Arc::new(
                pool,
            )));
        }
        let plan = typed
            .into_runnable_with_options(&options)
            .map_err(|e| load_err(path, e))?;
        let state = plan.spawn().map_err(|e| load_err(path, e))?;
        Ok(Self {
            plan,
            state,
            shapes,
        })
    }
}

impl Backend for TractBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Tract
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    fn run(&mut self, input: &InputTensor) -> Result<Vec<OutputTensor>, BackendError> {
        let run_err = |e: TractError| BackendError::Run {
            backend: BackendKind::Tract,
            source: e.into(),
        };
        let tensor = Tensor::from_shape(&input.shape, &input.data).map_err(run_err)?;
        let outputs = self
            .state
            .run(tvec!(tensor.into_tvalue()))
            .map_err(run_err)?;
        let _ = &self.plan;
        outputs
            .iter()
            .enumerate()
            .map(|(index, v)| {
                let out_err = |e: TractError| BackendError::Output {
                    backend: BackendKind::Tract,
                    index,
                    reason: e.to_string(),
                };
                let view = v.try_as_plain_ram().map_err(out_err)?;
                let data = view.as_slice::<f32>().map_err(out_err)?;
                Ok(OutputTensor {
                    shape: v.shape().to_vec(),
                    data: data.to_vec(),
                })
            })
            .collect()
    }
}

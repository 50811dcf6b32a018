//! RKNN backend for Rockchip NPUs (RK3588/RK3566/RK3568/RK3576) through `rknpu2`,
//! with `librknnrt.so` opened at run time.
//!
//! The model is a `.rknn` file compiled from the ONNX weights by rknn-toolkit2 (see
//! the manifest's `[rknn]` table) **without** mean/std in its config: this crate
//! normalises on the CPU and feeds `f32` NHWC, which the runtime quantises with the
//! input tensor's own parameters. Outputs are fetched as raw int8 and dequantised
//! here with each tensor's `(scale, zero_point)` or DFP `fl`, which is cheaper than
//! asking the runtime for floats.

use std::path::{Path, PathBuf};

use rknpu2::api::RknnInitFlags;
use rknpu2::api::runtime::RuntimeAPI;
use rknpu2::io::buffer::{BufMutView, BufView};
use rknpu2::io::input::Input;
use rknpu2::io::output::{Output, OutputKind};
use rknpu2::query::{InputAttr, InputOutputNum, OutputAttr, TensorAttrView};
use rknpu2::tensor::{QuantTypeKind, TensorFormat, TensorFormatKind};

use super::rknn_layout::{QuantParams, nc1hwc2_to_nchw, nchw_to_nhwc};
use super::{Backend, BackendError, BackendKind, check_input_dims};
use crate::decode::OutputTensor;
use crate::manifest::{Manifest, read_verified};
use crate::preprocess::InputTensor;

/// The board's device-tree `compatible` (NUL-separated), which names the SoC.
const DT_COMPATIBLE: &str = "/proc/device-tree/compatible";

/// Finds `librknnrt.so`: `explicit`, else the usual library directories.
pub fn find_library(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => p.is_file().then(|| p.to_path_buf()),
        None => rknpu2::utils::find_rknn_library().next(),
    }
}

/// Checks that `path` can be opened with `dlopen`: `rknpu2` unwraps that step, so
/// a broken or foreign-architecture library must be caught before it is handed over.
#[allow(unsafe_code)]
mod probe {
    use std::path::Path;

    pub(super) fn dlopen(path: &Path) -> Result<(), String> {
        // SAFETY: librknnrt's initialisers only set up its own state; the handle is
        // dropped at once and no symbol is called through it.
        let lib = unsafe { libloading::Library::new(path) };
        lib.map(drop).map_err(|e| e.to_string())
    }
}

/// One output: its shape as seen by the decoder and how to turn raw int8 into it.
#[derive(Debug, Clone)]
struct OutputPlan {
    shape: Vec<usize>,
    quant: QuantParams,
    /// `Some((c, h, w, c2))` when the runtime returns NC1HWC2.
    native: Option<(usize, usize, usize, usize)>,
    bytes: usize,
}

/// A model running on the NPU.
pub struct RknnBackend {
    ctx: rknpu2::RKNN<RuntimeAPI>,
    input_shape: [usize; 4],
    outputs: Vec<OutputPlan>,
    shapes: Vec<Vec<usize>>,
    nhwc: Vec<f32>,
    raw: Vec<Vec<i8>>,
    reorder: Vec<i8>,
}

impl std::fmt::Debug for RknnBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RknnBackend")
            .field("outputs", &self.shapes)
            .finish_non_exhaustive()
    }
}

fn quant_of(attr: &impl TensorAttrView) -> QuantParams {
    match attr.qnt_type() {
        QuantTypeKind::AffineAsymmetric(_) => QuantParams::Affine {
            scale: attr.scale(),
            zero_point: attr.zero_point(),
        },
        QuantTypeKind::Dfp(_) => QuantParams::Dfp { fl: attr.fl() },
        _ => QuantParams::None,
    }
}

fn to_usize(v: &[u32]) -> Vec<usize> {
    v.iter().map(|d| *d as usize).collect()
}

impl RknnBackend {
    /// Loads the manifest's `[rknn]` model (refused on a SoC it was not
    /// compiled for) with `library` (else the usual paths),
    /// for a model input of `shape` (NCHW as declared; fed as NHWC).
    pub fn load(
        m: &Manifest,
        library: Option<&Path>,
        shape: [usize; 4],
    ) -> Result<Self, BackendError> {
        let unavailable = |reason: String| BackendError::Unavailable {
            backend: BackendKind::Rknn,
            reason,
        };
        let spec = m.spec.rknn.as_ref().ok_or_else(|| {
            unavailable(format!("manifest {} has no [rknn] model", m.path.display()))
        })?;
        let compatible = match std::fs::read(DT_COMPATIBLE) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = DT_COMPATIBLE, error = %e, "cannot read the board's SoC; the .rknn is loaded unchecked");
                None
            }
        };
        spec.check_soc(compatible.as_deref())
            .map_err(|e| unavailable(e.to_string()))?;
        let lib =
            find_library(library).ok_or_else(|| unavailable("librknnrt.so not found".into()))?;
        probe::dlopen(&lib)
            .map_err(|e| unavailable(format!("cannot dlopen {}: {e}", lib.display())))?;
        let path = m.resolve(&spec.file);
        let load_err = |source: rknpu2::Error| BackendError::Load {
            backend: BackendKind::Rknn,
            path: path.clone(),
            source: source.into(),
        };
        let mut model = read_verified(&path, &spec.sha256).map_err(|e| BackendError::Load {
            backend: BackendKind::Rknn,
            path: path.clone(),
            source: e.into(),
        })?;
        let ctx = rknpu2::RKNN::new_with_library(&lib, &mut model, RknnInitFlags::builder())
            .map_err(load_err)?;
        let num: InputOutputNum = ctx.query().map_err(load_err)?;
        if num.input_num() != 1 {
            return Err(BackendError::InputShape {
                path,
                expected: shape,
                found: format!("{} inputs", num.input_num()),
            });
        }
        let input: InputAttr = ctx.query_with_input(0).map_err(load_err)?;
        let dims = to_usize(input.dims());
        let [n, c, h, w] = shape;
        // The runtime reports NHWC dims for 4-D image inputs.
        let as_nchw = match (input.format(), dims.as_slice()) {
            (TensorFormatKind::NHWC(_), [a, b, cc, d]) => {
                vec![Some(*a), Some(*d), Some(*b), Some(*cc)]
            }
            (_, d) => d.iter().map(|v| Some(*v)).collect(),
        };
        check_input_dims(&path, &as_nchw, [n, c, h, w])?;
        let mut outputs = Vec::new();
        for i in 0..num.output_num() {
            let attr: OutputAttr = ctx.query_with_input(i).map_err(load_err)?;
            let dims = to_usize(attr.dims());
            let native = match (attr.format(), dims.as_slice()) {
                (TensorFormatKind::NC1HWC2(_), [_, c1, h, w, c2]) => Some((c1 * c2, *h, *w, *c2)),
                _ => None,
            };
            let shape = match native {
                Some((c, h, w, _)) => vec![1, c, h, w],
                None => dims,
            };
            outputs.push(OutputPlan {
                shape,
                quant: quant_of(&attr),
                native,
                bytes: attr.size() as usize,
            });
        }
        let shapes = outputs.iter().map(|o| o.shape.clone()).collect();
        let raw = outputs.iter().map(|o| vec![0i8; o.bytes]).collect();
        Ok(Self {
            ctx,
            input_shape: shape,
            outputs,
            shapes,
            nhwc: Vec::new(),
            raw,
            reorder: Vec::new(),
        })
    }
}

impl Backend for RknnBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Rknn
    }

    fn output_shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    fn run(&mut self, input: &InputTensor) -> Result<Vec<OutputTensor>, BackendError> {
        let run_err = |source: rknpu2::Error| BackendError::Run {
            backend: BackendKind::Rknn,
            source: source.into(),
        };
        let [_, c, h, w] = self.input_shape;
        nchw_to_nhwc(&input.data, c, h, w, &mut self.nhwc);
        let inp = Input::new(
            0,
            BufView::F32(&self.nhwc),
            false,
            TensorFormatKind::NHWC(TensorFormat::NHWC),
        );
        self.ctx.set_inputs(inp).map_err(run_err)?;
        self.ctx.run().map_err(run_err)?;
        {
            let mut outs: Vec<Output<'_>> = self
                .raw
                .iter_mut()
                .enumerate()
                .map(|(i, buf)| Output {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    kind: OutputKind::Preallocated {
                        buf: BufMutView::I8(buf),
                        want_float: false,
                    },
                })
                .collect();
            self.ctx.get_outputs(&mut outs).map_err(run_err)?;
        }
        let mut result = Vec::with_capacity(self.outputs.len());
        for (plan, raw) in self.outputs.iter().zip(&self.raw) {
            let mut data = Vec::new();
            match plan.native {
                Some((c, h, w, c2)) => {
                    nc1hwc2_to_nchw(raw, c, h, w, c2, &mut self.reorder);
                    plan.quant.dequantize(&self.reorder, &mut data);
                }
                None => plan.quant.dequantize(raw, &mut data),
            }
            result.push(OutputTensor {
                shape: plan.shape.clone(),
                data,
            });
        }
        Ok(result)
    }
}

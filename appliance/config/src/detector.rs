//! `[detector]`: the inference backend and its model.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::Ctx;

/// `[detector]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDetector {
    pub backend: Option<String>,
    pub model: Option<String>,
    pub ppe_model: Option<String>,
    pub threads: Option<i64>,
    pub score_threshold: Option<f64>,
    pub classes: Option<Vec<String>>,
    pub isolation: Option<String>,
    pub sandbox: Option<bool>,
    pub devices: Option<Vec<String>>,
}

/// Where the models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// In a supervised child process: a crash or hang of the inference library
    /// is a detector fault the daemon survives (the default).
    Process,
    /// On the daemon's own worker threads (to measure the process boundary's cost).
    Thread,
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
    /// Where the models run.
    pub isolation: Isolation,
    /// The detector processes are sandboxed (seccomp, Landlock); `false` only
    /// to diagnose a backend the sandbox stops (never on a guarding box).
    pub sandbox: bool,
    /// The accelerator device nodes (or directories of them) a sandboxed
    /// detector process may open read-write; nothing else under `/dev`.
    pub devices: Vec<PathBuf>,
}

/// The accelerator nodes a backend needs when `detector.devices` is not
/// written: the Rockchip NPU (its own node or the DRM one) for `rknn`, and for
/// `auto`, which takes the NPU when the box has one; none for the CPU backends.
/// Nodes this box lacks are skipped when the sandbox is made.
pub fn default_devices(backend: Backend) -> Vec<PathBuf> {
    match backend {
        Backend::Rknn | Backend::Auto => ["/dev/rknpu", "/dev/dri"]
            .iter()
            .map(PathBuf::from)
            .collect(),
        Backend::Tract | Backend::OnnxRuntime => Vec::new(),
    }
}

/// Checks `[detector]`; `failed`: the section did not parse (its model is not reported missing).
pub(crate) fn validate_detector(
    ctx: &mut Ctx<'_>,
    raw: &RawDetector,
    failed: bool,
) -> DetectorConfig {
    let backend = ctx
        .choice(
            "detector.backend",
            raw.backend.as_deref(),
            Backend::Auto,
            &[
                ("auto", Backend::Auto),
                ("tract", Backend::Tract),
                ("onnxruntime", Backend::OnnxRuntime),
                ("rknn", Backend::Rknn),
            ],
        )
        .unwrap_or(Backend::Auto);
    let model = match raw.model.as_deref() {
        Some(m) if !m.trim().is_empty() => ctx.path(m),
        _ if failed => PathBuf::new(),
        _ => {
            ctx.bad(
                "detector.model",
                "is required: the path of a model manifest (models/<name>/model.toml)",
            );
            PathBuf::new()
        }
    };
    let score_threshold = raw.score_threshold.and_then(|s| {
        if (0.01..=0.99).contains(&s) {
            Some(s as f32)
        } else {
            ctx.bad(
                "detector.score_threshold",
                format!("must be between 0.01 and 0.99, got {s}"),
            );
            None
        }
    });
    DetectorConfig {
        backend,
        model,
        ppe_model: raw.ppe_model.as_deref().map(|p| ctx.path(p)),
        threads: ctx
            .int_in::<usize>("detector.threads", raw.threads, 1, 1, 16)
            .and_then(NonZeroUsize::new)
            .unwrap_or(NonZeroUsize::MIN),
        score_threshold,
        classes: raw.classes.clone().unwrap_or_default(),
        isolation: ctx
            .choice(
                "detector.isolation",
                raw.isolation.as_deref(),
                Isolation::Process,
                &[
                    ("process", Isolation::Process),
                    ("thread", Isolation::Thread),
                ],
            )
            .unwrap_or(Isolation::Process),
        sandbox: raw.sandbox.unwrap_or(true),
        devices: match &raw.devices {
            None => default_devices(backend),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let p = crate::check::normalize(Path::new(d));
                    if p.is_absolute() && p.starts_with("/dev") {
                        Some(p)
                    } else {
                        ctx.bad(
                            format!("detector.devices[{i}]"),
                            format!("must be an absolute path under /dev, got {d:?}"),
                        );
                        None
                    }
                })
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{check, paths};

    #[test]
    fn the_model_is_required_and_the_backend_one_of_the_list() {
        let (_, p) = check(|ctx| validate_detector(ctx, &RawDetector::default(), false));
        assert_eq!(paths(&p), vec!["detector.model"]);
        let (_, p) = check(|ctx| validate_detector(ctx, &RawDetector::default(), true));
        assert!(p.is_empty(), "{p:?}");
        let raw = RawDetector {
            backend: Some("cuda".into()),
            model: Some("m/model.toml".into()),
            score_threshold: Some(1.5),
            isolation: Some("vm".into()),
            ..RawDetector::default()
        };
        let (d, p) = check(|ctx| validate_detector(ctx, &raw, false));
        assert_eq!(
            paths(&p),
            vec![
                "detector.backend",
                "detector.score_threshold",
                "detector.isolation"
            ]
        );
        assert_eq!(d.model, PathBuf::from("/etc/safe-yolo/m/model.toml"));
    }

    #[test]
    fn the_sandbox_is_on_and_devices_follow_the_backend_unless_written() {
        let raw = RawDetector {
            backend: Some("tract".into()),
            model: Some("m/model.toml".into()),
            ..RawDetector::default()
        };
        let (d, p) = check(|ctx| validate_detector(ctx, &raw, false));
        assert!(p.is_empty(), "{p:?}");
        assert!(d.sandbox);
        assert!(d.devices.is_empty());
        let raw = RawDetector {
            backend: Some("rknn".into()),
            ..raw
        };
        let (d, _) = check(|ctx| validate_detector(ctx, &raw, false));
        assert_eq!(
            d.devices,
            vec![PathBuf::from("/dev/rknpu"), PathBuf::from("/dev/dri")]
        );
        let raw = RawDetector {
            sandbox: Some(false),
            devices: Some(vec![
                "/dev/dri/renderD128".into(),
                "/var/lib/safe-yolo".into(),
                "dri".into(),
                "/dev/../etc".into(),
            ]),
            ..raw
        };
        let (d, p) = check(|ctx| validate_detector(ctx, &raw, false));
        assert!(!d.sandbox);
        assert_eq!(d.devices, vec![PathBuf::from("/dev/dri/renderD128")]);
        assert_eq!(
            paths(&p),
            vec![
                "detector.devices[1]",
                "detector.devices[2]",
                "detector.devices[3]"
            ]
        );
    }
}

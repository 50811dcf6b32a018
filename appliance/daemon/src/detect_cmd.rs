//! `safe-yolo detect IMAGE...`: runs the configured (or given) model on
//! image files and prints what it finds, so an operator can check a model on
//! pictures of the site before trusting it with a zone.

use std::path::Path;
use std::process::ExitCode;

use safe_yolo_config::DetectorConfig;
use safe_yolo_detect::report::{load_image, to_json, to_table};
use safe_yolo_detect::{BackendChoice, LoadOptions};

use crate::cli::{DetectArgs, LogFormatArg};
use crate::report;

/// The detector load options of a configuration's `[detector]` section.
pub fn load_options(d: &DetectorConfig) -> LoadOptions {
    LoadOptions {
        backend: match d.backend {
            safe_yolo_config::Backend::Auto => BackendChoice::Auto,
            safe_yolo_config::Backend::Tract => BackendChoice::Tract,
            safe_yolo_config::Backend::OnnxRuntime => BackendChoice::OnnxRuntime,
            safe_yolo_config::Backend::Rknn => BackendChoice::Rknn,
        },
        threads: d.threads.get(),
        score_threshold: d.score_threshold,
        classes: (!d.classes.is_empty()).then(|| d.classes.clone()),
        ..LoadOptions::default()
    }
}

/// The detector role's sandbox, from its command line.
#[derive(Debug)]
pub struct Sandboxing {
    /// Its private scratch directory.
    pub scratch: Option<std::path::PathBuf>,
    /// The accelerator nodes it may use.
    pub devices: Vec<std::path::PathBuf>,
    /// `false`: unsandboxed (`detector.sandbox = false`).
    pub enabled: bool,
}

/// The detector role (`safe-yolo detector-worker`): sandboxes itself, loads the
/// model and serves the daemon's frames over standard input, the socket the
/// daemon passed. Ends when the daemon closes it, which the kernel does when
/// the daemon dies. (Not `PR_SET_PDEATHSIG`: it follows the thread that started
/// the child, and the supervisor restarts children from short-lived threads.)
pub fn worker(
    manifest: &std::path::Path,
    options: &str,
    sandboxing: &Sandboxing,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::os::fd::AsFd as _;
    let opts: LoadOptions =
        serde_json::from_str(options).context("the detector options are not valid JSON")?;
    let control = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("no control channel on standard input")?;
    let policy = match (&sandboxing.scratch, sandboxing.enabled) {
        (Some(scratch), true) => Some(safe_yolo_detect::process::sandbox::SandboxPolicy {
            scratch: scratch.clone(),
            read: safe_yolo_detect::process::sandbox::model_paths(
                manifest,
                &[
                    opts.onnxruntime_library.as_deref(),
                    opts.rknn_library.as_deref(),
                ],
            ),
            devices: sandboxing.devices.clone(),
        }),
        (None, true) => anyhow::bail!("a sandboxed detector process needs --scratch"),
        (_, false) => None,
    };
    safe_yolo_detect::process::serve(
        control,
        sandboxing.scratch.as_deref(),
        policy.as_ref(),
        || safe_yolo_detect::load(manifest, &opts),
    )
    .context("the detector process failed")
}

/// Runs `safe-yolo detect`: exit 0 when every image was processed, 1 when
/// the model could not be loaded or any image failed, 2 when the
/// configuration cannot be read or logging cannot start.
pub fn run(args: &DetectArgs, log_format: LogFormatArg, log: &str) -> ExitCode {
    if let Err(e) = safe_yolo_telemetry::logging::init(log_format.into(), log) {
        report::fatal(&anyhow::Error::new(e));
        return ExitCode::from(2);
    }
    let (manifest, mut opts) = match (&args.config, &args.model) {
        (Some(file), model) => match safe_yolo_config::load(file, std::env::vars()) {
            Ok(config) => (
                model.clone().unwrap_or(config.detector.model.clone()),
                load_options(&config.detector),
            ),
            Err(e) => {
                report::config_error(&e);
                return match e {
                    safe_yolo_config::ConfigError::Read { .. } => ExitCode::from(2),
                    safe_yolo_config::ConfigError::Invalid { .. } => ExitCode::FAILURE,
                };
            }
        },
        (None, Some(model)) => (model.clone(), LoadOptions::default()),
        (None, None) => {
            // clap's argument group requires one of the two.
            report::fatal(&anyhow::anyhow!("give --config FILE or --model MANIFEST"));
            return ExitCode::from(2);
        }
    };
    if let Some(b) = args.backend {
        opts.backend = b.into();
    }
    if let Some(t) = args.threads {
        opts.threads = usize::from(t);
    }
    if let Some(s) = args.score {
        opts.score_threshold = Some(s);
    }
    let mut detector = match safe_yolo_detect::load(&manifest, &opts) {
        Ok(d) => d,
        Err(e) => {
            report::fatal(
                &anyhow::Error::new(e)
                    .context(format!("cannot load the model {}", manifest.display())),
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::debug!(model = ?detector.info(), "detector loaded");
    let mut failed = 0usize;
    for image in &args.images {
        match detect_one(detector.as_mut(), image, args.json) {
            Ok(text) => print(&text),
            Err(e) => {
                failed += 1;
                report::fatal(&e);
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Detects objects in one image and formats them.
fn detect_one(
    detector: &mut dyn safe_yolo_detect::Detector,
    image: &Path,
    json: bool,
) -> anyhow::Result<String> {
    let frame = load_image(image)?;
    let detections = detector.detect(&frame).map_err(|e| {
        anyhow::Error::new(e).context(format!("detection failed on {}", image.display()))
    })?;
    let name = image.display().to_string();
    if json {
        Ok(format!("{}\n", to_json(&name, &detections)?))
    } else {
        Ok(to_table(&name, &detections))
    }
}

#[allow(clippy::print_stdout, reason = "the command's result, not logging")]
fn print(text: &str) {
    print!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_detector_section_maps_to_load_options() {
        let d = DetectorConfig {
            backend: safe_yolo_config::Backend::Tract,
            model: "m.toml".into(),
            ppe_model: None,
            threads: std::num::NonZeroUsize::new(3).unwrap(),
            score_threshold: Some(0.4),
            classes: vec!["person".into()],
            isolation: safe_yolo_config::Isolation::Process,
            sandbox: true,
            devices: Vec::new(),
        };
        let o = load_options(&d);
        assert_eq!(o.backend, BackendChoice::Tract);
        assert_eq!(o.threads, 3);
        assert_eq!(o.score_threshold, Some(0.4));
        assert_eq!(o.classes, Some(vec!["person".to_owned()]));
    }
}

//! Physical outputs of the appliance: sirens, relays and the "system healthy" line,
//! plus the acknowledge button and door contact inputs.
//!
//! Layers, from pure to I/O:
//! - [`spec`]: the vocabulary (output roles, safe states, patterns, actions, sources).
//! - [`driver`]: a pure state machine computing the level of every line at a given time;
//!   it owns every fail-safe rule (safe state on start, fault and shutdown; the healthy
//!   line on only while the pipeline is alive).
//! - [`debounce`]: pure stable-time input debouncing.
//! - [`backend`]: the [`LineBackend`] seam, and [`PinBank`], which drives outputs through
//!   embedded-hal `OutputPin`s so new hardware (an I2C expander) is just more pins.
//! - [`sim`] and [`gpio`]: the recording simulator and the Linux GPIO character device.
//! - [`runner`]: the task that owns a backend, ticks the driver and serves commands.
//! - [`config`]: the `[outputs]` configuration section and its validation.
//!
//! Typical wiring (the daemon chooses the backend):
//!
//! ```no_run
//! # async fn demo(cfg: safe_yolo_outputs::config::OutputsConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use safe_yolo_outputs::{Driver, OutputsRunner, open_backend};
//! let v = cfg.validate()?;
//! let (backend, _sim) = open_backend(&v)?;
//! let driver = Driver::new(v.specs.clone(), v.settings)?;
//! let (runner, outputs) = OutputsRunner::new(backend, driver, v.debounce_periods(), v.tick);
//! let thread = runner.spawn_thread()?;
//! outputs.pipeline_health(true)?; // heartbeats from the pipeline
//! // ... on SIGTERM:
//! outputs.shutdown().await?;
//! let _report = thread.join();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod backend;
pub mod config;
pub mod debounce;
pub mod driver;
pub mod gpio;
pub mod runner;
pub mod sim;
pub mod spec;

pub use backend::{BackendError, InputEdge, LineBackend, PinBackend, PinBank};
pub use config::{BackendKind, ConfigError, LineRef, OutputsConfig, ValidatedOutputs};
pub use driver::{Activation, Driver, DriverError, DriverSettings, DriverStatus, Mode};
pub use gpio::{GpioCdevBackend, GpioError};
pub use runner::{
    InputEvent, LatencyObserver, Outputs, OutputsError, OutputsHandle, OutputsRunner,
    OutputsStatus, RunnerReport,
};
pub use sim::{SimBackend, SimError, SimHandle, Transition};
pub use spec::{
    AckTarget, ActionSpec, Ending, InputRole, OutputRole, OutputSpec, Pattern, SafeState, Source,
};

/// Why the configured backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The GPIO backend failed.
    #[error("opening the GPIO outputs failed")]
    Gpio(#[source] GpioError),
    /// The simulated backend failed.
    #[error("opening the simulated outputs failed")]
    Sim(#[source] SimError),
}

/// Opens the backend a validated configuration asks for. With the simulated backend,
/// also returns its [`SimHandle`] (for the daemon's own tests and status).
pub fn open_backend(
    cfg: &ValidatedOutputs,
) -> Result<(Box<dyn LineBackend>, Option<SimHandle>), OpenError> {
    match cfg.config.backend {
        BackendKind::Gpio => {
            let b = GpioCdevBackend::open(cfg).map_err(OpenError::Gpio)?;
            Ok((Box::new(b), None))
        }
        BackendKind::Simulated => {
            let mut b = SimBackend::new(&cfg.specs, &cfg.input_roles()).map_err(OpenError::Sim)?;
            if let Some(path) = &cfg.config.sim_log {
                b = b.with_log_file(path).map_err(OpenError::Sim)?;
            }
            let h = b.handle();
            Ok((Box::new(b), Some(h)))
        }
    }
}

//! Observability shared by every part of the daemon.
//!
//! - [`logging`]: `tracing` to journald under systemd, readable text on a
//!   terminal, JSON for log shippers.
//! - [`liveness`]: heartbeats from every pipeline stage; the systemd watchdog
//!   and the "healthy" output are fed only while all of them are fresh.
//! - [`metrics`]: the Prometheus registry and the appliance's metric families.
#![forbid(unsafe_code)]

pub mod liveness;
pub mod logging;
pub mod metrics;

pub use liveness::{Heartbeat, Liveness, Stale};
pub use logging::{LogFormat, LoggingError};
pub use metrics::Metrics;

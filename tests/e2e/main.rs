//! Whole-daemon tests: they start the real `safe-yolo` binary on real
//! footage with the real detector, and talk to it the way systemd and an
//! operator do. One test binary (link time is precious on the build box).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "test code: a failed unwrap is a failed test"
)]

mod client;
mod harness;

mod alarms;
mod backup;
mod cameras;
mod cli;
mod detect;
mod integrations;
mod isolation;
mod lifecycle;
mod ppe;
mod rtsp;

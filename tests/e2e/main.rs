//! Whole-daemon tests: they start the real `safe-yolo` binary on real
//! footage with the real detector, and talk to it the way systemd and an
//! operator do. One test binary (link time is precious on the build box).

mod harness;

mod cli;
mod lifecycle;

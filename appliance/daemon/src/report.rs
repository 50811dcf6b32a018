//! Output of the interactive commands (`check-config`, `version`, `detect`,
//! `restore`).
//! This is the one module that writes to stdout/stderr directly: its output
//! is the command's result, not a log line.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "command output, not logging"
)]

use std::path::Path;

use safe_yolo_config::{Config, ConfigError};

/// Prints a valid configuration's summary.
pub fn config_ok(path: &Path, c: &Config) {
    println!(
        "{}: OK ({} camera(s), {} zone(s), {} line(s), {} rule(s), {} output line(s))",
        path.display(),
        c.cameras.len(),
        c.zones.len(),
        c.lines.len(),
        c.rules.len(),
        c.outputs.lines.len()
    );
}

/// Prints every configuration problem, one per line, to stderr.
pub fn config_error(e: &ConfigError) {
    match e {
        ConfigError::Read { path, source } => {
            eprintln!("error: cannot read {}: {source}", path.display());
        }
        ConfigError::Invalid { path, problems } => {
            eprintln!("{}: {} problem(s):", path.display(), problems.len());
            for p in problems {
                eprintln!("  {}: {}", p.path, p.reason);
            }
        }
    }
}

/// Prints the version.
pub fn version() {
    println!(
        "safe-yolo {} ({} {}, profile {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

/// Prints an error that happened before logging was set up.
pub fn fatal(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
}

/// Prints what a restore did.
pub fn restored(s: &crate::restore::Summary) {
    println!(
        "restored into {}: {} event(s) (last id {}), {} snapshot(s)",
        s.state_dir.display(),
        s.events,
        s.event_seq,
        s.snapshots
    );
    if let Some(old) = &s.replaced {
        println!("previous database kept as {}", old.display());
    }
    if let Some(old) = &s.config_replaced {
        println!(
            "configuration replaced; previous file kept as {}",
            old.display()
        );
    }
    if let Some(why) = &s.foreign {
        println!("WARNING: a foreign backup was restored ({why}); the audit log records it");
    }
    if !s.invalid_rows.is_empty() {
        println!(
            "WARNING: {} event(s) name no snapshot file; their snapshots will not be served: {:?}",
            s.invalid_rows.len(),
            s.invalid_rows
        );
    }
}

//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// SAFE-YOLO: people-safety CCTV appliance.
///
/// Watches cameras with an on-box person detector, raises alarms when a
/// person enters a forbidden zone, lacks protective equipment, lingers or
/// crowds a zone, and drives sirens and relays.
#[derive(Debug, Parser)]
#[command(name = "safe-yolo", version, propagate_version = true)]
pub struct Cli {
    /// Log output: auto (journald under systemd, text on a terminal), text, json, journald.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Auto, global = true)]
    pub log_format: LogFormatArg,

    /// Log filter, e.g. `info` or `info,safe_yolo_pipeline=debug`.
    #[arg(long, env = "SAFEYOLO_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance (this is what the systemd unit starts).
    ///
    /// Refuses to start when the configuration has any problem; run
    /// `check-config` to see them all.
    Run {
        /// Configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration file and list every problem in it.
    ///
    /// Exits 0 when the file is valid, 1 when it has problems (each line
    /// names the key and the reason), 2 when it cannot be read.
    CheckConfig {
        /// Configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the version and build details.
    Version,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Journald under systemd, text on a terminal.
    Auto,
    /// Readable text on stderr.
    Text,
    /// JSON lines on stderr.
    Json,
    /// The systemd journal.
    Journald,
}

impl From<LogFormatArg> for safe_yolo_telemetry::LogFormat {
    fn from(v: LogFormatArg) -> Self {
        match v {
            LogFormatArg::Auto => Self::Auto,
            LogFormatArg::Text => Self::Text,
            LogFormatArg::Json => Self::Json,
            LogFormatArg::Journald => Self::Journald,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}

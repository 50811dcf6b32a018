//! The `safe-yolo` daemon.
//!
//! This crate only parses the command line, picks the real or simulated
//! backend for every hardware edge, wires the subsystems together and runs
//! them. It holds no logic of its own.
#![forbid(unsafe_code)]

mod bench;
mod bench_tracking;
mod cli;
mod detect_cmd;
mod lifecycle;
mod report;
mod restore;
mod run;
mod settings;
mod stack;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Reports a configuration that cannot be used: exit 2 when it cannot be read, 1
/// when it has problems.
fn config_failed(e: &safe_yolo_config::ConfigError) -> ExitCode {
    report::config_error(e);
    match e {
        safe_yolo_config::ConfigError::Read { .. } => ExitCode::from(2),
        safe_yolo_config::ConfigError::Invalid { .. } => ExitCode::from(1),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            report::version();
            ExitCode::SUCCESS
        }
        Command::Detect(args) => detect_cmd::run(&args, cli.log_format, &cli.log),
        Command::Bench(args) => bench::run(&args, cli.log_format, &cli.log),
        Command::BenchTracking(args) => bench_tracking::run(&args, cli.log_format, &cli.log),
        Command::Restore(args) => {
            if let Err(e) = safe_yolo_telemetry::logging::init(cli.log_format.into(), &cli.log) {
                report::fatal(&anyhow::Error::new(e));
                return ExitCode::from(2);
            }
            restore::run(&args)
        }
        Command::CheckConfig { file } => match safe_yolo_config::load(&file, std::env::vars()) {
            Ok(config) => {
                report::config_ok(&file, &config);
                ExitCode::SUCCESS
            }
            Err(e) => config_failed(&e),
        },
        Command::ModbusMap { file } => match safe_yolo_config::load(&file, std::env::vars()) {
            Ok(config) => {
                if report::modbus_map(&config) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => config_failed(&e),
        },
        Command::DetectorWorker {
            manifest,
            options,
            scratch,
            devices,
            no_sandbox,
        } => {
            if let Err(e) = safe_yolo_telemetry::logging::init(cli.log_format.into(), &cli.log) {
                report::fatal(&anyhow::Error::new(e));
                return ExitCode::from(2);
            }
            let sandbox = detect_cmd::Sandboxing {
                scratch,
                devices,
                enabled: !no_sandbox,
            };
            match detect_cmd::worker(&manifest, &options, &sandbox) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "detector process stopped on an error"
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config } => {
            if let Err(e) = safe_yolo_telemetry::logging::init(cli.log_format.into(), &cli.log) {
                report::fatal(&anyhow::Error::new(e));
                return ExitCode::from(2);
            }
            match run::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "safe-yolo stopped on an error");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

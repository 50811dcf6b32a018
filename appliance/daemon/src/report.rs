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

/// Prints the configuration's Modbus register map as a Markdown table; `false` (and
/// a line on stderr) when the file has no `[integrations.modbus]`.
pub fn modbus_map(c: &Config) -> bool {
    use safe_yolo_config::{ModbusConfig, ModbusPoint, ModbusTable};
    let Some(m) = &c.integrations.modbus else {
        eprintln!("the configuration has no [integrations.modbus]: the box serves no Modbus");
        return false;
    };
    let rules: Vec<_> = c.rules.iter().map(|r| r.id.clone()).collect();
    let cameras: Vec<_> = c.cameras.iter().map(|c| c.id.clone()).collect();
    let zones: Vec<_> = c.zones.iter().map(|z| z.id.clone()).collect();
    let map = safe_yolo_config::modbus_map(
        &c.integrations.interlocks,
        &ModbusConfig::order(m.rules.as_ref(), &rules),
        &ModbusConfig::order(m.cameras.as_ref(), &cameras),
        &ModbusConfig::order(m.zones.as_ref(), &zones),
    );
    println!("Modbus TCP on {} (unit id {})\n", m.bind, m.unit_id);
    println!("| table | address | meaning |\n|---|---|---|");
    for r in map {
        let table = match r.table {
            ModbusTable::Coil => "coil",
            ModbusTable::DiscreteInput => "discrete input",
            ModbusTable::InputRegister => "input register",
        };
        let meaning = match &r.point {
            ModbusPoint::AcknowledgeAll => "write 1: acknowledge every open alarm".to_owned(),
            ModbusPoint::Interlock { interlock } => {
                format!("interlock `{interlock}`: 1 armed, 0 disarmed")
            }
            ModbusPoint::Guarding => "the box guards".to_owned(),
            ModbusPoint::AnyAlarm => "some alarm is raised".to_owned(),
            ModbusPoint::RuleRaised { rule } => format!("rule `{rule}` has an alarm raised"),
            ModbusPoint::RuleArmed { rule } => format!("rule `{rule}` is armed"),
            ModbusPoint::CameraOnline { camera } => format!("camera `{camera}` delivers frames"),
            ModbusPoint::LastEventId => {
                "newest event id (u32, high word here, low word at the next address)".to_owned()
            }
            ModbusPoint::RaisedCount => "alarms raised now".to_owned(),
            ModbusPoint::ZoneCount { zone } => format!("persons in zone `{zone}`"),
        };
        println!("| {table} | {} | {meaning} |", r.address);
    }
    true
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

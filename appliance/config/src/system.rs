//! `[system]`: daemon-wide settings.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::check::Ctx;

/// `[system]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSystem {
    pub board: Option<String>,
    pub board_dir: Option<String>,
    pub stall_timeout_s: Option<f64>,
    pub shutdown_timeout_s: Option<f64>,
    pub detect_workers: Option<i64>,
    pub detect_nice: Option<i64>,
    pub api_nice: Option<i64>,
}

/// Daemon-wide settings.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// Board profile name (a file in `board_dir`), if any.
    pub board: Option<String>,
    /// Where board profiles are installed.
    pub board_dir: PathBuf,
    /// A pipeline stage silent for this long counts as stalled: the systemd
    /// watchdog pings stop and the "healthy" output drops.
    pub stall_timeout: Duration,
    /// How long shutdown may take before the daemon gives up waiting.
    pub shutdown_timeout: Duration,
    /// Detector worker threads (inference runs there, never on the reactor).
    pub detect_workers: NonZeroUsize,
    /// Nice value of inference (detect workers and their libraries' threads):
    /// below capture, rules and outputs, which keep the default 0.
    pub detect_nice: i32,
    /// Nice value of the HTTPS API and live view: below inference.
    pub api_nice: i32,
}

/// Checks `[system]`; out-of-range values are reported and replaced by their defaults.
pub(crate) fn validate_system(ctx: &mut Ctx<'_>, raw: &RawSystem) -> SystemConfig {
    SystemConfig {
        board: raw.board.clone(),
        board_dir: raw.board_dir.as_deref().map_or_else(
            || PathBuf::from("/usr/share/safe-yolo/board"),
            |d| ctx.path(d),
        ),
        stall_timeout: ctx
            .secs_in(
                "system.stall_timeout_s",
                raw.stall_timeout_s,
                10.0,
                1.0,
                300.0,
            )
            .unwrap_or(Duration::from_secs(10)),
        shutdown_timeout: ctx
            .secs_in(
                "system.shutdown_timeout_s",
                raw.shutdown_timeout_s,
                4.0,
                0.5,
                60.0,
            )
            .unwrap_or(Duration::from_secs(4)),
        detect_workers: ctx
            .int_in::<usize>("system.detect_workers", raw.detect_workers, 1, 1, 16)
            .and_then(NonZeroUsize::new)
            .unwrap_or(NonZeroUsize::MIN),
        detect_nice: ctx
            .int_in::<i32>("system.detect_nice", raw.detect_nice, 5, 0, 19)
            .unwrap_or(5),
        api_nice: ctx
            .int_in::<i32>("system.api_nice", raw.api_nice, 10, 0, 19)
            .unwrap_or(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{check, paths};

    #[test]
    fn defaults_and_ranges() {
        let (s, p) = check(|ctx| validate_system(ctx, &RawSystem::default()));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.stall_timeout, Duration::from_secs(10));
        assert_eq!(s.board_dir, PathBuf::from("/usr/share/safe-yolo/board"));
        let raw = RawSystem {
            detect_workers: Some(0),
            api_nice: Some(20),
            board_dir: Some("board".into()),
            ..RawSystem::default()
        };
        let (s, p) = check(|ctx| validate_system(ctx, &raw));
        assert_eq!(paths(&p), vec!["system.detect_workers", "system.api_nice"]);
        assert_eq!(s.board_dir, PathBuf::from("/etc/safe-yolo/board"));
    }
}

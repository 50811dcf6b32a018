//! `[storage]`: where state lives and how long it is kept.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::check::Ctx;

/// `[storage]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub state_dir: Option<String>,
    pub media_dir: Option<String>,
    pub event_retention_days: Option<i64>,
    pub audit_retention_days: Option<i64>,
    pub snapshot_quota_mb: Option<i64>,
}

/// Where state lives and how long it is kept.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Database, snapshots, keys and certificates.
    pub state_dir: PathBuf,
    /// Replay sources must be inside this directory.
    pub media_dir: PathBuf,
    /// Events older than this are pruned.
    pub event_retention: Duration,
    /// Audit rows older than this are pruned.
    pub audit_retention: Duration,
    /// Disk quota for snapshots.
    pub snapshot_quota_bytes: u64,
}

/// Checks `[storage]`.
pub(crate) fn validate_storage(ctx: &mut Ctx<'_>, raw: &RawStorage) -> StorageConfig {
    let state_dir = match raw.state_dir.as_deref() {
        Some(s) if !s.trim().is_empty() => ctx.path(s),
        Some(_) => {
            ctx.bad("storage.state_dir", "must not be empty");
            PathBuf::new()
        }
        None => PathBuf::from("/var/lib/safe-yolo"),
    };
    let media_dir = match raw.media_dir.as_deref() {
        Some(s) if !s.trim().is_empty() => ctx.path(s),
        Some(_) => {
            ctx.bad("storage.media_dir", "must not be empty");
            PathBuf::new()
        }
        None => state_dir.join("media"),
    };
    let days = |ctx: &mut Ctx<'_>, path: &str, v: Option<i64>, default: i64| {
        ctx.int_in::<u64>(path, v, default, 1, 3650)
            .map(|d| Duration::from_secs(d * 86_400))
            .unwrap_or(Duration::from_secs(default.unsigned_abs() * 86_400))
    };
    let event_retention = days(
        ctx,
        "storage.event_retention_days",
        raw.event_retention_days,
        90,
    );
    let audit_retention = days(
        ctx,
        "storage.audit_retention_days",
        raw.audit_retention_days,
        730,
    );
    if audit_retention < event_retention {
        ctx.bad(
            "storage.audit_retention_days",
            "must be at least storage.event_retention_days: the audit log outlives the events it explains",
        );
    }
    StorageConfig {
        state_dir,
        media_dir,
        event_retention,
        audit_retention,
        snapshot_quota_bytes: ctx
            .int_in::<u64>(
                "storage.snapshot_quota_mb",
                raw.snapshot_quota_mb,
                2048,
                16,
                1_048_576,
            )
            .unwrap_or(2048)
            * 1024
            * 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{check, paths};

    #[test]
    fn audit_outlives_events() {
        let raw = RawStorage {
            event_retention_days: Some(30),
            audit_retention_days: Some(7),
            ..RawStorage::default()
        };
        let (s, p) = check(|ctx| validate_storage(ctx, &raw));
        assert_eq!(paths(&p), vec!["storage.audit_retention_days"]);
        assert_eq!(s.media_dir, PathBuf::from("/var/lib/safe-yolo/media"));
        assert_eq!(s.event_retention, Duration::from_secs(30 * 86_400));
    }
}

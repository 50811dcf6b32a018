//! `safe-yolo restore`: puts a backup (the tar file an admin downloads from
//! `GET /api/v1/system/backup`, or its unpacked folder) back into the state
//! directory of a stopped appliance.
//!
//! Nothing is deleted: the current database and snapshots are moved aside by
//! the store's `restore`, the configuration file (with `--with-config`) is
//! moved aside too. A running daemon holds the database's lock; restore
//! refuses to touch its files then.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::RestoreArgs;
use crate::report;

/// Runs `safe-yolo restore`: exit 0 when restored, 1 on any failure (nothing
/// changed unless the message says so), 2 when the configuration cannot be read.
pub fn run(args: &RestoreArgs) -> ExitCode {
    let config = match safe_yolo_config::load(&args.config, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            report::config_error(&e);
            return ExitCode::from(2);
        }
    };
    match restore(args, &config.storage.state_dir) {
        Ok(summary) => {
            report::restored(&summary);
            ExitCode::SUCCESS
        }
        Err(e) => {
            report::fatal(&e);
            ExitCode::FAILURE
        }
    }
}

/// What a restore did, for the operator.
#[derive(Debug)]
pub struct Summary {
    /// Where the backup was restored.
    pub state_dir: PathBuf,
    /// Events in the restored database.
    pub events: u64,
    /// Last event id in it (new events continue above).
    pub event_seq: u64,
    /// Snapshot files restored.
    pub snapshots: usize,
    /// The database that was there before, moved aside.
    pub replaced: Option<PathBuf>,
    /// The configuration file that was replaced, moved aside (`--with-config`).
    pub config_replaced: Option<PathBuf>,
    /// Why the backup was not this box's, when it was restored with
    /// `--accept-foreign`.
    pub foreign: Option<String>,
    /// Events whose snapshot row names no snapshot file (a crafted backup);
    /// the API refuses to serve those snapshots.
    pub invalid_rows: Vec<u64>,
}

/// Opens the restored store, checks its rows, and writes the restore into its
/// audit log (a foreign backup says so, with the reason). Returns the events whose
/// snapshot row names no snapshot file.
fn record_restore(
    state_dir: &Path,
    backup: &Path,
    provenance: &safe_yolo_store::Provenance,
) -> anyhow::Result<Vec<u64>> {
    let store = safe_yolo_store::Store::open(safe_yolo_store::StoreConfig::new(state_dir))
        .with_context(|| format!("cannot open the restored store in {}", state_dir.display()))?;
    let invalid = store
        .events_with_invalid_snapshot_names()
        .context("cannot check the restored events")?;
    let (action, after) = match provenance {
        safe_yolo_store::Provenance::ThisBox => {
            ("system.restore", "backup signed by this box".to_owned())
        }
        safe_yolo_store::Provenance::Foreign { reason } => (
            "system.restore_foreign",
            format!("FOREIGN backup restored with --accept-foreign: {reason}"),
        ),
    };
    let after = if invalid.is_empty() {
        after
    } else {
        format!(
            "{after}; {} event row(s) name no snapshot file and their snapshots are refused: {:?}",
            invalid.len(),
            invalid
        )
    };
    let row = safe_yolo_store::NewAudit {
        at: safe_yolo_store::now_ms(),
        actor: "cli".into(),
        role: None,
        source: None,
        action: action.into(),
        target: format!("backup/{}", backup.display()),
        before: None,
        after: Some(after),
        result: safe_yolo_store::AuditResult::Ok,
    };
    store
        .transaction(|t| t.append_audit(row))
        .context("cannot record the restore in the audit log")?;
    Ok(invalid)
}

fn restore(args: &RestoreArgs, state_dir: &Path) -> anyhow::Result<Summary> {
    refuse_if_running(state_dir)?;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    // A tar is unpacked next to the database (same file system), then removed.
    let unpacked = if args.backup.is_dir() {
        None
    } else {
        let dir = state_dir.join(format!("restore-{}", safe_yolo_store::now_ms()));
        unpack(&args.backup, &dir)?;
        Some(dir)
    };
    let result = (|| {
        let folder = match &unpacked {
            Some(dir) => backup_folder(dir)?,
            None => args.backup.clone(),
        };
        let manifest = safe_yolo_store::verify_backup(&folder)
            .with_context(|| format!("{} is not an intact backup", args.backup.display()))?;
        let report = safe_yolo_store::restore(&folder, state_dir, args.accept_foreign)
            .with_context(|| format!("cannot restore into {}", state_dir.display()))?;
        let invalid_rows = record_restore(state_dir, &args.backup, &report.provenance)?;
        let config_replaced = if args.with_config {
            let Some(copy) = &report.config else {
                bail!("the backup holds no configuration file; restored the database only");
            };
            Some(install_config(copy, &args.config)?)
        } else {
            None
        };
        Ok(Summary {
            state_dir: state_dir.to_path_buf(),
            events: manifest.events,
            event_seq: manifest.event_seq,
            snapshots: report.snapshots,
            replaced: report.replaced,
            config_replaced,
            foreign: match report.provenance {
                safe_yolo_store::Provenance::ThisBox => None,
                safe_yolo_store::Provenance::Foreign { reason } => Some(reason),
            },
            invalid_rows,
        })
    })();
    if let Some(dir) = unpacked
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the unpacked backup");
    }
    result
}

/// A running daemon holds an exclusive lock on the database file.
fn refuse_if_running(state_dir: &Path) -> anyhow::Result<()> {
    let db = state_dir.join("store.redb");
    let file = match std::fs::File::open(&db) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", db.display())),
    };
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "{} is in use: stop the daemon first (systemctl stop safe-yolo)",
            db.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", db.display()))
        }
    }
}

/// Unpacks a backup tar into `dest` (entries that would land outside it are
/// refused by the tar reader).
fn unpack(tar_file: &Path, dest: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(tar_file)
        .with_context(|| format!("cannot open {}", tar_file.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    archive
        .unpack(dest)
        .with_context(|| format!("{} is not a readable tar file", tar_file.display()))
}

/// The folder of an unpacked backup: the one holding `MANIFEST.json`, at the
/// top or one level down (the download has one top-level folder).
fn backup_folder(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.join("MANIFEST.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry.context("cannot list the unpacked backup")?.path();
        if path.join("MANIFEST.json").is_file() {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("the archive holds no MANIFEST.json: not a safe-yolo backup"),
        n => bail!("the archive holds {n} backups; unpack it and give one folder"),
    }
}

/// Replaces the configuration file with the backup's copy, moving the
/// current one aside.
fn install_config(copy: &Path, config: &Path) -> anyhow::Result<PathBuf> {
    let aside = config.with_extension(format!("toml.replaced-{}", safe_yolo_store::now_ms()));
    std::fs::rename(config, &aside)
        .with_context(|| format!("cannot move {} aside", config.display()))?;
    std::fs::copy(copy, config)
        .with_context(|| format!("cannot install the configuration {}", config.display()))?;
    Ok(aside)
}

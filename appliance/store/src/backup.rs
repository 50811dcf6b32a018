//! Consistent backups, restore, and event export for incident reports.
//!
//! A backup is a directory: `store.redb` (every table copied inside ONE read transaction,
//! so it is a consistent point-in-time image while the appliance keeps running), the
//! snapshot files that image references under `snapshots/`, an optional copy of the config
//! file as `config.toml`, and `MANIFEST.json` (written last, so its presence marks a
//! complete backup) listing every file with its size and SHA-256.

use safe_yolo_domain::Named;
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DbContext, StoreError};
use crate::migrate::{copy_durably, sync_dir};
use crate::model::{Event, EventQuery, EventState, Snapshot, UnixMs, now_ms};
use crate::schema::{
    API_KEYS, AUDIT, CURRENT_VERSION, EVENTS, KEY_EVENT_SEQ, META, OPEN_EVENTS, SESSIONS, SETTINGS,
    SNAPSHOTS, USERS,
};
use crate::signing::{BackupKey, Provenance};
use crate::snapshots;
use crate::store::{DB_FILE, SNAPSHOT_DIR, Store, query_events_in};

/// Name of the manifest inside a backup directory.
pub const MANIFEST: &str = "MANIFEST.json";
/// Name of the config copy inside a backup directory.
pub const CONFIG_COPY: &str = "config.toml";

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Path relative to the backup directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// The backup's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Format of this manifest.
    pub format: u32,
    /// Schema version of the copied database.
    pub schema_version: u32,
    /// When the backup was taken.
    pub created_at: UnixMs,
    /// Last event id in the image.
    pub event_seq: u64,
    /// Events in the image.
    pub events: u64,
    /// Snapshots referenced by the image that had already been pruned when copied.
    pub snapshots_missing: Vec<u64>,
    /// Every file, database first.
    pub files: Vec<BackupFile>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Whose backup it was (a foreign one is restored only when asked).
    pub provenance: Provenance,
    /// The database file that was in the state directory before, moved aside.
    pub replaced: Option<PathBuf>,
    /// Snapshot files restored.
    pub snapshots: usize,
    /// The config copy in the backup, if any; the caller installs it.
    pub config: Option<PathBuf>,
}

fn hash_file(path: &Path) -> Result<(u64, String), StoreError> {
    let mut f = fs::File::open(path).map_err(|e| StoreError::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let r = f
            .read(&mut buf)
            .map_err(|e| StoreError::io("read", path, e))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

fn copy_u64_table(
    src: &redb::ReadTransaction,
    dst: &redb::WriteTransaction,
    def: TableDefinition<'static, u64, &'static [u8]>,
) -> Result<(), StoreError> {
    let s = src.open_table(def).db("open source table")?;
    let mut d = dst.open_table(def).db("open backup table")?;
    for row in s.iter().db("scan table")? {
        let (k, v) = row.db("read row")?;
        d.insert(k.value(), v.value()).db("write backup row")?;
    }
    Ok(())
}

fn copy_str_table(
    src: &redb::ReadTransaction,
    dst: &redb::WriteTransaction,
    def: TableDefinition<'static, &'static str, &'static [u8]>,
) -> Result<(), StoreError> {
    let s = src.open_table(def).db("open source table")?;
    let mut d = dst.open_table(def).db("open backup table")?;
    for row in s.iter().db("scan table")? {
        let (k, v) = row.db("read row")?;
        d.insert(k.value(), v.value()).db("write backup row")?;
    }
    Ok(())
}

// === impl Store (backup) ===

impl Store {
    /// Writes a consistent backup into `dest`, which must not exist yet. With `config`,
    /// the config file is copied too; with `include_snapshots`, the snapshot files.
    pub fn backup(
        &self,
        dest: &Path,
        config: Option<&Path>,
        include_snapshots: bool,
    ) -> Result<BackupManifest, StoreError> {
        if dest.exists() {
            return Err(StoreError::AlreadyExists {
                what: "backup directory",
                key: dest.display().to_string(),
            });
        }
        fs::create_dir_all(dest.join(SNAPSHOT_DIR))
            .map_err(|e| StoreError::io("create backup directory", dest, e))?;
        let db_copy = dest.join(DB_FILE);
        let rtx = self.begin_read()?;
        let (event_seq, events, snapshot_ids) = {
            let out = Database::create(&db_copy).db("create backup database")?;
            let wtx = out.begin_write().db("begin backup write")?;
            {
                let s = rtx.open_table(META).db("open meta")?;
                let mut d = wtx.open_table(META).db("open backup meta")?;
                for row in s.iter().db("scan meta")? {
                    let (k, v) = row.db("read meta")?;
                    d.insert(k.value(), v.value()).db("write backup meta")?;
                }
                let s = rtx.open_table(OPEN_EVENTS).db("open open_events")?;
                let mut d = wtx.open_table(OPEN_EVENTS).db("open backup open_events")?;
                for row in s.iter().db("scan open_events")? {
                    d.insert(row.db("read open_events")?.0.value(), ())
                        .db("write open_events")?;
                }
                let s = rtx.open_table(SNAPSHOTS).db("open snapshots")?;
                let mut d = wtx.open_table(SNAPSHOTS).db("open backup snapshots")?;
                for row in s.iter().db("scan snapshots")? {
                    let (k, v) = row.db("read snapshots")?;
                    d.insert(k.value(), v.value()).db("write snapshots")?;
                }
            }
            copy_u64_table(&rtx, &wtx, EVENTS)?;
            copy_u64_table(&rtx, &wtx, AUDIT)?;
            for def in [USERS, SESSIONS, API_KEYS, SETTINGS] {
                copy_str_table(&rtx, &wtx, def)?;
            }
            wtx.commit().db("commit backup")?;
            let meta = rtx.open_table(META).db("open meta")?;
            let seq = meta
                .get(KEY_EVENT_SEQ)
                .db("read seq")?
                .map_or(0, |v| v.value());
            let events =
                redb::ReadableTableMetadata::len(&rtx.open_table(EVENTS).db("open events")?)
                    .db("count events")?;
            let snaps = rtx.open_table(SNAPSHOTS).db("open snapshots")?;
            let mut ids = Vec::new();
            for row in snaps.iter().db("scan snapshots")? {
                ids.push(row.db("read snapshots")?.0.value());
            }
            (seq, events, ids)
        };
        drop(rtx);
        let mut files = Vec::new();
        let (bytes, sha256) = hash_file(&db_copy)?;
        files.push(BackupFile {
            path: DB_FILE.into(),
            bytes,
            sha256,
        });
        let mut snapshots_missing = Vec::new();
        if include_snapshots {
            for id in snapshot_ids {
                let name = snapshots::file_name(id);
                let from = self.snapshot_dir().join(&name);
                let to = dest.join(SNAPSHOT_DIR).join(&name);
                match fs::copy(&from, &to) {
                    Ok(_) => {
                        let (bytes, sha256) = hash_file(&to)?;
                        files.push(BackupFile {
                            path: format!("{SNAPSHOT_DIR}/{name}"),
                            bytes,
                            sha256,
                        });
                    }
                    // Pruned after the read transaction began; the image still lists it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        snapshots_missing.push(id)
                    }
                    Err(e) => return Err(StoreError::io("copy snapshot", &from, e)),
                }
            }
        }
        if let Some(cfg) = config {
            let to = dest.join(CONFIG_COPY);
            fs::copy(cfg, &to).map_err(|e| StoreError::io("copy config", cfg, e))?;
            let (bytes, sha256) = hash_file(&to)?;
            files.push(BackupFile {
                path: CONFIG_COPY.into(),
                bytes,
                sha256,
            });
        }
        for f in &files {
            let p = dest.join(&f.path);
            fs::File::open(&p)
                .and_then(|h| h.sync_all())
                .map_err(|e| StoreError::io("fsync", &p, e))?;
        }
        sync_dir(&dest.join(SNAPSHOT_DIR))?;
        let manifest = BackupManifest {
            format: 1,
            schema_version: CURRENT_VERSION,
            created_at: now_ms(),
            event_seq,
            events,
            snapshots_missing,
            files,
        };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|source| StoreError::Encode {
            table: "manifest",
            source,
        })?;
        let mpath = dest.join(MANIFEST);
        fs::write(&mpath, bytes).map_err(|e| StoreError::io("write manifest", &mpath, e))?;
        fs::File::open(&mpath)
            .and_then(|h| h.sync_all())
            .map_err(|e| StoreError::io("fsync", &mpath, e))?;
        BackupKey::load_or_create(&self.config().state_dir)?.sign(dest)?;
        sync_dir(dest)?;
        tracing::info!(dest = %dest.display(), events, "backup written and signed");
        Ok(manifest)
    }

    /// Writes the events matching `q` (all pages; `cursor` and `limit` ignored) as CSV.
    pub fn export_events_csv(&self, q: &EventQuery, out: impl Write) -> Result<u64, StoreError> {
        let mut w = BufWriter::new(out);
        let io = |e| StoreError::io("write export", "csv", e);
        writeln!(
            w,
            "id,started_at_utc,started_at_ms,ended_at_ms,camera,rule,zone,track,kind,severity,\
             state,acknowledged_by,acknowledged_at_ms,cleared_at_ms,message,snapshot_file,\
             snapshot_sha256,details"
        )
        .map_err(io)?;
        let n = self.for_each_event(q, |e| {
            let (ack_by, ack_at, cleared_at) = match &e.state {
                EventState::Active => (None, None, None),
                EventState::Acknowledged { by, at } => (Some(by.clone()), Some(*at), None),
                EventState::Cleared {
                    at, acknowledged, ..
                } => (
                    acknowledged.as_ref().map(|a| a.by.clone()),
                    acknowledged.as_ref().map(|a| a.at),
                    Some(*at),
                ),
            };
            let (file, sha) = match &e.snapshot {
                Snapshot::Stored(r) => (r.file.clone(), r.sha256.clone()),
                Snapshot::Pruned { sha256, .. } => ("(pruned)".into(), sha256.clone()),
                Snapshot::Refused { reason } => (format!("(refused: {reason:?})"), String::new()),
                Snapshot::None => (String::new(), String::new()),
            };
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            let fields = [
                e.id.to_string(),
                utc_iso8601(e.started_at),
                e.started_at.to_string(),
                opt(e.ended_at),
                e.camera.to_string(),
                e.rule.to_string(),
                e.zone.as_ref().map(ToString::to_string).unwrap_or_default(),
                opt(e.track),
                e.kind.clone(),
                e.severity.as_str().into(),
                e.state.name().into(),
                ack_by.unwrap_or_default(),
                opt(ack_at),
                opt(cleared_at),
                e.message.clone(),
                file,
                sha,
                e.details
                    .as_ref()
                    .and_then(|d| serde_json::to_string(d).ok())
                    .unwrap_or_default(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(w, "{}", line.join(",")).map_err(io)
        })?;
        w.flush().map_err(io)?;
        Ok(n)
    }

    /// Writes the events matching `q` (all pages) as a JSON array.
    pub fn export_events_json(&self, q: &EventQuery, out: impl Write) -> Result<u64, StoreError> {
        let mut w = BufWriter::new(out);
        let io = |e| StoreError::io("write export", "json", e);
        w.write_all(b"[").map_err(io)?;
        let mut first = true;
        let n = self.for_each_event(q, |e| {
            if !first {
                w.write_all(b",\n").map_err(io)?;
            }
            first = false;
            serde_json::to_writer(&mut w, e).map_err(|source| StoreError::Encode {
                table: "export",
                source,
            })
        })?;
        w.write_all(b"]\n").map_err(io)?;
        w.flush().map_err(io)?;
        Ok(n)
    }

    fn for_each_event(
        &self,
        q: &EventQuery,
        mut f: impl FnMut(&Event) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let tx = self.begin_read()?;
        let t = tx.open_table(EVENTS).db("open events")?;
        let open = tx.open_table(OPEN_EVENTS).db("open open_events")?;
        let mut page_q = q.clone();
        page_q.cursor = None;
        page_q.limit = crate::store::MAX_PAGE;
        let mut n = 0;
        loop {
            let page = query_events_in(&t, &open, &page_q)?;
            for e in &page.events {
                f(e)?;
                n += 1;
            }
            match page.next_cursor {
                Some(c) => page_q.cursor = Some(c),
                None => return Ok(n),
            }
        }
    }
}

/// Checks a backup directory against its manifest (sizes and SHA-256 of every file).
pub fn verify_backup(dir: &Path) -> Result<BackupManifest, StoreError> {
    let mpath = dir.join(MANIFEST);
    let bytes = fs::read(&mpath).map_err(|e| StoreError::io("read manifest", &mpath, e))?;
    let m = parse_manifest(&bytes, dir)?;
    for f in &m.files {
        let (bytes, sha) = hash_file(&dir.join(&f.path))?;
        if bytes != f.bytes || sha != f.sha256 {
            return Err(StoreError::BadBackup {
                path: dir.to_path_buf(),
                reason: format!("{} does not match the manifest (size or SHA-256)", f.path),
            });
        }
    }
    Ok(m)
}

/// Decodes the manifest of the backup in `dir` and checks its structure: a schema this
/// firmware can read, the database listed first, every path one a backup may hold.
/// Touches no file: [`verify_backup`] reads the manifest and then checks each file
/// against it (the fuzz target `backup_manifest` runs this on hostile bytes).
pub fn parse_manifest(bytes: &[u8], dir: &Path) -> Result<BackupManifest, StoreError> {
    let bad = |reason: String| StoreError::BadBackup {
        path: dir.to_path_buf(),
        reason,
    };
    let m: BackupManifest = serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        table: "manifest",
        key: dir.join(MANIFEST).display().to_string(),
        source,
    })?;
    if m.schema_version > CURRENT_VERSION {
        return Err(bad(format!(
            "schema v{} is newer than this firmware's v{CURRENT_VERSION}",
            m.schema_version
        )));
    }
    if m.files.first().map(|f| f.path.as_str()) != Some(DB_FILE) {
        return Err(bad(format!("manifest does not list {DB_FILE} first")));
    }
    if let Some(f) = m.files.iter().find(|f| !backup_path_allowed(&f.path)) {
        return Err(bad(format!(
            "unexpected path {:?} in manifest: a backup holds {DB_FILE}, {CONFIG_COPY} and {SNAPSHOT_DIR}/<20 digits>.jpg only",
            f.path
        )));
    }
    Ok(m)
}

/// Whether `path` (relative, from a manifest) is a file a backup may hold: the
/// database, the config copy, or a snapshot under the store's own naming. Anything
/// else (a `..`, an absolute path, a name the store would never write) is refused,
/// so a crafted backup cannot plant files or point rows at other files.
fn backup_path_allowed(path: &str) -> bool {
    path == DB_FILE
        || path == CONFIG_COPY
        || path
            .strip_prefix(&format!("{SNAPSHOT_DIR}/"))
            .is_some_and(|name| snapshots::parse_file_name(name).is_some())
}

/// Restores a verified backup into `state_dir`. The store must be closed. An existing
/// database is moved aside to `store.redb.replaced-<ms>` rather than deleted; the snapshot
/// directory is replaced the same way. The config copy is returned for the caller to install.
///
/// The backup must be signed by this box ([`Provenance::ThisBox`]); another box's
/// backup (or one altered after signing) is restored only with `accept_foreign`,
/// and the report says which it was so the caller can audit it.
pub fn restore(
    backup: &Path,
    state_dir: &Path,
    accept_foreign: bool,
) -> Result<RestoreReport, StoreError> {
    let m = verify_backup(backup)?;
    let key = BackupKey::load(state_dir)?;
    let provenance = crate::signing::provenance(backup, key.as_ref())?;
    if let (Provenance::Foreign { reason }, false) = (&provenance, accept_foreign) {
        return Err(StoreError::BadBackup {
            path: backup.to_path_buf(),
            reason: format!(
                "not provably this box's backup ({reason}); restore it only if you trust where it comes from, with --accept-foreign"
            ),
        });
    }
    fs::create_dir_all(state_dir)
        .map_err(|e| StoreError::io("create state directory", state_dir, e))?;
    let stamp = now_ms();
    let db = state_dir.join(DB_FILE);
    let replaced = if db.exists() {
        let aside = state_dir.join(format!("{DB_FILE}.replaced-{stamp}"));
        fs::rename(&db, &aside).map_err(|e| StoreError::io("move database aside", &db, e))?;
        Some(aside)
    } else {
        None
    };
    let snap_dir = state_dir.join(SNAPSHOT_DIR);
    if snap_dir.exists() {
        let aside = state_dir.join(format!("{SNAPSHOT_DIR}.replaced-{stamp}"));
        fs::rename(&snap_dir, &aside)
            .map_err(|e| StoreError::io("move snapshots aside", &snap_dir, e))?;
    }
    fs::create_dir_all(&snap_dir)
        .map_err(|e| StoreError::io("create snapshot directory", &snap_dir, e))?;
    let mut snapshots = 0;
    for f in m
        .files
        .iter()
        .filter(|f| f.path.starts_with(&format!("{SNAPSHOT_DIR}/")))
    {
        copy_durably(&backup.join(&f.path), &state_dir.join(&f.path))?;
        snapshots += 1;
    }
    copy_durably(&backup.join(DB_FILE), &db)?;
    sync_dir(&snap_dir)?;
    sync_dir(state_dir)?;
    let config = m
        .files
        .iter()
        .any(|f| f.path == CONFIG_COPY)
        .then(|| backup.join(CONFIG_COPY));
    tracing::info!(backup = %backup.display(), state_dir = %state_dir.display(), snapshots, "backup restored");
    Ok(RestoreReport {
        provenance,
        replaced,
        snapshots,
        config,
    })
}

/// One CSV field (RFC 4180 quoting). A field a spreadsheet would run as a
/// formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return: a rule
/// or camera name typed by an operator) is neutralised the OWASP way: prefixed
/// with `'` and quoted, so it opens as text.
fn csv_field(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("\"'{}\"", s.replace('"', "\"\""))
    } else if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn utc_iso8601(ms: UnixMs) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_instants() {
        assert_eq!(utc_iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc_iso8601(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_manifest_is_checked_before_any_file_is_read() {
        let dir = Path::new("/nonexistent/backup");
        let file = |path: &str| BackupFile {
            path: path.into(),
            bytes: 1,
            sha256: "00".repeat(32),
        };
        let manifest = |files: Vec<BackupFile>| BackupManifest {
            format: 1,
            schema_version: CURRENT_VERSION,
            created_at: 1,
            event_seq: 0,
            events: 0,
            snapshots_missing: vec![],
            files,
        };
        let good = manifest(vec![
            file(DB_FILE),
            file("snapshots/00000000000000000001.jpg"),
        ]);
        let bytes = serde_json::to_vec(&good).unwrap();
        assert_eq!(parse_manifest(&bytes, dir).unwrap(), good);
        let reason = |m: &BackupManifest| match parse_manifest(&serde_json::to_vec(m).unwrap(), dir)
        {
            Err(StoreError::BadBackup { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(&manifest(vec![file("config.toml"), file(DB_FILE)])),
            "manifest does not list store.redb first"
        );
        assert!(
            reason(&manifest(vec![
                file(DB_FILE),
                file("snapshots/../../jwt.key")
            ]))
            .contains("unexpected path")
        );
        assert!(
            reason(&manifest(vec![file(DB_FILE), file("/etc/shadow")])).contains("unexpected path")
        );
        let newer = BackupManifest {
            schema_version: CURRENT_VERSION + 1,
            ..good
        };
        assert!(reason(&newer).contains("newer than this firmware"));
        assert!(matches!(
            parse_manifest(b"{\"format\": 1", dir),
            Err(StoreError::Decode {
                table: "manifest",
                ..
            })
        ));
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn csv_formulas_are_neutralised() {
        assert_eq!(csv_field("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_field("+cmd"), "\"'+cmd\"");
        assert_eq!(csv_field("-2"), "\"'-2\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_field("\t=x"), "\"'\t=x\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("a=b"), "a=b");
    }
}

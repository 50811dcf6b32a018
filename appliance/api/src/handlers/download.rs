//! Downloads that take evidence off the box: the backup (admin) and the event export for
//! incident reports (viewer).
//!
//! Both are prepared on the blocking pool in a work directory under `<state>/api/`, then
//! streamed from the blocking pool through a small bounded channel, so neither the
//! reactor nor memory pays for their size. The work directory is removed when the
//! download ends, also on error or when the client goes away; one left behind by a
//! crash is removed at the next start. A semaphore bounds how many run at once, so a
//! flood of requests cannot fill the disk: one backup at a time (a second gets 409),
//! [`MAX_EXPORTS`] exports (more get 429); and a backup that would leave less than the
//! store's reserved free space is refused with 507.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use safe_yolo_domain::{CameraId, RuleId};
use safe_yolo_store::backup::{MANIFEST, utc_iso8601};
use safe_yolo_store::signing::SIGNATURE;
use safe_yolo_store::{EventQuery, StateFilter, Store, now_ms};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::audit;
use crate::auth::Principal;
use crate::error::HttpError;
use crate::handlers::events::{Order, query};
use crate::state::AppState;

/// Most event exports prepared or sent at once.
pub(crate) const MAX_EXPORTS: usize = 2;
/// Prefix of the work directories under `<state>/api/`.
const WORK_PREFIX: &str = "tmp-download-";
/// Bytes per chunk sent to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between the blocking writer and the connection.
const CHANNEL_CHUNKS: usize = 4;

/// Removes work directories left behind by a crash (called once at start-up).
pub(crate) fn remove_stale_work_dirs(api_dir: &Path) {
    let Ok(entries) = fs::read_dir(api_dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(WORK_PREFIX) {
            let path = e.path();
            match fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a stale download work directory")
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot remove a stale download work directory")
                }
            }
        }
    }
}

/// A work directory, removed (recursively) when dropped. Drop it on the blocking pool
/// only: removing a backup's snapshots is file-system work.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(api_dir: &Path) -> io::Result<Self> {
        let rand = crate::auth::random_bytes::<6>()
            .map(hex::encode)
            .map_err(|e| io::Error::other(e.message))?;
        let path = api_dir.join(format!("{WORK_PREFIX}{}-{rand}", now_ms()));
        fs::create_dir(&path)?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove a download work directory");
        }
    }
}

/// A `Write` that sends 64 KiB chunks to the response body (blocking; use it on the
/// blocking pool). Fails with `BrokenPipe` once the client has gone away.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

/// Runs `job` on the blocking pool, streaming what it writes as the response body. An
/// error aborts the body (the client sees a truncated download, never a complete-looking
/// one). `permit` is held until both the job and the body are done.
fn stream_from_blocking<F>(what: &'static str, permit: OwnedSemaphorePermit, job: F) -> Body
where
    F: FnOnce(&mut ChannelWriter) -> io::Result<()> + Send + 'static,
{
    let permit = Arc::new(permit);
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let held = Arc::clone(&permit);
    tokio::task::spawn_blocking(move || {
        let _held = held;
        let mut w = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = job(&mut w).and_then(|()| w.flush()) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                tracing::info!(what, "download abandoned by the client");
            } else {
                tracing::error!(what, error = %e, "download failed while streaming");
                let _ = w.tx.blocking_send(Err(e));
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(
        (rx, permit),
        |(mut rx, permit)| async move { rx.recv().await.map(|item| (item, (rx, permit))) },
    ))
}

/// `YYYYMMDDTHHMMSSZ` for file names.
fn compact_utc(ms: u64) -> String {
    let iso = utc_iso8601(ms);
    let seconds = iso.split_once('.').map_or(iso.as_str(), |(s, _)| s);
    let mut out: String = seconds
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    out.push('Z');
    out
}

fn attachment(
    body: Body,
    content_type: &'static str,
    file_name: &str,
    extra: Option<(&'static str, String)>,
) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some((name, value)) = extra
        && let Ok(v) = HeaderValue::from_str(&value)
    {
        h.insert(name, v);
    }
    resp
}

fn task_failed(context: &'static str, e: &tokio::task::JoinError) -> HttpError {
    HttpError::internal(context, e)
}

// === backup ===

/// Refuses a backup that would eat into the space the store keeps free for evidence:
/// the copy needs the database and (optionally) the snapshots once more.
fn check_backup_space(store: &Store, include_snapshots: bool) -> Result<(), HttpError> {
    let stats = store
        .stats()
        .map_err(|e| HttpError::store("store statistics", e))?;
    let copy = stats.db_file_bytes.saturating_add(if include_snapshots {
        stats.snapshot_bytes
    } else {
        0
    });
    check_space(
        store,
        copy,
        "a backup",
        if include_snapshots {
            " (try snapshots=false)"
        } else {
            ""
        },
    )
}

/// Refuses a temporary file of up to `bytes` (507) when writing it would eat into
/// the space the store keeps free for evidence.
fn check_space(store: &Store, bytes: u64, what: &str, hint: &str) -> Result<(), HttpError> {
    let available = store
        .available_bytes()
        .map_err(|e| HttpError::store("free space", e))?;
    let reserved = store.config().retention.min_free_bytes;
    if available < bytes.saturating_add(reserved) {
        let mib = |b: u64| b >> 20;
        return Err(HttpError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!(
                "{what} needs {} MiB of free space beside the {} MiB kept free for evidence; {} MiB are available{hint}",
                mib(bytes),
                mib(reserved),
                mib(available),
            ),
        ));
    }
    Ok(())
}

/// Query string of the backup download.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupParams {
    /// Include the snapshot JPEGs (default true).
    snapshots: Option<bool>,
}

pub(crate) async fn backup(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<BackupParams>, QueryRejection>,
) -> Result<Response, HttpError> {
    let q = query(q)?;
    let include_snapshots = q.snapshots.unwrap_or(true);
    let permit = Arc::clone(&s.backup_gate)
        .try_acquire_owned()
        .map_err(|_| {
            HttpError::conflict(
                "a backup is already being prepared or downloaded; try again when it is done",
            )
        })?;
    let stem = format!(
        "safe-yolo-backup-{}-{}",
        s.settings.box_name,
        compact_utc(now_ms())
    );
    let api_dir = s.settings.api_dir();
    let config = s.settings.config_path.clone();
    let store = Arc::clone(s.store()?.store());
    let (work, manifest) = tokio::task::spawn_blocking(move || {
        check_backup_space(&store, include_snapshots)?;
        let work = WorkDir::create(&api_dir)
            .map_err(|e| HttpError::internal("creating the backup work directory", &e))?;
        // On error `work` is dropped here, on the blocking pool, removing the partial copy.
        let manifest = store
            .backup(&work.0.join("backup"), config.as_deref(), include_snapshots)
            .map_err(|e| HttpError::store("taking a backup", e))?;
        Ok::<_, HttpError>((work, manifest))
    })
    .await
    .map_err(|e| task_failed("backup task", &e))??;

    let file_name = format!("{stem}.tar");
    let row = audit::row(
        &p,
        "system.backup",
        format!("backup/{file_name}"),
        None,
        Some(format!(
            "downloaded: {} events (last id {}), {} files, snapshots {}{}",
            manifest.events,
            manifest.event_seq,
            manifest.files.len(),
            if include_snapshots {
                "included"
            } else {
                "left out"
            },
            if s.settings.config_path.is_some() {
                ", config included"
            } else {
                ""
            },
        )),
    );
    if let Err(e) = s.store()?.transaction(move |t| t.append_audit(row)).await {
        // No audit row, no download: evidence does not leave the box unrecorded.
        tokio::task::spawn_blocking(move || drop(work));
        return Err(HttpError::store("recording the backup in the audit log", e));
    }
    s.api_metrics.backups.inc();
    tracing::info!(actor = %p.actor, source = %p.source, file = %file_name, events = manifest.events, "backup download started");

    let body = stream_from_blocking("backup", permit, move |w| {
        let src = work.0.join("backup");
        let mut tar = tar::Builder::new(w);
        tar.mode(tar::HeaderMode::Deterministic);
        // The database first, the manifest last: a truncated archive has no manifest
        // and fails verification instead of looking complete.
        for f in &manifest.files {
            tar.append_path_with_name(src.join(&f.path), format!("{stem}/{}", f.path))?;
        }
        tar.append_path_with_name(src.join(MANIFEST), format!("{stem}/{MANIFEST}"))?;
        // The box's signature of the manifest, so a restore can tell its own backups.
        tar.append_path_with_name(src.join(SIGNATURE), format!("{stem}/{SIGNATURE}"))?;
        tar.into_inner()?;
        drop(work);
        Ok(())
    });
    Ok(attachment(body, "application/x-tar", &file_name, None))
}

// === event export ===

/// Query string of the event export: the list's filters plus `format`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportParams {
    format: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
    camera: Option<CameraId>,
    rule: Option<RuleId>,
    state: Option<StateFilter>,
    order: Option<Order>,
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    Json,
}

pub(crate) async fn export(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<ExportParams>, QueryRejection>,
) -> Result<Response, HttpError> {
    let q = query(q)?;
    let format = match q.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some(_) => return Err(HttpError::bad_request("format", "must be csv or json")),
        None => {
            return Err(HttpError::bad_request("format", "is required: csv or json"));
        }
    };
    let permit = Arc::clone(&s.export_gate)
        .try_acquire_owned()
        .map_err(|_| {
            HttpError::too_many(
                "busy",
                5,
                "too many event exports are running; try again shortly",
            )
        })?;
    let eq = EventQuery {
        from: q.from,
        to: q.to,
        camera: q.camera,
        rule: q.rule,
        state: q.state,
        cursor: None,
        // Incident reports read chronologically unless asked otherwise.
        oldest_first: q.order != Some(Order::Desc),
        limit: 0,
    };
    let api_dir = s.settings.api_dir();
    let store = Arc::clone(s.store()?.store());
    let (file, count) = tokio::task::spawn_blocking(move || {
        // An export is a text form of some of the database's events: no larger
        // than twice the database file (JSON and CSV escape, the file compresses).
        let stats = store
            .stats()
            .map_err(|e| HttpError::store("store statistics", e))?;
        check_space(
            &store,
            stats.db_file_bytes.saturating_mul(2),
            "an event export",
            " (narrow it with from, to, camera or rule)",
        )?;
        let work = WorkDir::create(&api_dir)
            .map_err(|e| HttpError::internal("creating the export work directory", &e))?;
        let path = work.0.join("export");
        let out = fs::File::create(&path)
            .map_err(|e| HttpError::internal("creating the export file", &e))?;
        let count = match format {
            Format::Csv => store.export_events_csv(&eq, &out),
            Format::Json => store.export_events_json(&eq, &out),
        }
        .map_err(|e| HttpError::store("exporting events", e))?;
        // Reopened for reading, the file outlives its directory entry: the work
        // directory goes now, the data when the download ends.
        let file =
            fs::File::open(&path).map_err(|e| HttpError::internal("reading the export", &e))?;
        drop(work);
        Ok::<_, HttpError>((file, count))
    })
    .await
    .map_err(|e| task_failed("export task", &e))??;
    // Its cost beyond the request: every event it wrote (it looked at no fewer).
    #[allow(clippy::cast_precision_loss, reason = "an event count")]
    s.rate.charge_principal_cost(
        &p.actor,
        (count as usize / crate::ratelimit::EVENTS_PER_TOKEN) as f64,
    );

    let (ext, content_type) = match format {
        Format::Csv => ("csv", "text/csv; charset=utf-8"),
        Format::Json => ("json", "application/json"),
    };
    let file_name = format!(
        "safe-yolo-events-{}-{}.{ext}",
        s.settings.box_name,
        compact_utc(now_ms())
    );
    let body = stream_from_blocking("event export", permit, move |w| {
        let mut file = file;
        io::copy(&mut file, w).map(drop)
    });
    Ok(attachment(
        body,
        content_type,
        &file_name,
        Some(("x-event-count", count.to_string())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_timestamps_are_compact_utc() {
        assert_eq!(compact_utc(1_700_000_000_123), "20231114T221320Z");
        assert_eq!(compact_utc(0), "19700101T000000Z");
    }

    #[test]
    fn a_work_dir_is_removed_when_dropped_and_stale_ones_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let w = WorkDir::create(tmp.path()).unwrap();
        fs::write(w.0.join("f"), b"x").unwrap();
        let path = w.0.clone();
        drop(w);
        assert!(!path.exists());
        let stale = WorkDir::create(tmp.path()).unwrap();
        let stale_path = stale.0.clone();
        std::mem::forget(stale);
        fs::write(tmp.path().join("jwt.key"), b"keep").unwrap();
        remove_stale_work_dirs(tmp.path());
        assert!(!stale_path.exists());
        assert!(tmp.path().join("jwt.key").exists());
    }
}

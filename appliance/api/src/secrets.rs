//! Passwords and keys given through the API (an RTSP camera's password, the MQTT
//! password, a webhook's signing secret): kept in a file of their own, never in a
//! settings document.
//!
//! A camera document may carry `source.password` on the way in. Before the document
//! is checked and stored, [`take_password`] writes the password to
//! `<state_dir>/secrets/camera-<id>.password` (mode 0600, written to a temporary
//! file and renamed) and puts that path in `source.password_file`. So the stored
//! document, its read-back, its audit row and every backup (which copies the
//! settings, not `secrets/`) hold the file's name, never the password. A restored
//! backup on another box needs the passwords entered again: the camera says so
//! (its password file cannot be read).
//!
//! - `password: ""` removes the stored password;
//! - no `password` keeps the camera's current `password_file` (the UI need not
//!   resend what it cannot read back);
//! - a `password_file` other than the box's own or the current one is refused: a
//!   caller must not make the box read a file of its choosing and send its first
//!   line to a server of its choosing.

use std::path::{Path, PathBuf};

use safe_yolo_config::RawCamera;

use crate::error::HttpError;

/// The directory of the box's own secrets, under the state directory.
const SECRETS_DIR: &str = "secrets";

/// Why a secret could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secrets directory or file could not be written.
    #[error("cannot write {path:?}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the box keeps camera `id`'s password.
pub(crate) fn password_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir
        .join(SECRETS_DIR)
        .join(format!("camera-{id}.password"))
}

/// Moves `doc.source.password` into the camera's password file (see the module
/// documentation); `current` is the camera's `password_file` in the running
/// configuration, if it has one.
pub(crate) fn take_password(
    doc: &mut RawCamera,
    id: &str,
    state_dir: &Path,
    current: Option<String>,
) -> Result<(), HttpError> {
    // Other kinds keep the field, so that their check says it does not apply.
    if doc.source.kind != "rtsp" {
        return Ok(());
    }
    let own = password_path(state_dir, id);
    let own_text = own.to_string_lossy().into_owned();
    match doc.source.password.take() {
        Some(pw) if pw.is_empty() => {
            remove(&own);
            doc.source.password_file = None;
        }
        Some(pw) => {
            check_password("doc.source.password", &pw)?;
            write_secret(&own, &pw).map_err(|e| {
                tracing::error!(camera = %id, error = %safe_yolo_domain::error_chain(&e), "cannot keep a camera password");
                HttpError::internal("keeping the camera password", &e)
            })?;
            doc.source.password_file = Some(own_text);
        }
        None => match &doc.source.password_file {
            Some(f) if *f == own_text || Some(f) == current.as_ref() => {}
            Some(_) => {
                return Err(HttpError::invalid(
                    "doc.source.password_file",
                    "is chosen by the box: send the password in `password` instead",
                ));
            }
            None => doc.source.password_file = current,
        },
    }
    Ok(())
}

/// Moves the integration settings' secrets out of `doc` into the box's own files,
/// as [`take_password`] does a camera's: the MQTT `password` to
/// `<state_dir>/secrets/mqtt.password` (`password_file`), each webhook's `secret` to
/// `webhook-<id>.secret` (`secret_file`). A secret left out keeps the running one
/// (`current`: its file, or its inline value from the configuration file, moved into
/// the box's file); an empty MQTT password removes it; a `password_file` or
/// `secret_file` other than the box's own or the running one is refused. The MQTT
/// `client_key_file`, which the API never shows, is kept when left out.
///
/// With `write` false nothing is written: the document only names the files it
/// would (a dry run, so the document's own checks can pass before any file changes).
pub(crate) fn take_integration_secrets(
    doc: &mut safe_yolo_config::RawIntegrations,
    state_dir: &Path,
    current: &safe_yolo_config::RawIntegrations,
    write: bool,
) -> Result<(), HttpError> {
    let keep = |path: &Path, secret: &str| -> Result<String, HttpError> {
        if !write {
            return Ok(path.to_string_lossy().into_owned());
        }
        write_secret(path, secret).map_err(|e| {
            tracing::error!(error = %safe_yolo_domain::error_chain(&e), "cannot keep an integration secret");
            HttpError::internal("keeping an integration secret", &e)
        })?;
        Ok(path.to_string_lossy().into_owned())
    };
    if let Some(m) = doc.mqtt.as_mut() {
        let now = current.mqtt.as_ref();
        let own = state_dir.join(SECRETS_DIR).join("mqtt.password");
        match m.password.take() {
            Some(pw) if pw.is_empty() => {
                if write {
                    remove(&own);
                }
                m.password_file = None;
            }
            Some(pw) => {
                check_secret("doc.mqtt.password", &pw, 1024)?;
                m.password_file = Some(keep(&own, &pw)?);
            }
            None => {
                m.password_file = kept_file(
                    "doc.mqtt.password_file",
                    m.password_file.take(),
                    (&own, &keep),
                    now.map(|n| (n.password_file.as_ref(), n.password.as_deref())),
                )?;
            }
        }
        match m.client_key_file.as_deref() {
            None => m.client_key_file = now.and_then(|n| n.client_key_file.clone()),
            Some("") => m.client_key_file = None,
            Some(_) => {}
        }
    }
    for (i, hook) in doc.webhooks.iter_mut().enumerate() {
        let Some(id) = hook.id.clone() else { continue };
        if !safe_yolo_config::topic_word_ok(&id) {
            return Err(HttpError::invalid(
                format!("doc.webhooks[{i}].id"),
                "must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.'",
            ));
        }
        let now = current
            .webhooks
            .iter()
            .find(|w| w.id.as_deref() == Some(id.as_str()));
        let own = state_dir
            .join(SECRETS_DIR)
            .join(format!("webhook-{id}.secret"));
        match hook.secret.take() {
            Some(secret) if !secret.is_empty() => {
                let field = format!("doc.webhooks[{i}].secret");
                let len = safe_yolo_config::WEBHOOK_SECRET_LEN;
                if !len.contains(&secret.len()) {
                    return Err(HttpError::invalid(
                        field,
                        format!("must be {}-{} characters", len.start(), len.end()),
                    ));
                }
                check_secret(&field, &secret, *len.end())?;
                hook.secret_file = Some(keep(&own, &secret)?);
            }
            _ => {
                hook.secret_file = kept_file(
                    &format!("doc.webhooks[{i}].secret_file"),
                    hook.secret_file.take(),
                    (&own, &keep),
                    now.map(|n| (n.secret_file.as_ref(), n.secret.as_deref())),
                )?;
            }
        }
    }
    Ok(())
}

/// The box's files of the integration secrets (`mqtt.password`, `webhook-*.secret`)
/// as they were before an edit: put back if the edit is refused, and tidied (the
/// ones no longer named removed) once it is taken.
pub(crate) struct IntegrationSecretFiles {
    dir: PathBuf,
    before: Vec<(PathBuf, String)>,
}

impl IntegrationSecretFiles {
    /// Reads them.
    pub(crate) fn read(state_dir: &Path) -> Self {
        let dir = state_dir.join(SECRETS_DIR);
        let before = Self::names(&dir)
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
            .collect();
        Self { dir, before }
    }

    /// The integration secret files in `dir` now.
    fn names(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n == "mqtt.password" || (n.starts_with("webhook-") && n.ends_with(".secret"))
                })
            })
            .collect()
    }

    /// The edit was refused: every file as it was (new ones removed).
    pub(crate) fn restore(self) {
        for p in Self::names(&self.dir) {
            if !self.before.iter().any(|(b, _)| *b == p) {
                remove(&p);
            }
        }
        for (p, text) in &self.before {
            if std::fs::read_to_string(p).ok().as_ref() != Some(text)
                && let Err(e) = write_secret(p, text.trim_end_matches('\n'))
            {
                tracing::error!(error = %safe_yolo_domain::error_chain(&e), "cannot put an integration secret back");
            }
        }
    }

    /// The edit was taken: the files `running` no longer names are removed.
    pub(crate) fn tidy(self, running: &safe_yolo_config::RawIntegrations) {
        let named: Vec<&str> = running
            .mqtt
            .iter()
            .filter_map(|m| m.password_file.as_deref())
            .chain(
                running
                    .webhooks
                    .iter()
                    .filter_map(|w| w.secret_file.as_deref()),
            )
            .collect();
        for p in Self::names(&self.dir) {
            if !named.iter().any(|n| Path::new(n) == p) {
                remove(&p);
            }
        }
    }
}

/// Writes a secret into a file of the box's and returns the file's name.
type Keep<'a> = &'a dyn Fn(&Path, &str) -> Result<String, HttpError>;

/// The secret file of a document that sent no secret: the one it names (only the
/// box's own or the running one), else the running one's, else the running inline
/// secret (from the configuration file) moved into the box's own file with `keep`.
/// `running` is the running object's file and inline secret, if it exists.
fn kept_file(
    field: &str,
    named: Option<String>,
    (own, keep): (&Path, Keep<'_>),
    running: Option<(Option<&String>, Option<&str>)>,
) -> Result<Option<String>, HttpError> {
    let (running_file, running_inline) = running.unwrap_or((None, None));
    match named {
        Some(f) if Path::new(&f) == own || Some(&f) == running_file => Ok(Some(f)),
        Some(_) => Err(HttpError::invalid(
            field,
            "is chosen by the box: send the secret itself instead",
        )),
        None => match (running_file, running_inline) {
            (Some(f), _) => Ok(Some(f.clone())),
            (None, Some(inline)) => keep(own, inline).map(Some),
            (None, None) => Ok(None),
        },
    }
}

/// A preview's password, in a file of its own while the preview runs (removed on drop).
#[derive(Debug)]
pub(crate) struct PreviewPassword(Option<PathBuf>);

impl Drop for PreviewPassword {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            remove(p);
        }
    }
}

/// A preview of an RTSP source (`POST /cameras/preview`) may carry a password to
/// try: it goes into a temporary private file for the preview's length. A
/// `password_file` must be one the running cameras use (`running`), for the same
/// reason as in [`take_password`].
pub(crate) fn preview_password(
    src: &mut safe_yolo_config::RawSource,
    state_dir: &Path,
    running: &[String],
) -> Result<PreviewPassword, HttpError> {
    if src.kind != "rtsp" {
        return Ok(PreviewPassword(None));
    }
    if let Some(f) = &src.password_file
        && !running.contains(f)
    {
        return Err(HttpError::invalid(
            "password_file",
            "is chosen by the box: send the password in `password` instead",
        ));
    }
    let Some(pw) = src.password.take().filter(|p| !p.is_empty()) else {
        return Ok(PreviewPassword(None));
    };
    check_password("password", &pw)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = state_dir
        .join(SECRETS_DIR)
        .join(format!("preview-{}-{n}.password", std::process::id()));
    write_secret(&path, &pw)
        .map_err(|e| HttpError::internal("keeping the preview password", &e))?;
    src.password_file = Some(path.to_string_lossy().into_owned());
    Ok(PreviewPassword(Some(path)))
}

/// A password the box will keep: what a password file's first line can hold.
fn check_password(field: &str, pw: &str) -> Result<(), HttpError> {
    check_secret(field, pw, safe_yolo_capture::rtsp::MAX_PASSWORD_LEN)
}

/// A secret of at most `max` bytes the box will keep in a file's first line.
fn check_secret(field: &str, secret: &str, max: usize) -> Result<(), HttpError> {
    if secret.len() > max || secret.chars().any(char::is_control) {
        return Err(HttpError::invalid(
            field,
            format!("must be at most {max} bytes without control characters"),
        ));
    }
    Ok(())
}

/// Removes the password the box kept for camera `id` (the camera was deleted).
pub(crate) fn forget(state_dir: &Path, id: &str) {
    remove(&password_path(state_dir, id));
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a secret file");
    }
}

/// Writes `secret` to `path` (mode 0600) through a temporary file and a rename, in
/// a directory of mode 0700.
fn write_secret(path: &Path, secret: &str) -> Result<(), SecretError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let werr = |path: &Path| {
        let path = path.to_owned();
        move |source| SecretError::Write { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(werr(dir))?;
    crate::tls::write_private(path, format!("{secret}\n").as_bytes()).map_err(werr(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn rtsp(password: Option<&str>, password_file: Option<&str>) -> RawCamera {
        serde_json::from_value(serde_json::json!({"source": {
            "kind": "rtsp", "url": "rtsp://cam/s", "username": "u",
        }}))
        .map(|mut c: RawCamera| {
            c.source.password = password.map(str::to_owned);
            c.source.password_file = password_file.map(str::to_owned);
            c
        })
        .unwrap()
    }

    #[test]
    fn a_password_moves_into_a_private_file_and_never_into_the_document() {
        let dir = tempfile::tempdir().unwrap();
        let mut doc = rtsp(Some("hunter2"), None);
        take_password(&mut doc, "gate", dir.path(), None).unwrap();
        let file = password_path(dir.path(), "gate");
        assert_eq!(doc.source.password, None);
        assert_eq!(doc.source.password_file.as_deref(), file.to_str());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "hunter2\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!serde_json::to_string(&doc).unwrap().contains("hunter2"));

        // No password: the current file is kept; a foreign file is refused.
        let mut again = rtsp(None, None);
        take_password(
            &mut again,
            "gate",
            dir.path(),
            doc.source.password_file.clone(),
        )
        .unwrap();
        assert_eq!(again.source.password_file, doc.source.password_file);
        let mut foreign = rtsp(None, Some("/etc/shadow"));
        let e = take_password(&mut foreign, "gate", dir.path(), None).unwrap_err();
        assert!(
            format!("{e:?}").contains("doc.source.password_file"),
            "{e:?}"
        );
        // The file configuration's own file, unchanged, is accepted.
        let mut kept = rtsp(None, Some("/etc/safe-yolo/gate.pw"));
        take_password(
            &mut kept,
            "gate",
            dir.path(),
            Some("/etc/safe-yolo/gate.pw".into()),
        )
        .unwrap();

        // An empty password removes it.
        let mut cleared = rtsp(Some(""), None);
        take_password(&mut cleared, "gate", dir.path(), None).unwrap();
        assert_eq!(cleared.source.password_file, None);
        assert!(!file.exists());
    }
}

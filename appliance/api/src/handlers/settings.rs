//! Cameras, zones, lines, rules and the integration settings: settings documents
//! edited through the API.
//!
//! Every kind travels as the configuration's own raw form (a file entry without its
//! id). A change is checked here on its own (`deny_unknown_fields`, then the
//! configuration's checks of the document, every problem at `doc.<key>`; a camera's
//! source against the capture sandbox), then handed to [`crate::Control::apply`],
//! which validates it with the whole configuration and applies it to the running
//! pipeline, inside the store transaction that records the document and its audit
//! row: a change the daemon refuses (deleting a camera a zone still names, say) is
//! never stored.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use safe_yolo_capture::{SandboxError, SourceRequest};
use safe_yolo_config::{RawCamera, RawIntegrations, RawLine, RawRule, RawZone};
use safe_yolo_domain::CameraId;
use safe_yolo_store::{SettingKind, StoreError, now_ms};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::audit::{self, summary};
use crate::auth::Principal;
use crate::body::ValidJson;
use crate::control::{ControlError, Document, SettingsChange};
use crate::error::HttpError;
use crate::state::AppState;
use crate::views::{CameraList, RunningDoc, SettingView, SettingsList};

/// A PUT body: the document and, optionally, the version it was based on.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Put{D}")]
pub(crate) struct PutBody<D> {
    doc: D,
    expected_version: Option<u64>,
}

#[cfg(feature = "fuzzing")]
impl<D> PutBody<D> {
    /// The document (the fuzz targets check it as the handler does).
    pub(crate) fn into_doc(self) -> D {
        self.doc
    }
}

/// A settings document of the API.
pub(crate) trait Doc: DeserializeOwned + Serialize + Send + 'static {
    /// The kind.
    const KIND: SettingKind;
    /// Checks the document on its own (before it meets the configuration); the error
    /// names the field.
    fn check(&self, id: &str, s: &AppState) -> Result<(), HttpError>;
    /// The document, as the running system takes it.
    fn into_document(self) -> Document;
    /// Takes what must not be stored out of the document (an RTSP camera's
    /// password: [`crate::secrets`]); runs before [`Doc::check`].
    fn take_secrets(&mut self, _id: &str, _s: &AppState) -> Result<(), HttpError> {
        Ok(())
    }
}

/// A camera document: the configuration's raw camera, checked by the configuration
/// and the capture sandbox; the running pipeline starts, restarts or stops it.
pub(crate) type CameraDoc = RawCamera;
/// A zone document: the configuration's raw zone, checked by the configuration.
pub(crate) type ZoneDoc = RawZone;
/// A counting line document: line-crossing rules name it in their `zone` field.
pub(crate) type LineDoc = RawLine;
/// A rule document (the safety regulation panel).
pub(crate) type RuleDoc = RawRule;

/// The integration settings document (`PUT /system/integrations/settings`): the
/// configuration's `[integrations]` as written, one document. Its secrets are
/// write-only ([`crate::secrets::take_integration_secrets`]).
pub(crate) type IntegrationsDoc = RawIntegrations;

/// A document's own problems, as found by the configuration's checks, at `doc.<key>`.
pub(crate) fn own_problems(problems: Vec<safe_yolo_config::Problem>) -> Result<(), HttpError> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(HttpError::control(ControlError::Invalid {
        problems,
        object: "doc".into(),
    }))
}

impl Doc for RawCamera {
    const KIND: SettingKind = SettingKind::Camera;

    /// The configuration's checks, then the capture sandbox's, as at every open:
    /// replay footage must exist inside the media directory; a device node that
    /// exists must be a V4L2 device. A device that is absent now (unplugged) is
    /// accepted: the camera starts offline and raises its camera-offline alarm.
    fn check(&self, id: &str, s: &AppState) -> Result<(), HttpError> {
        let camera = self
            .validate(id, "doc", s.source_policy.media_dir())
            .map_err(|problems| {
                HttpError::control(ControlError::Invalid {
                    problems,
                    object: "doc".into(),
                })
            })?;
        match s.source_policy.check(&camera.source) {
            Ok(_) | Err(SandboxError::DeviceUnresolvable { .. }) => Ok(()),
            Err(e) => {
                let field = match camera.source {
                    SourceRequest::V4l2 { .. } => "doc.source.device",
                    SourceRequest::Replay { .. } => "doc.source.path",
                    SourceRequest::Rtsp(_) => "doc.source.url",
                };
                tracing::info!(camera = %id, error = %safe_yolo_domain::error_chain(&e), "camera source refused by the sandbox");
                own_problems(vec![safe_yolo_config::Problem {
                    path: field.into(),
                    reason: e.public_message(),
                }])
            }
        }
    }

    fn into_document(self) -> Document {
        Document::Camera(Box::new(self))
    }

    fn take_secrets(&mut self, id: &str, s: &AppState) -> Result<(), HttpError> {
        let current = s
            .control
            .current(SettingKind::Camera)
            .into_iter()
            .find_map(|(cid, doc)| match doc {
                Document::Camera(c) if cid == id => c.source.password_file.clone(),
                _ => None,
            });
        crate::secrets::take_password(self, id, &s.settings.state_dir, current)
    }
}

impl Doc for RawZone {
    const KIND: SettingKind = SettingKind::Zone;

    fn check(&self, id: &str, _s: &AppState) -> Result<(), HttpError> {
        own_problems(self.problems(id, "doc"))
    }

    fn into_document(self) -> Document {
        Document::Zone(self)
    }
}

impl Doc for RawLine {
    const KIND: SettingKind = SettingKind::Line;

    fn check(&self, id: &str, _s: &AppState) -> Result<(), HttpError> {
        own_problems(self.problems(id, "doc"))
    }

    fn into_document(self) -> Document {
        Document::Line(self)
    }
}

impl Doc for RawRule {
    const KIND: SettingKind = SettingKind::Rule;

    fn check(&self, id: &str, _s: &AppState) -> Result<(), HttpError> {
        own_problems(self.problems(id, "doc"))
    }

    fn into_document(self) -> Document {
        Document::Rule(Box::new(self))
    }
}

impl Doc for RawIntegrations {
    const KIND: SettingKind = SettingKind::Integrations;

    fn check(&self, _id: &str, _s: &AppState) -> Result<(), HttpError> {
        own_problems(self.problems("doc"))
    }

    fn into_document(self) -> Document {
        Document::Integrations(Box::new(self))
    }

    /// The document's own checks first, on a dry run (the files named, none
    /// written), so that a document refused for its own problems never changes a
    /// running secret's file; then the secrets move into their files.
    fn take_secrets(&mut self, _id: &str, s: &AppState) -> Result<(), HttpError> {
        let current = running_integrations(s);
        let dir = &s.settings.state_dir;
        let mut dry = self.clone();
        crate::secrets::take_integration_secrets(&mut dry, dir, &current, false)?;
        own_problems(dry.problems("doc"))?;
        crate::secrets::take_integration_secrets(self, dir, &current, true)
    }
}

/// The integration settings as running (the file's section, or the edit laid over it).
fn running_integrations(s: &AppState) -> RawIntegrations {
    s.control
        .current(SettingKind::Integrations)
        .into_iter()
        .find_map(|(_, d)| match d {
            Document::Integrations(i) => Some(*i),
            _ => None,
        })
        .unwrap_or_default()
}

/// The integration settings as an admin reads them: every secret left out, and
/// whether each is set.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct IntegrationSettingsView {
    /// The settings as running (the configuration file's `[integrations]`, or the
    /// edit stored over it), without any password, secret or key file: send it back
    /// as it is and every secret is kept.
    doc: RawIntegrations,
    /// Which secrets are set (they are write-only).
    secrets: IntegrationSecrets,
    /// The stored edit's version (give it as `expected_version`); absent while the
    /// file's section runs unedited.
    version: Option<u64>,
}

/// Which of the integration settings' secrets are set.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub(crate) struct IntegrationSecrets {
    /// The MQTT password is set.
    mqtt_password_set: bool,
    /// The MQTT client key file is set.
    mqtt_client_key_set: bool,
    /// The webhooks (by id) whose signing secret is set.
    webhook_secret_set: Vec<String>,
}

/// Leaves the secrets out of `doc`, saying which were set.
fn without_secrets(mut doc: RawIntegrations) -> (RawIntegrations, IntegrationSecrets) {
    let mut set = IntegrationSecrets::default();
    if let Some(m) = doc.mqtt.as_mut() {
        set.mqtt_password_set = m.password.take().is_some() | m.password_file.take().is_some();
        set.mqtt_client_key_set = m.client_key_file.take().is_some();
    }
    for w in &mut doc.webhooks {
        if w.secret.take().is_some() | w.secret_file.take().is_some()
            && let Some(id) = &w.id
        {
            set.webhook_secret_set.push(id.clone());
        }
    }
    (doc, set)
}

async fn integration_settings_view(
    s: &AppState,
    version: Option<u64>,
) -> Result<IntegrationSettingsView, HttpError> {
    let version = match version {
        Some(v) => Some(v),
        None => s
            .store()?
            .run(|st| st.get_setting(SettingKind::Integrations, SettingKind::INTEGRATIONS_ID))
            .await
            .map_err(|e| HttpError::store("reading the integration settings", e))?
            .map(|d| d.version),
    };
    let (doc, secrets) = without_secrets(running_integrations(s));
    Ok(IntegrationSettingsView {
        doc,
        secrets,
        version,
    })
}

pub(crate) async fn get_integration_settings(
    State(s): State<AppState>,
) -> Result<axum::Json<IntegrationSettingsView>, HttpError> {
    integration_settings_view(&s, None).await.map(axum::Json)
}

pub(crate) async fn put_integration_settings(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ValidJson(b): ValidJson<PutBody<IntegrationsDoc>>,
) -> Result<axum::Json<IntegrationSettingsView>, HttpError> {
    // A refused edit leaves the secret files as they were; a taken one leaves no file
    // of a secret it no longer names.
    let files = crate::secrets::IntegrationSecretFiles::read(&s.settings.state_dir);
    let saved = match put(s.clone(), p, SettingKind::INTEGRATIONS_ID.to_owned(), b).await {
        Ok(saved) => saved,
        Err(e) => {
            files.restore();
            return Err(e);
        }
    };
    files.tidy(&running_integrations(&s));
    integration_settings_view(&s, Some(saved.0.version))
        .await
        .map(axum::Json)
}

async fn list(s: &AppState, kind: SettingKind) -> Result<SettingsList, HttpError> {
    let edited = s
        .store()?
        .run(move |st| st.list_settings(Some(kind)))
        .await
        .map_err(|e| HttpError::store("listing settings", e))?;
    let running = s
        .control
        .current(kind)
        .into_iter()
        .map(|(id, doc)| RunningDoc { id, doc })
        .collect();
    Ok(SettingsList {
        running,
        edited: edited.into_iter().map(SettingView::from).collect(),
    })
}

pub(crate) async fn list_cameras(
    State(s): State<AppState>,
) -> Result<axum::Json<CameraList>, HttpError> {
    Ok(axum::Json(CameraList {
        settings: list(&s, SettingKind::Camera).await?,
        health: s.live.taps().iter().map(Into::into).collect(),
    }))
}

pub(crate) async fn list_zones(
    State(s): State<AppState>,
) -> Result<axum::Json<SettingsList>, HttpError> {
    list(&s, SettingKind::Zone).await.map(axum::Json)
}

pub(crate) async fn list_lines(
    State(s): State<AppState>,
) -> Result<axum::Json<SettingsList>, HttpError> {
    list(&s, SettingKind::Line).await.map(axum::Json)
}

pub(crate) async fn list_rules(
    State(s): State<AppState>,
) -> Result<axum::Json<SettingsList>, HttpError> {
    list(&s, SettingKind::Rule).await.map(axum::Json)
}

/// Carries the running system's refusal of an edit out of the store transaction it
/// aborts, so the response can list every problem with its key path.
#[derive(Clone, Default)]
struct Refusal(std::sync::Arc<parking_lot::Mutex<Option<ControlError>>>);

impl Refusal {
    /// Inside the transaction: a refusal aborts it.
    fn apply(&self, r: Result<(), ControlError>) -> Result<(), StoreError> {
        r.map_err(|e| {
            let reason = e.to_string();
            *self.0.lock() = Some(e);
            StoreError::Invalid {
                field: "doc",
                reason,
            }
        })
    }

    /// After it: the refusal's response, else the store error's.
    fn http_error(&self, context: &'static str, e: StoreError) -> HttpError {
        match self.0.lock().take() {
            Some(refused) => HttpError::control(refused),
            None => HttpError::store(context, e),
        }
    }
}

async fn put<D: Doc>(
    s: AppState,
    p: Principal,
    id: String,
    body: PutBody<D>,
) -> Result<axum::Json<SettingView>, HttpError> {
    CameraId::new(id.clone()).map_err(|e| HttpError::invalid("id", e.to_string()))?;
    let mut body = body;
    body.doc.take_secrets(&id, &s)?;
    body.doc.check(&id, &s)?;
    let doc = serde_json::to_value(&body.doc)
        .map_err(|e| HttpError::internal("encoding a document", &e))?;
    let document = body.doc.into_document();
    let control = std::sync::Arc::clone(&s.control);
    let kind = D::KIND;
    let refusal = Refusal::default();
    let refused = refusal.clone();
    let saved = s
        .store()?
        .transaction(move |t| {
            let before = t.get_setting(kind, &id)?;
            let new = t.put_setting(
                kind,
                &id,
                doc.clone(),
                body.expected_version,
                &p.actor,
                now_ms(),
            )?;
            // Switching a safety rule off is never a quiet edit: its own action in
            // the audit log and a warning in the journal.
            let disables = kind == SettingKind::Rule
                && new.doc.get("enabled") == Some(&serde_json::Value::Bool(false))
                && before
                    .as_ref()
                    .is_none_or(|b| b.doc.get("enabled") != Some(&serde_json::Value::Bool(false)));
            if disables {
                tracing::warn!(rule = %id, actor = %p.actor, source = %p.source, "a safety rule was disabled through the API");
            }
            let action = if disables {
                "rule.disable".to_owned()
            } else {
                format!("{}.put", kind.as_str())
            };
            t.append_audit(audit::row(
                &p,
                &action,
                format!("{}/{id}", kind.as_str()),
                before.as_ref().and_then(|b| summary(&b.doc)),
                summary(&new.doc),
            ))?;
            // Last, so that only the commit itself can fail after it.
            refused.apply(control.apply(SettingsChange::Put {
                id: id.clone(),
                doc: document.clone(),
            }))?;
            Ok(new)
        })
        .await
        .map_err(|e| refusal.http_error("storing a settings document", e))?;
    Ok(axum::Json(saved.into()))
}

/// Query string of a delete.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteParams {
    expected_version: Option<u64>,
}

async fn delete(
    s: AppState,
    p: Principal,
    kind: SettingKind,
    id: String,
    q: Result<Query<DeleteParams>, QueryRejection>,
) -> Result<StatusCode, HttpError> {
    let q = q
        .map(|Query(q)| q)
        .map_err(|e| HttpError::bad_request("query", e.body_text()))?;
    let control = std::sync::Arc::clone(&s.control);
    let refusal = Refusal::default();
    let refused = refusal.clone();
    let deleted = id.clone();
    s.store()?
        .transaction(move |t| {
            let old = t.delete_setting(kind, &id, q.expected_version)?;
            t.append_audit(audit::row(
                &p,
                &format!("{}.delete", kind.as_str()),
                format!("{}/{id}", kind.as_str()),
                summary(&old.doc),
                None,
            ))?;
            // Last, so that only the commit itself can fail after it.
            refused.apply(control.apply(SettingsChange::Delete {
                kind,
                id: id.clone(),
            }))
        })
        .await
        .map_err(|e| refusal.http_error("deleting a settings document", e))?;
    if kind == SettingKind::Camera {
        crate::secrets::forget(&s.settings.state_dir, &deleted);
    }
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! handlers {
    ($put:ident, $del:ident, $doc:ty) => {
        pub(crate) async fn $put(
            State(s): State<AppState>,
            Extension(p): Extension<Principal>,
            Path(id): Path<String>,
            ValidJson(b): ValidJson<PutBody<$doc>>,
        ) -> Result<axum::Json<SettingView>, HttpError> {
            put(s, p, id, b).await
        }

        pub(crate) async fn $del(
            State(s): State<AppState>,
            Extension(p): Extension<Principal>,
            Path(id): Path<String>,
            q: Result<Query<DeleteParams>, QueryRejection>,
        ) -> Result<StatusCode, HttpError> {
            delete(s, p, <$doc as Doc>::KIND, id, q).await
        }
    };
}

handlers!(put_camera, delete_camera, CameraDoc);
handlers!(put_zone, delete_zone, ZoneDoc);
handlers!(put_rule, delete_rule, RuleDoc);
handlers!(put_line, delete_line, LineDoc);

#[cfg(test)]
mod tests {
    use super::*;

    /// A document's own problems come back at `doc.<key>`, every one of them.
    #[test]
    fn own_problems_name_the_fields() {
        let rule: RawRule = serde_json::from_value(serde_json::json!({
            "name": "Night", "kind": "line_crossing", "zone": "gate",
            "schedule": {"days": ["mon", "funday"]},
            "siren": {"pattern": "steady", "period_ms": 500}
        }))
        .unwrap();
        let e = own_problems(rule.problems("night", "doc")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("doc.schedule.days[1]"));
        let fields: Vec<&str> = e.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(fields, vec!["doc.schedule.days[1]", "doc.siren.period_ms"]);
    }
}

//! Cameras, zones, lines and rules: settings documents edited through the API.
//!
//! A change is validated here (typed documents with `deny_unknown_fields`, polygons
//! and lines through the domain, camera sources through the capture sandbox), then handed to
//! [`crate::Control::apply`] inside the store transaction that records the document
//! and its audit row: a change the daemon refuses is never stored.

use std::path::PathBuf;
use std::time::Duration;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use safe_yolo_capture::{Pacing, SourceRequest};
use safe_yolo_config::{Anchor, SirenPattern as Pattern, minutes_of_day};
use safe_yolo_domain::{
    CameraId, Line, OutputId, Polygon, PolygonError, Severity, Weekday, ZoneId,
};
use safe_yolo_store::{SettingKind, StoreError, now_ms};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::audit::{self, summary};
use crate::auth::Principal;
use crate::body::ValidJson;
use crate::control::{ControlError, SettingsChange};
use crate::error::HttpError;
use crate::state::AppState;

/// A PUT body: the document and, optionally, the version it was based on.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Put{D}")]
pub(crate) struct PutBody<D> {
    doc: D,
    expected_version: Option<u64>,
}

/// Checks beyond the types.
pub(crate) trait Doc: DeserializeOwned + Serialize + Send + 'static {
    /// The kind.
    const KIND: SettingKind;
    /// Validates the document; the error names the field.
    fn check(&self, s: &AppState) -> Result<(), HttpError>;
}

fn check_name(name: &str) -> Result<(), HttpError> {
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(HttpError::invalid("doc.name", "must be 1-64 characters"));
    }
    Ok(())
}

/// A camera source.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum SourceDoc {
    /// A V4L2 device.
    V4l2 {
        device: PathBuf,
        width: u32,
        height: u32,
        fps: f32,
    },
    /// Recorded footage inside the media directory.
    Replay {
        path: PathBuf,
        #[serde(default)]
        looping: bool,
        fps: f32,
    },
}

/// A camera document.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CameraDoc {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    source: SourceDoc,
    detect_every: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Doc for CameraDoc {
    const KIND: SettingKind = SettingKind::Camera;

    fn check(&self, s: &AppState) -> Result<(), HttpError> {
        check_name(&self.name)?;
        if self.detect_every.is_some_and(|n| !(1..=100).contains(&n)) {
            return Err(HttpError::invalid(
                "doc.detect_every",
                "must be between 1 and 100",
            ));
        }
        let req = match &self.source {
            SourceDoc::V4l2 {
                device,
                width,
                height,
                fps,
            } => SourceRequest::V4l2 {
                device: device.clone(),
                width: *width,
                height: *height,
                fps: *fps,
                format: None,
            },
            SourceDoc::Replay { path, looping, fps } => SourceRequest::Replay {
                path: path.clone(),
                looping: *looping,
                pacing: Pacing::RealTime,
                fps: *fps,
                start_frame: 0,
            },
        };
        s.source_policy
            .check(&req)
            .map(drop)
            .map_err(|e| HttpError::invalid("doc.source", e.to_string()))
    }
}

/// A zone document.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZoneDoc {
    #[schemars(with = "String")]
    camera: CameraId,
    name: String,
    /// Outline in normalised coordinates `[x, y]`, 0..=1.
    polygon: Vec<[f32; 2]>,
    anchor: Option<Anchor>,
}

impl Doc for ZoneDoc {
    const KIND: SettingKind = SettingKind::Zone;

    fn check(&self, _s: &AppState) -> Result<(), HttpError> {
        check_name(&self.name)?;
        Polygon::new(&self.polygon)
            .map(drop)
            .map_err(|e| HttpError::invalid("doc.polygon", e.to_string()))
    }
}

/// A counting line document: line-crossing rules name it in their `zone` field.
/// Side A is on the left walking from `from` to `to` (image coordinates).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineDoc {
    #[schemars(with = "String")]
    camera: CameraId,
    name: String,
    /// Start point `[x, y]`, normalised 0..=1.
    from: [f32; 2],
    /// End point `[x, y]`, normalised 0..=1.
    to: [f32; 2],
}

impl Doc for LineDoc {
    const KIND: SettingKind = SettingKind::Line;

    fn check(&self, _s: &AppState) -> Result<(), HttpError> {
        check_name(&self.name)?;
        Line::new(self.from, self.to).map(drop).map_err(|e| {
            let field = match e {
                PolygonError::OutsideFrame { index: 0, .. } => "doc.from",
                _ => "doc.to",
            };
            let reason = match e {
                PolygonError::OutsideFrame { x, y, .. } => format!(
                    "({x}, {y}) is outside the frame; coordinates are fractions from 0.0 to 1.0"
                ),
                other => other.to_string(),
            };
            HttpError::invalid(field, reason)
        })
    }
}

/// When a rule is armed: on `days`, from `from` to `to` (local time, `HH:MM`;
/// `to` before `from` wraps midnight; `24:00` is the end of the day).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleDoc {
    /// Days the window opens (default: every day).
    #[serde(skip_serializing_if = "Option::is_none")]
    days: Option<Vec<Weekday>>,
    /// Opening time `HH:MM` (default `00:00`).
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// Closing time `HH:MM` (default `24:00`).
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
}

impl ScheduleDoc {
    fn check(&self) -> Result<(), HttpError> {
        if self.days.as_ref().is_some_and(Vec::is_empty) {
            return Err(HttpError::invalid(
                "doc.schedule.days",
                "must list at least one day (mon..sun)",
            ));
        }
        let mut times = [0u16, 1440];
        for (i, (field, v)) in [
            ("doc.schedule.from", &self.from),
            ("doc.schedule.to", &self.to),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(t) = v {
                times[i] = minutes_of_day(t).ok_or_else(|| {
                    HttpError::invalid(
                        field,
                        format!("{t:?} is not a time of day HH:MM (00:00 to 24:00)"),
                    )
                })?;
            }
        }
        if times[0] == times[1] {
            return Err(HttpError::invalid(
                "doc.schedule.to",
                "must differ from `from` (use 00:00 to 24:00 for all day)",
            ));
        }
        Ok(())
    }
}

/// The schema of a siren's pattern: one of the outputs' pattern kinds.
fn pattern_kind_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "How a siren sounds.",
        "type": "string",
        "enum": Pattern::KINDS,
    })
}

/// Siren behaviour of a rule.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SirenDoc {
    #[schemars(schema_with = "pattern_kind_schema")]
    pattern: String,
    /// Full on+off period of `pulsed`, 100-10000 ms (default 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    period_ms: Option<u64>,
    /// Stops by itself after this long, 1-3600 s; absent: until acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_s: Option<f64>,
}

impl SirenDoc {
    fn check(&self) -> Result<(), HttpError> {
        let pattern = Pattern::of_kind(&self.pattern, Duration::ZERO).ok_or_else(|| {
            HttpError::invalid(
                "doc.siren.pattern",
                format!(
                    "{:?} is not one of: {}",
                    self.pattern,
                    Pattern::KINDS.join(", ")
                ),
            )
        })?;
        match (pattern, self.period_ms) {
            (Pattern::Steady, Some(_)) => {
                return Err(HttpError::invalid(
                    "doc.siren.period_ms",
                    "applies only to pattern \"pulsed\"",
                ));
            }
            (Pattern::Pulsed { .. }, Some(p)) if !(100..=10_000).contains(&p) => {
                return Err(HttpError::invalid(
                    "doc.siren.period_ms",
                    "must be between 100 and 10000 ms",
                ));
            }
            _ => {}
        }
        if self
            .duration_s
            .is_some_and(|d| !d.is_finite() || !(1.0..=3600.0).contains(&d))
        {
            return Err(HttpError::invalid(
                "doc.siren.duration_s",
                "must be between 1 and 3600 seconds",
            ));
        }
        Ok(())
    }
}

/// The rule kinds of the safety regulation panel.
#[derive(Debug, Deserialize, Serialize, Clone, Copy, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RuleKindDoc {
    Intrusion,
    Dwell,
    Occupancy,
    LineCrossing,
    MissingPpe,
    CameraOffline,
    DoorOpen,
}

/// A rule document (the safety regulation panel).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDoc {
    name: String,
    kind: RuleKindDoc,
    #[serde(default = "yes")]
    enabled: bool,
    #[schemars(with = "Option<String>")]
    camera: Option<CameraId>,
    #[schemars(with = "Option<String>")]
    zone: Option<ZoneId>,
    severity: Severity,
    cooldown_s: Option<f64>,
    clear_after_s: Option<f64>,
    #[schemars(with = "Option<Vec<String>>")]
    outputs: Option<Vec<OutputId>>,
    min_frames: Option<u32>,
    seconds: Option<f64>,
    max_persons: Option<u32>,
    direction: Option<String>,
    ppe_present_class: Option<String>,
    ppe_missing_class: Option<String>,
    grace_s: Option<f64>,
    offline_after_s: Option<f64>,
    /// Door open rules: how long the door may stay open (default 0: at once).
    open_after_s: Option<f64>,
    /// When the rule is armed; absent: always.
    schedule: Option<ScheduleDoc>,
    /// Siren behaviour for siren outputs (default: steady until acknowledged).
    siren: Option<SirenDoc>,
    /// Relay outputs latch this long (0.1-86400 s); absent: until acknowledged.
    relay_latch_s: Option<f64>,
    /// Point of a person's box tested against the zone (default: feet).
    anchor: Option<Anchor>,
}

impl Doc for RuleDoc {
    const KIND: SettingKind = SettingKind::Rule;

    fn check(&self, _s: &AppState) -> Result<(), HttpError> {
        check_name(&self.name)?;
        for (field, v) in [
            ("doc.cooldown_s", self.cooldown_s),
            ("doc.clear_after_s", self.clear_after_s),
            ("doc.seconds", self.seconds),
            ("doc.grace_s", self.grace_s),
            ("doc.offline_after_s", self.offline_after_s),
            ("doc.open_after_s", self.open_after_s),
        ] {
            if v.is_some_and(|v| !v.is_finite() || !(0.0..=86_400.0).contains(&v)) {
                return Err(HttpError::invalid(
                    field,
                    "must be between 0 and 86400 seconds",
                ));
            }
        }
        if self
            .relay_latch_s
            .is_some_and(|v| !v.is_finite() || !(0.1..=86_400.0).contains(&v))
        {
            return Err(HttpError::invalid(
                "doc.relay_latch_s",
                "must be between 0.1 and 86400 seconds",
            ));
        }
        if let Some(s) = &self.schedule {
            s.check()?;
        }
        if let Some(s) = &self.siren {
            s.check()?;
        }
        if matches!(
            self.kind,
            RuleKindDoc::CameraOffline | RuleKindDoc::DoorOpen
        ) {
            if self.camera.is_none() {
                return Err(HttpError::invalid(
                    "doc.camera",
                    "is required for camera_offline and door_open",
                ));
            }
        } else if self.zone.is_none() {
            return Err(HttpError::invalid(
                "doc.zone",
                "is required for this rule kind",
            ));
        }
        Ok(())
    }
}

async fn list(s: &AppState, kind: SettingKind) -> Result<serde_json::Value, HttpError> {
    let edited = s
        .store
        .run(move |st| st.list_settings(Some(kind)))
        .await
        .map_err(|e| HttpError::store("listing settings", e))?;
    let running: Vec<_> = s
        .control
        .current(kind)
        .into_iter()
        .map(|(id, doc)| serde_json::json!({"id": id, "doc": doc}))
        .collect();
    Ok(serde_json::json!({"running": running, "edited": edited}))
}

pub(crate) async fn list_cameras(
    State(s): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, HttpError> {
    let mut v = list(&s, SettingKind::Camera).await?;
    let health: Vec<_> = s
        .live
        .taps()
        .iter()
        .map(|t| {
            let h = t.health.borrow();
            serde_json::json!({"id": t.id, "state": format!("{:?}", h.state).to_lowercase(), "reason": h.reason})
        })
        .collect();
    v["health"] = serde_json::Value::Array(health);
    Ok(axum::Json(v))
}

pub(crate) async fn list_zones(
    State(s): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, HttpError> {
    list(&s, SettingKind::Zone).await.map(axum::Json)
}

pub(crate) async fn list_lines(
    State(s): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, HttpError> {
    list(&s, SettingKind::Line).await.map(axum::Json)
}

pub(crate) async fn list_rules(
    State(s): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, HttpError> {
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
) -> Result<axum::Json<crate::views::SettingView>, HttpError> {
    CameraId::new(id.clone()).map_err(|e| HttpError::invalid("id", e.to_string()))?;
    body.doc.check(&s)?;
    let doc = serde_json::to_value(&body.doc)
        .map_err(|e| HttpError::internal("encoding a document", &e))?;
    let control = std::sync::Arc::clone(&s.control);
    let kind = D::KIND;
    let refusal = Refusal::default();
    let refused = refusal.clone();
    let saved = s
        .store
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
            t.append_audit(audit::row(
                &p,
                &format!("{}.put", kind.as_str()),
                format!("{}/{id}", kind.as_str()),
                before.as_ref().and_then(|b| summary(&b.doc)),
                summary(&new.doc),
            ))?;
            // Last, so that only the commit itself can fail after it.
            refused.apply(control.apply(SettingsChange::Put {
                kind,
                id: id.clone(),
                doc,
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
    s.store
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
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! handlers {
    ($put:ident, $del:ident, $doc:ty) => {
        pub(crate) async fn $put(
            State(s): State<AppState>,
            Extension(p): Extension<Principal>,
            Path(id): Path<String>,
            ValidJson(b): ValidJson<PutBody<$doc>>,
        ) -> Result<axum::Json<crate::views::SettingView>, HttpError> {
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

    #[test]
    fn schedule_and_siren_errors_name_the_field() {
        let s = ScheduleDoc {
            days: Some(vec![]),
            from: None,
            to: None,
        };
        assert_eq!(
            s.check().unwrap_err().field.as_deref(),
            Some("doc.schedule.days")
        );
        let s = ScheduleDoc {
            days: None,
            from: Some("08:00".into()),
            to: Some("8:00".into()),
        };
        assert_eq!(
            s.check().unwrap_err().field.as_deref(),
            Some("doc.schedule.to")
        );
        let s = SirenDoc {
            pattern: "steady".into(),
            period_ms: Some(500),
            duration_s: None,
        };
        assert_eq!(
            s.check().unwrap_err().field.as_deref(),
            Some("doc.siren.period_ms")
        );
    }
}

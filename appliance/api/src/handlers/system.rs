//! System information, metrics, outputs, certificate and key management.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use safe_yolo_domain::OutputId;
use safe_yolo_outputs::OutputsStatus;
use serde::{Deserialize, Serialize};

use crate::audit::{self, summary};
use crate::auth::Principal;
use crate::body::ValidJson;
use crate::error::HttpError;
use crate::state::AppState;

/// The liveness probe's answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Health {
    /// Always `ok`: the daemon answers (and the alarms run, whatever `storage` says).
    status: &'static str,
    /// `ok`, or `degraded`: the store is not open or does not take writes; events wait
    /// in memory (`events_buffered`) and routes that need the store answer 503.
    storage: &'static str,
    /// Events waiting in memory for the store.
    events_buffered: u64,
}

pub(crate) async fn health(State(s): State<AppState>) -> axum::Json<Health> {
    let st = s.storage.status();
    axum::Json(Health {
        status: "ok",
        storage: if st.is_ok() { "ok" } else { "degraded" },
        events_buffered: st.buffered_events,
    })
}

/// The system page: versions, storage, cameras, outputs and certificate.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SystemInfo {
    /// The daemon's version.
    version: String,
    /// The running slot and the update state (A/B updates).
    update: Option<safe_yolo_board::UpdateState>,
    /// Seconds since the API started.
    uptime_s: u64,
    /// The detector's model manifest.
    model: String,
    /// The evidence store.
    storage: StorageInfo,
    /// Some camera is watched. False on a box not configured yet: it guards
    /// nothing, and its healthy output is off.
    guarding: bool,
    /// Every camera's health.
    cameras: Vec<crate::views::CameraHealthView>,
    /// The outputs backend (`gpio` or `sim`).
    outputs_backend: &'static str,
    /// The HTTPS certificate in use.
    certificate: crate::tls::CertInfo,
    /// Why the certificate found at start is not the one served (a fresh
    /// self-signed one is), if it is not: the web UI shows it as a banner.
    certificate_problem: Option<String>,
    /// The lowest TLS version accepted: `1.2` or `1.3`.
    tls_min_version: &'static str,
}

/// The evidence store on the system page.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct StorageInfo {
    /// Open, buffering, dropped, and why not healthy if it is not.
    status: safe_yolo_store::StorageStatus,
    /// Sizes and sequence numbers.
    stats: safe_yolo_store::StoreStats,
    /// Databases a firmware rollback set aside beside the store: what a newer
    /// firmware recorded, kept unchanged and not in this store (see the audit
    /// log's `store.rollback` rows).
    set_aside: Vec<String>,
    /// The disk is full: new events are not stored.
    disk_full: bool,
    /// Snapshots exceed their quota: the oldest are being removed.
    snapshot_quota_exceeded: bool,
}

pub(crate) async fn info(State(s): State<AppState>) -> Result<axum::Json<SystemInfo>, HttpError> {
    let store = s.store()?;
    let stats = store
        .run(|st| st.stats())
        .await
        .map_err(|e| HttpError::store("store statistics", e))?;
    let m = store.metrics();
    let root = s.settings.system_root.clone();
    let update = tokio::task::spawn_blocking(move || safe_yolo_board::read_update_state(&root))
        .await
        .ok();
    let cameras: Vec<crate::views::CameraHealthView> =
        s.live.taps().iter().map(Into::into).collect();
    Ok(axum::Json(SystemInfo {
        version: s.settings.version.clone(),
        update,
        uptime_s: s.started.elapsed().as_secs(),
        model: s.settings.model.clone(),
        storage: StorageInfo {
            status: s.storage.status(),
            stats,
            set_aside: store
                .store()
                .open_report()
                .set_aside
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            disk_full: m.disk_full.load(Ordering::Relaxed),
            snapshot_quota_exceeded: m.snapshot_quota_exceeded.load(Ordering::Relaxed),
        },
        guarding: !cameras.is_empty(),
        cameras,
        outputs_backend: s.outputs.status().backend,
        certificate: s.certs.info(),
        certificate_problem: s.certs.fallback().map(str::to_owned),
        tls_min_version: match s.settings.api.tls_min_version {
            safe_yolo_config::TlsMinVersion::Tls13 => "1.3",
            safe_yolo_config::TlsMinVersion::Tls12 => "1.2",
        },
    }))
}

/// The integrations' outbox and each sink's delivery state (no setting and no
/// secret: those stay in the configuration).
/// The integrations' delivery: the outbox and its sinks, and the Modbus server's
/// start error.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct IntegrationsStatus {
    #[serde(flatten)]
    outbox: safe_yolo_store::OutboxStatus,
    /// Why the Modbus server does not run (its port cannot be bound, say), if it does
    /// not; the alarms and the other integrations run on.
    modbus_error: Option<String>,
}

pub(crate) async fn integrations(
    State(s): State<AppState>,
) -> Result<axum::Json<IntegrationsStatus>, HttpError> {
    let store = s.store()?;
    let outbox = store
        .run(|st| st.outbox_status())
        .await
        .map_err(|e| HttpError::store("integration status", e))?;
    Ok(axum::Json(IntegrationsStatus {
        outbox,
        modbus_error: s.control.modbus_error(),
    }))
}

/// The Modbus TCP server's register map as of now.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ModbusMap {
    /// Whether the server runs (`[integrations.modbus]` is configured).
    enabled: bool,
    /// Its listen address.
    bind: Option<String>,
    /// The unit id it answers.
    unit_id: Option<u8>,
    /// Every point: table, address (0-based) and meaning. Rules, cameras and zones
    /// follow the configuration's pinned lists, or the live ids sorted.
    registers: Vec<safe_yolo_config::ModbusRegister>,
}

/// The Modbus register map, generated from the configuration and the live rules,
/// cameras and zones (the same function the server answers from).
pub(crate) async fn modbus(State(s): State<AppState>) -> axum::Json<ModbusMap> {
    use safe_yolo_config::{ModbusConfig, modbus_map};
    // As running: the integration settings may have been edited since start.
    let (modbus, interlocks) = match s.control.integrations() {
        Some(i) => (i.modbus, i.interlocks),
        None => (s.settings.modbus.clone(), s.settings.interlocks.clone()),
    };
    let Some(m) = modbus.as_ref() else {
        return axum::Json(ModbusMap {
            enabled: false,
            bind: None,
            unit_id: None,
            registers: Vec::new(),
        });
    };
    let rules: Vec<_> = s.alarms.rules().into_iter().map(|(id, _, _)| id).collect();
    let cameras: Vec<_> = s.live.taps().iter().map(|t| t.id.clone()).collect();
    let zones = s.alarms.zone_ids();
    axum::Json(ModbusMap {
        enabled: true,
        bind: Some(m.bind.to_string()),
        unit_id: Some(m.unit_id),
        registers: modbus_map(
            &interlocks,
            &ModbusConfig::order(m.rules.as_ref(), &rules),
            &ModbusConfig::order(m.cameras.as_ref(), &cameras),
            &ModbusConfig::order(m.zones.as_ref(), &zones),
        ),
    })
}

/// One interlock as the box knows it now.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct InterlockView {
    /// Its id.
    id: safe_yolo_domain::InterlockId,
    /// Its name.
    name: String,
    /// `modbus` (a coil), `mqtt` (a topic) or `gpio` (the machine-state input).
    source: &'static str,
    /// The coil (modbus) or the topic (mqtt).
    address: String,
    /// `armed`, `disarmed`, or `unknown` (never heard since start, stale, or its
    /// source is gone: arms, fail-safe).
    level: safe_yolo_alarms::interlocks::InterlockLevel,
    /// Seconds a level holds without being renewed (absent: until the next one).
    stale_after_s: Option<f64>,
    /// The rules it arms.
    rules: Vec<safe_yolo_domain::RuleId>,
}

/// Every interlock with its level now and the rules it arms: a disarmed rule does
/// not guard, and this is where an operator sees why.
pub(crate) async fn interlocks(State(s): State<AppState>) -> axum::Json<Vec<InterlockView>> {
    let rules = s.alarms.rules();
    let views = s
        .interlocks
        .specs()
        .into_iter()
        .map(|i| {
            let (source, address) = match &i.source {
                safe_yolo_config::InterlockSource::ModbusCoil { coil } => {
                    ("modbus", coil.to_string())
                }
                safe_yolo_config::InterlockSource::Mqtt { topic, .. } => ("mqtt", topic.clone()),
                safe_yolo_config::InterlockSource::Gpio => {
                    ("gpio", "outputs.machine_state".to_owned())
                }
            };
            let mut armed: Vec<_> = rules
                .iter()
                .filter(|(_, _, by)| by.as_ref() == Some(&i.id))
                .map(|(id, _, _)| id.clone())
                .collect();
            armed.sort();
            InterlockView {
                level: s.interlocks.level(&i.id),
                id: i.id,
                name: i.name,
                source,
                address,
                stale_after_s: i.stale_after.map(|d| d.as_secs_f64()),
                rules: armed,
            }
        })
        .collect();
    axum::Json(views)
}

/// Sends a test message through every configured integration (audited with it, in one
/// transaction). `outbox_seq` is `null` when no integration is configured.
pub(crate) async fn test_integrations(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<axum::Json<crate::views::IntegrationTest>, HttpError> {
    let by = p.actor.clone();
    let row = audit::row(&p, "integrations.test", "integrations", None, None);
    let seq = s
        .store()?
        .transaction(move |t| {
            let seq = t.append_outbox(safe_yolo_store::OutboxMessage::Test { by })?;
            let mut row = row;
            row.after = Some(seq.map_or_else(
                || "no integration configured".to_owned(),
                |n| format!("test message queued (outbox {n})"),
            ));
            t.append_audit(row)?;
            Ok(seq)
        })
        .await
        .map_err(|e| HttpError::store("queueing a test message", e))?;
    Ok(axum::Json(crate::views::IntegrationTest {
        outbox_seq: seq,
    }))
}

pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

pub(crate) async fn openapi(State(s): State<AppState>) -> axum::Json<crate::openapi::Document> {
    axum::Json(crate::openapi::Document(crate::openapi::document(
        s.settings.max_cert_body_bytes,
    )))
}

pub(crate) async fn outputs_status(State(s): State<AppState>) -> axum::Json<OutputsStatus> {
    axum::Json(s.outputs.status())
}

/// Manual output test request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestBody {
    /// How long to drive the output, 100..=30000 ms.
    duration_ms: u64,
}

pub(crate) async fn test_output(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    ValidJson(b): ValidJson<TestBody>,
) -> Result<StatusCode, HttpError> {
    let output = OutputId::new(id).map_err(|e| HttpError::invalid("id", e.to_string()))?;
    if !(100..=30_000).contains(&b.duration_ms) {
        return Err(HttpError::invalid(
            "duration_ms",
            "must be between 100 and 30000",
        ));
    }
    if !s.outputs.outputs().iter().any(|o| o.id == output) {
        return Err(HttpError::not_found(format!("output {output}")));
    }
    s.outputs
        .test(output.clone(), Duration::from_millis(b.duration_ms))
        .await
        .map_err(|e| HttpError::conflict(format!("output test refused: {e}")))?;
    let row = audit::row(
        &p,
        "output.test",
        format!("output/{output}"),
        None,
        Some(format!("on for {} ms", b.duration_ms)),
    );
    s.store()?
        .transaction(move |t| t.append_audit(row))
        .await
        .map_err(|e| HttpError::store("recording the output test", e))?;
    Ok(StatusCode::ACCEPTED)
}

/// Certificate upload.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertBody {
    /// PEM certificate chain, leaf first.
    cert_pem: String,
    /// PEM private key.
    key_pem: String,
}

pub(crate) async fn put_certificate(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ValidJson(b): ValidJson<CertBody>,
) -> Result<axum::Json<crate::tls::CertInfo>, HttpError> {
    let before = summary(&s.certs.info());
    let certs = std::sync::Arc::clone(&s.certs);
    let info = tokio::task::spawn_blocking(move || {
        certs.replace(b.cert_pem.as_bytes(), b.key_pem.as_bytes())
    })
    .await
    .map_err(|e| HttpError::internal("certificate task", &e))?
    .map_err(|e| match e {
        crate::tls::TlsError::Invalid { field, reason } => HttpError::invalid(
            if field == "cert" {
                "cert_pem"
            } else {
                "key_pem"
            },
            reason,
        ),
        other => HttpError::internal("storing the certificate", &other),
    })?;
    let row = audit::row(&p, "system.certificate", "tls", before, summary(&info));
    s.store()?
        .transaction(move |t| t.append_audit(row))
        .await
        .map_err(|e| HttpError::store("recording the certificate change", e))?;
    tracing::info!(subject = %info.subject, not_after = info.not_after, "TLS certificate replaced");
    Ok(axum::Json(info))
}

pub(crate) async fn rotate_jwt_key(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<StatusCode, HttpError> {
    let row = audit::row(
        &p,
        "system.jwt_key.rotate",
        "jwt-key",
        None,
        Some("rotated".into()),
    );
    // The audit row is committed first: a failed rotation then shows as a failed request.
    s.store()?
        .transaction(move |t| t.append_audit(row))
        .await
        .map_err(|e| HttpError::store("recording the key rotation", e))?;
    s.keys.rotate()?;
    s.credentials_changed();
    Ok(StatusCode::NO_CONTENT)
}

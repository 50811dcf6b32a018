//! Integration tests of the API: the route table's authorisation matrix, setup, JWTs,
//! revocation, lockout, CORS, body limits, audit rows, TLS from outside (openssl),
//! the live WebSocket and MJPEG stream, and the committed OpenAPI document.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use safe_yolo_alarms::{Dispatcher, DispatcherConfig};
use safe_yolo_api::control::{ControlError, Document, Problem};
use safe_yolo_api::routes::{Access, table};
use safe_yolo_api::server::App;
use safe_yolo_api::{
    ApiDeps, ApiSettings, AuthTuning, Control, RateLimit, SettingsChange, build_router, serve,
};
use safe_yolo_capture::SourcePolicy;
use safe_yolo_config::{ApiConfig, IpNet, TlsMinVersion};
use safe_yolo_domain::{BBox, CameraId, Detection, FrameMeta, OutputId, RgbFrame, RuleId, ZoneId};
use safe_yolo_outputs::{
    Driver, DriverSettings, OutputRole, OutputSpec, OutputsHandle, OutputsRunner, SafeState,
    SimBackend,
};
use safe_yolo_pipeline::{
    CameraHealth, CameraState, CameraTap, CameraTaps, LiveFrame, Scene, SceneSlot, SceneTrack,
    SceneZone, TamperConfig, TamperHandle,
};
use safe_yolo_store::{
    NewEvent, Role, SettingKind, Severity, Storage, StorageSettings, Store, StoreConfig,
    StoreHandle, User, now_ms,
};
use safe_yolo_telemetry::Metrics;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery staple";
const CLIENT: &str = "10.1.2.3:40000";
const SETUP_NET_CLIENT: &str = "127.0.0.1:40000";
const MAX_BODY: usize = 4096;

// === test doubles ===

/// Records applied changes; refuses documents whose name is "refuse".
#[derive(Default)]
struct RecordingControl {
    applied: Mutex<Vec<SettingsChange>>,
}

impl Control for RecordingControl {
    fn apply(&self, change: SettingsChange) -> Result<(), ControlError> {
        if let SettingsChange::Put {
            doc: Document::Zone(zone),
            id,
        } = &change
            && zone.name.as_deref() == Some("refuse")
        {
            return Err(ControlError::Invalid {
                problems: vec![Problem {
                    path: format!("zones.{id}.name"),
                    reason: "refused by the rule engine".into(),
                }],
                object: format!("zones.{id}"),
            });
        }
        // An integration edit with the prefix "refuse/" stands for one the whole
        // configuration refuses (a rule armed by an interlock it removes).
        if let SettingsChange::Put {
            doc: Document::Integrations(i),
            ..
        } = &change
            && i.mqtt.as_ref().and_then(|m| m.topic_prefix.as_deref()) == Some("refuse/")
        {
            return Err(ControlError::Invalid {
                problems: vec![Problem {
                    path: "rules.night.armed_by".into(),
                    reason: "no interlock has the id \"press\"".into(),
                }],
                object: "integrations".into(),
            });
        }
        self.applied.lock().push(change);
        Ok(())
    }

    /// The integration settings last applied (the daemon's running ones); nothing
    /// of the other kinds.
    fn current(&self, kind: SettingKind) -> Vec<(String, Document)> {
        if kind != SettingKind::Integrations {
            return Vec::new();
        }
        self.applied
            .lock()
            .iter()
            .rev()
            .find_map(|c| match c {
                SettingsChange::Put {
                    id,
                    doc: doc @ Document::Integrations(_),
                } => Some((id.clone(), doc.clone())),
                _ => None,
            })
            .into_iter()
            .collect()
    }
}

struct Rig {
    app: App,
    store: StoreHandle,
    dir: tempfile::TempDir,
    _live: watch::Sender<Option<LiveFrame>>,
    _health: watch::Sender<CameraHealth>,
    control: Arc<RecordingControl>,
    shutdown: CancellationToken,
    users: AtomicU64,
}

fn tuning() -> AuthTuning {
    AuthTuning {
        argon2_m_kib: 1024,
        argon2_t: 1,
        user_max_failures: 3,
        source_max_failures: 1000,
        lockout: Duration::from_millis(1500),
        // The matrix walk makes hundreds of requests in a few seconds; the limiter has
        // its own test with a tiny limit.
        rate_limit: RateLimit {
            per_second: 1e6,
            burst: 1_000_000,
        },
        ..AuthTuning::default()
    }
}

fn api_config(cors: Vec<String>) -> ApiConfig {
    ApiConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        tls_min_version: TlsMinVersion::Tls13,
        cert: None,
        key: None,
        http_redirect_bind: None,
        cors_origins: cors,
        setup_networks: vec![IpNet {
            addr: "127.0.0.0".parse().unwrap(),
            prefix: 8,
        }],
        jpeg_quality: 75,
        max_body_bytes: MAX_BODY,
        rate_limit_per_s: 50,
        rate_limit_burst: 100,
        max_connections: 256,
        max_unanswered_connections: 64,
        redirect_max_connections: 64,
        body_timeout: std::time::Duration::from_secs(10),
        request_timeout: std::time::Duration::from_secs(30),
        max_password_hashes: 2,
    }
}

fn outputs() -> OutputsHandle {
    let specs = vec![
        OutputSpec {
            id: OutputId::new("siren").unwrap(),
            role: OutputRole::Siren,
            safe_state: SafeState::Off,
            active_low: false,
        },
        OutputSpec {
            id: OutputId::new("healthy").unwrap(),
            role: OutputRole::Healthy,
            safe_state: SafeState::Off,
            active_low: false,
        },
    ];
    let backend = SimBackend::new(&specs, &[]).unwrap();
    let driver = Driver::new(
        specs,
        DriverSettings {
            health_timeout: Duration::from_secs(5),
            max_test: Duration::from_secs(30),
            healthy_pulse: None,
        },
    )
    .unwrap();
    let (runner, handle) =
        OutputsRunner::new(Box::new(backend), driver, vec![], Duration::from_millis(20));
    runner.spawn();
    let h = handle.clone();
    tokio::spawn(async move {
        loop {
            let _ = h.pipeline_health(true);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    handle
}

fn cam() -> CameraId {
    CameraId::new("cam1").unwrap()
}

fn deps(
    dir: &Path,
    store: StoreHandle,
    control: Arc<RecordingControl>,
) -> (
    ApiDeps,
    watch::Sender<Option<LiveFrame>>,
    watch::Sender<CameraHealth>,
    SceneSlot,
) {
    let outputs = outputs();
    let metrics = Metrics::new();
    let cfg = DispatcherConfig {
        rules: HashMap::new(),
        output_roles: HashMap::new(),
        zones: HashMap::new(),
        snapshots: false,
        jpeg_quality: 75,
    };
    let storage = Storage::with_handle(store, StorageSettings::default());
    let alarms = Dispatcher::new(storage.clone(), outputs.clone(), cfg, metrics.clone());
    let (live_tx, live_rx) = watch::channel(None);
    let (health_tx, health_rx) = watch::channel(CameraHealth {
        state: CameraState::Online,
        since: SystemTime::now(),
        reason: None,
        tamper: Default::default(),
    });
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("clip.mjpeg"), jpeg_bytes()).unwrap();
    let scene = SceneSlot::default();
    let deps = ApiDeps {
        store: storage,
        alarms,
        outputs,
        cameras: CameraTaps::fixed(vec![CameraTap {
            id: cam(),
            health: health_rx,
            live: live_rx,
            scene: scene.clone(),
            tamper: TamperHandle::standalone(cam(), TamperConfig::default()),
        }]),
        metrics,
        control,
        source_policy: SourcePolicy::new(&media),
        interlocks: safe_yolo_alarms::Interlocks::new(&[]),
        sources: {
            let policy = SourcePolicy::new(&media);
            Arc::new(move |r: &safe_yolo_capture::SourceRequest| {
                safe_yolo_capture::open(r, &policy)
            })
        },
    };
    (deps, live_tx, health_tx, scene)
}

fn jpeg_bytes() -> Vec<u8> {
    let frame = RgbFrame::new(32, 24, vec![120u8; 32 * 24 * 3]).unwrap();
    safe_yolo_capture::JpegEncoder::new(80)
        .unwrap()
        .encode(&frame)
        .unwrap()
}

fn settings(dir: &Path, cors: Vec<String>) -> ApiSettings {
    let mut s = ApiSettings::new(api_config(cors), dir);
    s.auth = tuning();
    s.version = "test".into();
    s
}

async fn rig_with(cors: Vec<String>) -> Rig {
    rig_custom(cors, |_| {}).await
}

/// A rig whose settings `tweak` adjusts (its argument's state dir is the rig's dir).
async fn rig_custom(cors: Vec<String>, tweak: impl FnOnce(&mut ApiSettings)) -> Rig {
    rig_store(cors, tweak, |_| {}).await
}

/// A rig whose API settings and store configuration are adjusted.
async fn rig_store(
    cors: Vec<String>,
    tweak: impl FnOnce(&mut ApiSettings),
    store_tweak: impl FnOnce(&mut StoreConfig),
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut store_config = StoreConfig::new(dir.path());
    store_tweak(&mut store_config);
    let store = Store::open(store_config).unwrap();
    let (store, _writer) = StoreHandle::start(store, 64).unwrap();
    let control = Arc::new(RecordingControl::default());
    let (deps, live, health, _scene) = deps(dir.path(), store.clone(), Arc::clone(&control));
    let shutdown = CancellationToken::new();
    let mut settings = settings(dir.path(), cors);
    tweak(&mut settings);
    let app = build_router(settings, deps, shutdown.clone()).unwrap();
    Rig {
        app,
        store,
        dir,
        _live: live,
        _health: health,
        control,
        shutdown,
        users: AtomicU64::new(0),
    }
}

async fn rig() -> Rig {
    rig_with(vec!["https://ops.example".into()]).await
}

// === requests ===

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    /// The body as text, for the failure messages and the searches for secrets.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a 200 and returns the body as text.
    fn ok_text(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        self.text()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn call_from(
    router: &Router,
    from: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "box.local");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(serde_json::to_vec(&b).unwrap())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    let addr: SocketAddr = from.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let resp = tower::ServiceExt::oneshot(router.clone(), req)
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let streaming = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("multipart/x-mixed-replace"));
    let body = if streaming {
        Vec::new()
    } else {
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

impl Rig {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        call_from(&self.app.router, CLIENT, method, path, token, body, &[]).await
    }

    async fn setup_admin(&self) {
        let r = call_from(
            &self.app.router,
            SETUP_NET_CLIENT,
            Method::POST,
            "/api/v1/setup",
            None,
            Some(json!({"username": "admin", "password": PASSWORD})),
            &[],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }

    async fn login(&self, user: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": user, "password": password})),
        )
        .await
    }

    async fn token(&self, user: &str) -> String {
        let r = self.login(user, PASSWORD).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "login {user}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates a fresh user with `role` directly in the store and returns its name.
    async fn user(&self, role: Role) -> String {
        let n = self.users.fetch_add(1, Ordering::Relaxed);
        let name = format!("u{n}");
        let hash = safe_yolo_api::auth::hash_password(&tuning(), PASSWORD.into())
            .await
            .unwrap();
        let user = User {
            username: name.clone(),
            password_hash: hash,
            role,
            created_at: now_ms(),
            disabled: false,
        };
        self.store
            .transaction(move |t| t.create_user(&user))
            .await
            .unwrap();
        name
    }

    async fn token_for(&self, role: Role) -> String {
        let u = self.user(role).await;
        self.token(&u).await
    }

    async fn event(&self, snapshot: bool) -> u64 {
        self.store
            .record(NewEvent {
                camera: cam(),
                rule: RuleId::new("no-entry").unwrap(),
                zone: None,
                track: Some(1),
                kind: "intrusion".into(),
                severity: Severity::Critical,
                started_at: now_ms(),
                ended_at: None,
                message: "person in zone".into(),
                details: None,
                snapshot_jpeg: snapshot.then(|| Arc::from(jpeg_bytes())),
                cleared: false,
            })
            .await
            .unwrap()
    }

    async fn last_audit_id(&self) -> u64 {
        self.store
            .run(|s| s.audit_page(None, 1, false))
            .await
            .unwrap()
            .0
            .first()
            .map_or(0, |r| r.id)
    }

    async fn audit_after(&self, id: u64) -> Vec<safe_yolo_store::AuditRecord> {
        self.store
            .run(move |s| s.audit_page(Some(id), 1000, true))
            .await
            .unwrap()
            .0
    }

    async fn setting(&self, kind: SettingKind, id: &str, doc: Value) {
        let id = id.to_owned();
        self.store
            .transaction(move |t| t.put_setting(kind, &id, doc, None, "test", now_ms()))
            .await
            .unwrap();
    }

    /// A concrete path and a valid body for a route, creating what it needs.
    async fn example(&self, method: &Method, path: &str) -> (String, Option<Value>) {
        let n = self.users.fetch_add(1, Ordering::Relaxed);
        match (method.as_str(), path) {
            ("POST", "/api/v1/auth/password") => (
                path.into(),
                Some(
                    json!({"current_password": PASSWORD, "new_password": "another long password 1"}),
                ),
            ),
            ("GET", "/api/v1/events/{id}") => {
                (format!("/api/v1/events/{}", self.event(false).await), None)
            }
            ("GET", "/api/v1/events/{id}/snapshot") => (
                format!("/api/v1/events/{}/snapshot", self.event(true).await),
                None,
            ),
            ("POST", "/api/v1/events/{id}/ack") => (
                format!("/api/v1/events/{}/ack", self.event(false).await),
                None,
            ),
            ("GET", "/api/v1/cameras/{id}/mjpeg") => ("/api/v1/cameras/cam1/mjpeg".into(), None),
            ("POST", "/api/v1/cameras/preview") => (
                path.into(),
                Some(json!({"kind": "replay", "path": "clip.mjpeg"})),
            ),
            ("PUT", "/api/v1/cameras/{id}") => (
                format!("/api/v1/cameras/c{n}"),
                Some(
                    json!({"doc": {"name": "Gate", "source": {"kind": "replay", "path": "clip.mjpeg", "fps": 10.0}}}),
                ),
            ),
            ("PUT", "/api/v1/zones/{id}") => (
                format!("/api/v1/zones/z{n}"),
                Some(
                    json!({"doc": {"camera": "cam1", "name": "Dock", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}}),
                ),
            ),
            ("PUT", "/api/v1/lines/{id}") => (
                format!("/api/v1/lines/l{n}"),
                Some(
                    json!({"doc": {"camera": "cam1", "name": "Gate line", "from": [0.5, 0.1], "to": [0.5, 0.9]}}),
                ),
            ),
            ("PUT", "/api/v1/rules/{id}") => (
                format!("/api/v1/rules/r{n}"),
                Some(
                    json!({"doc": {"name": "No entry", "kind": "intrusion", "zone": "z1", "severity": "critical"}}),
                ),
            ),
            ("DELETE", p)
                if p.starts_with("/api/v1/cameras/")
                    || p.starts_with("/api/v1/zones/")
                    || p.starts_with("/api/v1/lines/")
                    || p.starts_with("/api/v1/rules/") =>
            {
                let (kind, seg) = if p.contains("cameras") {
                    (SettingKind::Camera, "cameras")
                } else if p.contains("zones") {
                    (SettingKind::Zone, "zones")
                } else if p.contains("lines") {
                    (SettingKind::Line, "lines")
                } else {
                    (SettingKind::Rule, "rules")
                };
                let id = format!("d{n}");
                self.setting(kind, &id, json!({"name": "x"})).await;
                (format!("/api/v1/{seg}/{id}"), None)
            }
            ("POST", "/api/v1/users") => (
                path.into(),
                Some(
                    json!({"username": format!("new{n}"), "password": PASSWORD, "role": "viewer"}),
                ),
            ),
            ("PATCH", "/api/v1/users/{name}") => (
                format!("/api/v1/users/{}", self.user(Role::Viewer).await),
                Some(json!({"role": "operator"})),
            ),
            ("DELETE", "/api/v1/users/{name}") => (
                format!("/api/v1/users/{}", self.user(Role::Viewer).await),
                None,
            ),
            ("POST", "/api/v1/keys") => (
                path.into(),
                Some(json!({"label": "scraper", "role": "viewer", "expires_in_days": 30})),
            ),
            ("DELETE", "/api/v1/keys/{id}") => {
                let admin = self.token_for(Role::Admin).await;
                let r = self
                    .call(
                        Method::POST,
                        "/api/v1/keys",
                        Some(&admin),
                        Some(json!({"label": "k", "role": "viewer", "expires_in_days": 1})),
                    )
                    .await;
                (
                    format!("/api/v1/keys/{}", r.json()["id"].as_str().unwrap()),
                    None,
                )
            }
            ("POST", "/api/v1/cameras/{id}/tamper/relearn") => {
                (format!("/api/v1/cameras/{}/tamper/relearn", cam()), None)
            }
            ("POST", "/api/v1/outputs/{id}/test") => (
                "/api/v1/outputs/siren/test".into(),
                Some(json!({"duration_ms": 200})),
            ),
            ("PUT", "/api/v1/system/integrations/settings") => (
                path.into(),
                Some(
                    json!({"doc": {"modbus": {"bind": "127.0.0.1:1502", "allow": ["127.0.0.1"]}}}),
                ),
            ),
            ("PUT", "/api/v1/system/certificate") => {
                let c = rcgen::generate_simple_self_signed(vec!["box.local".to_string()]).unwrap();
                (
                    path.into(),
                    Some(json!({"cert_pem": c.cert.pem(), "key_pem": c.key_pair.serialize_pem()})),
                )
            }
            ("GET", "/api/v1/events/export") => {
                self.event(false).await;
                ("/api/v1/events/export?format=csv".into(), None)
            }
            (_, p) if !p.contains('{') => (p.into(), None),
            (m, p) => panic!("no example for {m} {p}: add one to Rig::example when adding a route"),
        }
    }
}

fn below(role: Role) -> Option<Role> {
    match role {
        Role::Admin => Some(Role::Operator),
        Role::Operator => Some(Role::Viewer),
        Role::Viewer => None,
    }
}

// === the authorisation matrix ===

/// The routes that may be called without credentials. Adding a public route means
/// adding it here, on purpose.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/setup"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/"),
    ("GET", "/ui/{file}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_role_and_audits_changes() {
    let rig = rig().await;
    rig.setup_admin().await;
    let routes = table(256 * 1024);
    assert!(routes.len() > 30);
    for route in &routes {
        let spec = &route.spec;
        let name = format!("{} {}", spec.method, spec.path);
        match spec.access {
            Access::Public => {
                assert!(
                    PUBLIC.contains(&(spec.method.as_str(), spec.path)),
                    "{name} is public but not in the PUBLIC allow-list"
                );
                continue;
            }
            Access::Ticket => {
                let r = rig.call(spec.method.clone(), spec.path, None, None).await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{name} without a ticket"
                );
                let viewer = rig.token_for(Role::Viewer).await;
                let r = rig
                    .call(spec.method.clone(), spec.path, Some(&viewer), None)
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{name} with a JWT instead of a ticket"
                );
                continue;
            }
            Access::Role(min) => {
                // 401 without credentials and with garbage.
                let (path, body) = rig.example(&spec.method, spec.path).await;
                assert_eq!(
                    body.is_some(),
                    spec.body.is_some(),
                    "{name}: the OpenAPI body schema must match whether the route takes a JSON body"
                );
                let r = rig
                    .call(spec.method.clone(), &path, None, body.clone())
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{name} without credentials"
                );
                assert_eq!(r.json()["error"], "unauthorized");
                let r = rig
                    .call(spec.method.clone(), &path, Some("garbage"), body.clone())
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{name} with a garbage token"
                );
                // 403 one role below.
                if let Some(low) = below(min) {
                    let t = rig.token_for(low).await;
                    let before = rig.last_audit_id().await;
                    let r = rig
                        .call(spec.method.clone(), &path, Some(&t), body.clone())
                        .await;
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "{name} as {low:?}");
                    if spec.mutating() {
                        let rows = rig.audit_after(before).await;
                        assert!(
                            rows.iter().any(|r| matches!(
                                r.result,
                                safe_yolo_store::AuditResult::Denied(_)
                            )),
                            "{name}: a refused change is audited"
                        );
                    }
                }
                // Success at the minimum role, with an audit row for every change.
                let t = rig.token_for(min).await;
                let (path, body) = rig.example(&spec.method, spec.path).await;
                let before = rig.last_audit_id().await;
                let r = rig.call(spec.method.clone(), &path, Some(&t), body).await;
                assert!(
                    r.status.is_success(),
                    "{name} as {min:?}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
                if spec.mutating() {
                    let rows = rig.audit_after(before).await;
                    assert!(
                        rows.iter()
                            .any(|r| r.result == safe_yolo_store::AuditResult::Ok
                                && r.role == Some(min)
                                && r.source.as_deref() == Some("10.1.2.3")),
                        "{name}: no audit row for the change: {rows:?}"
                    );
                }
            }
        }
    }
    // Settings changes reached the running system.
    assert!(rig.control.applied.lock().len() >= 6);
    // The audit log is append-only through the API.
    assert!(
        routes
            .iter()
            .all(|r| !(r.spec.path.starts_with("/api/v1/audit") && r.spec.mutating()))
    );
    rig.shutdown.cancel();
}

// === setup ===

#[tokio::test]
async fn first_boot_setup_cannot_be_replayed() {
    let rig = rig().await;
    let token = rig
        .app
        .setup_token()
        .expect("a setup token while no user exists");
    let setup = |from: &'static str, tok: Option<String>, user: &'static str| {
        let router = rig.app.router.clone();
        async move {
            let mut body = json!({"username": user, "password": PASSWORD});
            if let Some(t) = tok {
                body["setup_token"] = Value::String(t);
            }
            call_from(
                &router,
                from,
                Method::POST,
                "/api/v1/setup",
                None,
                Some(body),
                &[],
            )
            .await
        }
    };
    // Outside the setup networks: only with the token.
    assert_eq!(
        setup(CLIENT, None, "eve").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        setup(CLIENT, Some("wrong".into()), "eve").await.status,
        StatusCode::FORBIDDEN
    );
    let r = setup(CLIENT, Some(token.clone()), "admin").await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Replays fail, with the token and from the setup network.
    assert_eq!(
        setup(CLIENT, Some(token), "eve").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        setup(SETUP_NET_CLIENT, None, "eve").await.status,
        StatusCode::CONFLICT
    );
    assert!(rig.app.setup_token().is_none());
    assert_eq!(rig.store.store().list_users().unwrap().len(), 1);
    // A weak password is refused with the field named.
    let rig2 = rig_with(vec![]).await;
    let r = call_from(
        &rig2.app.router,
        SETUP_NET_CLIENT,
        Method::POST,
        "/api/v1/setup",
        None,
        Some(json!({"username": "admin", "password": "short"})),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("password"))
    );
}

// === tokens ===

fn jwt_key(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("api/jwt.key")).unwrap()
}

#[tokio::test]
async fn expired_forged_and_unsigned_jwts_are_rejected() {
    use base64::Engine;
    let rig = rig().await;
    rig.setup_admin().await;
    let good = rig.token("admin").await;
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&good), None)
            .await
            .status,
        StatusCode::OK
    );
    let claims: Value = {
        let payload = good.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let sign = |claims: &Value, key: &[u8], alg: jsonwebtoken::Algorithm| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap()
    };
    let key = jwt_key(rig.dir.path());
    // Expired (same key, same session).
    let mut expired = claims.clone();
    expired["exp"] = json!(now_ms() / 1000 - 10);
    expired["iat"] = json!(now_ms() / 1000 - 100);
    let t = sign(&expired, &key, jsonwebtoken::Algorithm::HS256);
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&t), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Forged: another key.
    let t = sign(
        &claims,
        b"0123456789abcdef0123456789abcdef",
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&t), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Another algorithm with the right key.
    let t = sign(&claims, &key, jsonwebtoken::Algorithm::HS512);
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&t), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // alg: none.
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let t = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&t), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Tampered payload (role escalation attempt) with the original signature.
    let mut other = claims.clone();
    other["sub"] = json!("someone-else");
    let parts: Vec<&str> = good.split('.').collect();
    let t = format!("{}.{}.{}", parts[0], b64(&other), parts[2]);
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&t), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The genuine token still works, until the key is rotated.
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&good), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        rig.call(
            Method::POST,
            "/api/v1/system/jwt-key/rotate",
            Some(&good),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&good), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_ne!(jwt_key(rig.dir.path()), key);
}

#[tokio::test]
async fn revoked_sessions_and_keys_stop_working_at_once() {
    let rig = rig().await;
    rig.setup_admin().await;
    // Logout revokes the session and its refresh token.
    let r = rig.login("admin", PASSWORD).await;
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        r.headers
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Strict")
    );
    let rf = rig
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(rf.status, StatusCode::OK);
    let refreshed = rf.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&refreshed), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        rig.call(Method::POST, "/api/v1/auth/logout", Some(&access), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&access), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&refreshed), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let rf = rig
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(rf.status, StatusCode::UNAUTHORIZED);

    // A password change ends every session of the user.
    let u = rig.user(Role::Viewer).await;
    let a = rig.token(&u).await;
    let b = rig.token(&u).await;
    let r = rig
        .call(
            Method::POST,
            "/api/v1/auth/password",
            Some(&a),
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&a), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&b), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        rig.login(&u, "a brand new password").await.status,
        StatusCode::OK
    );

    // Disabling a user ends its sessions; a demotion applies at once.
    let admin = rig.token("admin").await;
    let op = rig.user(Role::Operator).await;
    let t = rig.token(&op).await;
    assert_eq!(
        rig.call(
            Method::PATCH,
            &format!("/api/v1/users/{op}"),
            Some(&admin),
            Some(json!({"role": "viewer"}))
        )
        .await
        .status,
        StatusCode::OK
    );
    let id = rig.event(false).await;
    assert_eq!(
        rig.call(
            Method::POST,
            &format!("/api/v1/events/{id}/ack"),
            Some(&t),
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rig.call(
            Method::PATCH,
            &format!("/api/v1/users/{op}"),
            Some(&admin),
            Some(json!({"disabled": true}))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&t), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // API keys: shown once, work for scraping, revoked at once.
    let r = rig
        .call(
            Method::POST,
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"label": "prometheus", "role": "viewer", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let key = r.json()["token"].as_str().unwrap().to_owned();
    let key_id = r.json()["id"].as_str().unwrap().to_owned();
    let listed = rig
        .call(Method::GET, "/api/v1/keys", Some(&admin), None)
        .await;
    assert!(
        !String::from_utf8_lossy(&listed.body).contains(&key[10..]),
        "the secret is shown only once"
    );
    let m = rig.call(Method::GET, "/metrics", Some(&key), None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        rig.call(Method::POST, "/api/v1/events/1/ack", Some(&key), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rig.call(
            Method::DELETE,
            &format!("/api/v1/keys/{key_id}"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        rig.call(Method::GET, "/metrics", Some(&key), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let wrong_secret = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(
        rig.call(Method::GET, "/metrics", Some(&wrong_secret), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn lockout_triggers_and_expires() {
    let rig = rig().await;
    rig.setup_admin().await;
    for _ in 0..3 {
        assert_eq!(
            rig.login("admin", "wrong password!!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused, with Retry-After.
    let r = rig.login("admin", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    let rows = rig.audit_after(0).await;
    assert!(
        rows.iter()
            .any(|r| r.action == "auth.lockout" && r.target == "user/admin")
    );
    // Other users are not locked by it.
    let u = rig.user(Role::Viewer).await;
    assert_eq!(rig.login(&u, PASSWORD).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(rig.login("admin", PASSWORD).await.status, StatusCode::OK);
    let admin = rig.token("admin").await;
    let m = rig.call(Method::GET, "/metrics", Some(&admin), None).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains("safeyolo_api_login_failures_total 3"),
        "{text}"
    );
    assert!(text.contains("safeyolo_api_lockouts_total 1"), "{text}");
    // Unknown users are throttled the same way (no user enumeration by behaviour).
    for _ in 0..3 {
        assert_eq!(
            rig.login("nobody", "wrong password!!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        rig.login("nobody", "wrong password!!").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn login_floods_are_bounded_before_any_hash() {
    // The production body limit (256 KiB), not the rig's small one.
    let rig = rig_custom(vec![], |s| s.api.max_body_bytes = 256 * 1024).await;
    rig.setup_admin().await;
    let first = rig.last_audit_id().await;

    // A 10 KiB user name is invalid input: refused before the limiter, the hash
    // and the audit log see it.
    let huge = "a".repeat(10 * 1024);
    let r = rig.login(&huge, "wrong password!!").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["field"], "username", "{:?}", r.json());
    assert!(rig.audit_after(first).await.is_empty());

    // A burst in flight at once gets the lockout's guesses, not one per request:
    // attempts are counted when they start.
    let burst = (0..30).map(|_| rig.login("admin", "wrong password!!"));
    let answers: Vec<StatusCode> = futures_util::future::join_all(burst)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    let guesses = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        (1..=3).contains(&guesses),
        "at most user_max_failures (3) passwords were checked, got {guesses}: {answers:?}"
    );
    assert!(
        answers.iter().all(|s| [
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(s)),
        "{answers:?}"
    );
    // Every audit row stays within the caps.
    for row in rig.audit_after(first).await {
        assert!(
            row.target.len() <= safe_yolo_store::AUDIT_NAME_MAX,
            "{row:?}"
        );
    }

    // A wrong current password on a password change counts as a failed login:
    // a stolen session is not an unthrottled password oracle.
    let u = rig.user(Role::Viewer).await;
    let token = rig.token(&u).await;
    let change = |current: &'static str| {
        rig.call(
            Method::POST,
            "/api/v1/auth/password",
            Some(&token),
            Some(json!({"current_password": current, "new_password": "a brand new password"})),
        )
    };
    for _ in 0..3 {
        assert_eq!(
            change("wrong password!!").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let r = change(PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.json());
    assert!(
        rig.audit_after(first)
            .await
            .iter()
            .any(|r| r.action == "auth.lockout" && r.target == format!("user/{u}"))
    );
}

#[tokio::test]
async fn the_password_hashing_budget_answers_503_instead_of_queueing_forever() {
    let rig = rig_custom(vec![], |s| {
        // Slow hashes (64 MiB, 3 passes) and a budget of one running, none waiting.
        s.auth.argon2_m_kib = 64 * 1024;
        s.auth.argon2_t = 3;
        s.auth.hashes = safe_yolo_api::auth::HashBudget {
            max_concurrent: 1,
            max_waiting: 0,
            max_wait: Duration::from_secs(1),
        };
        s.auth.user_max_failures = 1000;
    })
    .await;
    rig.setup_admin().await;
    let burst = (0..6).map(|_| rig.login("admin", "wrong password!!"));
    let answers: Vec<Resp> = futures_util::future::join_all(burst).await;
    let busy: Vec<&Resp> = answers
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !busy.is_empty(),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(busy[0].json()["error"], "busy");
    assert_eq!(busy[0].headers["retry-after"], "1");
    // The refused attempts were not counted as guesses: the right password works.
    assert_eq!(rig.login("admin", PASSWORD).await.status, StatusCode::OK);
}

// === request hygiene ===

#[tokio::test]
async fn cors_bodies_and_headers() {
    let rig = rig().await;
    rig.setup_admin().await;
    let admin = rig.token("admin").await;
    let router = &rig.app.router;
    // Preflight: unknown origin refused, allowed origin answered.
    async fn pre(router: &Router, origin: &str) -> Resp {
        call_from(
            router,
            CLIENT,
            Method::OPTIONS,
            "/api/v1/events",
            None,
            None,
            &[("origin", origin), ("access-control-request-method", "GET")],
        )
        .await
    }
    let r = pre(router, "https://evil.example").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let r = pre(router, "https://ops.example").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://ops.example"
    );
    // Actual requests from an unknown origin are refused too (cookies cannot ride along).
    let r = call_from(
        router,
        CLIENT,
        Method::GET,
        "/api/v1/events",
        Some(&admin),
        None,
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call_from(
        router,
        CLIENT,
        Method::GET,
        "/api/v1/events",
        Some(&admin),
        None,
        &[("origin", "https://box.local")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "same origin");
    let r = call_from(
        router,
        CLIENT,
        Method::GET,
        "/api/v1/events",
        Some(&admin),
        None,
        &[("origin", "https://ops.example")],
    )
    .await;
    assert_eq!(
        (
            r.status,
            r.headers["access-control-allow-origin"].to_str().unwrap()
        ),
        (StatusCode::OK, "https://ops.example")
    );
    // No CORS configured: every foreign origin is refused.
    let bare = rig_with(vec![]).await;
    let r = call_from(
        &bare.app.router,
        CLIENT,
        Method::OPTIONS,
        "/api/v1/events",
        None,
        None,
        &[
            ("origin", "https://ops.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Security headers on every response, errors included.
    for path in ["/api/v1/health", "/api/v1/events", "/nope"] {
        let r = rig.call(Method::GET, path, None, None).await;
        assert!(
            r.headers["strict-transport-security"]
                .to_str()
                .unwrap()
                .contains("max-age=")
        );
        assert!(
            r.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
    }

    // Oversized bodies: 413. Unknown fields: 422 naming the field. Bad values name theirs.
    let big = json!({"username": "x".repeat(MAX_BODY), "password": PASSWORD, "role": "viewer"});
    let r = rig
        .call(Method::POST, "/api/v1/users", Some(&admin), Some(big))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = rig
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(
                json!({"username": "v", "password": PASSWORD, "role": "viewer", "is_admin": true}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["field"], "is_admin", "{}", r.json());
    let r = rig
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"username": "v", "password": PASSWORD, "role": "root"})),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("role"))
    );
    let r = rig.call(Method::PUT, "/api/v1/zones/z9", Some(&admin), Some(json!({"doc": {"camera": "cam1", "name": "Dock", "polygon": [[0.1, 0.1], [0.2, 0.2]], "colour": "red"}}))).await;
    assert_eq!(r.json()["field"], "doc.colour");
    let r = rig.call(Method::PUT, "/api/v1/zones/z9", Some(&admin), Some(json!({"doc": {"camera": "cam1", "name": "Dock", "polygon": [[0.1, 0.1], [0.2, 0.2]]}}))).await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("doc.polygon"))
    );
    let r = rig.call(Method::PUT, "/api/v1/cameras/c9", Some(&admin), Some(json!({"doc": {"name": "Gate", "source": {"kind": "replay", "path": "../../etc/passwd", "fps": 10.0}}}))).await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("doc.source.path"))
    );
    // Lines: each end point is checked by the domain, and the error names it.
    for (doc, field) in [
        (
            json!({"camera": "cam1", "name": "Gate", "from": [1.5, 0.1], "to": [0.5, 0.9]}),
            "doc.from",
        ),
        (
            json!({"camera": "cam1", "name": "Gate", "from": [0.5, 0.1], "to": [0.5, -0.2]}),
            "doc.to",
        ),
        (
            json!({"camera": "cam1", "name": "Gate", "from": [0.5, 0.5], "to": [0.5, 0.5]}),
            "doc.to",
        ),
        (
            json!({"camera": "cam1", "name": "Gate", "from": [0.5, 0.1], "to": [0.5, 0.9], "arrow": true}),
            "doc.arrow",
        ),
    ] {
        let r = rig
            .call(
                Method::PUT,
                "/api/v1/lines/gate",
                Some(&admin),
                Some(json!({ "doc": doc })),
            )
            .await;
        assert_eq!(
            (r.status, r.json()["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!(field)),
            "{doc}"
        );
    }
    let line =
        json!({"doc": {"camera": "cam1", "name": "Gate", "from": [0.5, 0.1], "to": [0.5, 0.9]}});
    let r = rig
        .call(Method::PUT, "/api/v1/lines/gate", Some(&admin), Some(line))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["kind"], "line");
    let r = rig
        .call(Method::GET, "/api/v1/lines", Some(&admin), None)
        .await;
    let from = &r.json()["edited"][0]["doc"]["from"];
    assert!(
        (from[0].as_f64().unwrap() - 0.5).abs() < 1e-6
            && (from[1].as_f64().unwrap() - 0.1).abs() < 1e-6,
        "{from}"
    );
    // Rules: schedule, siren, relay latch and anchor are checked and kept.
    let rule = |extra: Value| {
        let mut doc = json!({"name": "Night", "kind": "line_crossing", "zone": "gate", "severity": "info", "direction": "a_to_b"});
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        json!({ "doc": doc })
    };
    for (extra, field) in [
        (json!({"schedule": {"days": []}}), "doc.schedule.days"),
        (
            json!({"schedule": {"days": ["mon", "funday"]}}),
            "doc.schedule.days[1]",
        ),
        (json!({"schedule": {"from": "25:00"}}), "doc.schedule.from"),
        (
            json!({"schedule": {"from": "08:00", "to": "08:00"}}),
            "doc.schedule.to",
        ),
        (
            json!({"siren": {"pattern": "steady", "period_ms": 500}}),
            "doc.siren.period_ms",
        ),
        (
            json!({"siren": {"pattern": "pulsed", "period_ms": 50}}),
            "doc.siren.period_ms",
        ),
        (
            json!({"siren": {"pattern": "pulsed", "duration_s": 0.5}}),
            "doc.siren.duration_s",
        ),
        (json!({"relay_latch_s": 0.0}), "doc.relay_latch_s"),
        (json!({"anchor": "head"}), "doc.anchor"),
    ] {
        let r = rig
            .call(
                Method::PUT,
                "/api/v1/rules/night",
                Some(&admin),
                Some(rule(extra.clone())),
            )
            .await;
        assert_eq!(
            (r.status, r.json()["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!(field)),
            "{extra}"
        );
    }
    let full = json!({
        "schedule": {"days": ["mon", "fri"], "from": "22:00", "to": "06:00"},
        "siren": {"pattern": "pulsed", "period_ms": 500, "duration_s": 30.0},
        "relay_latch_s": 10.0,
        "anchor": "centre",
    });
    let r = rig
        .call(
            Method::PUT,
            "/api/v1/rules/night",
            Some(&admin),
            Some(rule(full.clone())),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    for k in ["schedule", "siren", "relay_latch_s", "anchor"] {
        assert_eq!(r.json()["doc"][k], full[k], "{k}");
    }

    // A change the running system refuses is not stored, and the refusal is audited.
    let before = rig.last_audit_id().await;
    let r = rig.call(Method::PUT, "/api/v1/zones/z9", Some(&admin), Some(json!({"doc": {"camera": "cam1", "name": "refuse", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Every problem at its key path; `field` is the request's own.
    let body = r.json();
    assert_eq!(body["field"], "doc.name", "{body}");
    assert_eq!(
        body["problems"],
        json!([{"field": "zones.z9.name", "reason": "refused by the rule engine"}])
    );
    assert!(
        rig.store
            .store()
            .get_setting(SettingKind::Zone, "z9")
            .unwrap()
            .is_none()
    );
    assert!(
        rig.audit_after(before)
            .await
            .iter()
            .any(|r| matches!(r.result, safe_yolo_store::AuditResult::Failed(_)))
    );
    // Optimistic concurrency on settings.
    let ok = json!({"doc": {"camera": "cam1", "name": "Dock", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}});
    assert_eq!(
        rig.call(
            Method::PUT,
            "/api/v1/zones/z8",
            Some(&admin),
            Some(ok.clone())
        )
        .await
        .status,
        StatusCode::OK
    );
    let mut stale = ok;
    stale["expected_version"] = json!(7);
    assert_eq!(
        rig.call(Method::PUT, "/api/v1/zones/z8", Some(&admin), Some(stale))
            .await
            .status,
        StatusCode::CONFLICT
    );

    // Events: filters, pagination, snapshot, acknowledge.
    let a = rig.event(true).await;
    let b = rig.event(false).await;
    let r = rig
        .call(
            Method::GET,
            "/api/v1/events?limit=1&camera=cam1&state=active",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json()["events"][0]["id"], json!(b));
    let cursor = r.json()["next_cursor"].as_u64().unwrap();
    let r = rig
        .call(
            Method::GET,
            &format!("/api/v1/events?limit=1&cursor={cursor}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json()["events"][0]["id"], json!(a));
    assert_eq!(
        rig.call(Method::GET, "/api/v1/events?bogus=1", Some(&admin), None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let r = rig
        .call(
            Method::GET,
            &format!("/api/v1/events/{a}/snapshot"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (r.headers["content-type"].to_str().unwrap(), &r.body[..2]),
        ("image/jpeg", &[0xFF, 0xD8][..])
    );
    assert_eq!(
        rig.call(
            Method::GET,
            &format!("/api/v1/events/{b}/snapshot"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        rig.call(
            Method::POST,
            &format!("/api/v1/events/{a}/ack"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        rig.call(
            Method::POST,
            &format!("/api/v1/events/{a}/ack"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    let r = rig
        .call(
            Method::GET,
            "/api/v1/events?state=acknowledged",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json()["events"][0]["id"], json!(a));
    let r = rig
        .call(Method::GET, "/api/v1/audit?limit=5", Some(&admin), None)
        .await;
    // One row for the one acknowledgement (the refused second one left none), committed
    // with the state change by the dispatcher's acknowledge path.
    let acks: Vec<_> = r.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["action"] == "event.acknowledge")
        .cloned()
        .collect();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(
        (&acks[0]["target"], &acks[0]["before"], &acks[0]["after"]),
        (
            &json!(format!("event/{a}")),
            &json!("active"),
            &json!("acknowledged")
        )
    );
}

// === TLS from outside ===

fn openssl() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("openssl"))
            .find(|p| p.is_file())
    })
}

async fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(openssl().unwrap())
            .arg("s_client")
            .arg("-connect")
            .arg(addr.to_string())
            .arg("-servername")
            .arg("localhost")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn serve_rig(
    redirect: bool,
) -> (
    safe_yolo_api::ApiServer,
    tempfile::TempDir,
    StoreHandle,
    watch::Sender<Option<LiveFrame>>,
    watch::Sender<CameraHealth>,
    SceneSlot,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let (store, _writer) = StoreHandle::start(store, 64).unwrap();
    let (deps, live, health, scene) = deps(dir.path(), store.clone(), Arc::default());
    let mut s = settings(dir.path(), vec![]);
    if redirect {
        s.api.http_redirect_bind = Some("127.0.0.1:0".parse().unwrap());
    }
    let server = serve(s, deps, CancellationToken::new()).await.unwrap();
    (server, dir, store, live, health, scene)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_13_only_from_outside_and_certificate_hot_swap() {
    if openssl().is_none() {
        eprintln!(
            "SKIPPED: openssl is not installed (apt-get install openssl); TLS was not checked from outside"
        );
        return;
    }
    let (server, dir, _store, _live, _health, _scene) = serve_rig(true).await;
    let addr = server.https_addr.unwrap();
    // The key files are private.
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["tls.pem", "jwt.key"] {
            let mode = std::fs::metadata(dir.path().join("api").join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    let (ok, out) = s_client(addr, &["-tls1_3"]).await;
    assert!(
        ok && out.contains("TLSv1.3"),
        "TLS 1.3 handshake failed:\n{out}"
    );
    let (ok, out) = s_client(addr, &["-tls1_2"]).await;
    assert!(!ok, "TLS 1.2 was accepted:\n{out}");
    assert!(!out.contains("TLSv1.2, Cipher"), "{out}");
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(
            !buf.starts_with(b"HTTP/"),
            "plaintext answered: {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
    // The optional HTTP listener only redirects.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(server.http_redirect_addr.unwrap())
            .await
            .unwrap();
        tcp.write_all(
            b"GET /api/v1/events?x=1 HTTP/1.1\r\nHost: box.local:80\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 308"), "{text}");
        assert!(
            text.contains(&format!(
                "location: https://box.local:{}/api/v1/events?x=1",
                addr.port()
            )),
            "{text}"
        );
    }
    // An uploaded certificate is used for new connections without a restart.
    let app = &server.app;
    let r = call_from(
        &app.router,
        SETUP_NET_CLIENT,
        Method::POST,
        "/api/v1/setup",
        None,
        Some(json!({"username": "admin", "password": PASSWORD})),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call_from(
        &app.router,
        CLIENT,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "admin", "password": PASSWORD})),
        &[],
    )
    .await;
    let admin = r.json()["access_token"].as_str().unwrap().to_owned();
    let mut params = rcgen::CertificateParams::new(vec!["uploaded.example".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "uploaded.example");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let r = call_from(
        &app.router,
        CLIENT,
        Method::PUT,
        "/api/v1/system/certificate",
        Some(&admin),
        Some(json!({"cert_pem": cert.pem(), "key_pem": key.serialize_pem()})),
        &[],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let (ok, out) = s_client(addr, &["-tls1_3"]).await;
    assert!(
        ok && out.contains("uploaded.example"),
        "new certificate not served:\n{out}"
    );
    // A key that does not match is refused, naming the field.
    let other = rcgen::KeyPair::generate().unwrap();
    let r = call_from(
        &app.router,
        CLIENT,
        Method::PUT,
        "/api/v1/system/certificate",
        Some(&admin),
        Some(json!({"cert_pem": cert.pem(), "key_pem": other.serialize_pem()})),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("key_pem"))
    );
}

// === live view ===

fn live_frame(seq: u64) -> LiveFrame {
    let (w, h) = (160u32, 120u32);
    let mut px = vec![0u8; (w * h * 3) as usize];
    for (i, p) in px.iter_mut().enumerate() {
        *p = ((i as u64 + seq * 7) % 251) as u8;
    }
    LiveFrame {
        meta: FrameMeta {
            camera: cam(),
            seq,
            captured_at: SystemTime::now(),
            since_start: Duration::from_millis(seq * 33),
        },
        picture: safe_yolo_capture::Picture::from_rgb(&RgbFrame::new(w, h, px).unwrap()),
        detections: Arc::new(vec![Detection {
            class_id: 0,
            class_name: Arc::from("person"),
            score: 0.9,
            bbox: BBox {
                x1: 10.0,
                y1: 20.0,
                x2: 50.0,
                y2: 100.0,
            },
        }]),
    }
}

/// A TLS connection to the served rig, trusting its certificate.
async fn tls_connect(
    addr: SocketAddr,
    dir: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let cert = rustls::pki_types::CertificateDer::from_pem_file(dir.join("api/tls.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, dir, _store, _live, _health, _scene) = serve_rig(true).await;
    let addr = server.https_addr.unwrap();
    // A request head with a large Content-Length and then nothing: 408 after the
    // body deadline (the rig's 10 s), not a connection permit held for ever.
    let mut tls = tls_connect(addr, dir.path()).await;
    tls.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
    )
    .await
    .unwrap();
    let t0 = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut answer))
        .await
        .expect("a silent body is cut off")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(head.contains("body_timeout"), "{head}");
    assert!(t0.elapsed() >= Duration::from_secs(9), "{:?}", t0.elapsed());
    // The plain-HTTP redirect port holds a connection only so long, even one
    // that trickles headers.
    let redirect = server.http_redirect_addr.unwrap();
    let mut plain = tokio::net::TcpStream::connect(redirect).await.unwrap();
    let t0 = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if plain.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return;
            }
            let mut buf = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_secs(1), plain.read(&mut buf)).await
            {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the redirect port kept a trickling client");
    assert!(
        t0.elapsed() <= Duration::from_secs(15),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn unknown_paths_cost_like_any_public_request() {
    let rig = rig_custom(vec![], |s| {
        s.auth.rate_limit = RateLimit {
            per_second: 0.001,
            burst: 3,
        };
    })
    .await;
    let scan = |path: &'static str| {
        call_from(
            &rig.app.router,
            "10.8.0.1:1000",
            Method::GET,
            path,
            None,
            None,
            &[],
        )
    };
    for p in ["/nope", "/.env", "/wp-admin"] {
        assert_eq!(scan(p).await.status, StatusCode::NOT_FOUND, "{p}");
    }
    assert_eq!(
        scan("/.git/config").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn wss(
    addr: SocketAddr,
    dir: &Path,
    ticket: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let tls = tls_connect(addr, dir).await;
    let url = format!(
        "wss://localhost:{}/api/v1/live/ws?ticket={ticket}",
        addr.port()
    );
    tokio_tungstenite::client_async(url, tls)
        .await
        .map(|(ws, _)| ws)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_jpeg_and_detections_and_slow_clients_do_not_hold_the_producer() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (server, dir, _store, live, _health, scene) = serve_rig(false).await;
    let app = &server.app;
    call_from(
        &app.router,
        SETUP_NET_CLIENT,
        Method::POST,
        "/api/v1/setup",
        None,
        Some(json!({"username": "admin", "password": PASSWORD})),
        &[],
    )
    .await;
    let login = call_from(
        &app.router,
        CLIENT,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "admin", "password": PASSWORD})),
        &[],
    )
    .await;
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let ticket = || {
        let router = app.router.clone();
        let token = token.clone();
        async move {
            let r = call_from(
                &router,
                CLIENT,
                Method::POST,
                "/api/v1/live/ticket",
                Some(&token),
                None,
                &[],
            )
            .await;
            r.json()["ticket"].as_str().unwrap().to_owned()
        }
    };

    // The producer: the pipeline's tap, overwritten at its own pace, never waiting.
    let produced = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let producer = {
        let produced = Arc::clone(&produced);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seq = 0;
            while !stop.is_cancelled() {
                // The analysis publishes its scene (tracks, zones) beside the frames.
                scene.publish(Scene {
                    seq,
                    tracks: vec![SceneTrack {
                        id: 7,
                        class_name: Arc::from("person"),
                        bbox: BBox {
                            x1: 10.0,
                            y1: 20.0,
                            x2: 50.0,
                            y2: 100.0,
                        },
                        lost: false,
                    }],
                    zones: vec![SceneZone {
                        id: ZoneId::new("walkway").unwrap(),
                        inside: vec![7],
                        crossings_a_to_b: 0,
                        crossings_b_to_a: 0,
                        alarm: true,
                    }],
                });
                live.send_replace(Some(live_frame(seq)));
                seq += 1;
                produced.store(seq, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            live
        })
    };

    // A slow client: subscribes, then never reads.
    let t = ticket().await;
    let mut slow = wss(server.https_addr.unwrap(), dir.path(), &t)
        .await
        .unwrap();
    slow.send(Message::Text(
        r#"{"type":"subscribe","camera":"cam1"}"#.into(),
    ))
    .await
    .unwrap();
    slow.send(Message::Text(r#"{"type":"set_fps","fps":30}"#.into()))
        .await
        .unwrap();
    // A used ticket does not open a second connection.
    assert!(
        wss(server.https_addr.unwrap(), dir.path(), &t)
            .await
            .is_err()
    );

    let rss_before = rss_kib();
    let t = ticket().await;
    let mut ws = wss(server.https_addr.unwrap(), dir.path(), &t)
        .await
        .unwrap();
    // An invalid command gets an error message, not a dropped connection.
    ws.send(Message::Text(
        r#"{"type":"subscribe","camera":"cam1","extra":1}"#.into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Text(
        r#"{"type":"set_quality","quality":500}"#.into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Text(
        r#"{"type":"subscribe","camera":"cam1"}"#.into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Text(r#"{"type":"set_fps","fps":30}"#.into()))
        .await
        .unwrap();
    let mut errors = 0;
    let mut oks = 0;
    let mut frames = 0;
    let mut last_seq = None::<u64>;
    let mut pending_meta: Option<Value> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while frames < 40 {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("frames keep coming")
            .unwrap()
            .unwrap();
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str().unwrap() {
                    "error" => errors += 1,
                    "ok" => oks += 1,
                    "frame" => pending_meta = Some(v),
                    other => panic!("unexpected message {other}"),
                }
            }
            Message::Binary(jpeg) => {
                let meta = pending_meta
                    .take()
                    .expect("a JSON message precedes each JPEG");
                assert_eq!(meta["jpeg_bytes"].as_u64().unwrap() as usize, jpeg.len());
                assert_eq!(meta["detections"][0]["class"], "person");
                assert_eq!(
                    meta["detections"][0]["bbox"],
                    json!([10.0, 20.0, 50.0, 100.0])
                );
                // Tracks and zone states of the analysed frame ride along.
                assert_eq!(meta["tracks"][0]["id"], 7, "{meta}");
                assert_eq!(meta["tracks"][0]["lost"], false);
                assert_eq!(meta["zones"][0]["id"], "walkway");
                assert_eq!(meta["zones"][0]["inside"], json!([7]));
                assert_eq!(meta["zones"][0]["alarm"], true);
                assert!(meta["scene_seq"].as_u64().unwrap() <= meta["seq"].as_u64().unwrap() + 1);
                let img = safe_yolo_capture::convert::decode_jpeg(&jpeg).unwrap();
                assert_eq!((img.width(), img.height()), (160, 120));
                let seq = meta["seq"].as_u64().unwrap();
                if let Some(prev) = last_seq {
                    assert!(seq > prev, "frames are never repeated or reordered");
                }
                last_seq = Some(seq);
                frames += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        (errors, oks),
        (2, 2),
        "invalid commands answered with errors, valid ones with ok"
    );
    // The slow client never read a byte, yet the fast one got fresh frames all along and
    // the producer was never held back: it kept overwriting its tap.
    let p = produced.load(Ordering::Relaxed);
    assert!(
        p > last_seq.unwrap(),
        "producer at {p}, viewer at {last_seq:?}"
    );
    let encoded = app.live().encoded_frames();
    assert!(
        encoded <= p + 1,
        "one encode per frame at most, shared by both viewers: {encoded} encodes for {p} frames"
    );
    // Memory stays bounded while the slow client is stalled (one frame per viewer, no queue).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let growth = rss_kib().saturating_sub(rss_before);
    assert!(
        growth < 64 * 1024,
        "RSS grew by {growth} KiB with a stalled viewer"
    );
    eprintln!(
        "live: produced {p} frames, encoded {encoded}, fast viewer got {frames} (last seq {last_seq:?}), RSS growth {growth} KiB with a stalled viewer"
    );
    drop(slow);

    // MJPEG through the router: a multipart stream of JPEG parts. The producer keeps
    // running: a viewer is shown the newest frame at once, then the following ones.
    let mut bodies = {
        let r = call_from(
            &app.router,
            CLIENT,
            Method::GET,
            "/api/v1/live/ticket",
            Some(&token),
            None,
            &[],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "ticket route is POST only"
        );
        let mut req = Request::builder()
            .uri("/api/v1/cameras/cam1/mjpeg?fps=30")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo::<SocketAddr>(CLIENT.parse().unwrap()));
        let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("multipart/x-mixed-replace; boundary=")
        );
        resp.into_body()
    };
    let frame = tokio::time::timeout(Duration::from_secs(30), bodies.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let data = frame.into_data().unwrap();
    assert!(data.starts_with(b"--safeyoloframe\r\nContent-Type: image/jpeg\r\n"));
    let start = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&data[start..start + 2], &[0xFF, 0xD8]);
    drop(bodies);
    // Players that cannot send headers (VLC) use a single-use ticket instead.
    let t = ticket().await;
    let path = format!("/api/v1/cameras/cam1/mjpeg?ticket={t}");
    let r = call_from(&app.router, CLIENT, Method::GET, &path, None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call_from(&app.router, CLIENT, Method::GET, &path, None, None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a ticket is single-use");
    stop.cancel();
    drop(producer.await.unwrap());
}

/// A viewer that arrives after a camera's tap closed (the camera stopped) is shown the
/// last frame, whether the camera's encoder is still there or has already ended; before,
/// a viewer that came while the encoder was winding down got a stream without a frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_after_the_camera_stopped_is_shown_its_last_frame() {
    use safe_yolo_api::live::LiveHub;
    for encoder_gone in [false, true] {
        let (tx, rx) = watch::channel(None);
        let (_health_tx, health) = watch::channel(CameraHealth {
            state: CameraState::Online,
            since: SystemTime::now(),
            reason: None,
            tamper: Default::default(),
        });
        let hub = LiveHub::new(
            CameraTaps::fixed(vec![CameraTap {
                id: cam(),
                health,
                live: rx,
                scene: SceneSlot::default(),
                tamper: TamperHandle::standalone(cam(), TamperConfig::default()),
            }]),
            75,
            CancellationToken::new(),
        );
        let mut first = hub.subscribe(&cam(), 75).unwrap();
        tx.send_replace(Some(live_frame(1)));
        tokio::time::timeout(Duration::from_secs(30), first.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.borrow_and_update().as_ref().unwrap().meta.seq, 1);
        drop(tx);
        if encoder_gone {
            // The encoder sees the closed tap and ends; its slot then closes.
            tokio::time::timeout(Duration::from_secs(30), first.changed())
                .await
                .unwrap()
                .unwrap_err();
        }
        let mut late = hub.subscribe(&cam(), 75).unwrap();
        tokio::time::timeout(Duration::from_secs(30), late.changed())
            .await
            .unwrap()
            .unwrap_or_else(|_| {
                panic!("no frame for a late viewer (encoder gone: {encoder_gone})")
            });
        let seq = late.borrow_and_update().as_ref().map(|e| e.meta.seq);
        assert_eq!(seq, Some(1), "encoder gone: {encoder_gone}");
    }
}

/// A live frame of a camera that delivers JPEG: `jpeg` as captured.
fn jpeg_live_frame(seq: u64, jpeg: &[u8]) -> LiveFrame {
    let mut f = live_frame(seq);
    f.picture =
        safe_yolo_capture::Picture::new(safe_yolo_capture::Payload::Jpeg(Arc::from(jpeg))).unwrap();
    f
}

/// A camera that delivers JPEG is streamed as it is: every MJPEG part is, byte for byte,
/// one of the camera's frames, the frame message gives the full frame's size for the
/// client's overlays, and nothing is decoded or encoded.
#[tokio::test]
async fn a_jpeg_cameras_live_stream_is_byte_identical_to_its_frames() {
    let rig = rig().await;
    rig.setup_admin().await;
    let token = rig.token_for(Role::Viewer).await;
    let camera_frames: Vec<Vec<u8>> = (0..4u64)
        .map(|k| {
            let (w, h) = (96u32, 64u32);
            let px: Vec<u8> = (0..w * h * 3)
                .map(|i| ((u64::from(i) * (k + 3)) % 251) as u8)
                .collect();
            safe_yolo_capture::JpegEncoder::new(60 + 10 * k as u8)
                .unwrap()
                .encode(&RgbFrame::new(w, h, px).unwrap())
                .unwrap()
        })
        .collect();
    rig._live
        .send_replace(Some(jpeg_live_frame(1, &camera_frames[0])));
    let resp = call_raw(
        &rig.app.router,
        &token,
        &format!("/api/v1/cameras/{}/mjpeg?fps=30", cam()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let mut seq = 1;
    while got.len() < camera_frames.len() {
        let part = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("a part")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        let start = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let jpeg = part[start..part.len() - 2].to_vec();
        if got.last() == Some(&jpeg) {
            continue;
        }
        got.push(jpeg);
        // The next frame only once this one arrived: none is skipped.
        if let Some(next) = camera_frames.get(got.len()) {
            seq += 1;
            rig._live.send_replace(Some(jpeg_live_frame(seq, next)));
        }
    }
    assert_eq!(got, camera_frames, "the stream is the camera's own JPEGs");
    assert_eq!(rig.app.live().encoded_frames(), 0, "nothing was encoded");
    assert!(rig.app.live().forwarded_frames() >= 4);
    // The WebSocket's frame message carries the same bytes' size and the full frame's.
    let mut rx = rig.app.live().subscribe(&cam(), 75).unwrap();
    tokio::time::timeout(Duration::from_secs(30), rx.changed())
        .await
        .unwrap()
        .unwrap();
    let e = rx.borrow_and_update().clone().unwrap();
    assert_eq!(&e.jpeg[..], &camera_frames[3][..]);
    assert_eq!(
        (e.meta.width, e.meta.height, e.meta.jpeg_bytes),
        (96, 64, camera_frames[3].len())
    );
}

/// Reads an MJPEG body until it ends (`true`) or `within` passes (`false`),
/// publishing a new live frame every 100 ms so the stream has something to send.
async fn stream_ends(
    rig: &Rig,
    body: &mut axum::body::Body,
    seq: &mut u64,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        *seq += 1;
        rig._live.send_replace(Some(live_frame(*seq)));
        if let Ok(None | Some(Err(_))) = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)),
            body.frame(),
        )
        .await
        {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
    }
}

#[tokio::test]
async fn open_streams_end_when_their_credential_is_revoked() {
    let rig = rig().await;
    rig.setup_admin().await;
    let admin = rig.token_for(Role::Admin).await;
    let mjpeg = format!("/api/v1/cameras/{}/mjpeg?fps=10", cam());
    let mut seq = 0;
    for how in ["logout", "password", "disable", "api key", "jwt rotation"] {
        let u = rig.user(Role::Viewer).await;
        let token = if how == "api key" {
            let r = rig
                .call(
                    Method::POST,
                    "/api/v1/keys",
                    Some(&admin),
                    Some(json!({"label": "wall", "role": "viewer", "expires_in_days": 1})),
                )
                .await;
            r.json()["token"].as_str().unwrap().to_owned()
        } else {
            rig.token(&u).await
        };
        let resp = call_raw(&rig.app.router, &token, &mjpeg).await;
        assert_eq!(resp.status(), StatusCode::OK, "{how}");
        let mut body = resp.into_body();
        // The stream runs while the credential is valid.
        assert!(
            !stream_ends(&rig, &mut body, &mut seq, Duration::from_millis(600)).await,
            "{how}: the stream ended before anything was revoked"
        );
        let r = match how {
            "logout" => {
                rig.call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
                    .await
            }
            "password" => {
                rig.call(
                    Method::PATCH,
                    &format!("/api/v1/users/{u}"),
                    Some(&admin),
                    Some(json!({"password": "an entirely new password"})),
                )
                .await
            }
            "disable" => {
                rig.call(
                    Method::PATCH,
                    &format!("/api/v1/users/{u}"),
                    Some(&admin),
                    Some(json!({"disabled": true})),
                )
                .await
            }
            "api key" => {
                let id = token
                    .strip_prefix("sy_")
                    .and_then(|r| r.split_once('_'))
                    .unwrap()
                    .0;
                rig.call(
                    Method::DELETE,
                    &format!("/api/v1/keys/{id}"),
                    Some(&admin),
                    None,
                )
                .await
            }
            _ => {
                rig.call(
                    Method::POST,
                    "/api/v1/system/jwt-key/rotate",
                    Some(&admin),
                    None,
                )
                .await
            }
        };
        assert!(r.status.is_success(), "{how}: {}", r.status);
        // Well before the 5 s periodic re-check: the revocation itself ends it.
        assert!(
            stream_ends(&rig, &mut body, &mut seq, Duration::from_secs(3)).await,
            "{how}: the stream outlived its credential"
        );
        if how == "jwt rotation" {
            break;
        }
    }
    let admin = rig.token("admin").await;
    let m = rig.call(Method::GET, "/metrics", Some(&admin), None).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains("safeyolo_api_streams_revoked_total 5"),
        "{text}"
    );
}

// === refresh-token rotation ===

async fn refresh_with(rig: &Rig, token: &str) -> Resp {
    rig.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

fn str_field(r: &Resp, name: &str) -> String {
    r.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", String::from_utf8_lossy(&r.body)))
        .to_owned()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
    let rig = rig().await;
    rig.setup_admin().await;
    let u = rig.user(Role::Viewer).await;

    // Each refresh hands out a new refresh token; access tokens keep working.
    let r = rig.login(&u, PASSWORD).await;
    let (a0, r0) = (
        str_field(&r, "access_token"),
        str_field(&r, "refresh_token"),
    );
    let rf = refresh_with(&rig, &r0).await;
    assert_eq!(rf.status, StatusCode::OK);
    let (a1, r1) = (
        str_field(&rf, "access_token"),
        str_field(&rf, "refresh_token"),
    );
    assert_ne!(r1, r0);
    let rf = refresh_with(&rig, &r1).await;
    assert_eq!(rf.status, StatusCode::OK);
    let (a2, r2) = (
        str_field(&rf, "access_token"),
        str_field(&rf, "refresh_token"),
    );
    assert_ne!(r2, r1);
    for a in [&a0, &a1, &a2] {
        assert_eq!(
            rig.call(Method::GET, "/api/v1/auth/me", Some(a), None)
                .await
                .status,
            StatusCode::OK
        );
    }

    // Presenting a spent token is theft: the whole session ends, newest token included.
    let before = rig.last_audit_id().await;
    let reuse = refresh_with(&rig, &r1).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert!(
        reuse.json()["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        String::from_utf8_lossy(&reuse.body)
    );
    let rows = rig.audit_after(before).await;
    assert!(
        rows.iter().any(|r| r.action == "auth.refresh_reuse"
            && r.target == format!("user/{u}")
            && r.source.as_deref() == Some("10.1.2.3")),
        "reuse is audited: {rows:?}"
    );
    assert_eq!(
        refresh_with(&rig, &r2).await.status,
        StatusCode::UNAUTHORIZED,
        "the newest token dies with the session"
    );
    for a in [&a0, &a2] {
        assert_eq!(
            rig.call(Method::GET, "/api/v1/auth/me", Some(a), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED,
            "the session's access tokens are revoked too"
        );
    }

    // The login token itself is single-use as well.
    let r = rig.login(&u, PASSWORD).await;
    let first = str_field(&r, "refresh_token");
    let next = refresh_with(&rig, &first).await;
    assert_eq!(next.status, StatusCode::OK);
    let next = str_field(&next, "refresh_token");
    assert_eq!(
        refresh_with(&rig, &first).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh_with(&rig, &next).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Two concurrent uses of one token: exactly one wins, and the loser's reuse ends
    // the session, so the winner's new token is dead as well.
    let r = rig.login(&u, PASSWORD).await;
    let tok = str_field(&r, "refresh_token");
    let (x, y) = tokio::join!(refresh_with(&rig, &tok), refresh_with(&rig, &tok));
    let ok: Vec<&Resp> = [&x, &y]
        .into_iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "{} / {}", x.status, y.status);
    let won = str_field(ok[0], "refresh_token");
    assert_eq!(
        refresh_with(&rig, &won).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Logout after a rotation ends the rotated token without calling it theft.
    let r = rig.login(&u, PASSWORD).await;
    let rf = refresh_with(&rig, &str_field(&r, "refresh_token")).await;
    let (access, latest) = (
        str_field(&rf, "access_token"),
        str_field(&rf, "refresh_token"),
    );
    assert_eq!(
        rig.call(Method::POST, "/api/v1/auth/logout", Some(&access), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let before = rig.last_audit_id().await;
    assert_eq!(
        refresh_with(&rig, &latest).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        rig.audit_after(before)
            .await
            .iter()
            .all(|r| r.action != "auth.refresh_reuse")
    );

    // Malformed and unknown tokens.
    for bad in ["nodots", "a.b.c.d", "x.y", "a.b.c"] {
        assert_eq!(
            refresh_with(&rig, bad).await.status,
            StatusCode::UNAUTHORIZED,
            "{bad}"
        );
    }
}

// === rate limit ===

#[tokio::test]
async fn rate_limit_answers_429_per_credential_and_per_failing_source() {
    let rig = rig_custom(vec![], |s| {
        s.auth.rate_limit = RateLimit {
            per_second: 0.001,
            burst: 3,
        };
    })
    .await;
    rig.setup_admin().await;
    // Each login from its own address (public requests are charged per address).
    let login_from = |i: u32, user: String| {
        let router = rig.app.router.clone();
        async move {
            let r = call_from(
                &router,
                &format!("10.9.0.{i}:1000"),
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": PASSWORD})),
                &[],
            )
            .await;
            assert_eq!(r.status, StatusCode::OK);
            str_field(&r, "access_token")
        }
    };
    let alice = login_from(1, rig.user(Role::Viewer).await).await;
    let bob = login_from(2, rig.user(Role::Viewer).await).await;
    let carol = login_from(3, rig.user(Role::Viewer).await).await;

    // Per credential: the burst, then 429 with Retry-After, from any address.
    for _ in 0..3 {
        assert_eq!(
            rig.call(Method::GET, "/api/v1/auth/me", Some(&alice), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = rig
        .call(Method::GET, "/api/v1/auth/me", Some(&alice), None)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["error"], "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let r = call_from(
        &rig.app.router,
        "10.20.0.1:1",
        Method::GET,
        "/api/v1/auth/me",
        Some(&alice),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "per credential");
    // Another credential from the same address is not affected.
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&bob), None)
            .await
            .status,
        StatusCode::OK
    );
    // A refused change is not audited as a failure (429 is the limiter, not the change).
    let before = rig.last_audit_id().await;
    let id = rig.event(false).await;
    let r = rig
        .call(
            Method::POST,
            &format!("/api/v1/events/{id}/ack"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(rig.audit_after(before).await.is_empty());

    // A live stream is one request, however long it runs.
    let t = rig
        .call(Method::POST, "/api/v1/live/ticket", Some(&carol), None)
        .await;
    assert_eq!(t.status, StatusCode::OK);
    let ticket = str_field(&t, "ticket");
    let r = rig
        .call(
            Method::GET,
            &format!("/api/v1/cameras/cam1/mjpeg?ticket={ticket}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&carol), None)
            .await
            .status,
        StatusCode::OK,
        "ticket + stream + this = the burst of 3"
    );
    assert_eq!(
        rig.call(Method::GET, "/api/v1/auth/me", Some(&carol), None)
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Failed authentications are charged to the address; once it is empty, the address
    // is refused before any credential is checked, even a valid one.
    let bad = "10.8.0.1:1";
    for _ in 0..3 {
        let r = call_from(
            &rig.app.router,
            bad,
            Method::GET,
            "/api/v1/auth/me",
            Some("garbage"),
            None,
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    for token in ["garbage", bob.as_str()] {
        let r = call_from(
            &rig.app.router,
            bad,
            Method::GET,
            "/api/v1/auth/me",
            Some(token),
            None,
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers.contains_key("retry-after"));
    }

    // Public routes are charged per address.
    for _ in 0..3 {
        let r = call_from(
            &rig.app.router,
            "10.7.0.1:1",
            Method::GET,
            "/api/v1/health",
            None,
            None,
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = call_from(
        &rig.app.router,
        "10.7.0.1:1",
        Method::GET,
        "/api/v1/health",
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    rig.shutdown.cancel();
}

// === downloads: backup and event export ===

/// Sends a request and returns the response with its body unread.
async fn call_raw(router: &Router, token: &str, path: &str) -> axum::response::Response {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", "box.local")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let addr: SocketAddr = CLIENT.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    tower::ServiceExt::oneshot(router.clone(), req)
        .await
        .unwrap()
}

fn work_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("api"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tmp-download-")
        })
        .collect()
}

/// Waits (up to 10 s) for `f` to hold; a condition, not a timing assert.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// Unpacks a tar into `dest` and returns the single top-level directory.
fn untar(bytes: &[u8], dest: &Path) -> PathBuf {
    tar::Archive::new(bytes).unpack(dest).unwrap();
    let tops: Vec<PathBuf> = std::fs::read_dir(dest)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(tops.len(), 1, "one top-level directory: {tops:?}");
    tops.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_download_is_admin_only_verifiable_audited_and_one_at_a_time() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("safe-yolo.toml");
    std::fs::write(&cfg, "# the box's config\n[api]\n").unwrap();
    let cfg_for_rig = cfg.clone();
    let rig = rig_custom(vec![], move |s| {
        s.config_path = Some(cfg_for_rig);
        s.box_name = "dock-7".into();
    })
    .await;
    rig.setup_admin().await;
    let id = rig.event(true).await;
    let admin = rig.token("admin").await;

    for role in [Role::Viewer, Role::Operator] {
        let t = rig.token_for(role).await;
        let r = rig
            .call(Method::GET, "/api/v1/system/backup", Some(&t), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role:?}");
    }

    let before = rig.last_audit_id().await;
    let r = rig
        .call(Method::GET, "/api/v1/system/backup", Some(&admin), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.headers["content-type"], "application/x-tar");
    let cd = r.headers["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cd.starts_with("attachment; filename=\"safe-yolo-backup-dock-7-")
            && cd.ends_with("Z.tar\""),
        "{cd}"
    );
    let out = tempfile::tempdir().unwrap();
    let top = untar(&r.body, out.path());
    assert!(cd.contains(&*top.file_name().unwrap().to_string_lossy()));
    let manifest = safe_yolo_store::verify_backup(&top).unwrap();
    // Signed by this box: a restore here takes it without --accept-foreign.
    let key = safe_yolo_store::BackupKey::load(&rig.store.store().config().state_dir)
        .unwrap()
        .unwrap();
    assert_eq!(
        safe_yolo_store::signing::provenance(&top, Some(&key)).unwrap(),
        safe_yolo_store::Provenance::ThisBox
    );
    assert!(manifest.events >= 1);
    assert!(
        manifest
            .files
            .iter()
            .any(|f| f.path.starts_with("snapshots/")),
        "snapshots are included by default: {manifest:?}"
    );
    assert_eq!(
        std::fs::read_to_string(top.join("config.toml")).unwrap(),
        "# the box's config\n[api]\n"
    );
    // The event recorded before the download is in the backup's database.
    let copy = Store::open(StoreConfig::new(&top)).unwrap();
    let e = copy
        .get_event(id)
        .unwrap()
        .expect("the event is in the backup");
    assert_eq!(e.message, "person in zone");
    drop(copy);
    // Audited: who, role, source.
    let rows = rig.audit_after(before).await;
    assert!(
        rows.iter().any(|r| r.action == "system.backup"
            && r.actor == "admin"
            && r.role == Some(Role::Admin)
            && r.source.as_deref() == Some("10.1.2.3")
            && r.target.starts_with("backup/safe-yolo-backup-dock-7-")),
        "{rows:?}"
    );
    eventually("work directory removal", || {
        work_dirs(rig.dir.path()).is_empty()
    })
    .await;

    // Without snapshots; a tampered file fails verification.
    let r = rig
        .call(
            Method::GET,
            "/api/v1/system/backup?snapshots=false",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let out = tempfile::tempdir().unwrap();
    let top = untar(&r.body, out.path());
    let m = safe_yolo_store::verify_backup(&top).unwrap();
    assert!(m.files.iter().all(|f| !f.path.starts_with("snapshots/")));
    std::fs::write(top.join("config.toml"), "tampered").unwrap();
    assert!(safe_yolo_store::verify_backup(&top).is_err());
    let r = rig
        .call(
            Method::GET,
            "/api/v1/system/backup?snapshots=maybe",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // One at a time: while a download is open, another is refused with 409; once the
    // first client goes away, its work directory is removed and backups work again.
    let first = call_raw(&rig.app.router, &admin, "/api/v1/system/backup").await;
    assert_eq!(first.status(), StatusCode::OK);
    let r = rig
        .call(Method::GET, "/api/v1/system/backup", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    drop(first);
    eventually("the abandoned backup's cleanup", || {
        work_dirs(rig.dir.path()).is_empty()
    })
    .await;
    let mut again = StatusCode::CONFLICT;
    for _ in 0..200 {
        again = rig
            .call(Method::GET, "/api/v1/system/backup", Some(&admin), None)
            .await
            .status;
        if again != StatusCode::CONFLICT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again, StatusCode::OK);
    rig.shutdown.cancel();
}

#[tokio::test]
async fn a_backup_that_would_eat_the_reserved_free_space_is_refused() {
    let rig = rig_store(
        vec![],
        |_| {},
        |c| c.retention.min_free_bytes = u64::MAX / 2,
    )
    .await;
    rig.setup_admin().await;
    let admin = rig.token("admin").await;
    let before = rig.last_audit_id().await;
    let r = rig
        .call(Method::GET, "/api/v1/system/backup", Some(&admin), None)
        .await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("snapshots=false")
    );
    assert!(work_dirs(rig.dir.path()).is_empty());
    assert!(
        rig.audit_after(before)
            .await
            .iter()
            .all(|r| r.action != "system.backup"),
        "nothing left the box, nothing to audit"
    );
    // An event export writes a temporary file too: the same reserve holds.
    let viewer = rig.token_for(Role::Viewer).await;
    let r = rig
        .call(
            Method::GET,
            "/api/v1/events/export?format=csv",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("an event export needs")
    );
    assert!(work_dirs(rig.dir.path()).is_empty());
}

/// An open intrusion warning on `camera` by `rule`, with `message`.
fn intrusion(camera: &str, rule: &str, started_at: u64, message: String) -> NewEvent {
    NewEvent {
        camera: CameraId::new(camera).unwrap(),
        rule: RuleId::new(rule).unwrap(),
        zone: None,
        track: None,
        kind: "intrusion".into(),
        severity: Severity::Warning,
        started_at,
        ended_at: None,
        message,
        details: None,
        snapshot_jpeg: None,
        cleared: false,
    }
}

async fn event_at(rig: &Rig, camera: &str, rule: &str, started_at: u64) -> u64 {
    rig.store
        .record(intrusion(
            camera,
            rule,
            started_at,
            format!("{camera}, \"{rule}\""),
        ))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rule_named_like_a_formula_is_exported_as_text() {
    let rig = rig().await;
    rig.setup_admin().await;
    // The dispatcher's message starts with the rule's name, which an operator types.
    rig.store
        .record(intrusion(
            "gate",
            "r1",
            1_700_000_000_000,
            "=1+1: camera gate".into(),
        ))
        .await
        .unwrap();
    let viewer = rig.token_for(Role::Viewer).await;
    let r = rig
        .call(
            Method::GET,
            "/api/v1/events/export?format=csv",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.body.clone()).unwrap();
    let row = text.lines().nth(1).unwrap();
    assert!(
        row.contains(",\"'=1+1: camera gate\","),
        "the field starts with a quote and opens as text: {row}"
    );
    assert!(!row.contains(",=1+1"), "{row}");
}

#[tokio::test]
async fn event_export_as_csv_and_json_with_the_list_filters() {
    let rig = rig().await;
    rig.setup_admin().await;
    let t0 = 1_700_000_000_000u64;
    let mut ids = Vec::new();
    for (i, (cam, rule)) in [
        ("gate", "no-entry"),
        ("dock", "no-entry"),
        ("gate", "helmet"),
        ("dock", "helmet"),
        ("gate", "no-entry"),
    ]
    .into_iter()
    .enumerate()
    {
        ids.push(event_at(&rig, cam, rule, t0 + i as u64 * 1000).await);
    }
    let viewer = rig.token_for(Role::Viewer).await;

    // CSV: header, then every event oldest first, the same as the store holds.
    let r = rig
        .call(
            Method::GET,
            "/api/v1/events/export?format=csv",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    let cd = r.headers["content-disposition"].to_str().unwrap();
    assert!(
        cd.starts_with("attachment; filename=\"safe-yolo-events-") && cd.ends_with(".csv\""),
        "{cd}"
    );
    assert_eq!(r.headers["x-event-count"], "5");
    let text = String::from_utf8(r.body.clone()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("id,started_at_utc,started_at_ms,"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5);
    let all = rig
        .store
        .query_events(safe_yolo_store::EventQuery {
            oldest_first: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    for (row, e) in rows.iter().zip(&all.events) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols[0], e.id.to_string());
        assert_eq!(cols[2], e.started_at.to_string());
        assert_eq!(cols[4], e.camera.to_string());
        assert_eq!(cols[5], e.rule.to_string());
    }
    assert!(
        rows[0].contains("\"gate, \"\"no-entry\"\"\""),
        "quoted per RFC 4180: {}",
        rows[0]
    );

    // JSON with filters: camera + rule, then a time window, newest first on request.
    let r = rig
        .call(
            Method::GET,
            "/api/v1/events/export?format=json&camera=gate&rule=no-entry",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    let got: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    let got_ids: Vec<u64> = got.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(got_ids, [ids[0], ids[4]]);
    let r = rig
        .call(
            Method::GET,
            &format!(
                "/api/v1/events/export?format=json&from={}&to={}&order=desc",
                t0 + 1000,
                t0 + 4000
            ),
            Some(&viewer),
            None,
        )
        .await;
    let got: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
    let got_ids: Vec<u64> = got.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(got_ids, [ids[3], ids[2], ids[1]]);
    let r = rig
        .call(
            Method::GET,
            "/api/v1/events/export?format=json&state=cleared",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(r.json(), json!([]));

    // Bad requests name the field.
    for (q, field) in [
        ("format=xml", "format"),
        ("camera=gate", "format"),
        ("format=csv&limit=5", "query"),
    ] {
        let r = rig
            .call(
                Method::GET,
                &format!("/api/v1/events/export?{q}"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.json()["field"], field, "{q}");
    }
    let r = rig
        .call(Method::GET, "/api/v1/events/export?format=csv", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(work_dirs(rig.dir.path()).is_empty());
}

// === OpenAPI ===

// === choosing a camera: discovery and preview ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_cameras_tamper_check_relearns_its_view_for_operators_audited() {
    let rig = rig().await;
    rig.setup_admin().await;
    let path = format!("/api/v1/cameras/{}/tamper/relearn", cam());
    let viewer = rig.token_for(Role::Viewer).await;
    let r = rig.call(Method::POST, &path, Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let operator = rig.token_for(Role::Operator).await;
    let r = rig
        .call(
            Method::POST,
            "/api/v1/cameras/nope/tamper/relearn",
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json());
    let r = rig.call(Method::POST, &path, Some(&operator), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    let rows: Vec<_> = rig
        .audit_after(0)
        .await
        .into_iter()
        .filter(|row| row.action == "camera.tamper_relearn")
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].target, format!("camera/{}", cam()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_discovery_lists_this_machines_devices_for_operators() {
    let rig = rig().await;
    rig.setup_admin().await;
    let path = "/api/v1/cameras/discovery";
    let r = rig.call(Method::GET, path, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let viewer = rig.token_for(Role::Viewer).await;
    let r = rig.call(Method::GET, path, Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let operator = rig.token_for(Role::Operator).await;
    let r = rig.call(Method::GET, path, Some(&operator), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let body = r.json();
    let devices = body["devices"].as_array().expect("a device list");
    assert!(body["skipped"].is_array(), "{body}");
    assert_eq!(body["truncated"], false, "{body}");
    let has_video = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("video"));
    if has_video {
        // A machine with cameras (vivid in the VM test): each is described.
        for d in devices {
            assert!(d["path"].as_str().unwrap().starts_with("/dev/"), "{d}");
            assert!(d["formats"].is_array(), "{d}");
        }
    } else {
        // This build machine has no /dev/video*: an empty list, not an error.
        assert!(devices.is_empty(), "{body}");
        assert!(body["skipped"].as_array().unwrap().is_empty(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_preview_is_one_jpeg_of_the_source_through_the_sandbox() {
    let rig = rig().await;
    rig.setup_admin().await;
    let media = rig.dir.path().join("media");
    // A replay folder of a fixture photo: the preview is its first frame.
    let photo = safe_yolo_fixtures::media("bus.jpg");
    std::fs::create_dir_all(media.join("yard")).unwrap();
    std::fs::copy(&photo, media.join("yard/0001.jpg")).unwrap();
    let expected =
        safe_yolo_capture::convert::decode_jpeg(&std::fs::read(&photo).unwrap()).unwrap();
    let path = "/api/v1/cameras/preview";
    let doc = json!({"kind": "replay", "path": "yard", "fps": 5});
    let r = rig.call(Method::POST, path, None, Some(doc.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let viewer = rig.token_for(Role::Viewer).await;
    let r = rig
        .call(Method::POST, path, Some(&viewer), Some(doc.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let operator = rig.token_for(Role::Operator).await;
    let before = rig.last_audit_id().await;
    let r = rig
        .call(Method::POST, path, Some(&operator), Some(doc))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.headers["content-type"], "image/jpeg");
    let still = safe_yolo_capture::convert::decode_jpeg(&r.body).unwrap();
    assert_eq!(
        (still.width(), still.height()),
        (expected.width(), expected.height())
    );
    // A preview changes nothing: no audit row.
    assert!(rig.audit_after(before).await.is_empty());

    // Refusals name the source's field.
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(&photo, outside.path().join("0001.jpg")).unwrap();
    std::os::unix::fs::symlink(outside.path(), media.join("escape")).unwrap();
    std::fs::write(media.join("garbage.mjpeg"), b"not a jpeg at all").unwrap();
    for (doc, status, field, says) in [
        (
            json!({"kind": "replay", "path": "/etc/passwd"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path",
            "outside the media directory",
        ),
        (
            json!({"kind": "replay", "path": "../state"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path",
            "must not contain `..`",
        ),
        // Inside by name, outside once the link is followed: the sandbox refuses it.
        (
            json!({"kind": "replay", "path": "escape"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path",
            "not a file or folder inside the media directory",
        ),
        // Missing and outside read the same: no oracle for what exists elsewhere.
        (
            json!({"kind": "replay", "path": "nope.mjpeg"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path",
            "not a file or folder inside the media directory",
        ),
        (
            json!({"kind": "replay", "path": "/etc/no-such-file"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path",
            "outside the media directory",
        ),
        (
            json!({"kind": "v4l2", "device": "/etc/passwd"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "device",
            "is not a device path under /dev",
        ),
        (
            json!({"kind": "replay", "path": "garbage.mjpeg"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path",
            "no complete JPEG image",
        ),
        (
            json!({"kind": "v4l2", "device": "/dev/null"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "device",
            "not a V4L2 capture device",
        ),
        (
            json!({"kind": "replay", "path": "yard", "fps": 500}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fps",
            "between 0.5 and 120",
        ),
        (
            json!({"kind": "replay", "path": "yard", "colour": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
            "unknown field",
        ),
    ] {
        let r = rig
            .call(Method::POST, path, Some(&operator), Some(doc.clone()))
            .await;
        let body = r.json();
        assert_eq!(r.status, status, "{doc}: {body}");
        assert_eq!(body["field"], field, "{doc}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{doc}: {body}"
        );
        // Where a link leads and the OS's error stay in the journal.
        let text = body.to_string();
        assert!(
            !text.contains(&outside.path().display().to_string())
                && !text.contains("os error")
                && !text.contains("char"),
            "{doc}: {body}"
        );
    }
    // The body has the JSON body limit.
    let long = "x".repeat(MAX_BODY + 1);
    let r = rig
        .call(
            Method::POST,
            path,
            Some(&operator),
            Some(json!({"kind": "replay", "path": long})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_retried_and_served_once_free() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap();
    let redirect_holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_redirect = redirect_holder.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let (store, _writer) = StoreHandle::start(store, 64).unwrap();
    let (deps, _live, _health, _scene) = deps(dir.path(), store.clone(), Arc::default());
    let mut s = settings(dir.path(), vec![]);
    s.api.bind = busy;
    s.api.http_redirect_bind = Some(busy_redirect);
    let shutdown = CancellationToken::new();
    // Both ports are held: the server starts anyway, not listening yet.
    let mut server = serve(s, deps, shutdown.clone()).await.unwrap();
    assert_eq!(server.https_addr, None);
    assert_eq!(server.http_redirect_addr, None);
    assert_eq!(server.pending, vec![busy, busy_redirect]);
    // Released: the retries take them (1 s, then 2 s, ...): bounded wait, no timing assert.
    drop(holder);
    drop(redirect_holder);
    for addr in [busy, busy_redirect] {
        let mut listening = false;
        for _ in 0..100 {
            if let Ok(tcp) = tokio::net::TcpStream::connect(addr).await {
                drop(tcp);
                listening = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(listening, "the API never took the freed port {addr}");
    }
    // The late HTTPS listener reports its address.
    let late = server.late_https.take().expect("a late HTTPS listener");
    assert_eq!(late.await.unwrap(), busy);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server.join())
        .await
        .unwrap();
}

#[tokio::test]
async fn live_stream_off_closes_the_live_routes() {
    let off = rig_custom(vec![], |s| s.live_stream = false).await;
    off.setup_admin().await;
    let viewer = off.token_for(Role::Viewer).await;
    for (method, path) in [
        (Method::GET, "/api/v1/cameras/cam1/mjpeg"),
        (Method::POST, "/api/v1/live/ticket"),
    ] {
        let r = off.call(method.clone(), path, Some(&viewer), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap_or_default()
                .contains("features.live_stream"),
            "{}",
            r.json()
        );
    }
    // The rest of the API is unaffected.
    let r = off
        .call(Method::GET, "/api/v1/cameras", Some(&viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // And with the live view on, the same ticket request succeeds.
    let on = rig().await;
    on.setup_admin().await;
    let viewer = on.token_for(Role::Viewer).await;
    let r = on
        .call(Method::POST, "/api/v1/live/ticket", Some(&viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
}

#[test]
fn openapi_document_is_current() {
    let path = safe_yolo_fixtures::manifest_dir!().join("../../config/openapi.json");
    let fresh = safe_yolo_api::openapi::render(
        ApiSettings::new(api_config(vec![]), "/tmp").max_cert_body_bytes,
    );
    if std::env::var_os("SAFEYOLO_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "config/openapi.json is out of date with the route table; regenerate it with:\n  \
         SAFEYOLO_UPDATE_OPENAPI=1 cargo test -p safe-yolo-api --test api openapi_document_is_current"
    );
    let doc: Value = serde_json::from_str(&committed).unwrap();
    for r in table(256 * 1024) {
        assert!(
            doc["paths"][r.spec.path][r.spec.method.as_str().to_lowercase()].is_object(),
            "{} {}",
            r.spec.method,
            r.spec.path
        );
    }
}

#[test]
fn every_response_body_is_documented() {
    use safe_yolo_api::routes::ResponseDoc;
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut wrong = Vec::new();
    for r in table(256 * 1024) {
        let what = format!("{} {}", r.spec.method, r.spec.path);
        match r.spec.response {
            ResponseDoc::Undocumented => wrong.push(format!(
                "{what}: its handler returns a bare Response; declare its body with .returns::<T>(), .no_body() or .produces(..)"
            )),
            ResponseDoc::Json(schema) => {
                let schema = serde_json::to_value(schema(&mut generator)).unwrap();
                if schema.get("$ref").is_none() && schema.get("type").is_none() {
                    wrong.push(format!("{what}: the response schema says nothing: {schema}"));
                }
            }
            ResponseDoc::Other if r.spec.produces.is_empty() => {
                wrong.push(format!("{what}: no media type"));
            }
            ResponseDoc::Other | ResponseDoc::Empty | ResponseDoc::Upgrade => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[allow(dead_code, reason = "keeps IpAddr in use for readers of the helpers")]
fn _ip(_: IpAddr) {}

// === the integration settings ===

/// The integration settings: admin only, checked by the configuration's own
/// validator with every problem at its field, secrets moved into the box's private
/// files and never read back (not in a response, not in the audit log), a secret
/// left out kept, the body within its budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_settings_are_admin_only_checked_and_never_show_their_secrets() {
    const MQTT_PASSWORD: &str = "mqtt-pass-3f9a1c";
    const HOOK_SECRET: &str = "hook-secret-0123456789abcdef";
    const PATH: &str = "/api/v1/system/integrations/settings";
    let rig = rig().await;
    rig.setup_admin().await;
    let admin = rig.token("admin").await;
    let doc = json!({
        "mqtt": {"url": "mqtt://127.0.0.1:1883", "topic_prefix": "plant/box/",
                 "username": "box", "password": MQTT_PASSWORD, "home_assistant": true},
        "webhooks": [{"id": "pager", "url": "https://hooks.plant:9443/safety",
                      "secret": HOOK_SECRET, "severities": ["critical"]}],
        "modbus": {"bind": "127.0.0.1:1502", "allow": ["127.0.0.1/32"], "unit_id": 3},
        "interlocks": [{"id": "press", "source": "modbus", "coil": 1}]
    });
    // Operators and viewers may neither read nor change them.
    for role in [Role::Operator, Role::Viewer] {
        let t = rig.token_for(role).await;
        let r = rig.call(Method::GET, PATH, Some(&t), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "GET as {role:?}");
        let r = rig
            .call(Method::PUT, PATH, Some(&t), Some(json!({"doc": doc})))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "PUT as {role:?}");
    }
    let put_doc = async |doc: Value| {
        rig.call(Method::PUT, PATH, Some(&admin), Some(json!({"doc": doc})))
            .await
    };
    let r = put_doc(doc).await;
    let mut shown = vec![r.ok_text()];
    let v = r.json();
    assert_eq!(v["doc"]["mqtt"]["topic_prefix"], "plant/box/");
    assert_eq!(v["doc"]["modbus"]["unit_id"], 3);
    assert_eq!(v["secrets"]["mqtt_password_set"], true);
    assert_eq!(v["secrets"]["webhook_secret_set"], json!(["pager"]));
    assert_eq!(v["version"], 1);
    assert!(v["doc"]["mqtt"].get("password_file").is_none(), "{v}");
    // The running system got the document with the secrets in the box's own files.
    let applied = |rig: &Rig| match rig.control.applied.lock().last() {
        Some(SettingsChange::Put {
            doc: Document::Integrations(i),
            ..
        }) => (**i).clone(),
        other => panic!("not the integration settings: {other:?}"),
    };
    let running = applied(&rig);
    let mqtt = running.mqtt.clone().unwrap();
    assert_eq!(mqtt.password, None);
    let password_file = PathBuf::from(mqtt.password_file.clone().unwrap());
    assert!(password_file.starts_with(rig.dir.path().join("secrets")));
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap().trim(),
        MQTT_PASSWORD
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&password_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let hook_file = running.webhooks[0].secret_file.clone().unwrap();
    assert_eq!(
        std::fs::read_to_string(&hook_file).unwrap().trim(),
        HOOK_SECRET
    );
    // Read back and sent back as read (no secrets), with a change: the secrets stay.
    let r = rig.call(Method::GET, PATH, Some(&admin), None).await;
    shown.push(r.ok_text());
    let mut again = r.json()["doc"].clone();
    again["mqtt"]["topic_prefix"] = json!("plant/other/");
    let r = rig
        .call(
            Method::PUT,
            PATH,
            Some(&admin),
            Some(json!({"doc": again, "expected_version": 1})),
        )
        .await;
    shown.push(r.ok_text());
    assert_eq!(r.json()["secrets"]["mqtt_password_set"], true);
    let kept = applied(&rig);
    assert_eq!(
        kept.mqtt.as_ref().unwrap().topic_prefix.as_deref(),
        Some("plant/other/")
    );
    assert_eq!(kept.mqtt.unwrap().password_file, mqtt.password_file);
    assert_eq!(
        kept.webhooks[0].secret_file.as_deref(),
        Some(hook_file.as_str())
    );
    // Mistakes: refused, naming the field; nothing applied.
    let n = rig.control.applied.lock().len();
    for (bad, status, field) in [
        (
            json!({"mqtt": {"url": "http://broker"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "doc.mqtt.url",
        ),
        (
            json!({"mqtt": {"url": "mqtt://b", "qos": 2}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "doc.mqtt.qos",
        ),
        (
            json!({"webhooks": [{"id": "pager", "url": "https://h/x", "secret": "short"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "doc.webhooks[0].secret",
        ),
        (
            json!({"mqtt": {"url": "mqtt://b", "username": "u", "password_file": "/var/lib/safe-yolo/jwt.key"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "doc.mqtt.password_file",
        ),
        (
            json!({"modbus": {"bind": "127.0.0.1:1502", "allow": ["127.0.0.1"], "unit_id": 900}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "doc.modbus.unit_id",
        ),
        (
            json!({"interlocks": [{"id": "press", "source": "modbus", "coil": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "doc.interlocks[0].source",
        ),
    ] {
        let r = put_doc(bad.clone()).await;
        assert_eq!(
            (r.status, r.json()["field"].clone()),
            (status, json!(field)),
            "{bad}: {}",
            r.json()
        );
    }
    assert_eq!(rig.control.applied.lock().len(), n);
    // Refused with the whole configuration: the new password never reaches its file.
    let mut refused = again.clone();
    refused["mqtt"]["topic_prefix"] = json!("refuse/");
    refused["mqtt"]["password"] = json!("a-password-never-taken");
    let r = put_doc(refused).await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("rules.night.armed_by")
        ),
        "{}",
        r.text()
    );
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap().trim(),
        MQTT_PASSWORD
    );
    // The webhook removed: its secret's file goes with it.
    let mut unhooked = again.clone();
    unhooked["webhooks"] = json!([]);
    let r = put_doc(unhooked).await;
    shown.push(r.ok_text());
    assert!(!Path::new(&hook_file).exists(), "{hook_file} left behind");
    assert!(password_file.exists());
    // The body has its budget.
    let big = json!({"doc": {"mqtt": {"url": "mqtt://b", "topic_prefix": "x".repeat(MAX_BODY)}}});
    let r = rig.call(Method::PUT, PATH, Some(&admin), Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Audited, who and what, never a secret.
    let rows = rig.audit_after(0).await;
    let puts: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "integrations.put" && r.result == safe_yolo_store::AuditResult::Ok)
        .collect();
    assert_eq!(puts.len(), 3, "{rows:?}");
    assert_eq!(puts[0].actor, "admin");
    assert!(
        puts[1]
            .after
            .as_deref()
            .unwrap_or_default()
            .contains("plant/other/")
    );
    shown.push(format!("{rows:?}"));
    for text in &shown {
        for secret in [MQTT_PASSWORD, HOOK_SECRET] {
            assert!(!text.contains(secret), "a secret was shown: {text}");
        }
    }
}

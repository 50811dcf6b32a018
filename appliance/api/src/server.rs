//! Building the application and serving it over TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use safe_yolo_alarms::Dispatcher;
use safe_yolo_capture::SourcePolicy;
use safe_yolo_outputs::OutputsHandle;
use safe_yolo_pipeline::CameraTap;
use safe_yolo_store::Storage;
use safe_yolo_telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::{JwtKeys, LoginLimiter, Tickets, random_bytes};
use crate::control::Control;
use crate::error::ApiError;
use crate::headers::{Cors, cors, security_headers};
use crate::live::LiveHub;
use crate::settings::ApiSettings;
use crate::state::{AppState, Inner, SetupGate};
use crate::tls::{CertStore, server_config};

/// What the API serves, provided by the daemon.
pub struct ApiDeps {
    /// The store, open or not (routes that need it answer 503 while it is not).
    pub store: Storage,
    /// The alarm dispatcher.
    pub alarms: Dispatcher,
    /// The outputs.
    pub outputs: OutputsHandle,
    /// One tap per running camera.
    pub cameras: Vec<CameraTap>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Applies settings changes to the running system.
    pub control: Arc<dyn Control>,
    /// The sandbox for camera sources given through the API.
    pub source_policy: SourcePolicy,
}

impl std::fmt::Debug for ApiDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDeps")
            .field("cameras", &self.cameras.len())
            .finish_non_exhaustive()
    }
}

/// The application without its listeners (tests drive the router directly).
#[derive(Debug, Clone)]
pub struct App {
    /// The complete router (routes, CORS, security headers).
    pub router: Router,
    /// Shared state.
    pub state: AppState,
}

impl App {
    /// The first-boot setup token, while no user exists (also logged at warn level).
    pub fn setup_token(&self) -> Option<String> {
        self.state.setup.token.lock().clone()
    }

    /// The live-view hub.
    pub fn live(&self) -> &LiveHub {
        &self.state.live
    }
}

/// Builds the state (loading or creating the JWT key and the certificate) and router.
pub fn build_router(
    settings: ApiSettings,
    deps: ApiDeps,
    shutdown: CancellationToken,
) -> Result<App, ApiError> {
    let api_dir = settings.api_dir();
    crate::tls::ensure_private_dir(&api_dir)?;
    let keys = JwtKeys::load_or_create(&api_dir)?;
    if let Some(reason) = keys.replaced() {
        let row = crate::audit::system_row(
            "jwt.key_replaced",
            "api/jwt-key",
            Some(reason.to_owned()),
            Some("fresh key; every session revoked".into()),
        );
        let ended = deps.store.handle().and_then(|h| {
            h.store().transaction(|t| {
                let n = t.revoke_all_sessions()?;
                t.append_audit(row)?;
                Ok(n)
            })
        });
        match ended {
            Ok(n) => tracing::warn!(sessions = n, "JWT key replaced: every session ended"),
            Err(e) => {
                tracing::error!(error = %e, "cannot end the sessions after replacing the JWT key")
            }
        }
    }
    let configured = match (&settings.api.cert, &settings.api.key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    let certs = Arc::new(CertStore::load_or_generate(
        &api_dir,
        configured,
        &settings.cert_names,
    )?);
    if let Some(reason) = certs.fallback() {
        let row = crate::audit::system_row(
            "tls.fallback",
            "api/certificate",
            Some(reason.to_owned()),
            Some("fresh self-signed certificate".into()),
        );
        // The audit is evidence, not a condition of serving: a store that cannot
        // take it does not stop the API either.
        if let Err(e) = deps
            .store
            .handle()
            .and_then(|h| h.store().transaction(|t| t.append_audit(row)))
        {
            tracing::error!(error = %e, "cannot audit the certificate fallback");
        }
    }
    // Without the store nobody can log in or set up until it opens. A token is made
    // anyway: setup itself checks that no user exists once the store is there.
    let no_users = match deps.store.current() {
        Some(h) => h.store().list_users().map_err(ApiError::Store)?.is_empty(),
        None => {
            tracing::error!(
                "the store is not available: the API serves the health probe and answers 503 where it needs the store (logins included) until it opens"
            );
            true
        }
    };
    let token = if no_users {
        let t = random_bytes::<18>()
            .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
            .map_err(|_| ApiError::Random {
                what: "the setup token",
            })?;
        tracing::warn!(setup_token = %t, "no user exists yet: create the first admin with POST /api/v1/setup and this one-time token");
        Some(t)
    } else {
        None
    };
    let api_metrics = crate::metrics::ApiMetrics::register(&deps.metrics);
    let live = LiveHub::new(deps.cameras, settings.api.jpeg_quality, shutdown.clone())
        .with_counter(api_metrics.live_frames_encoded.clone());
    let cors_cfg = Cors {
        origins: Arc::new(settings.api.cors_origins.clone()),
    };
    let rate = crate::ratelimit::RateLimiter::new(settings.auth.rate_limit);
    crate::handlers::download::remove_stale_work_dirs(&api_dir);
    let state = AppState(Arc::new(Inner {
        settings,
        storage: deps.store,
        alarms: deps.alarms,
        outputs: deps.outputs,
        metrics: deps.metrics,
        api_metrics,
        control: deps.control,
        keys,
        limiter: LoginLimiter::default(),
        rate,
        backup_gate: Arc::new(Semaphore::new(1)),
        export_gate: Arc::new(Semaphore::new(crate::handlers::download::MAX_EXPORTS)),
        tickets: Tickets::default(),
        setup: SetupGate {
            token: parking_lot::Mutex::new(token),
            lock: tokio::sync::Mutex::new(()),
        },
        certs,
        live,
        source_policy: deps.source_policy,
        started: std::time::Instant::now(),
        live_shutdown: shutdown,
    }));
    let router = crate::routes::router(state.clone())
        .layer(from_fn_with_state(cors_cfg, cors))
        .layer(from_fn(security_headers));
    Ok(App { router, state })
}

/// A running server.
#[derive(Debug)]
pub struct ApiServer {
    /// The HTTPS address actually bound.
    pub https_addr: SocketAddr,
    /// The plain-HTTP redirect listener, if enabled.
    pub http_redirect_addr: Option<SocketAddr>,
    /// The application (state, router, setup token).
    pub app: App,
    tasks: JoinSet<()>,
}

impl ApiServer {
    /// Waits for the listeners to stop (after the shutdown token is cancelled).
    pub async fn join(mut self) {
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "API listener task failed");
            }
        }
    }
}

/// Most concurrent connections; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;
/// Longest a TLS handshake or a request head may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the HTTPS listener (and the redirect listener if configured).
pub async fn serve(
    settings: ApiSettings,
    deps: ApiDeps,
    shutdown: CancellationToken,
) -> Result<ApiServer, ApiError> {
    let bind = settings.api.bind;
    let redirect = settings.api.http_redirect_bind;
    let min = settings.api.tls_min_version;
    let app = build_router(settings, deps, shutdown.clone())?;
    let tls = TlsAcceptor::from(server_config(min, Arc::clone(&app.state.certs))?);
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| ApiError::Bind { addr: bind, source })?;
    let https_addr = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr: bind, source })?;
    let mut tasks = JoinSet::new();
    tasks.spawn(accept_loop(
        listener,
        tls,
        app.router.clone(),
        shutdown.clone(),
    ));
    let http_redirect_addr = match redirect {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ApiError::Bind { addr, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| ApiError::Bind { addr, source })?;
            tasks.spawn(redirect_loop(l, https_addr.port(), shutdown.clone()));
            Some(bound)
        }
        None => None,
    };
    tracing::info!(%https_addr, ?http_redirect_addr, "API listening (HTTPS)");
    Ok(ApiServer {
        https_addr,
        http_redirect_addr,
        app,
        tasks,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let tls = tls.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let svc = router.map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(axum::body::Body::new)
            });
            serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(svc),
                shutdown,
            )
            .await;
        });
    }
}

async fn serve_connection<I, S>(io: I, svc: S, shutdown: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let builder = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .to_owned();
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { tracing::debug!(error = %e, "connection ended with an error") },
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

async fn redirect_loop(listener: TcpListener, https_port: u16, shutdown: CancellationToken) {
    let router =
        Router::new().fallback(move |req: Request| async move { redirect(&req, https_port) });
    loop {
        let (tcp, _) = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let svc = router
            .clone()
            .map_request(|req: Request<Incoming>| req.map(axum::body::Body::new));
        let shutdown = shutdown.clone();
        tokio::spawn(serve_connection(
            TokioIo::new(tcp),
            TowerToHyperService::new(svc),
            shutdown,
        ));
    }
}

/// The plain-HTTP listener only redirects to HTTPS.
fn redirect(req: &Request, https_port: u16) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(h, |(h, _)| h)
        });
    let Some(host) = host.filter(|h| !h.is_empty() && !h.contains(['/', '@', '\\'])) else {
        return (StatusCode::BAD_REQUEST, "HTTPS only").into_response();
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let target = format!("https://{host}:{https_port}{path}");
    match target.parse::<Uri>() {
        Ok(_) => Redirect::permanent(&target).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "HTTPS only").into_response(),
    }
}

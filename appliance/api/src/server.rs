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
use safe_yolo_pipeline::CameraTaps;
use safe_yolo_store::Storage;
use safe_yolo_telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::{JwtKeys, LoginLimiter, PasswordGate, Tickets, random_bytes};
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
    pub cameras: CameraTaps,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Applies settings changes to the running system.
    pub control: Arc<dyn Control>,
    /// The sandbox for camera sources given through the API.
    pub source_policy: SourcePolicy,
    /// Opens a camera source for a still preview: the same factory the
    /// pipeline opens its cameras with (`safe_yolo_capture::open` under the
    /// sandbox policy, picked by the daemon).
    pub sources: safe_yolo_pipeline::SourceFactory,
    /// The interlocks (machine states that arm rules), for their status.
    pub interlocks: safe_yolo_alarms::Interlocks,
}

impl std::fmt::Debug for ApiDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDeps")
            .field("cameras", &self.cameras.current().len())
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
    let passwords = PasswordGate::new(settings.auth.hashes);
    let state = AppState(Arc::new(Inner {
        settings,
        storage: deps.store,
        alarms: deps.alarms,
        interlocks: deps.interlocks,
        outputs: deps.outputs,
        metrics: deps.metrics,
        api_metrics,
        control: deps.control,
        keys,
        limiter: LoginLimiter::default(),
        passwords,
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
        sources: deps.sources,
        probe_gate: Arc::new(Semaphore::new(crate::handlers::cameras::PROBES)),
        started: std::time::Instant::now(),
        revocations: tokio::sync::watch::channel(0).0,
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
    /// The HTTPS address bound; `None` while its port is busy (it is retried
    /// in the background, see [`serve`]).
    pub https_addr: Option<SocketAddr>,
    /// The plain-HTTP redirect listener, if enabled and bound.
    pub http_redirect_addr: Option<SocketAddr>,
    /// Addresses whose port was in use at start: retried in the background
    /// (1 s, doubling to 30 s, until bound or shut down).
    pub pending: Vec<SocketAddr>,
    /// When the HTTPS port was busy at start: the address, once the
    /// background retry has bound it.
    pub late_https: Option<tokio::sync::oneshot::Receiver<SocketAddr>>,
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

/// Longest a TLS handshake or a request head may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts to listen on a busy port.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The wait before attempt `attempt` (0-based) to listen on a busy port:
/// 1 s, doubling, at most [`RETRY_MAX`].
pub fn bind_retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(RETRY_MAX)
}

/// Binds `addr`; `Ok(None)` when its port is in use (`EADDRINUSE`: another
/// program holds it, or this daemon's previous instance is still closing).
async fn try_bind(addr: SocketAddr, what: &'static str) -> Result<Option<TcpListener>, ApiError> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(%addr, port = addr.port(), listener = what, retry_in_s = bind_retry_delay(0).as_secs(), error = %e, "port busy: the API is not listening yet; retrying in the background (cameras, rules and outputs run)");
            Ok(None)
        }
        Err(source) => Err(ApiError::Bind { addr, source }),
    }
}

/// Binds `addr` again and again (waits of [`bind_retry_delay`]) until it
/// succeeds; `None` when shut down first. Every failure is logged with the port.
async fn bind_retrying(
    addr: SocketAddr,
    what: &'static str,
    shutdown: &CancellationToken,
) -> Option<TcpListener> {
    let mut attempt: u32 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(bind_retry_delay(attempt)) => {}
        }
        attempt = attempt.saturating_add(1);
        match TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, port = addr.port(), listener = what, attempts = attempt, "port free: API listening");
                return Some(l);
            }
            Err(e) => {
                tracing::warn!(%addr, port = addr.port(), listener = what, attempts = attempt, retry_in_s = bind_retry_delay(attempt).as_secs(), error = %e, "cannot listen yet; retrying");
            }
        }
    }
}

/// Starts the HTTPS listener (and the redirect listener if configured).
///
/// A configuration or state-directory problem (the JWT key, the certificate,
/// the TLS set-up, an address this host cannot bind) is an error. A port in use
/// is not: its listener is retried in the background ([`ApiServer::pending`])
/// while the caller goes on, so a busy port never stops the alarms.
pub async fn serve(
    settings: ApiSettings,
    deps: ApiDeps,
    shutdown: CancellationToken,
) -> Result<ApiServer, ApiError> {
    let bind = settings.api.bind;
    let redirect = settings.api.http_redirect_bind;
    let caps = Caps {
        https: settings.api.max_connections,
        redirect: settings.api.redirect_max_connections,
    };
    let max_unanswered = settings.api.max_unanswered_connections;
    let min = settings.api.tls_min_version;
    let app = build_router(settings, deps, shutdown.clone())?;
    let tls = TlsAcceptor::from(server_config(min, Arc::clone(&app.state.certs))?);
    let mut tasks = JoinSet::new();
    let mut pending = Vec::new();
    let mut late_https = None;
    let router = app.router.clone();
    let unanswered = Arc::new(Unanswered::new(
        max_unanswered,
        app.state.api_metrics.connections_evicted.clone(),
    ));
    let https_addr = match try_bind(bind, "https").await? {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .map_err(|source| ApiError::Bind { addr: bind, source })?;
            tasks.spawn(accept_loop(
                listener,
                tls,
                router,
                caps.https,
                Arc::clone(&unanswered),
                shutdown.clone(),
            ));
            Some(addr)
        }
        None => {
            pending.push(bind);
            let shutdown = shutdown.clone();
            let (bound, late) = tokio::sync::oneshot::channel();
            late_https = Some(late);
            tasks.spawn(async move {
                if let Some(listener) = bind_retrying(bind, "https", &shutdown).await {
                    let _ = bound.send(listener.local_addr().unwrap_or(bind));
                    accept_loop(listener, tls, router, caps.https, unanswered, shutdown).await;
                }
            });
            None
        }
    };
    // A busy HTTPS port is retried on the configured port (never 0).
    let https_port = https_addr.map_or(bind.port(), |a| a.port());
    let http_redirect_addr = match redirect {
        Some(addr) => match try_bind(addr, "http-redirect").await? {
            Some(l) => {
                let bound = l
                    .local_addr()
                    .map_err(|source| ApiError::Bind { addr, source })?;
                tasks.spawn(redirect_loop(
                    l,
                    https_port,
                    caps.redirect,
                    shutdown.clone(),
                ));
                Some(bound)
            }
            None => {
                pending.push(addr);
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    if let Some(l) = bind_retrying(addr, "http-redirect", &shutdown).await {
                        redirect_loop(l, https_port, caps.redirect, shutdown).await;
                    }
                });
                None
            }
        },
        None => None,
    };
    if let Some(https_addr) = https_addr {
        tracing::info!(%https_addr, ?http_redirect_addr, "API listening (HTTPS)");
    }
    Ok(ApiServer {
        https_addr,
        http_redirect_addr,
        pending,
        late_https,
        app,
        tasks,
    })
}

/// Connection caps of the listeners (`[api] max_connections`,
/// `redirect_max_connections`).
#[derive(Debug, Clone, Copy)]
struct Caps {
    https: usize,
    redirect: usize,
}

/// The pause after the `n`-th accept error in a row: 50 ms doubling to 1 s, so a
/// process out of file descriptors (EMFILE) does not spin a core on accept.
fn accept_backoff(n: u32) -> Duration {
    Duration::from_millis(50u64 << n.min(5)).min(Duration::from_secs(1))
}

/// Accepts the next connection once a permit is free; `None` at shutdown. Accept
/// errors are retried after [`accept_backoff`].
async fn accept_next(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    what: &'static str,
    shutdown: &CancellationToken,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let permit = tokio::select! {
        () = shutdown.cancelled() => return None,
        p = Arc::clone(permits).acquire_owned() => p.ok()?,
    };
    let mut errors: u32 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            r = listener.accept() => match r {
                Ok((tcp, peer)) => return Some((tcp, peer, permit)),
                Err(e) => {
                    tracing::warn!(listener = what, error = %e, consecutive = errors + 1, "accept failed");
                    tokio::time::sleep(accept_backoff(errors)).await;
                    errors = errors.saturating_add(1);
                }
            },
        }
    }
}

/// The connections that have not been answered yet: in the TLS handshake, the
/// request head or the request body. A slow client (slowloris) never leaves this
/// state; a real one leaves it within milliseconds. At most `cap` wait at once:
/// a new connection evicts the one that has waited longest, so slow clients
/// churn among themselves and cannot hold every connection permit while a
/// legitimate client (an admin logging in) waits in the accept queue.
#[derive(Debug)]
pub struct Unanswered {
    cap: usize,
    inner: parking_lot::Mutex<(u64, std::collections::VecDeque<(u64, CancellationToken)>)>,
    evicted: prometheus_client::metrics::counter::Counter,
}

impl Unanswered {
    /// At most `cap` (at least 1) unanswered connections; evictions are counted in `evicted`.
    pub fn new(cap: usize, evicted: prometheus_client::metrics::counter::Counter) -> Self {
        Self {
            cap: cap.max(1),
            inner: parking_lot::Mutex::new((0, std::collections::VecDeque::new())),
            evicted,
        }
    }

    /// Registers a new connection, evicting the longest-waiting one when full:
    /// its id and the token that is cancelled if it is evicted in turn.
    pub fn admit(&self) -> (u64, CancellationToken) {
        let mut g = self.inner.lock();
        let (next, waiting) = &mut *g;
        while waiting.len() >= self.cap {
            if let Some((_, oldest)) = waiting.pop_front() {
                oldest.cancel();
                self.evicted.inc();
            }
        }
        let id = *next;
        *next += 1;
        let token = CancellationToken::new();
        waiting.push_back((id, token.clone()));
        (id, token)
    }

    /// The connection was answered (or ended): it no longer counts.
    pub fn answered(&self, id: u64) {
        self.inner.lock().1.retain(|(i, _)| *i != id);
    }

    /// How many wait now.
    pub fn len(&self) -> usize {
        self.inner.lock().1.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    router: Router,
    max_connections: usize,
    unanswered: Arc<Unanswered>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let Some((tcp, peer, permit)) = accept_next(&listener, &permits, "https", &shutdown).await
        else {
            break;
        };
        let tls = tls.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        let (id, evicted) = unanswered.admit();
        let unanswered = Arc::clone(&unanswered);
        tokio::spawn(async move {
            let _permit = permit;
            let serve = async {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let answered = Arc::clone(&unanswered);
                let svc = router
                    .map_request(move |mut req: Request<Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        req.map(axum::body::Body::new)
                    })
                    .map_response(move |resp: Response| {
                        answered.answered(id);
                        resp
                    });
                serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(svc),
                    shutdown,
                )
                .await;
            };
            tokio::select! {
                () = serve => {}
                () = evicted.cancelled() => {
                    tracing::debug!(%peer, "unanswered connection evicted for a newer one");
                }
            }
            unanswered.answered(id);
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

/// Longest a plain-HTTP connection lives: it only ever answers a redirect.
const REDIRECT_LIFETIME: Duration = Duration::from_secs(10);

async fn redirect_loop(
    listener: TcpListener,
    https_port: u16,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let router =
        Router::new().fallback(move |req: Request| async move { redirect(&req, https_port) });
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let Some((tcp, _, permit)) =
            accept_next(&listener, &permits, "http-redirect", &shutdown).await
        else {
            break;
        };
        let svc = router
            .clone()
            .map_request(|req: Request<Incoming>| req.map(axum::body::Body::new));
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc), shutdown);
            let _ = tokio::time::timeout(REDIRECT_LIFETIME, conn).await;
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_unanswered_connection_makes_room_for_a_new_one() {
        let u = Unanswered::new(2, Default::default());
        let (a, ta) = u.admit();
        let (_b, tb) = u.admit();
        assert_eq!(u.len(), 2);
        let (_c, tc) = u.admit();
        assert!(ta.is_cancelled(), "the oldest waiter was evicted");
        assert!(!tb.is_cancelled() && !tc.is_cancelled());
        assert_eq!(u.evicted.get(), 1);
        // An answered connection no longer counts, whatever its age.
        u.answered(a);
        let (b2, _) = u.admit();
        assert!(tb.is_cancelled(), "full again: the next oldest goes");
        u.answered(b2);
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn accept_errors_back_off_from_50_ms_to_1_s() {
        let ms: Vec<u128> = (0..8).map(|n| accept_backoff(n).as_millis()).collect();
        assert_eq!(ms, vec![50, 100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn a_busy_port_is_retried_after_1_s_doubling_to_30_s() {
        let secs: Vec<u64> = (0..8).map(|a| bind_retry_delay(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(bind_retry_delay(u32::MAX), RETRY_MAX);
    }
}

//! Shared state of the request handlers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::Request;
use safe_yolo_alarms::Dispatcher;
use safe_yolo_outputs::OutputsHandle;
use safe_yolo_store::{Storage, StoreHandle};
use safe_yolo_telemetry::Metrics;

use crate::auth::{JwtKeys, LoginLimiter, PasswordGate, Tickets};
use crate::control::Control;
use crate::live::LiveHub;
use crate::settings::ApiSettings;
use crate::tls::CertStore;

/// First-boot setup: the one-time token and a lock that serialises setup attempts.
#[derive(Debug)]
pub struct SetupGate {
    /// The token printed to the journal; `None` once a user exists.
    pub(crate) token: parking_lot::Mutex<Option<String>>,
    /// Held while an attempt checks "no user yet" and creates the admin.
    pub(crate) lock: tokio::sync::Mutex<()>,
}

/// Everything a handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The shared state behind [`AppState`] (fields are crate-private).
pub struct Inner {
    pub(crate) settings: ApiSettings,
    /// The store, open or not: reach it through [`Inner::store`].
    pub(crate) storage: Storage,
    pub(crate) alarms: Dispatcher,
    pub(crate) interlocks: safe_yolo_alarms::Interlocks,
    pub(crate) outputs: OutputsHandle,
    pub(crate) metrics: Metrics,
    pub(crate) api_metrics: crate::metrics::ApiMetrics,
    pub(crate) control: Arc<dyn Control>,
    pub(crate) keys: JwtKeys,
    pub(crate) limiter: LoginLimiter,
    /// The budget of argon2id work (logins, password changes, new users).
    pub(crate) passwords: PasswordGate,
    pub(crate) rate: crate::ratelimit::RateLimiter,
    /// One backup at a time (each one takes disk space until it has been sent).
    pub(crate) backup_gate: Arc<tokio::sync::Semaphore>,
    /// A few event exports at a time (each one takes a temporary file).
    pub(crate) export_gate: Arc<tokio::sync::Semaphore>,
    pub(crate) tickets: Tickets,
    pub(crate) setup: SetupGate,
    pub(crate) certs: Arc<CertStore>,
    pub(crate) live: LiveHub,
    pub(crate) source_policy: safe_yolo_capture::SourcePolicy,
    /// Opens sources for the still preview (the daemon's factory: the sandbox).
    pub(crate) sources: safe_yolo_pipeline::SourceFactory,
    /// Camera discoveries and previews running at once.
    pub(crate) probe_gate: Arc<tokio::sync::Semaphore>,
    pub(crate) started: std::time::Instant,
    /// Bumped whenever a credential may have stopped being valid (logout, password
    /// change, user disabled or deleted, key revoked, JWT key rotated): open live
    /// streams re-check theirs at once.
    pub(crate) revocations: tokio::sync::watch::Sender<u64>,
    pub(crate) live_shutdown: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

impl Inner {
    /// Tells open streams to re-check their credentials.
    pub(crate) fn credentials_changed(&self) {
        self.revocations.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The open store, or 503 (`storage_unavailable`) naming why it is not open: the
    /// alarms go on without it, the routes that need it wait for it.
    pub(crate) fn store(&self) -> Result<StoreHandle, crate::error::HttpError> {
        self.storage
            .handle()
            .map_err(|e| crate::error::HttpError::store("the store", e))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The remote address of a request (set per connection by the server; tests set it).
pub fn peer<B>(req: &Request<B>) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

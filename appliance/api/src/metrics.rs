//! The API's own Prometheus metrics, registered in the daemon's registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use safe_yolo_telemetry::Metrics;

/// Counters and gauges of the API (cheap clones sharing the same values).
#[derive(Debug, Clone, Default)]
pub struct ApiMetrics {
    /// Failed logins (wrong password, unknown or disabled user).
    pub login_failures: Counter,
    /// Lockouts started (per user or per source).
    pub lockouts: Counter,
    /// Requests refused with 401.
    pub unauthorized: Counter,
    /// Requests refused with 403.
    pub forbidden: Counter,
    /// Requests refused with 429 by the request rate limit.
    pub rate_limited: Counter,
    /// Backups downloaded.
    pub backups: Counter,
    /// Open live views (WebSocket and MJPEG).
    pub live_viewers: Gauge,
    /// Live frames encoded to JPEG (one per frame per camera and quality).
    pub live_frames_encoded: Counter,
    /// Requests cut off at their deadline (`[api] request_timeout_s`).
    pub deadlines: Counter,
    /// Password checks refused with 503 because the hashing budget was spent.
    pub hash_busy: Counter,
    /// Live streams ended because their credential stopped being valid.
    pub streams_revoked: Counter,
}

impl ApiMetrics {
    /// Creates the metrics and registers them in `m`.
    pub fn register(m: &Metrics) -> Self {
        let a = Self::default();
        m.register(
            "api_login_failures",
            "Failed API logins",
            a.login_failures.clone(),
        );
        m.register("api_lockouts", "Login lockouts started", a.lockouts.clone());
        m.register(
            "api_unauthorized",
            "API requests refused with 401",
            a.unauthorized.clone(),
        );
        m.register(
            "api_forbidden",
            "API requests refused with 403",
            a.forbidden.clone(),
        );
        m.register(
            "api_rate_limited",
            "API requests refused with 429 by the request rate limit",
            a.rate_limited.clone(),
        );
        m.register(
            "api_backups",
            "Backups downloaded through the API",
            a.backups.clone(),
        );
        m.register(
            "api_live_viewers",
            "Open live views",
            a.live_viewers.clone(),
        );
        m.register(
            "api_live_frames_encoded",
            "Live frames encoded to JPEG",
            a.live_frames_encoded.clone(),
        );
        m.register(
            "api_deadlines",
            "API requests cut off at their deadline",
            a.deadlines.clone(),
        );
        m.register(
            "api_password_checks_busy",
            "Password checks refused with 503: the hashing budget was spent",
            a.hash_busy.clone(),
        );
        m.register(
            "api_streams_revoked",
            "Live streams ended because their credential stopped being valid",
            a.streams_revoked.clone(),
        );
        a
    }
}

/// Decrements a gauge when dropped (one open viewer).
#[derive(Debug)]
pub struct ViewerGuard(Gauge);

impl ViewerGuard {
    /// Counts one viewer until the guard is dropped.
    pub fn new(g: &Gauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

//! The API's settings: the `[api]` config section plus state paths and auth tuning.

use std::path::PathBuf;
use std::time::Duration;

use safe_yolo_config::ApiConfig;

use crate::auth::HashBudget;
use crate::ratelimit::RateLimit;

/// Authentication tuning; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct AuthTuning {
    /// Lifetime of an access JWT.
    pub access_ttl: Duration,
    /// Lifetime of a refresh session.
    pub session_ttl: Duration,
    /// Failed logins of one user within `failure_window` that lock the user.
    pub user_max_failures: u32,
    /// Failed logins from one address within `failure_window` that lock the address.
    pub source_max_failures: u32,
    /// Window in which failures are counted.
    pub failure_window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
    /// Lifetime of a WebSocket ticket.
    pub ticket_ttl: Duration,
    /// Argon2id memory cost in KiB (OWASP: 19 MiB with 2 passes).
    pub argon2_m_kib: u32,
    /// Argon2id passes.
    pub argon2_t: u32,
    /// Request rate limit per credential (and per source address for requests without
    /// a valid credential); over it the API answers 429 with `Retry-After`.
    pub rate_limit: RateLimit,
    /// How much argon2id work may run and wait at once.
    pub hashes: HashBudget,
}

impl Default for AuthTuning {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            user_max_failures: 5,
            source_max_failures: 20,
            failure_window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(5 * 60),
            ticket_ttl: Duration::from_secs(30),
            argon2_m_kib: 19 * 1024,
            argon2_t: 2,
            rate_limit: RateLimit::default(),
            hashes: HashBudget::default(),
        }
    }
}

/// Everything [`crate::serve`] needs to know besides its dependencies.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The validated `[api]` section.
    pub api: ApiConfig,
    /// State directory; the API keeps `api/` (JWT key, certificate) inside it.
    pub state_dir: PathBuf,
    /// Host names and addresses for the self-signed certificate.
    pub cert_names: Vec<String>,
    /// Authentication tuning.
    pub auth: AuthTuning,
    /// Firmware version shown by `/api/v1/system`.
    pub version: String,
    /// Model description shown by `/api/v1/system`.
    pub model: String,
    /// Largest accepted certificate upload body.
    pub max_cert_body_bytes: usize,
    /// Serve the embedded web UI (`[features] web_ui`); when false, `/` and
    /// `/ui/*` answer 404.
    pub web_ui: bool,
    /// Serve the live view (`[features] live_stream`); when false, the MJPEG
    /// stream, the WebSocket and its tickets answer 404.
    pub live_stream: bool,
    /// Root of the file system the update state (RAUC slot, version) is read
    /// from: `/` on a box; tests point it elsewhere.
    pub system_root: PathBuf,
    /// The config file copied into backups (`GET /api/v1/system/backup`); `None`
    /// leaves the configuration out of the backup.
    pub config_path: Option<PathBuf>,
    /// The box's name in download file names (backup, event export): the host name by
    /// default, reduced to `A-Z a-z 0-9 . _ -`.
    pub box_name: String,
    /// The Modbus server (`[integrations.modbus]`), for its register map.
    pub modbus: Option<safe_yolo_config::ModbusConfig>,
    /// The interlocks (`[[integrations.interlocks]]`), for the register map.
    pub interlocks: Vec<safe_yolo_config::InterlockConfig>,
}

/// Names for the self-signed certificate: `localhost`, the loopback addresses, the
/// box's host name (and `<name>.local`) and the bind address when it is specific.
pub fn default_cert_names(api: &ApiConfig) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        // A box without a host name reports "(none)": not a DNS name.
        let dns = h
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if dns && h != "localhost" {
            names.push(h.to_owned());
            if !h.contains('.') {
                names.push(format!("{h}.local"));
            }
        }
    }
    let ip = api.bind.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    names
}

/// The host name, or `box` when it is unknown.
pub fn default_box_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| file_name_safe(h.trim()))
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "box".to_owned())
}

/// Keeps `A-Z a-z 0-9 . _ -` of `s` (at most 64 characters), for file names and headers.
pub fn file_name_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect()
}

impl ApiSettings {
    /// Settings from the `[api]` section with default tuning.
    pub fn new(api: ApiConfig, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            cert_names: default_cert_names(&api),
            api,
            state_dir: state_dir.into(),
            auth: AuthTuning::default(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: String::new(),
            max_cert_body_bytes: 256 * 1024,
            web_ui: true,
            live_stream: true,
            system_root: PathBuf::from("/"),
            config_path: None,
            box_name: default_box_name(),
            modbus: None,
            interlocks: Vec::new(),
        }
    }

    /// The API's own state directory.
    pub fn api_dir(&self) -> PathBuf {
        self.state_dir.join("api")
    }
}

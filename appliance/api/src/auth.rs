//! Authentication: passwords (argon2id), access JWTs (HS256, per-box key), refresh
//! sessions, API keys, login throttling and lockout, and single-use WebSocket tickets.
//!
//! Revocation is immediate: every request re-reads the session (or key) and the user,
//! so a revoked session, a disabled user or a changed password stops working at once.
//! A session is bound to the password it was opened with: its id starts with a
//! fingerprint of the password hash, which a password change invalidates.
//!
//! Refresh tokens rotate (OAuth 2.0 Security BCP): every refresh spends the presented
//! token and hands out a new one; the session id, and so the access JWTs, stay the
//! same. A spent token presented again means one of its holders is a thief, so the
//! whole session is revoked (the newest token and every access JWT of the session stop
//! working) and an `auth.refresh_reuse` audit row is written. See [`RefreshToken`] for
//! how this is stored without changing the store's schema.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::{Mutex, RwLock};
use ring::rand::SecureRandom;
use safe_yolo_store::{Role, StoreHandle, now_ms};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::Semaphore;

use crate::error::{ApiError, HttpError};
use crate::settings::AuthTuning;
use crate::tls::write_private;

/// Name of the cookie that carries the access JWT for browsers.
pub const ACCESS_COOKIE: &str = "sy_access";
/// Prefix of API key tokens: `sy_<id>_<secret>`.
pub const KEY_PREFIX: &str = "sy_";

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access JWT of a login session.
    Session {
        /// The session id (a hash; not the refresh secret).
        sid: String,
    },
    /// An API key.
    ApiKey {
        /// The key's public id.
        id: String,
    },
    /// A redeemed single-use ticket, minted with another credential.
    Ticket {
        /// The credential the ticket was minted with: an open stream lives only
        /// as long as it stays valid.
        of: Box<Credential>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name, or `key:<id>` for API keys.
    pub actor: String,
    /// Current role (read from the store on every request).
    pub role: Role,
    /// The credential used.
    pub via: Credential,
    /// Remote address.
    pub source: IpAddr,
}

/// Orders roles: viewer < operator < admin.
pub fn rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    }
}

/// The name of a role as used on the wire.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], HttpError> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| {
        HttpError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the random number generator failed",
        )
    })?;
    Ok(b)
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fingerprint of a password hash, binding sessions and JWTs to the password.
pub fn password_version(password_hash: &str) -> String {
    sha256_hex(password_hash.as_bytes())[..16].to_owned()
}

// === passwords ===

/// Checks a new password against the policy.
pub fn check_password_policy(field: &'static str, pw: &str) -> Result<(), HttpError> {
    let n = pw.chars().count();
    if n < 12 {
        return Err(HttpError::invalid(
            field,
            "must have at least 12 characters",
        ));
    }
    if n > 128 {
        return Err(HttpError::invalid(
            field,
            "must have at most 128 characters",
        ));
    }
    Ok(())
}

/// Hashes a password with argon2id (on the blocking pool).
pub async fn hash_password(tuning: &AuthTuning, pw: String) -> Result<String, HttpError> {
    let params = argon2::Params::new(tuning.argon2_m_kib, tuning.argon2_t, 1, None)
        .map_err(|e| HttpError::internal("argon2 parameters", &e))?;
    let salt_bytes = random_bytes::<16>()?;
    tokio::task::spawn_blocking(move || {
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| HttpError::internal("password salt", &e))?;
        a.hash_password(pw.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HttpError::internal("password hashing", &e))
    })
    .await
    .map_err(|e| HttpError::internal("password hashing task", &e))?
}

/// Verifies a password against a PHC string (on the blocking pool).
fn verify_phc(pw: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(pw.as_bytes(), &h)
            .is_ok()
    })
}

/// The budget of password hashing: argon2id takes `argon2_m_kib` of memory and a
/// core for tens of milliseconds, so only `max_concurrent` hashes run at once, at
/// most `max_waiting` requests wait for one (each at most `max_wait`), and the rest
/// are answered 503 at once. A flood of logins therefore costs the box at most
/// `max_concurrent` x 19 MiB and `max_concurrent` cores, never gigabytes.
///
/// A login for a user that does not exist hashes nothing: it waits as long as a
/// real verification typically takes (the median of the recent ones), so the
/// answer's timing does not tell which names exist and the wait costs a timer,
/// not a core.
#[derive(Debug)]
pub struct PasswordGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
    /// Recent verification durations (µs), newest last, for the median.
    recent: Mutex<std::collections::VecDeque<u64>>,
}

/// Verification durations kept for the median an unknown user waits.
const RECENT_HASHES: usize = 15;

/// The budget of [`PasswordGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashBudget {
    /// Hashes running at once.
    pub max_concurrent: usize,
    /// Requests waiting for a hash slot; more are refused at once (503).
    pub max_waiting: usize,
    /// Longest wait for a slot before a 503.
    pub max_wait: Duration,
}

impl Default for HashBudget {
    fn default() -> Self {
        Self {
            max_concurrent: 2,
            max_waiting: 8,
            max_wait: Duration::from_secs(2),
        }
    }
}

fn busy() -> HttpError {
    HttpError {
        retry_after: Some(1),
        ..HttpError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many password checks at once; try again in 1 s",
        )
    }
}

impl PasswordGate {
    /// A gate with `budget` (a zero concurrency is taken as 1).
    pub fn new(budget: HashBudget) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(budget.max_concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting: budget.max_waiting,
            max_wait: budget.max_wait,
            recent: Mutex::new(std::collections::VecDeque::with_capacity(RECENT_HASHES)),
        }
    }

    /// A hashing slot, or 503 when the queue is full or the wait too long.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, HttpError> {
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        let got =
            tokio::time::timeout(self.max_wait, Arc::clone(&self.permits).acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy()),
        }
    }

    /// Hashes a new password within the budget.
    pub async fn hash(&self, tuning: &AuthTuning, pw: String) -> Result<String, HttpError> {
        let _slot = self.slot().await?;
        hash_password(tuning, pw).await
    }

    /// Verifies `pw` against `phc` within the budget; `phc = None` (no such user)
    /// waits the typical verification time instead of hashing.
    pub async fn verify(
        &self,
        tuning: &AuthTuning,
        pw: String,
        phc: Option<String>,
    ) -> Result<bool, HttpError> {
        let Some(phc) = phc else {
            match self.typical() {
                Some(t) => tokio::time::sleep(t).await,
                // Nothing measured yet: hash a throwaway password once, which also
                // gives the first measurement.
                None => {
                    let _slot = self.slot().await?;
                    let started = Instant::now();
                    hash_password(tuning, "not-a-user-password".into()).await?;
                    self.record(started.elapsed());
                }
            }
            return Ok(false);
        };
        let _slot = self.slot().await?;
        let started = Instant::now();
        let ok = tokio::task::spawn_blocking(move || verify_phc(&pw, &phc))
            .await
            .map_err(|e| HttpError::internal("password verification task", &e))?;
        self.record(started.elapsed());
        Ok(ok)
    }

    fn record(&self, took: Duration) {
        let mut r = self.recent.lock();
        if r.len() == RECENT_HASHES {
            r.pop_front();
        }
        r.push_back(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// The median of the recent verification times, once one was measured.
    fn typical(&self) -> Option<Duration> {
        let mut v: Vec<u64> = self.recent.lock().iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(Duration::from_micros(v[v.len() / 2]))
    }
}

// === JWT ===

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User name.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Password fingerprint at login.
    pub pwv: String,
    /// Issued at (Unix s).
    pub iat: u64,
    /// Expiry (Unix s).
    pub exp: u64,
    /// Always `access`.
    pub typ: String,
}

/// The per-box JWT signing key, kept in `<state>/api/jwt.key` (0600), never in config.
#[derive(Debug)]
pub struct JwtKeys {
    key: RwLock<Vec<u8>>,
    /// Bumped by every rotation: an open stream opened with a session ends when it
    /// changes, like the access token it was opened with.
    generation: std::sync::atomic::AtomicU64,
    path: PathBuf,
    /// Why the key found at start was replaced, if it was.
    replaced: Option<String>,
}

impl JwtKeys {
    /// Loads the key, creating it on first boot.
    pub fn load_or_create(api_dir: &Path) -> Result<Self, ApiError> {
        let path = api_dir.join("jwt.key");
        let io = |op, source| ApiError::Io {
            op,
            path: path.clone(),
            source,
        };
        // A key that cannot be used (unreadable, too short) is replaced, not fatal:
        // the management plane degrades (everyone logs in again), the alarms run on.
        let found = match std::fs::read(&path) {
            Ok(k) if k.len() >= 32 => Ok(Some(k)),
            Ok(k) => Err(format!(
                "{} holds {} bytes, fewer than 32",
                path.display(),
                k.len()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{} cannot be read: {e}", path.display())),
        };
        let mut replaced = None;
        let key = match found {
            Ok(Some(k)) => k,
            other => {
                if let Err(reason) = other {
                    tracing::error!(%reason, "the JWT signing key is replaced: every session ends");
                    let aside = path.with_extension("key.rejected");
                    if let Err(e) = std::fs::rename(&path, &aside) {
                        tracing::warn!(path = %aside.display(), error = %e, "cannot keep the rejected JWT key");
                    }
                    replaced = Some(reason);
                }
                let k = fresh_key().map_err(|_| ApiError::Random {
                    what: "the JWT key",
                })?;
                write_private(&path, &k).map_err(|e| io("write", e))?;
                tracing::info!(path = %path.display(), "generated a new JWT signing key");
                k
            }
        };
        Ok(Self {
            key: RwLock::new(key),
            generation: std::sync::atomic::AtomicU64::new(0),
            path,
            replaced,
        })
    }

    /// Why the key found at start was replaced by a fresh one (every session
    /// must end), if it was.
    pub fn replaced(&self) -> Option<&str> {
        self.replaced.as_deref()
    }

    /// Replaces the key: every access token issued so far stops working.
    pub fn rotate(&self) -> Result<(), HttpError> {
        let k = fresh_key()?;
        write_private(&self.path, &k)
            .map_err(|e| HttpError::internal("writing the JWT key", &e))?;
        *self.key.write() = k;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// How many times the key was rotated since start.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Signs an access token.
    pub fn issue(
        &self,
        sub: &str,
        sid: &str,
        pwv: &str,
        ttl: Duration,
    ) -> Result<(String, u64), HttpError> {
        let iat = now_ms() / 1000;
        let exp = iat + ttl.as_secs().max(1);
        let claims = Claims {
            sub: sub.to_owned(),
            sid: sid.to_owned(),
            pwv: pwv.to_owned(),
            iat,
            exp,
            typ: "access".into(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.key.read()),
        )
        .map_err(|e| HttpError::internal("signing a token", &e))?;
        Ok((token, exp))
    }

    /// Verifies signature (HS256 only; `none` and other algorithms are refused) and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, HttpError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.key.read()), &v)
                .map_err(|e| HttpError::unauthorized(format!("invalid access token: {e}")))?;
        if data.claims.typ != "access" {
            return Err(HttpError::unauthorized("not an access token"));
        }
        Ok(data.claims)
    }
}

fn fresh_key() -> Result<Vec<u8>, HttpError> {
    Ok(random_bytes::<32>()?.to_vec())
}

// === credentials on a request ===

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The bearer token (header) or the access cookie of a request.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(h) = headers.get(axum::http::header::AUTHORIZATION) {
        let s = h.to_str().ok()?;
        let (scheme, tok) = s.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(tok.trim());
    }
    cookie(headers, ACCESS_COOKIE)
}

/// Authenticates a request: an API key (`Bearer sy_<id>_<secret>`) or an access JWT
/// (header or cookie), checked against the store's current state.
pub async fn authenticate(
    store: &StoreHandle,
    keys: &JwtKeys,
    headers: &HeaderMap,
    source: IpAddr,
) -> Result<Principal, HttpError> {
    let token = presented_token(headers)
        .ok_or_else(|| HttpError::unauthorized("no credentials (Authorization: Bearer ...)"))?;
    if let Some(rest) = token.strip_prefix(KEY_PREFIX) {
        let (id, secret) = rest
            .split_once('_')
            .ok_or_else(|| HttpError::unauthorized("malformed API key"))?;
        let id = id.to_owned();
        let key = store
            .run(move |s| s.get_api_key(&id))
            .await
            .map_err(|e| HttpError::store("api key lookup", e))?
            .ok_or_else(|| HttpError::unauthorized("unknown API key"))?;
        if !ct_eq(
            sha256_hex(secret.as_bytes()).as_bytes(),
            key.key_hash.as_bytes(),
        ) {
            return Err(HttpError::unauthorized("wrong API key secret"));
        }
        if key.revoked {
            return Err(HttpError::unauthorized("API key revoked"));
        }
        if key.expires_at.is_some_and(|t| t <= now_ms()) {
            return Err(HttpError::unauthorized("API key expired"));
        }
        return Ok(Principal {
            actor: format!("key:{}", key.id),
            role: key.role,
            via: Credential::ApiKey { id: key.id },
            source,
        });
    }
    let claims = keys.verify(token)?;
    let (sid, sub) = (claims.sid.clone(), claims.sub.clone());
    let (session, user) = store
        .run(move |s| Ok((s.get_session(&sid)?, s.get_user(&sub)?)))
        .await
        .map_err(|e| HttpError::store("session lookup", e))?;
    let session = session.ok_or_else(|| HttpError::unauthorized("session not found"))?;
    if session.revoked || session.expires_at <= now_ms() || session.username != claims.sub {
        return Err(HttpError::unauthorized("session revoked or expired"));
    }
    let user = user.ok_or_else(|| HttpError::unauthorized("user no longer exists"))?;
    if user.disabled {
        return Err(HttpError::unauthorized("user disabled"));
    }
    if password_version(&user.password_hash) != claims.pwv {
        return Err(HttpError::unauthorized("password changed; log in again"));
    }
    Ok(Principal {
        actor: user.username,
        role: user.role,
        via: Credential::Session { sid: claims.sid },
        source,
    })
}

/// Whether `p`'s credential is still valid, checked against the store's current
/// state: the session not revoked or expired and its user enabled with the same
/// password, the API key not revoked or expired; for a ticket, the credential it
/// was minted with. Open live streams call this on every revocation and
/// periodically, so a logout, a disabled user, a changed password or a revoked key
/// ends them (`Err` says why).
pub async fn still_valid(store: &StoreHandle, p: &Principal) -> Result<(), HttpError> {
    let via = match &p.via {
        Credential::Ticket { of } => of.as_ref().clone(),
        other => other.clone(),
    };
    match via {
        Credential::Session { sid } => {
            let actor = p.actor.clone();
            let (session, user) = store
                .run(move |s| Ok((s.get_session(&sid)?, s.get_user(&actor)?)))
                .await
                .map_err(|e| HttpError::store("session lookup", e))?;
            let session = session.ok_or_else(|| HttpError::unauthorized("session ended"))?;
            if session.revoked || session.expires_at <= now_ms() {
                return Err(HttpError::unauthorized("session revoked or expired"));
            }
            let user = user.ok_or_else(|| HttpError::unauthorized("user no longer exists"))?;
            if user.disabled {
                return Err(HttpError::unauthorized("user disabled"));
            }
            if !session
                .id
                .starts_with(&format!("{}.", password_version(&user.password_hash)))
            {
                return Err(HttpError::unauthorized("password changed"));
            }
            Ok(())
        }
        Credential::ApiKey { id } => {
            let key = store
                .run(move |s| s.get_api_key(&id))
                .await
                .map_err(|e| HttpError::store("api key lookup", e))?
                .ok_or_else(|| HttpError::unauthorized("API key deleted"))?;
            if key.revoked {
                return Err(HttpError::unauthorized("API key revoked"));
            }
            if key.expires_at.is_some_and(|t| t <= now_ms()) {
                return Err(HttpError::unauthorized("API key expired"));
            }
            Ok(())
        }
        Credential::Ticket { .. } => Err(HttpError::unauthorized("ticket of a ticket")),
    }
}

/// Whether `p` was authenticated with a login session (directly or through a
/// ticket minted with one): such credentials end with a JWT key rotation.
pub fn session_based(p: &Principal) -> bool {
    match &p.via {
        Credential::Session { .. } => true,
        Credential::Ticket { of } => matches!(of.as_ref(), Credential::Session { .. }),
        Credential::ApiKey { .. } => false,
    }
}

/// A new refresh secret and the session id it maps to: `(token, session id)`.
/// The token is `<pwv>.<secret>`; the stored id is `<pwv>.<sha256(secret)>`.
///
/// This is the first token of a session. Each refresh rotates it (see
/// [`rotated_refresh`]); the session id (the JWTs' `sid`) stays the same.
pub fn new_refresh(pwv: &str) -> Result<(String, String), HttpError> {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let sid = format!("{pwv}.{}", sha256_hex(secret.as_bytes()));
    Ok((format!("{pwv}.{secret}"), sid))
}

/// The session id a first (never rotated) refresh token maps to.
pub fn refresh_sid(token: &str) -> Option<String> {
    let (pwv, secret) = token.split_once('.')?;
    Some(format!("{pwv}.{}", sha256_hex(secret.as_bytes())))
}

/// A refresh token as presented, mapped to the records it names.
///
/// Rotation keeps the store schema as it is: a session is one record keyed by its id
/// (`<pwv>.<hash>`, the JWTs' `sid`), and each rotated refresh token is one more
/// session record keyed `<session id>.<sha256(secret)>`. The current token is the
/// session's only unrevoked child record (or, before the first rotation, the session's
/// own first token while it has no child at all). Anything else that names a live
/// session is a token that was already used: the whole session is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshToken {
    /// `<pwv>.<secret>`: the token handed out at login.
    First {
        /// The session id.
        session: String,
    },
    /// `<session id>.<secret>`: a token handed out by a refresh.
    Rotated {
        /// The session id.
        session: String,
        /// The id of the token's own record.
        record: String,
    },
}

impl RefreshToken {
    /// Parses a presented token; `None` when it has neither shape.
    pub fn parse(token: &str) -> Option<Self> {
        let parts: Vec<&str> = token.split('.').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.len() <= 128
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !parts.iter().all(ok) {
            return None;
        }
        match parts.as_slice() {
            [_, _] => refresh_sid(token).map(|session| Self::First { session }),
            [pwv, hash, secret] => {
                let session = format!("{pwv}.{hash}");
                let record = format!("{session}.{}", sha256_hex(secret.as_bytes()));
                Some(Self::Rotated { session, record })
            }
            _ => None,
        }
    }

    /// The session the token belongs to.
    pub fn session(&self) -> &str {
        match self {
            Self::First { session } | Self::Rotated { session, .. } => session,
        }
    }
}

/// The next refresh token of `session`: `(token, id of its record)`.
pub fn rotated_refresh(session: &str) -> Result<(String, String), HttpError> {
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let record = format!("{session}.{}", sha256_hex(secret.as_bytes()));
    Ok((format!("{session}.{secret}"), record))
}

/// A new API key: `(token shown once, id, stored hash)`.
pub fn new_api_key() -> Result<(String, String, String), HttpError> {
    let id = hex::encode(random_bytes::<8>()?);
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let hash = sha256_hex(secret.as_bytes());
    Ok((format!("{KEY_PREFIX}{id}_{secret}"), id, hash))
}

// === throttling ===

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// Failed-login counters per user and per source address (IPv6 per /64, see
/// [`crate::ratelimit::source_key`]), with lockout.
///
/// An attempt is counted when it starts ([`LoginLimiter::attempt`]), before the
/// password is verified, and given back when it succeeds: attempts in flight at
/// the same time count too, so a burst gets at most `max_failures` guesses per
/// window, not one per request of the burst.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    users: Mutex<HashMap<String, Strikes>>,
    sources: Mutex<HashMap<IpAddr, Strikes>>,
}

/// Most tracked keys per map; once full, the entry whose window started first
/// (preferring ones not locked out) is dropped for a new one.
const LIMITER_CAP: usize = 10_000;

/// An admitted login attempt (already counted as a failure until it succeeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Attempt {
    /// Whether counting this attempt started a lockout of the user or the source
    /// (the audit records it if the attempt fails).
    pub starts_lockout: bool,
}

impl LoginLimiter {
    /// `Err(seconds)` while the user or the source is locked out.
    pub fn check(&self, user: &str, source: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let source = crate::ratelimit::source_key(source);
        let left = |s: Option<&Strikes>| {
            s.and_then(|s| s.locked_until)
                .filter(|t| *t > now)
                .map(|t| (t - now).as_secs().max(1))
        };
        if let Some(s) = left(self.users.lock().get(user)) {
            return Err(s);
        }
        if let Some(s) = left(self.sources.lock().get(&source)) {
            return Err(s);
        }
        Ok(())
    }

    /// Admits an attempt for `user` from `source` and counts it as a failure at
    /// once; `Err(seconds)` while either is locked out. Call
    /// [`LoginLimiter::succeed`] when the password was right.
    pub fn attempt(&self, tuning: &AuthTuning, user: &str, source: IpAddr) -> Result<Attempt, u64> {
        let now = Instant::now();
        let source = crate::ratelimit::source_key(source);
        // Both maps are held together so that two attempts cannot both pass the
        // check before either is counted.
        let mut users = self.users.lock();
        let mut sources = self.sources.lock();
        let left = |s: Option<&Strikes>| {
            s.and_then(|s| s.locked_until)
                .filter(|t| *t > now)
                .map(|t| (t - now).as_secs().max(1))
        };
        if let Some(s) = left(users.get(user)) {
            return Err(s);
        }
        if let Some(s) = left(sources.get(&source)) {
            return Err(s);
        }
        let a = strike(
            &mut users,
            user.to_owned(),
            now,
            tuning,
            tuning.user_max_failures,
        );
        let b = strike(
            &mut sources,
            source,
            now,
            tuning,
            tuning.source_max_failures,
        );
        Ok(Attempt {
            starts_lockout: a || b,
        })
    }

    /// The attempt was not a guess (the password could not be checked, e.g. 503
    /// busy): gives back the strikes it was counted with.
    pub fn forget(&self, user: &str, source: IpAddr) {
        let source = crate::ratelimit::source_key(source);
        if let Some(s) = self.users.lock().get_mut(user) {
            s.count = s.count.saturating_sub(1);
        }
        if let Some(s) = self.sources.lock().get_mut(&source) {
            s.count = s.count.saturating_sub(1);
        }
    }

    /// The attempt succeeded: clears the user's failures and gives the source back
    /// the strike the attempt was counted with (lifting a lockout it started).
    pub fn succeed(&self, user: &str, source: IpAddr) {
        self.users.lock().remove(user);
        let source = crate::ratelimit::source_key(source);
        if let Some(s) = self.sources.lock().get_mut(&source) {
            s.count = s.count.saturating_sub(1);
            s.locked_until = None;
        }
    }
}

fn strike<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Strikes>,
    key: K,
    now: Instant,
    tuning: &AuthTuning,
    max: u32,
) -> bool {
    if map.len() >= LIMITER_CAP && !map.contains_key(&key) {
        map.retain(|_, s| {
            s.locked_until.is_some_and(|t| t > now) || now - s.window_start < tuning.failure_window
        });
        if map.len() >= LIMITER_CAP {
            // The oldest windows go first, lockouts last.
            crate::ratelimit::evict_oldest(map, |s| {
                (s.locked_until.is_some_and(|t| t > now), s.window_start)
            });
        }
    }
    let s = map.entry(key).or_insert(Strikes {
        count: 0,
        window_start: now,
        locked_until: None,
    });
    if s.locked_until.is_some_and(|t| t <= now) || now - s.window_start >= tuning.failure_window {
        *s = Strikes {
            count: 0,
            window_start: now,
            locked_until: None,
        };
    }
    s.count += 1;
    if s.count >= max.max(1) && s.locked_until.is_none() {
        s.locked_until = Some(now + tuning.lockout);
        return true;
    }
    false
}

// === WebSocket tickets ===

#[derive(Debug, Clone)]
struct TicketEntry {
    actor: String,
    role: Role,
    via: Credential,
    expires: Instant,
}

/// Single-use, short-lived tickets that authorise one WebSocket upgrade.
#[derive(Debug, Default)]
pub struct Tickets {
    map: Mutex<HashMap<String, TicketEntry>>,
}

impl Tickets {
    /// Mints a ticket for `p`, valid for `ttl`.
    pub fn mint(&self, p: &Principal, ttl: Duration) -> Result<String, HttpError> {
        let t = URL_SAFE_NO_PAD.encode(random_bytes::<24>()?);
        let now = Instant::now();
        let mut map = self.map.lock();
        map.retain(|_, e| e.expires > now);
        if map.len() >= LIMITER_CAP {
            return Err(HttpError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_tickets",
                "too many outstanding tickets",
            ));
        }
        map.insert(
            t.clone(),
            TicketEntry {
                actor: p.actor.clone(),
                role: p.role,
                via: p.via.clone(),
                expires: now + ttl,
            },
        );
        Ok(t)
    }

    /// Redeems a ticket (once).
    pub fn redeem(&self, ticket: &str, source: IpAddr) -> Option<Principal> {
        let e = self.map.lock().remove(ticket)?;
        (e.expires > Instant::now()).then_some(Principal {
            actor: e.actor,
            role: e.role,
            via: match e.via {
                // A ticket minted with a ticket is still the original credential.
                Credential::Ticket { of } => Credential::Ticket { of },
                other => Credential::Ticket {
                    of: Box::new(other),
                },
            },
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_jwt_key_is_replaced_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // First boot: a fresh key, nothing replaced.
        let first = JwtKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(first.replaced(), None);
        let good = std::fs::read(dir.path().join("jwt.key")).unwrap();
        assert!(good.len() >= 32);
        // The same key is loaded again.
        let again = JwtKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(again.replaced(), None);
        assert_eq!(*again.key.read(), good);
        // A truncated key (an interrupted write) is set aside and replaced.
        std::fs::write(dir.path().join("jwt.key"), b"short").unwrap();
        let replaced = JwtKeys::load_or_create(dir.path()).unwrap();
        let why = replaced.replaced().unwrap_or_default();
        assert!(why.contains("fewer than 32"), "{why}");
        assert_eq!(
            std::fs::read(dir.path().join("jwt.key.rejected")).unwrap(),
            b"short"
        );
        let fresh = std::fs::read(dir.path().join("jwt.key")).unwrap();
        assert!(fresh.len() >= 32 && fresh != good);
    }

    #[test]
    fn lockout_triggers_at_the_limit_and_expires() {
        let t = AuthTuning {
            user_max_failures: 3,
            lockout: Duration::from_millis(50),
            ..AuthTuning::default()
        };
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(!l.attempt(&t, "a", ip).unwrap().starts_lockout);
        assert!(!l.attempt(&t, "a", ip).unwrap().starts_lockout);
        assert!(l.check("a", ip).is_ok());
        assert!(l.attempt(&t, "a", ip).unwrap().starts_lockout);
        assert!(l.check("a", ip).is_err());
        assert!(l.attempt(&t, "a", ip).is_err());
        assert!(l.check("b", ip).is_ok());
        #[allow(clippy::disallowed_methods, reason = "plain unit test thread")]
        std::thread::sleep(Duration::from_millis(80));
        assert!(l.check("a", ip).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_before_their_password_is_checked() {
        let t = AuthTuning {
            user_max_failures: 5,
            source_max_failures: 1000,
            ..AuthTuning::default()
        };
        let l = LoginLimiter::default();
        // A burst of 100 concurrent attempts, none finished yet: only 5 are admitted.
        let admitted = (0..100u8)
            .filter(|i| l.attempt(&t, "admin", IpAddr::from([10, 0, 0, *i])).is_ok())
            .count();
        assert_eq!(admitted, 5);
        // A success gives the source its strike back and clears the user.
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..4 {
            let _ = l.attempt(&t, "a", ip).unwrap();
        }
        let _ = l.attempt(&t, "a", ip).unwrap();
        assert!(l.check("a", ip).is_err());
        l.succeed("a", ip);
        assert!(l.check("a", ip).is_ok());
    }

    #[test]
    fn a_full_limiter_evicts_the_oldest_and_keeps_lockouts() {
        let t = AuthTuning {
            user_max_failures: 1,
            source_max_failures: 1_000_000,
            ..AuthTuning::default()
        };
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _ = l.attempt(&t, "victim", ip).unwrap();
        assert!(l.check("victim", ip).is_err());
        for i in 0..(LIMITER_CAP + 50) {
            let _ = l.attempt(&t, &format!("u{i}"), ip);
        }
        assert!(l.users.lock().len() <= LIMITER_CAP);
        // Every entry is locked here (max 1), so the oldest went first; the
        // newest lockouts stay: the map is never reset wholesale.
        assert!(l.check(&format!("u{}", LIMITER_CAP + 49), ip).is_err());
    }

    #[test]
    fn refresh_tokens_map_to_their_session() {
        let (tok, sid) = new_refresh("abcd").unwrap();
        assert_eq!(refresh_sid(&tok).unwrap(), sid);
        assert!(!sid.contains(tok.split_once('.').unwrap().1));
        assert_eq!(
            RefreshToken::parse(&tok),
            Some(RefreshToken::First {
                session: sid.clone()
            })
        );
        let (next, record) = rotated_refresh(&sid).unwrap();
        assert!(record.starts_with(&format!("{sid}.")));
        assert_eq!(
            RefreshToken::parse(&next),
            Some(RefreshToken::Rotated {
                session: sid.clone(),
                record: record.clone()
            })
        );
        let secret = next.rsplit_once('.').unwrap().1;
        assert!(!record.contains(secret), "only the secret's hash is stored");
        for bad in ["", "abc", "a..b", "a.b.c.d", "a.b/c", ".a", "a b.c"] {
            assert_eq!(RefreshToken::parse(bad), None, "{bad:?}");
        }
    }
}

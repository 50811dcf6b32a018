//! Setup, login, refresh, logout, password change.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use safe_yolo_store::{AuditResult, NewAudit, Role, Session, StoreError, User, now_ms};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::auth::{
    ACCESS_COOKIE, Credential, Principal, RefreshToken, check_password_policy, new_refresh,
    password_version, role_name, rotated_refresh,
};
use crate::body::ValidJson;
use crate::error::HttpError;
use crate::handlers::check_username;
use crate::routes::Source;
use crate::state::AppState;

/// First-boot setup request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetupBody {
    username: String,
    password: String,
    setup_token: Option<String>,
}

pub(crate) async fn setup(
    State(s): State<AppState>,
    Extension(Source(ip)): Extension<Source>,
    ValidJson(b): ValidJson<SetupBody>,
) -> Result<Response, HttpError> {
    let _guard = s.setup.lock.lock().await;
    let users = s
        .store()?
        .run(|st| st.list_users())
        .await
        .map_err(|e| HttpError::store("listing users", e))?;
    if !users.is_empty() {
        return Err(HttpError::conflict("setup is already done: a user exists"));
    }
    let from_network = s.settings.api.setup_networks.iter().any(|n| n.contains(ip));
    let token_ok = {
        let t = s.setup.token.lock();
        match (t.as_deref(), b.setup_token.as_deref()) {
            (Some(expected), Some(given)) => {
                expected.len() == given.len()
                    && expected
                        .bytes()
                        .zip(given.bytes())
                        .fold(0u8, |a, (x, y)| a | (x ^ y))
                        == 0
            }
            _ => false,
        }
    };
    if !from_network && !token_ok {
        return Err(HttpError::forbidden(
            "setup is allowed only from the setup networks or with the setup token from the journal",
        ));
    }
    check_username("username", &b.username)?;
    check_password_policy("password", &b.password)?;
    let hash = s.passwords.hash(&s.settings.auth, b.password).await?;
    let user = User {
        username: b.username.clone(),
        password_hash: hash,
        role: Role::Admin,
        created_at: now_ms(),
        disabled: false,
    };
    let row = NewAudit {
        at: now_ms(),
        actor: b.username.clone(),
        role: Some(Role::Admin),
        source: Some(ip.to_string()),
        action: "setup.create_admin".into(),
        target: format!("user/{}", b.username),
        before: None,
        after: Some(format!("admin {}", b.username)),
        result: AuditResult::Ok,
    };
    s.store()?
        .transaction(move |t| {
            t.create_user(&user)?;
            t.append_audit(row)
        })
        .await
        .map_err(|e| HttpError::store("creating the first admin", e))?;
    *s.setup.token.lock() = None;
    tracing::info!(username = %b.username, source = %ip, "first admin created");
    Ok((
        StatusCode::CREATED,
        axum::Json(Account {
            username: b.username,
            role: role_name(Role::Admin),
        }),
    )
        .into_response())
}

/// Login request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    username: String,
    password: String,
}

/// An account: who was created or who is logged in.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Account {
    /// Login name.
    username: String,
    /// `admin`, `operator` or `viewer`.
    role: &'static str,
}

/// A login's or a refresh's answer (the access token is also set as a cookie).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Tokens {
    /// The access JWT, for `Authorization: Bearer`.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// When the access token expires, Unix seconds.
    expires_at: u64,
    /// Login name.
    username: String,
    /// `admin`, `operator` or `viewer`.
    role: &'static str,
    /// The refresh token: single use, exchanged at `/api/v1/auth/refresh`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// The caller's identity.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Identity {
    /// User name or API key id.
    actor: String,
    /// `admin`, `operator` or `viewer`.
    role: &'static str,
    /// `session`, `api_key` or `ticket`.
    via: &'static str,
}

fn token_response(
    s: &AppState,
    user: &User,
    sid: &str,
    refresh: Option<String>,
) -> Result<Response, HttpError> {
    let pwv = password_version(&user.password_hash);
    let (access, exp) = s
        .keys
        .issue(&user.username, sid, &pwv, s.settings.auth.access_ttl)?;
    let cookie = format!(
        "{ACCESS_COOKIE}={access}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        s.settings.auth.access_ttl.as_secs()
    );
    let body = Tokens {
        access_token: access,
        token_type: "Bearer",
        expires_at: exp,
        username: user.username.clone(),
        role: role_name(user.role),
        refresh_token: refresh,
    };
    let mut resp = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

fn locked(secs: u64) -> HttpError {
    HttpError {
        retry_after: Some(secs),
        ..HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked_out",
            format!("too many failed logins; try again in {secs} s"),
        )
    }
}

pub(crate) async fn login(
    State(s): State<AppState>,
    Extension(Source(ip)): Extension<Source>,
    ValidJson(b): ValidJson<LoginBody>,
) -> Result<Response, HttpError> {
    // A name no account can have is refused before it costs a hash, a limiter
    // entry or an audit row.
    check_username("username", &b.username)?;
    let attempt = s
        .limiter
        .attempt(&s.settings.auth, &b.username, ip)
        .map_err(locked)?;
    let name = b.username.clone();
    let user = match s.store() {
        Ok(store) => store
            .run(move |st| st.get_user(&name))
            .await
            .map_err(|e| HttpError::store("user lookup", e)),
        Err(e) => Err(e),
    };
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            s.limiter.forget(&b.username, ip);
            return Err(e);
        }
    };
    let ok = match s
        .passwords
        .verify(
            &s.settings.auth,
            b.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await
    {
        Ok(ok) => ok,
        Err(busy) => {
            s.api_metrics.hash_busy.inc();
            s.limiter.forget(&b.username, ip);
            return Err(busy);
        }
    };
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            s.api_metrics.login_failures.inc();
            if attempt.starts_lockout {
                s.api_metrics.lockouts.inc();
                tracing::warn!(username = %b.username, source = %ip, "login lockout started");
                let row = NewAudit {
                    at: now_ms(),
                    actor: "system".into(),
                    role: None,
                    source: Some(ip.to_string()),
                    action: "auth.lockout".into(),
                    target: format!("user/{}", b.username),
                    before: None,
                    after: Some(format!(
                        "locked for {} s",
                        s.settings.auth.lockout.as_secs()
                    )),
                    result: AuditResult::Ok,
                };
                if let Err(e) = s.store()?.transaction(move |t| t.append_audit(row)).await {
                    tracing::error!(error = %e, "cannot record a lockout in the audit log");
                }
            }
            return Err(HttpError::unauthorized("invalid user name or password"));
        }
    };
    s.limiter.succeed(&user.username, ip);
    let pwv = password_version(&user.password_hash);
    let (refresh, sid) = new_refresh(&pwv)?;
    let now = now_ms();
    let session = Session {
        id: sid.clone(),
        username: user.username.clone(),
        created_at: now,
        expires_at: now
            + u64::try_from(s.settings.auth.session_ttl.as_millis()).unwrap_or(u64::MAX / 2),
        revoked: false,
    };
    let p = Principal {
        actor: user.username.clone(),
        role: user.role,
        via: Credential::Session { sid: sid.clone() },
        source: ip,
    };
    let row = audit::row(
        &p,
        "auth.login",
        format!("user/{}", user.username),
        None,
        Some("session opened".into()),
    );
    s.store()?
        .transaction(move |t| {
            t.put_session(&session)?;
            t.append_audit(row)
        })
        .await
        .map_err(|e| HttpError::store("opening a session", e))?;
    token_response(&s, &user, &sid, Some(refresh))
}

/// Refresh request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

/// What a refresh found, decided inside one store transaction so that two concurrent
/// uses of the same token cannot both succeed.
enum Refreshed {
    /// No such session.
    Unknown,
    /// The session was revoked or has expired.
    Ended,
    /// The user is gone, disabled, or changed its password.
    UserInvalid,
    /// The token was already used: the session has just been revoked.
    Reused { username: String, revoked: usize },
    /// The token was current; its successor is stored.
    Rotated(User),
}

pub(crate) async fn refresh(
    State(s): State<AppState>,
    Extension(Source(ip)): Extension<Source>,
    ValidJson(b): ValidJson<RefreshBody>,
) -> Result<Response, HttpError> {
    let presented = RefreshToken::parse(&b.refresh_token)
        .ok_or_else(|| HttpError::unauthorized("malformed refresh token"))?;
    let sid = presented.session().to_owned();
    let (next_token, next_record) = rotated_refresh(&sid)?;
    let now = now_ms();
    let family = sid.clone();
    let outcome = s
        .store()?
        .transaction(move |t| {
            let Some(session) = t.get_session(&family)? else {
                return Ok(Refreshed::Unknown);
            };
            if session.revoked || session.expires_at <= now {
                return Ok(Refreshed::Ended);
            }
            let user = match t.get_user(&session.username)? {
                Some(u)
                    if !u.disabled
                        && family
                            .starts_with(&format!("{}.", password_version(&u.password_hash))) =>
                {
                    u
                }
                _ => return Ok(Refreshed::UserInvalid),
            };
            let current = match &presented {
                RefreshToken::First { .. } => t.session_children(&family)?.is_empty(),
                RefreshToken::Rotated { record, .. } => {
                    t.get_session(record)?.is_some_and(|r| !r.revoked)
                }
            };
            if !current {
                // A used token came back: whoever holds the newest one may be a thief,
                // and so may the caller. End the session for both.
                let revoked = t.revoke_session_family(&family)?;
                t.append_audit(NewAudit {
                    at: now,
                    actor: "system".into(),
                    role: None,
                    source: Some(ip.to_string()),
                    action: "auth.refresh_reuse".into(),
                    target: format!("user/{}", user.username),
                    before: None,
                    after: Some(format!(
                        "an already used refresh token was presented; session revoked ({revoked} records)"
                    )),
                    result: AuditResult::Ok,
                })?;
                return Ok(Refreshed::Reused {
                    username: user.username,
                    revoked,
                });
            }
            if let RefreshToken::Rotated { record, .. } = &presented {
                t.revoke_session(record)?;
            }
            t.put_session(&Session {
                id: next_record,
                username: user.username.clone(),
                created_at: now,
                expires_at: session.expires_at,
                revoked: false,
            })?;
            Ok(Refreshed::Rotated(user))
        })
        .await
        .map_err(|e| HttpError::store("refreshing a session", e))?;
    match outcome {
        Refreshed::Unknown => Err(HttpError::unauthorized("unknown refresh token")),
        Refreshed::Ended => Err(HttpError::unauthorized("session revoked or expired")),
        Refreshed::UserInvalid => Err(HttpError::unauthorized("user disabled or password changed")),
        Refreshed::Reused { username, revoked } => {
            tracing::warn!(%username, source = %ip, revoked, "refresh token reuse: session revoked");
            s.credentials_changed();
            Err(HttpError::unauthorized(
                "refresh token already used; the session has been revoked, log in again",
            ))
        }
        Refreshed::Rotated(user) => token_response(&s, &user, &sid, Some(next_token)),
    }
}

pub(crate) async fn me(Extension(p): Extension<Principal>) -> axum::Json<Identity> {
    let via = match &p.via {
        Credential::Session { .. } => "session",
        Credential::ApiKey { .. } => "api_key",
        Credential::Ticket { .. } => "ticket",
    };
    axum::Json(Identity {
        actor: p.actor,
        role: role_name(p.role),
        via,
    })
}

fn session_of(p: &Principal) -> Result<String, HttpError> {
    match &p.via {
        Credential::Session { sid } => Ok(sid.clone()),
        _ => Err(HttpError::bad_request(
            "credential",
            "only a login session can do this",
        )),
    }
}

pub(crate) async fn logout(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Response, HttpError> {
    let sid = session_of(&p)?;
    let row = audit::row(
        &p,
        "auth.logout",
        format!("user/{}", p.actor),
        None,
        Some("session revoked".into()),
    );
    s.store()?
        .transaction(move |t| {
            t.revoke_session_family(&sid)?;
            t.append_audit(row)
        })
        .await
        .map_err(|e| HttpError::store("revoking the session", e))?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "sy_access=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    s.credentials_changed();
    Ok(resp)
}

/// Password change request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    current_password: String,
    new_password: String,
}

pub(crate) async fn change_password(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ValidJson(b): ValidJson<PasswordBody>,
) -> Result<StatusCode, HttpError> {
    let sid = session_of(&p)?;
    check_password_policy("new_password", &b.new_password)?;
    // A wrong current password is a failed login: it counts towards the same
    // lockout, or a stolen session would be an unthrottled password oracle.
    let attempt = s
        .limiter
        .attempt(&s.settings.auth, &p.actor, p.source)
        .map_err(locked)?;
    let name = p.actor.clone();
    let user = s
        .store()?
        .run(move |st| st.get_user(&name))
        .await
        .map_err(|e| HttpError::store("user lookup", e))?
        .ok_or_else(|| HttpError::not_found("user"))?;
    let ok = match s
        .passwords
        .verify(
            &s.settings.auth,
            b.current_password,
            Some(user.password_hash.clone()),
        )
        .await
    {
        Ok(ok) => ok,
        Err(busy) => {
            s.api_metrics.hash_busy.inc();
            s.limiter.forget(&p.actor, p.source);
            return Err(busy);
        }
    };
    if !ok {
        s.api_metrics.login_failures.inc();
        if attempt.starts_lockout {
            s.api_metrics.lockouts.inc();
            tracing::warn!(username = %p.actor, source = %p.source, "lockout started by wrong current passwords");
            let row = audit::row(
                &p,
                "auth.lockout",
                format!("user/{}", p.actor),
                None,
                Some(format!(
                    "wrong current password; locked for {} s",
                    s.settings.auth.lockout.as_secs()
                )),
            );
            if let Err(e) = s.store()?.transaction(move |t| t.append_audit(row)).await {
                tracing::error!(error = %e, "cannot record a lockout in the audit log");
            }
        }
        return Err(HttpError::invalid("current_password", "is wrong"));
    }
    s.limiter.succeed(&p.actor, p.source);
    let hash = s.passwords.hash(&s.settings.auth, b.new_password).await?;
    let row = audit::row(
        &p,
        "user.password",
        format!("user/{}", p.actor),
        None,
        Some("password changed; sessions revoked".into()),
    );
    s.store()?
        .transaction(move |t| {
            let mut u = t
                .get_user(&user.username)?
                .ok_or_else(|| StoreError::NotFound {
                    what: "user",
                    key: user.username.clone(),
                })?;
            u.password_hash = hash;
            t.put_user(&u)?;
            // Every other session dies with the old password fingerprint; this one too.
            t.revoke_session_family(&sid)?;
            t.append_audit(row)
        })
        .await
        .map_err(|e| HttpError::store("changing the password", e))?;
    s.credentials_changed();
    Ok(StatusCode::NO_CONTENT)
}

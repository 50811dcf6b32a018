//! Users and API keys (admin only).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use safe_yolo_store::{ApiKey, Role, StoreError, User, now_ms};
use serde::{Deserialize, Serialize};

use crate::audit::{self, summary};
use crate::auth::{Principal, check_password_policy, new_api_key, role_name};
use crate::body::ValidJson;
use crate::error::HttpError;
use crate::handlers::check_username;
use crate::state::AppState;

/// The roles, for the OpenAPI schema.
#[derive(schemars::JsonSchema)]
#[schemars(rename = "Role", rename_all = "lowercase")]
#[allow(dead_code, reason = "only its schema is used")]
pub(crate) enum RoleSchema {
    Admin,
    Operator,
    Viewer,
}

/// A user as the API shows it (never the hash).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct UserView {
    username: String,
    role: &'static str,
    created_at: u64,
    disabled: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            username: u.username.clone(),
            role: role_name(u.role),
            created_at: u.created_at,
            disabled: u.disabled,
        }
    }
}

pub(crate) async fn list_users(
    State(s): State<AppState>,
) -> Result<axum::Json<Vec<UserView>>, HttpError> {
    let users = s
        .store()?
        .run(|st| st.list_users())
        .await
        .map_err(|e| HttpError::store("listing users", e))?;
    Ok(axum::Json(users.iter().map(UserView::from).collect()))
}

/// New user request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    username: String,
    password: String,
    #[schemars(with = "RoleSchema")]
    role: Role,
}

pub(crate) async fn create_user(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ValidJson(b): ValidJson<NewUserBody>,
) -> Result<(StatusCode, axum::Json<UserView>), HttpError> {
    check_username("username", &b.username)?;
    check_password_policy("password", &b.password)?;
    let user = User {
        username: b.username,
        password_hash: s.passwords.hash(&s.settings.auth, b.password).await?,
        role: b.role,
        created_at: now_ms(),
        disabled: false,
    };
    let view = UserView::from(&user);
    let row = audit::row(
        &p,
        "user.create",
        format!("user/{}", user.username),
        None,
        summary(&view),
    );
    s.store()?
        .transaction(move |t| {
            t.create_user(&user)?;
            t.append_audit(row)
        })
        .await
        .map_err(|e| HttpError::store("creating a user", e))?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// User change request; absent fields are unchanged.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserBody {
    #[schemars(with = "Option<RoleSchema>")]
    role: Option<Role>,
    disabled: Option<bool>,
    password: Option<String>,
}

/// Refuses, inside the change's own transaction, to leave the box without an
/// enabled admin: two admins demoting each other at the same time cannot both pass.
fn keep_an_admin(
    t: &safe_yolo_store::StoreTxn,
    name: &str,
    reason: &'static str,
) -> Result<(), StoreError> {
    let others = t
        .list_users()?
        .into_iter()
        .any(|u| u.role == Role::Admin && !u.disabled && u.username != name);
    if others {
        Ok(())
    } else {
        Err(StoreError::Refused { reason })
    }
}

pub(crate) async fn update_user(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    ValidJson(b): ValidJson<UpdateUserBody>,
) -> Result<axum::Json<UserView>, HttpError> {
    let hash = match b.password {
        Some(pw) => {
            check_password_policy("password", &pw)?;
            Some(s.passwords.hash(&s.settings.auth, pw).await?)
        }
        None => None,
    };
    let demotes = b.role.is_some_and(|r| r != Role::Admin) || b.disabled == Some(true);
    let p2 = p.clone();
    let user = s
        .store()?
        .transaction(move |t| {
            let mut u = t.get_user(&name)?.ok_or_else(|| StoreError::NotFound {
                what: "user",
                key: name.clone(),
            })?;
            let before = summary(&UserView::from(&u));
            if demotes && u.role == Role::Admin && !u.disabled {
                keep_an_admin(
                    t,
                    &name,
                    "the last enabled admin cannot be demoted or disabled",
                )?;
            }
            if let Some(r) = b.role {
                u.role = r;
            }
            if let Some(d) = b.disabled {
                u.disabled = d;
            }
            let pw = hash.is_some();
            if let Some(h) = hash {
                // The new hash changes the password fingerprint: the user's sessions end.
                u.password_hash = h;
            }
            t.put_user(&u)?;
            let mut after = summary(&UserView::from(&u));
            if pw {
                after = after.map(|a| format!("{a} (password reset)"));
            }
            t.append_audit(audit::row(
                &p2,
                "user.update",
                format!("user/{name}"),
                before,
                after,
            ))?;
            Ok(u)
        })
        .await
        .map_err(|e| HttpError::store("updating a user", e))?;
    s.credentials_changed();
    Ok(axum::Json(UserView::from(&user)))
}

pub(crate) async fn delete_user(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, HttpError> {
    if name == p.actor {
        return Err(HttpError::conflict("an admin cannot delete itself"));
    }
    s.store()?
        .transaction(move |t| {
            if t.get_user(&name)?
                .is_some_and(|u| u.role == Role::Admin && !u.disabled)
            {
                keep_an_admin(t, &name, "the last enabled admin cannot be deleted")?;
            }
            let u = t.delete_user(&name)?;
            t.append_audit(audit::row(
                &p,
                "user.delete",
                format!("user/{name}"),
                summary(&UserView::from(&u)),
                None,
            ))
        })
        .await
        .map_err(|e| HttpError::store("deleting a user", e))?;
    s.credentials_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// An API key as the API shows it (never the hash).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct KeyView {
    id: String,
    label: String,
    role: &'static str,
    created_at: u64,
    expires_at: Option<u64>,
    revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            label: k.label.clone(),
            role: role_name(k.role),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked: k.revoked,
            token: None,
        }
    }
}

pub(crate) async fn list_keys(
    State(s): State<AppState>,
) -> Result<axum::Json<Vec<KeyView>>, HttpError> {
    let keys = s
        .store()?
        .run(|st| st.list_api_keys())
        .await
        .map_err(|e| HttpError::store("listing keys", e))?;
    Ok(axum::Json(keys.iter().map(KeyView::from).collect()))
}

/// New API key request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyBody {
    label: String,
    #[schemars(with = "RoleSchema")]
    role: Role,
    /// Days until expiry, 1..=3650.
    expires_in_days: u32,
}

pub(crate) async fn create_key(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ValidJson(b): ValidJson<NewKeyBody>,
) -> Result<(StatusCode, axum::Json<KeyView>), HttpError> {
    if b.label.trim().is_empty() || b.label.len() > 128 {
        return Err(HttpError::invalid("label", "must be 1-128 characters"));
    }
    if !(1..=3650).contains(&b.expires_in_days) {
        return Err(HttpError::invalid(
            "expires_in_days",
            "must be between 1 and 3650",
        ));
    }
    let (token, id, hash) = new_api_key()?;
    let now = now_ms();
    let key = ApiKey {
        id,
        key_hash: hash,
        role: b.role,
        label: b.label,
        created_at: now,
        expires_at: Some(now + u64::from(b.expires_in_days) * 86_400_000),
        revoked: false,
    };
    let mut view = KeyView::from(&key);
    let row = audit::row(
        &p,
        "api_key.create",
        format!("api_key/{}", key.id),
        None,
        summary(&view),
    );
    s.store()?
        .transaction(move |t| {
            t.put_api_key(&key)?;
            t.append_audit(row)
        })
        .await
        .map_err(|e| HttpError::store("creating an API key", e))?;
    view.token = Some(token);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

pub(crate) async fn revoke_key(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    s.store()?
        .transaction(move |t| {
            let k = t.revoke_api_key(&id)?;
            t.append_audit(audit::row(
                &p,
                "api_key.revoke",
                format!("api_key/{id}"),
                None,
                summary(&KeyView::from(&k)),
            ))
        })
        .await
        .map_err(|e| HttpError::store("revoking an API key", e))?;
    s.credentials_changed();
    Ok(StatusCode::NO_CONTENT)
}

//! Errors: [`ApiError`] for starting the server, [`HttpError`] for responses.

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use safe_yolo_store::StoreError;

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A file in the state directory could not be read or written.
    #[error("{op} failed for {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key is unusable.
    #[error("TLS setup failed: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("the random number generator failed while creating {what}")]
    Random {
        /// What was being created.
        what: &'static str,
    },
    /// The store failed during start-up.
    #[error("store access failed during API start-up")]
    Store(#[source] StoreError),
}

/// An error response: a status, a machine-readable code, the offending field (if any)
/// and a message for humans. Serialised as `{"error": .., "field": .., "message": ..}`.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short code, e.g. `unauthorized`.
    pub code: &'static str,
    /// The request field at fault, if any.
    pub field: Option<String>,
    /// Human-readable reason.
    pub message: String,
    /// Seconds for a `Retry-After` header (throttling).
    pub retry_after: Option<u64>,
    /// Every problem of a refused settings edit, each with its key path.
    pub problems: Vec<crate::control::Problem>,
}

impl HttpError {
    /// A new error without a field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            field: None,
            message: message.into(),
            retry_after: None,
            problems: Vec::new(),
        }
    }

    /// 401: no or bad credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 429 with `Retry-After: secs`.
    pub fn too_many(code: &'static str, secs: u64, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }

    /// 422 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }

    /// 400 naming `field` (malformed query or path).
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
        }
    }

    /// 500; the detail goes to the log, not to the client.
    pub fn internal(context: &'static str, err: &dyn std::error::Error) -> Self {
        tracing::error!(error = %ErrorChain(err), context, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed"),
        )
    }

    /// Maps the running system's refusal of a settings edit to a response: 422 with
    /// every problem; `field` is the first problem's, as a field of the request's
    /// document (`doc.zone`) when it is one.
    pub fn control(e: crate::control::ControlError) -> Self {
        use crate::control::ControlError;
        match e {
            ControlError::Wiring { .. } => Self::invalid("id", e.to_string()),
            ControlError::Invalid { problems, object } => {
                let field = problems.first().map_or_else(
                    || "doc".to_owned(),
                    |p| match p.path.strip_prefix(&object) {
                        Some("") => "doc".to_owned(),
                        Some(rest) if rest.starts_with('.') => format!("doc{rest}"),
                        _ => p.path.clone(),
                    },
                );
                let message = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.path, p.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                Self {
                    problems,
                    ..Self::invalid(field, message)
                }
            }
            ControlError::Refused { .. } => Self::internal("applying the settings edit", &e),
        }
    }

    /// Maps a store error to a response.
    pub fn store(context: &'static str, e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, key } => Self::not_found(format!("{what} {key}")),
            StoreError::AlreadyExists { what, key } => {
                Self::conflict(format!("{what} {key} already exists"))
            }
            StoreError::VersionConflict { .. } | StoreError::BadTransition { .. } => {
                Self::conflict(e.to_string())
            }
            StoreError::Invalid { field, reason } => Self::invalid(field, reason),
            StoreError::Refused { reason } => Self::conflict(reason),
            StoreError::Unavailable { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the evidence store is not available (see GET /api/v1/health and the journal); \
                 the alarms and outputs keep working, events wait in memory, and this answers \
                 again once the store is back",
            ),
            other => Self::internal(context, &other),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "error": self.code,
            "field": self.field,
            "message": self.message,
        });
        if !self.problems.is_empty() {
            body["problems"] = serde_json::json!(self.problems);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub(crate) use safe_yolo_domain::ErrorChain;

//! Security headers on every response, and CORS with an explicit allow-list.
//!
//! CORS is strict: a request whose `Origin` is neither the API's own origin nor in the
//! allow-list is refused with 403 (preflight or not), so a foreign page cannot even
//! make a "simple" request with the browser's cookie.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::HttpError;

/// The strict Content-Security-Policy of the API and UI.
pub const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; \
                       style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// Adds HSTS, CSP, nosniff, frame and referrer headers to every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The CORS allow-list (exact origins such as `https://ops.example.com`).
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Allowed origins.
    pub origins: Arc<Vec<String>>,
}

fn same_origin(origin: &str, req: &Request) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    host.is_some_and(|h| origin.strip_prefix("https://") == Some(h))
}

/// Enforces the allow-list and answers preflights.
pub async fn cors(State(cors): State<Cors>, req: Request, next: Next) -> Response {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(req).await;
    };
    let allowed = cors.origins.contains(&origin);
    if !allowed {
        if same_origin(&origin, &req) {
            return next.run(req).await;
        }
        tracing::debug!(
            origin,
            "request from an origin outside the CORS allow-list refused"
        );
        return HttpError::forbidden(format!("origin {origin} is not allowed")).into_response();
    }
    let Ok(origin_value) = HeaderValue::from_str(&origin) else {
        return HttpError::forbidden("malformed origin").into_response();
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin_value);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
    resp
}

//! A JSON body extractor whose errors name the field: 413 over the size limit, 415
//! without a JSON content type, 400 for malformed JSON, 422 for unknown or invalid
//! fields.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// A JSON request body; the target type should use `deny_unknown_fields`.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
            ));
        }
        let deadline = req
            .extensions()
            .get::<BodyDeadline>()
            .map_or(DEFAULT_BODY_DEADLINE, |d| d.0);
        let read = axum::body::Bytes::from_request(req, state);
        let bytes = tokio::time::timeout(deadline, read)
            .await
            .map_err(|_| {
                HttpError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the body did not arrive within {} s",
                        deadline.as_secs_f32()
                    ),
                )
            })?
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    HttpError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the body is over the size limit",
                    )
                } else {
                    HttpError::new(e.status(), "bad_body", e.body_text())
                }
            })?;
        parse_json(&bytes).map(ValidJson)
    }
}

/// The longest a request body may take to arrive, set per request by the route
/// gate from `[api] body_timeout_s`; a slow client holding a connection permit with
/// a large `Content-Length` and no bytes is cut off after it (408).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub std::time::Duration);

/// The body deadline when the gate set none (tests driving a handler directly).
pub const DEFAULT_BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Deserialises `bytes`, naming the field on error. Anything but whitespace after
/// the JSON value is refused (400): one body, one value.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = json_value(de)?;
    de.end().map_err(|e| {
        HttpError::bad_request(
            ".",
            format!("malformed JSON: trailing bytes after the value ({e})"),
        )
    })?;
    Ok(value)
}

fn json_value<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, HttpError> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // serde_path_to_error's path already ends with an unknown field's name.
                let field = match msg
                    .strip_prefix("unknown field `")
                    .and_then(|r| r.split_once('`'))
                {
                    Some((name, _)) if path == "." => name.to_owned(),
                    _ => path,
                };
                HttpError::invalid(field, msg)
            }
            _ => HttpError::bad_request(path, format!("malformed JSON: {msg}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct T {
        a: u32,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct Inner {
        b: String,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<T>(br#"{"a":1,"zzz":2}"#).unwrap_err();
        assert_eq!((e.status.as_u16(), e.field.as_deref()), (422, Some("zzz")));
        let e = parse_json::<T>(br#"{"a":1,"inner":{"b":"x","c":1}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.c"));
        let e = parse_json::<T>(br#"{"a":"x"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("a"));
        let e = parse_json::<T>(br#"{"a":"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        // One body, one value: trailing bytes are refused, trailing whitespace is not.
        let e = parse_json::<T>(br#"{"a":1}{"a":2}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{}", e.message);
        assert!(e.message.contains("trailing"), "{}", e.message);
        assert!(parse_json::<T>(b"{\"a\":1} \n").is_ok());
    }
}

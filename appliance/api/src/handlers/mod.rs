//! Request handlers, one module per resource. Authorisation is done by the route
//! table's gate before any of these run.

pub(crate) mod auth;
pub(crate) mod cameras;
pub(crate) mod download;
pub(crate) mod events;
pub(crate) mod live;
pub(crate) mod settings;
pub(crate) mod system;
pub(crate) mod users;

use crate::error::HttpError;

/// Checks a user name: 1-64 characters of `a-z 0-9 . _ -`, starting alphanumerically.
pub(crate) fn check_username(field: &'static str, name: &str) -> Result<(), HttpError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(HttpError::invalid(
            field,
            "must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

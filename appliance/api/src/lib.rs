//! The appliance's hardened HTTPS API.
//!
//! - [`tls`]: rustls (ring provider), TLS 1.3 only unless 1.2 is enabled, a self-signed
//!   certificate generated on first boot, hot replacement of an uploaded certificate.
//! - [`auth`]: first-boot setup, argon2id passwords, short-lived JWTs with revocable
//!   refresh sessions (rotating refresh tokens with reuse detection), API keys, login
//!   throttling and lockout, WebSocket tickets.
//! - [`routes`]: the route table. Every route declares its minimum [`routes::Access`];
//!   one middleware enforces it, and the router is built only from the table.
//! - [`live`]: MJPEG and WebSocket live view, one JPEG encode per frame shared by all
//!   viewers of a camera; slow viewers lose frames, the pipeline never waits.
//! - [`openapi`]: the OpenAPI document, generated from the route table (request bodies
//!   from the handlers' types through schemars).
//! - [`metrics`]: the API's own Prometheus families (login failures, lockouts, 401/403,
//!   429 from the rate limit, backups, live viewers, live encodes), registered in the
//!   daemon's registry.
//! - [`ratelimit`]: token buckets per credential and per source address (429 with
//!   `Retry-After`), so a misbehaving client cannot starve the safety pipeline.
//! - [`ui`]: the local web UI, embedded in the binary (plain JS modules and CSS).
//!
//! Architecture invariants:
//! - No route exists outside [`routes::table`]; the integration test walks the table and
//!   proves 401/403/2xx for every entry.
//! - Every mutating route writes its audit row in the same store transaction as the
//!   change (see [`audit`]); a backup download, which changes nothing but takes
//!   evidence off the box, is audited before its first byte is sent.
//! - Nothing here blocks the reactor: argon2, store work, JPEG encoding, camera
//!   discovery and previews run on the blocking pool or a dedicated thread.
//! - A port in use does not stop [`serve`]: its listener is retried in the
//!   background ([`ApiServer::pending`]); configuration and state-directory
//!   problems are errors.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod body;
pub mod control;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
pub mod headers;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod state;
pub mod tls;
pub mod ui;
pub mod views;

pub use control::{Control, SettingsChange};
pub use error::{ApiError, HttpError};
pub use ratelimit::RateLimit;
pub use server::{ApiDeps, ApiServer, build_router, serve};
pub use settings::{ApiSettings, AuthTuning};

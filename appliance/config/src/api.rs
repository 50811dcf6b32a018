//! `[api]`: the HTTPS API's listener, TLS, CORS and limits.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use crate::check::Ctx;

/// `[api]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub bind: Option<String>,
    pub tls_min_version: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub http_redirect_bind: Option<String>,
    pub cors_origins: Option<Vec<String>>,
    pub setup_networks: Option<Vec<String>>,
    pub jpeg_quality: Option<i64>,
    pub max_body_kib: Option<i64>,
    pub rate_limit_per_s: Option<i64>,
    pub rate_limit_burst: Option<i64>,
    pub max_connections: Option<i64>,
    pub max_unanswered_connections: Option<i64>,
    pub redirect_max_connections: Option<i64>,
    pub body_timeout_s: Option<i64>,
    pub request_timeout_s: Option<i64>,
    pub max_password_hashes: Option<i64>,
}

/// TLS protocol floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    /// TLS 1.3 only (default).
    Tls13,
    /// TLS 1.2 allowed (explicit opt-in for old clients).
    Tls12,
}

/// An IP network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The HTTPS API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// HTTPS listen address.
    pub bind: SocketAddr,
    /// TLS floor.
    pub tls_min_version: TlsMinVersion,
    /// Certificate chain (PEM); generated on first boot when absent.
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// Plain-HTTP listener that only redirects to HTTPS.
    pub http_redirect_bind: Option<SocketAddr>,
    /// Origins allowed by CORS (none by default).
    pub cors_origins: Vec<String>,
    /// Networks from which first-boot setup is allowed without the token.
    pub setup_networks: Vec<IpNet>,
    /// Live-stream JPEG quality of cameras that deliver raw pixels (a JPEG
    /// camera's stream is its own JPEG).
    pub jpeg_quality: u8,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Sustained API requests per second allowed per credential (and per
    /// source address for unauthenticated attempts).
    pub rate_limit_per_s: u32,
    /// Requests allowed at once after an idle period.
    pub rate_limit_burst: u32,
    /// Most HTTPS connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Most HTTPS connections not answered yet (TLS handshake, request head or
    /// body still arriving); a new one evicts the one waiting longest.
    pub max_unanswered_connections: usize,
    /// Most plain-HTTP (redirect) connections served at once.
    pub redirect_max_connections: usize,
    /// Longest a request body may take to arrive (408 beyond).
    pub body_timeout: std::time::Duration,
    /// Longest a request may take before its response starts (503 beyond); live
    /// streams, backups and exports have their own budgets.
    pub request_timeout: std::time::Duration,
    /// Password hashes (argon2id, 19 MiB and a core each) run at once.
    pub max_password_hashes: usize,
}

pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    let (a, p) = s.split_once('/').unwrap_or((s, ""));
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = if p.is_empty() { max } else { p.parse().ok()? };
    (prefix <= max).then_some(IpNet { addr, prefix })
}

fn validate_origin(o: &str) -> Result<(), &'static str> {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty()
        || rest.contains('/')
        || rest.contains('*')
        || rest.contains(char::is_whitespace)
    {
        return Err("must be scheme://host[:port] with no path and no wildcard");
    }
    Ok(())
}

/// Checks `[api]`.
pub(crate) fn validate_api(ctx: &mut Ctx<'_>, raw: &RawApi) -> ApiConfig {
    let addr = |ctx: &mut Ctx<'_>, path: &str, v: &str| -> Option<SocketAddr> {
        v.parse()
            .map_err(|_| {
                ctx.bad(
                    path,
                    format!("{v:?} is not an address:port such as 0.0.0.0:8443"),
                )
            })
            .ok()
    };
    let bind = addr(
        ctx,
        "api.bind",
        raw.bind.as_deref().unwrap_or("0.0.0.0:8443"),
    )
    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443)));
    let http_redirect_bind = raw
        .http_redirect_bind
        .as_deref()
        .and_then(|v| addr(ctx, "api.http_redirect_bind", v));
    if http_redirect_bind.is_some_and(|r| r.port() == bind.port() && r.ip() == bind.ip()) {
        ctx.bad("api.http_redirect_bind", "must differ from api.bind");
    }
    let tls_min_version = ctx
        .choice(
            "api.tls_min_version",
            raw.tls_min_version.as_deref(),
            TlsMinVersion::Tls13,
            &[("1.3", TlsMinVersion::Tls13), ("1.2", TlsMinVersion::Tls12)],
        )
        .unwrap_or(TlsMinVersion::Tls13);
    if raw.cert.is_some() != raw.key.is_some() {
        ctx.bad("api.cert", "api.cert and api.key go together: give both or neither (a self-signed pair is generated when neither is given)");
    }
    let mut cors_origins = Vec::new();
    for (i, o) in raw
        .cors_origins
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match validate_origin(&o) {
            Ok(()) => cors_origins.push(o),
            Err(why) => ctx.bad(format!("api.cors_origins[{i}]"), format!("{o:?} {why}")),
        }
    }
    let mut setup_networks = Vec::new();
    for (i, n) in raw
        .setup_networks
        .clone()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match parse_net(n) {
            Some(net) => setup_networks.push(net),
            None => ctx.bad(
                format!("api.setup_networks[{i}]"),
                format!("{n:?} is not a network such as 192.168.1.0/24"),
            ),
        }
    }
    ApiConfig {
        bind,
        tls_min_version,
        cert: raw.cert.as_deref().map(|p| ctx.path(p)),
        key: raw.key.as_deref().map(|p| ctx.path(p)),
        http_redirect_bind,
        cors_origins,
        setup_networks,
        jpeg_quality: ctx
            .int_in::<u8>("api.jpeg_quality", raw.jpeg_quality, 75, 10, 100)
            .unwrap_or(75),
        max_body_bytes: ctx
            .int_in::<usize>("api.max_body_kib", raw.max_body_kib, 256, 4, 65_536)
            .unwrap_or(256)
            * 1024,
        rate_limit_per_s: ctx
            .int_in::<u32>("api.rate_limit_per_s", raw.rate_limit_per_s, 50, 1, 10_000)
            .unwrap_or(50),
        rate_limit_burst: ctx
            .int_in::<u32>(
                "api.rate_limit_burst",
                raw.rate_limit_burst,
                100,
                1,
                100_000,
            )
            .unwrap_or(100),
        max_connections: ctx
            .int_in::<usize>("api.max_connections", raw.max_connections, 256, 8, 4096)
            .unwrap_or(256),
        max_unanswered_connections: ctx
            .int_in::<usize>(
                "api.max_unanswered_connections",
                raw.max_unanswered_connections,
                64,
                1,
                4096,
            )
            .unwrap_or(64),
        redirect_max_connections: ctx
            .int_in::<usize>(
                "api.redirect_max_connections",
                raw.redirect_max_connections,
                64,
                1,
                1024,
            )
            .unwrap_or(64),
        body_timeout: std::time::Duration::from_secs(
            ctx.int_in::<u64>("api.body_timeout_s", raw.body_timeout_s, 10, 1, 300)
                .unwrap_or(10),
        ),
        request_timeout: std::time::Duration::from_secs(
            ctx.int_in::<u64>("api.request_timeout_s", raw.request_timeout_s, 30, 5, 600)
                .unwrap_or(30),
        ),
        max_password_hashes: ctx
            .int_in::<usize>("api.max_password_hashes", raw.max_password_hashes, 2, 1, 16)
            .unwrap_or(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets() {
        let n = parse_net("192.168.1.0/24").unwrap();
        assert!(n.contains("192.168.1.77".parse().unwrap()));
        assert!(!n.contains("192.168.2.1".parse().unwrap()));
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(
            parse_net("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(
            parse_net("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn origins() {
        assert!(validate_origin("https://scada.plant.local:8443").is_ok());
        assert!(validate_origin("https://*.plant").is_err());
        assert!(validate_origin("scada.plant").is_err());
        assert!(validate_origin("https://a/b").is_err());
    }
}

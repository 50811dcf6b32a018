//! `[integrations]`: where events go besides the outputs and the API: the durable
//! outbox's bound, the MQTT broker (`[integrations.mqtt]`) and signed webhooks
//! (`[[integrations.webhooks]]`).
//!
//! Secrets (the MQTT password) are kept in [`Secret`], whose `Debug` never shows them;
//! set them in the file (mode 0600) or through the environment
//! (`SAFEYOLO_INTEGRATIONS__MQTT__PASSWORD`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::Ctx;
use crate::modbus::{InterlockConfig, ModbusConfig, validate_interlocks, validate_modbus};
pub use crate::modbus::{RawInterlock, RawModbus};

/// `[integrations]` as written; without `box_name`, `public_url` and
/// `outbox_max_entries` (which only the file sets) it is also the API's document of
/// the integration settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "IntegrationsDoc")]
pub struct RawIntegrations {
    /// This box's name in topics and messages (configuration file only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_name: Option<String>,
    /// The API's address as the plant reaches it (configuration file only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Bound of the outbox (configuration file only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_max_entries: Option<i64>,
    /// The MQTT broker, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<RawMqtt>,
    /// Signed webhooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<RawWebhook>,
    /// The Modbus TCP server, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modbus: Option<RawModbus>,
    /// Machine states that arm rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interlocks: Vec<RawInterlock>,
}

impl RawIntegrations {
    /// The section's own problems, away from the rest of a file (rules naming its
    /// interlocks are checked with the whole configuration), each at its key path
    /// under `path` (`doc.mqtt.url` for `path = "doc"`).
    pub fn problems(&self, path: &str) -> Vec<crate::Problem> {
        crate::check::Ctx::standalone(|ctx| {
            validate_integrations(ctx, self);
        })
        .into_iter()
        .map(|p| crate::Problem {
            path: match p.path.strip_prefix("integrations") {
                Some(rest) => format!("{path}{rest}"),
                None => p.path,
            },
            reason: p.reason,
        })
        .collect()
    }
}

/// `[[integrations.webhooks]]` as written.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WebhookDoc")]
pub struct RawWebhook {
    /// Its id (the delivery status names it `webhook:<id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `https://host[:port]/path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The HMAC-SHA256 key, 16-1024 characters (write-only through the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A file (mode 0600) whose first line is the key, instead of `secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    /// CA certificate(s) (PEM) the receiver's certificate must chain to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Verify the receiver's certificate (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// How long one POST may take (1-60 s, default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Only these severities (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severities: Option<Vec<String>>,
    /// Only these rules (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
    /// Only these cameras (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cameras: Option<Vec<String>>,
}

impl std::fmt::Debug for RawWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWebhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// How long a webhook's signing secret may be, in bytes.
pub const WEBHOOK_SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=1024;

/// Where a webhook's signing secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the configuration.
    Inline(Secret),
    /// Read from this file (mode 0600, first line) when the webhook starts.
    File(PathBuf),
}

impl SecretSource {
    /// The secret: inline, or the first line of its file (trimmed). Blocks (reads the
    /// file): call it where blocking is allowed.
    pub fn load(&self) -> Result<String, std::io::Error> {
        match self {
            SecretSource::Inline(s) => Ok(s.expose().to_owned()),
            SecretSource::File(path) => Ok(std::fs::read_to_string(path)?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()),
        }
    }
}

/// Which events a webhook receives (each list empty: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookFilter {
    /// Only these severities.
    pub severities: Vec<safe_yolo_domain::Severity>,
    /// Only these rules.
    pub rules: Vec<safe_yolo_domain::RuleId>,
    /// Only these cameras.
    pub cameras: Vec<safe_yolo_domain::CameraId>,
}

/// A signed webhook: each event (raised, and at each change of state) POSTed as JSON.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Its id (the delivery status names it `webhook:<id>`).
    pub id: String,
    /// `https://host[:port]/path`.
    pub url: String,
    /// The HMAC-SHA256 key.
    pub secret: SecretSource,
    /// CA certificate(s) (PEM) the receiver's certificate must chain to; the system's
    /// roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Verify the receiver's certificate (default true; false only for a lab).
    pub tls_verify: bool,
    /// How long one POST may take.
    pub timeout: Duration,
    /// Which events it receives.
    pub filter: WebhookFilter,
}

/// `[integrations.mqtt]` as written.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "MqttDoc")]
pub struct RawMqtt {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The client id (default `safe-yolo-<box_name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Prefix of every topic (default `safe-yolo/<box_name>/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_prefix: Option<String>,
    /// User name, if the broker wants one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password (write-only through the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A file (mode 0600) whose first line is the password, instead of `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// CA certificate(s) (PEM) the broker's certificate must chain to (`mqtts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Client certificate (PEM), for brokers that ask for one (`mqtts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<String>,
    /// Client key (PEM) of `client_cert_file` (write-only through the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<String>,
    /// MQTT keep-alive (5-3600 s, default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_s: Option<f64>,
    /// Publish Home Assistant discovery documents (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_assistant: Option<bool>,
    /// Home Assistant's discovery prefix (default `homeassistant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_prefix: Option<String>,
}

impl std::fmt::Debug for RawMqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMqtt")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}

/// A secret from the configuration: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Plain MQTT or MQTT over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttTransport {
    /// `mqtt://` (port 1883 by default).
    Tcp,
    /// `mqtts://` (port 8883 by default), the server verified against `ca_file` or the
    /// system's roots.
    Tls,
}

/// The MQTT broker the events go to.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// `mqtt` or `mqtts`.
    pub transport: MqttTransport,
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The client id (default `safe-yolo-<box_name>`).
    pub client_id: String,
    /// Prefix of every topic, ending with `/` (default `safe-yolo/<box_name>/`).
    pub topic_prefix: String,
    /// User name and password, if the broker wants them.
    pub credentials: Option<(String, Option<SecretSource>)>,
    /// CA certificate(s) (PEM) the broker's certificate must chain to (`mqtts`); the
    /// system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for brokers that ask for one (`mqtts`).
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Home Assistant MQTT discovery: the discovery prefix (`homeassistant`) when on.
    pub home_assistant: Option<String>,
}

/// Where events go besides the outputs and the API.
#[derive(Debug, Clone)]
pub struct IntegrationsConfig {
    /// This box's name in topics and messages (default: the host name).
    pub box_name: Option<String>,
    /// The API's address as the plant reaches it (`https://box.plant:8443`), for the
    /// snapshot URLs in messages (a path alone when absent).
    pub public_url: Option<String>,
    /// Bound of the outbox (entries waiting for the slowest sink).
    pub outbox_max_entries: u64,
    /// The MQTT broker, if any.
    pub mqtt: Option<MqttConfig>,
    /// Signed webhooks.
    pub webhooks: Vec<WebhookConfig>,
    /// The Modbus TCP server, if any.
    pub modbus: Option<ModbusConfig>,
    /// Machine states that arm rules.
    pub interlocks: Vec<InterlockConfig>,
}

impl IntegrationsConfig {
    /// Whether any sink is configured.
    pub fn any(&self) -> bool {
        self.mqtt.is_some() || !self.webhooks.is_empty()
    }
}

/// A name fit for one MQTT topic level, a client id and a webhook's id (also a file
/// name): 1-64 of `a-z A-Z 0-9 - _ .`.
pub fn topic_word_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks `[integrations]`.
pub(crate) fn validate_integrations(
    ctx: &mut Ctx<'_>,
    raw: &RawIntegrations,
) -> IntegrationsConfig {
    let box_name = match raw.box_name.as_deref() {
        Some(n) if topic_word_ok(n) => Some(n.to_owned()),
        Some(n) => {
            ctx.bad(
                "integrations.box_name",
                format!("{n:?} must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.' (it is a topic level)"),
            );
            None
        }
        None => None,
    };
    let public_url = match raw.public_url.as_deref() {
        Some(u)
            if (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() <= 512
                && !u.contains(char::is_whitespace) =>
        {
            Some(u.trim_end_matches('/').to_owned())
        }
        Some(u) => {
            ctx.bad(
                "integrations.public_url",
                format!("{u:?} must be an http(s):// URL of at most 512 characters"),
            );
            None
        }
        None => None,
    };
    let outbox_max_entries = ctx
        .int_in::<u64>(
            "integrations.outbox_max_entries",
            raw.outbox_max_entries,
            10_000,
            100,
            1_000_000,
        )
        .unwrap_or(10_000);
    let name_for_defaults = box_name.clone().unwrap_or_else(|| "<host name>".into());
    let mqtt = raw
        .mqtt
        .as_ref()
        .and_then(|m| validate_mqtt(ctx, m, &name_for_defaults));
    let mut seen = std::collections::HashSet::new();
    let webhooks = raw
        .webhooks
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let hook = validate_webhook(ctx, &format!("integrations.webhooks[{i}]"), w)?;
            if !seen.insert(hook.id.clone()) {
                ctx.bad(
                    format!("integrations.webhooks[{i}].id"),
                    format!("{:?} is used twice", hook.id),
                );
                return None;
            }
            Some(hook)
        })
        .collect();
    let modbus = raw.modbus.as_ref().and_then(|m| validate_modbus(ctx, m));
    let interlocks = validate_interlocks(
        ctx,
        &raw.interlocks,
        raw.mqtt.is_some(),
        raw.modbus.is_some(),
    );
    IntegrationsConfig {
        box_name,
        public_url,
        outbox_max_entries,
        mqtt,
        webhooks,
        modbus,
        interlocks,
    }
}

fn validate_webhook(ctx: &mut Ctx<'_>, p: &str, raw: &RawWebhook) -> Option<WebhookConfig> {
    let start = ctx.problems.len();
    let id = match raw.id.as_deref() {
        Some(id) if topic_word_ok(id) => id.to_owned(),
        Some(id) => {
            ctx.bad(
                format!("{p}.id"),
                format!("{id:?} must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.'"),
            );
            String::new()
        }
        None => {
            ctx.bad(format!("{p}.id"), "is required");
            String::new()
        }
    };
    let url = match raw.url.as_deref() {
        None => {
            ctx.bad(format!("{p}.url"), "is required");
            String::new()
        }
        Some(u) => match u.parse::<http::Uri>() {
            Ok(uri)
                if uri.scheme_str() == Some("https")
                    && uri.host().is_some_and(|h| !h.is_empty())
                    && u.len() <= 2048 =>
            {
                u.to_owned()
            }
            Ok(_) => {
                ctx.bad(
                    format!("{p}.url"),
                    format!("{u:?} must be https://host[:port]/path (at most 2048 characters)"),
                );
                String::new()
            }
            Err(e) => {
                ctx.bad(format!("{p}.url"), format!("{u:?} is not a URL: {e}"));
                String::new()
            }
        },
    };
    let secret = match (&raw.secret, &raw.secret_file) {
        (Some(s), None) if WEBHOOK_SECRET_LEN.contains(&s.len()) => {
            Some(SecretSource::Inline(Secret(s.clone())))
        }
        (Some(_), None) => {
            ctx.bad(
                format!("{p}.secret"),
                format!(
                    "must be {}-{} characters",
                    WEBHOOK_SECRET_LEN.start(),
                    WEBHOOK_SECRET_LEN.end()
                ),
            );
            None
        }
        (None, Some(f)) if !f.trim().is_empty() => Some(SecretSource::File(ctx.path(f))),
        (None, Some(_)) => {
            ctx.bad(format!("{p}.secret_file"), "must not be empty");
            None
        }
        (Some(_), Some(_)) => {
            ctx.bad(
                format!("{p}.secret"),
                "give secret or secret_file, not both",
            );
            None
        }
        (None, None) => {
            ctx.bad(
                format!("{p}.secret"),
                "is required (or secret_file): every webhook is signed",
            );
            None
        }
    };
    let ca_file = match raw.ca_file.as_deref() {
        Some(f) if !f.trim().is_empty() => Some(ctx.path(f)),
        Some(_) => {
            ctx.bad(format!("{p}.ca_file"), "must not be empty");
            None
        }
        None => None,
    };
    let timeout = ctx
        .secs_in(&format!("{p}.timeout_s"), raw.timeout_s, 10.0, 1.0, 60.0)
        .unwrap_or(Duration::from_secs(10));
    let mut filter = WebhookFilter::default();
    for (i, s) in raw.severities.iter().flatten().enumerate() {
        if let Some(v) = ctx.named(
            &format!("{p}.severities[{i}]"),
            Some(s),
            safe_yolo_domain::Severity::Critical,
        ) {
            filter.severities.push(v);
        }
    }
    for (i, r) in raw.rules.iter().flatten().enumerate() {
        if let Some(v) = ctx.id(&format!("{p}.rules[{i}]"), r, safe_yolo_domain::RuleId::new) {
            filter.rules.push(v);
        }
    }
    for (i, c) in raw.cameras.iter().flatten().enumerate() {
        if let Some(v) = ctx.id(
            &format!("{p}.cameras[{i}]"),
            c,
            safe_yolo_domain::CameraId::new,
        ) {
            filter.cameras.push(v);
        }
    }
    if ctx.problems.len() > start {
        return None;
    }
    Some(WebhookConfig {
        id,
        url,
        secret: secret?,
        ca_file,
        tls_verify: raw.tls_verify.unwrap_or(true),
        timeout,
        filter,
    })
}

/// Splits `mqtt[s]://host[:port]`.
fn parse_url(url: &str) -> Result<(MqttTransport, String, u16), String> {
    let (transport, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (MqttTransport::Tcp, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (MqttTransport::Tls, r)
    } else {
        return Err(format!("{url:?} must start with mqtt:// or mqtts://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) || rest.is_empty() {
        return Err(format!(
            "{url:?} must be mqtt[s]://host[:port] (no path, no user: use username/password)"
        ));
    }
    let default_port = match transport {
        MqttTransport::Tcp => 1883,
        MqttTransport::Tls => 8883,
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !h.is_empty() => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{url:?}: port {p:?} is not 1-65535"))?;
            (h, port)
        }
        _ => (rest, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.len() > 253 {
        return Err(format!("{url:?} has no host"));
    }
    Ok((transport, host.to_owned(), port))
}

fn validate_mqtt(ctx: &mut Ctx<'_>, raw: &RawMqtt, box_name: &str) -> Option<MqttConfig> {
    let start = ctx.problems.len();
    let parsed = match raw.url.as_deref() {
        None => {
            ctx.bad("integrations.mqtt.url", "is required");
            None
        }
        Some(u) => match parse_url(u) {
            Ok(p) => Some(p),
            Err(why) => {
                ctx.bad("integrations.mqtt.url", why);
                None
            }
        },
    };
    let client_id = raw
        .client_id
        .clone()
        .unwrap_or_else(|| format!("safe-yolo-{box_name}"));
    if raw.client_id.is_some() && !topic_word_ok(&client_id) {
        ctx.bad(
            "integrations.mqtt.client_id",
            "must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.'",
        );
    }
    let mut topic_prefix = raw
        .topic_prefix
        .clone()
        .unwrap_or_else(|| format!("safe-yolo/{box_name}/"));
    if topic_prefix.contains(['+', '#', '\0']) || topic_prefix.len() > 200 {
        ctx.bad(
            "integrations.mqtt.topic_prefix",
            "must not hold the wildcards + or # and be at most 200 characters",
        );
    }
    if !topic_prefix.ends_with('/') {
        topic_prefix.push('/');
    }
    let password = match (&raw.password, &raw.password_file) {
        (Some(p), None) => Some(SecretSource::Inline(Secret(p.clone()))),
        (None, Some(f)) if !f.trim().is_empty() => Some(SecretSource::File(ctx.path(f))),
        (None, Some(_)) => {
            ctx.bad("integrations.mqtt.password_file", "must not be empty");
            None
        }
        (Some(_), Some(_)) => {
            ctx.bad(
                "integrations.mqtt.password",
                "give password or password_file, not both",
            );
            None
        }
        (None, None) => None,
    };
    let credentials = match (&raw.username, password) {
        (Some(u), p) if !u.is_empty() && u.len() <= 256 => Some((u.clone(), p)),
        (Some(_), _) => {
            ctx.bad("integrations.mqtt.username", "must be 1-256 characters");
            None
        }
        (None, Some(_)) => {
            ctx.bad("integrations.mqtt.password", "needs a username");
            None
        }
        (None, None) => None,
    };
    let tls = parsed
        .as_ref()
        .is_some_and(|(t, _, _)| *t == MqttTransport::Tls);
    let file = |ctx: &mut Ctx<'_>, key: &str, v: &Option<String>| -> Option<PathBuf> {
        let v = v.as_deref()?;
        if !tls {
            ctx.bad(
                format!("integrations.mqtt.{key}"),
                "is for mqtts:// only (the url is mqtt://)",
            );
            return None;
        }
        if v.trim().is_empty() {
            ctx.bad(format!("integrations.mqtt.{key}"), "must not be empty");
            return None;
        }
        Some(ctx.path(v))
    };
    let ca_file = file(ctx, "ca_file", &raw.ca_file);
    let cert = file(ctx, "client_cert_file", &raw.client_cert_file);
    let key = file(ctx, "client_key_file", &raw.client_key_file);
    let client_auth = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            ctx.bad(
                "integrations.mqtt.client_key_file",
                "is required with client_cert_file",
            );
            None
        }
        (None, Some(_)) => {
            ctx.bad(
                "integrations.mqtt.client_cert_file",
                "is required with client_key_file",
            );
            None
        }
    };
    let keep_alive = ctx
        .secs_in(
            "integrations.mqtt.keep_alive_s",
            raw.keep_alive_s,
            30.0,
            5.0,
            3600.0,
        )
        .unwrap_or(Duration::from_secs(30));
    let discovery_prefix = raw
        .discovery_prefix
        .clone()
        .unwrap_or_else(|| "homeassistant".to_owned());
    if !discovery_prefix.split('/').all(topic_word_ok) {
        ctx.bad(
            "integrations.mqtt.discovery_prefix",
            "must be topic levels of 1-64 of a-z, A-Z, 0-9, '-', '_', '.'",
        );
    }
    let home_assistant = raw
        .home_assistant
        .unwrap_or(false)
        .then_some(discovery_prefix);
    let (transport, host, port) = parsed?;
    if ctx.problems.len() > start {
        return None;
    }
    Some(MqttConfig {
        home_assistant,
        transport,
        host,
        port,
        client_id,
        topic_prefix,
        credentials,
        ca_file,
        client_auth,
        keep_alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{check, paths};

    fn mqtt(url: &str) -> RawIntegrations {
        RawIntegrations {
            mqtt: Some(RawMqtt {
                url: Some(url.into()),
                ..RawMqtt::default()
            }),
            ..RawIntegrations::default()
        }
    }

    #[test]
    fn urls_defaults_and_the_password_never_shown() {
        let mut raw = mqtt("mqtt://127.0.0.1");
        raw.box_name = Some("press-7".into());
        if let Some(m) = raw.mqtt.as_mut() {
            m.username = Some("box".into());
            m.password = Some("hunter2-very-secret".into());
        }
        let (c, p) = check(|ctx| validate_integrations(ctx, &raw));
        assert!(p.is_empty(), "{p:?}");
        let m = c.mqtt.unwrap();
        assert_eq!((m.host.as_str(), m.port), ("127.0.0.1", 1883));
        assert_eq!(m.topic_prefix, "safe-yolo/press-7/");
        assert_eq!(m.client_id, "safe-yolo-press-7");
        assert_eq!(c.outbox_max_entries, 10_000);
        let shown = format!("{m:?} {raw:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let (_, p) = check(|ctx| validate_integrations(ctx, &mqtt("mqtts://broker.plant:9999")));
        assert!(p.is_empty(), "{p:?}");
        let (c, _) = check(|ctx| validate_integrations(ctx, &mqtt("mqtts://broker.plant")));
        assert_eq!(
            c.mqtt.map(|m| (m.transport, m.port)),
            Some((MqttTransport::Tls, 8883))
        );
    }

    #[test]
    fn webhooks_are_checked_at_their_keys_and_their_secrets_hidden() {
        let hook = |f: fn(&mut RawWebhook)| {
            let mut w = RawWebhook {
                id: Some("pager".into()),
                url: Some("https://hooks.plant:9443/safety".into()),
                secret: Some("0123456789abcdef-secret".into()),
                ..RawWebhook::default()
            };
            f(&mut w);
            RawIntegrations {
                webhooks: vec![w],
                ..RawIntegrations::default()
            }
        };
        let raw = hook(|w| w.severities = Some(vec!["critical".into()]));
        let (c, p) = check(|ctx| validate_integrations(ctx, &raw));
        assert!(p.is_empty(), "{p:?}");
        let w = &c.webhooks[0];
        assert!(w.tls_verify);
        assert_eq!(w.filter.severities, [safe_yolo_domain::Severity::Critical]);
        assert!(!format!("{c:?} {raw:?}").contains("0123456789abcdef"));
        for (raw, key) in [
            (hook(|w| w.url = Some("http://hooks.plant/x".into())), "url"),
            (hook(|w| w.url = None), "url"),
            (hook(|w| w.secret = Some("short".into())), "secret"),
            (hook(|w| w.secret = None), "secret"),
            (hook(|w| w.secret_file = Some("s".into())), "secret"),
            (hook(|w| w.id = Some("a b".into())), "id"),
            (
                hook(|w| w.severities = Some(vec!["panic".into()])),
                "severities[0]",
            ),
            (
                hook(|w| w.rules = Some(vec!["Bad Rule".into()])),
                "rules[0]",
            ),
            (hook(|w| w.timeout_s = Some(0.0)), "timeout_s"),
        ] {
            let (c, p) = check(|ctx| validate_integrations(ctx, &raw));
            assert_eq!(
                paths(&p),
                [format!("integrations.webhooks[0].{key}").as_str()],
                "{raw:?}"
            );
            assert!(c.webhooks.is_empty());
        }
    }

    /// The whole file: the password from the environment, an unknown key refused
    /// at its path.
    #[test]
    fn the_password_comes_from_the_environment_and_unknown_keys_are_refused() {
        let text = "[detector]\nmodel = \"m/model.toml\"\n[integrations.mqtt]\nurl = \"mqtt://broker:1883\"\nusername = \"box\"\n";
        let env = [(
            "SAFEYOLO_INTEGRATIONS__MQTT__PASSWORD".to_owned(),
            "from-the-env-123".to_owned(),
        )];
        let problems = |r: Result<crate::Config, Vec<crate::Problem>>| match r {
            Ok(_) => Vec::new(),
            Err(p) => p
                .into_iter()
                .filter(|p| p.path.starts_with("integrations"))
                .collect(),
        };
        let c = crate::parse(text, std::path::Path::new("/"), env.clone());
        let m = match c {
            Ok(c) => c.integrations.mqtt,
            Err(p) => panic!("{p:?}"),
        };
        let password = m.and_then(|m| m.credentials).and_then(|(_, p)| p);
        assert_eq!(
            password.as_ref().and_then(|p| p.load().ok()).as_deref(),
            Some("from-the-env-123")
        );
        let p = problems(crate::parse(
            "[integrations.mqtt]\nurl = \"mqtt://b\"\nqos = 2\n",
            std::path::Path::new("/"),
            [],
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].path.starts_with("integrations.mqtt"), "{p:?}");
        assert!(p[0].reason.contains("qos"), "{p:?}");
    }

    #[test]
    fn every_mistake_is_named_at_its_key() {
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/path",
        ] {
            let (c, p) = check(|ctx| validate_integrations(ctx, &mqtt(bad)));
            assert_eq!(paths(&p), ["integrations.mqtt.url"], "{bad}");
            assert!(c.mqtt.is_none());
        }
        let mut raw = mqtt("mqtt://h");
        raw.box_name = Some("a/b".into());
        raw.outbox_max_entries = Some(5);
        if let Some(m) = raw.mqtt.as_mut() {
            m.password = Some("x".into());
            m.ca_file = Some("ca.pem".into());
            m.topic_prefix = Some("plant/#".into());
        }
        let (_, p) = check(|ctx| validate_integrations(ctx, &raw));
        assert_eq!(
            paths(&p),
            [
                "integrations.box_name",
                "integrations.outbox_max_entries",
                "integrations.mqtt.topic_prefix",
                "integrations.mqtt.password",
                "integrations.mqtt.ca_file",
            ]
        );
        let mut raw = mqtt("mqtts://h");
        if let Some(m) = raw.mqtt.as_mut() {
            m.client_cert_file = Some("c.pem".into());
        }
        let (_, p) = check(|ctx| validate_integrations(ctx, &raw));
        assert_eq!(paths(&p), ["integrations.mqtt.client_key_file"]);
    }
}

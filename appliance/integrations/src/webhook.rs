//! Signed webhooks: each event (raised, and at each change of its state) POSTed over
//! HTTPS as the same JSON document MQTT carries, signed with HMAC-SHA256.
//!
//! Headers: `x-safeyolo-timestamp` (Unix seconds), `x-safeyolo-signature`
//! (`sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`), `x-safeyolo-event-id`
//! and `idempotency-key` (`<event id>-<state>`). A 2xx answer accepts the entry; any
//! other answer, a timeout or a TLS failure is retried from the outbox with the delivery
//! loop's backoff (the same body and key; a fresh timestamp and signature). The
//! receiver's certificate is verified (against `ca_file`, else the system's roots)
//! unless `tls_verify = false`. Entries the webhook's filter leaves out, and camera and
//! output changes, are passed over (its cursor moves on); a test message (the API's
//! "send test event") goes to every webhook.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use safe_yolo_config::{SecretSource, WebhookConfig};
use safe_yolo_store::{OutboxEntry, OutboxMessage};

use crate::deliver::{Sink, SinkError};
use crate::message::publication;

/// Largest answer body read (the rest is ignored).
const MAX_ANSWER: usize = 64 * 1024;

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A webhook.
pub struct WebhookSink {
    cfg: WebhookConfig,
    name: String,
    box_name: String,
    public_url: Option<String>,
    secret: Option<Vec<u8>>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &self.cfg.url)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// A sink for `cfg`.
    pub fn new(cfg: WebhookConfig, box_name: String, public_url: Option<String>) -> Self {
        Self {
            name: format!("webhook:{}", cfg.id),
            cfg,
            box_name,
            public_url,
            secret: None,
            tls: None,
        }
    }

    /// Whether the filter lets `entry` through (events only).
    fn wants(&self, entry: &OutboxEntry) -> bool {
        let f = &self.cfg.filter;
        match &entry.message {
            OutboxMessage::EventRaised { event } | OutboxMessage::EventChanged { event } => {
                (f.severities.is_empty() || f.severities.contains(&event.severity))
                    && (f.rules.is_empty() || f.rules.contains(&event.rule))
                    && (f.cameras.is_empty() || f.cameras.contains(&event.camera))
            }
            // A test goes to every webhook, whatever its filter.
            OutboxMessage::Test { .. } => true,
            OutboxMessage::CameraHealth { .. }
            | OutboxMessage::Output { .. }
            | OutboxMessage::ZoneCount { .. } => false,
        }
    }

    async fn post(&self, entry: &OutboxEntry) -> Result<(), SinkError> {
        let (Some(secret), Some(tls)) = (&self.secret, &self.tls) else {
            return Err(SinkError("not started".into()));
        };
        let uri: http::Uri = self
            .cfg
            .url
            .parse()
            .map_err(|e| SinkError(format!("url: {e}")))?;
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let p = publication(entry, &self.box_name, self.public_url.as_deref())
            .map_err(|e| SinkError(format!("cannot encode outbox entry {}: {e}", entry.seq)))?;
        let event = entry.message.event();
        let key = event.map_or_else(
            || entry.seq.to_string(),
            |e| format!("{}-{}", e.id, e.state.name()),
        );
        let timestamp = safe_yolo_store::now_ms() / 1000;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| SinkError(format!("connect {host}:{port}: {e}")))?;
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|e| SinkError(format!("host {host}: {e}")))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| SinkError(format!("TLS with {host}:{port}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SinkError(format!("HTTP with {host}:{port}: {e}")))?;
        let conn = tokio::spawn(conn);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
        let request = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "safe-yolo")
            .header("x-safeyolo-timestamp", timestamp.to_string())
            .header(
                "x-safeyolo-signature",
                signature(secret, timestamp, &p.payload),
            )
            .header(
                "x-safeyolo-event-id",
                event.map_or_else(String::new, |e| e.id.to_string()),
            )
            .header("idempotency-key", key)
            .body(Full::new(Bytes::from(p.payload)))
            .map_err(|e| SinkError(format!("request: {e}")))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| SinkError(format!("POST {}: {e}", self.cfg.url)))?;
        let status = answer.status();
        // Read (a bounded part of) the answer so the connection ends cleanly.
        let _ = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER)
            .collect()
            .await;
        conn.abort();
        if status.is_success() {
            Ok(())
        } else {
            Err(SinkError(format!("POST {}: HTTP {status}", self.cfg.url)))
        }
    }
}

/// The TLS client settings of a webhook: verified against `ca_file` or the system's
/// roots, or (only if asked) not verified at all.
fn tls_connector(cfg: &WebhookConfig) -> Result<tokio_rustls::TlsConnector, SinkError> {
    let provider = crate::tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError(format!("TLS: {e}")))?;
    let config = if cfg.tls_verify {
        let roots = crate::tls::roots(cfg.ca_file.as_deref())
            .map_err(|e| SinkError(safe_yolo_domain::error_chain(&e).to_string()))?;
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// `tls_verify = false`: any certificate is accepted (signatures over the handshake are
/// still checked). For a lab receiver only; the log says so at every start.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        let cfg = self.cfg.clone();
        let (secret, tls) = tokio::task::spawn_blocking(move || {
            let secret = cfg
                .secret
                .load()
                .map_err(|e| match &cfg.secret {
                    SecretSource::File(path) => {
                        SinkError(format!("secret_file {}: {e}", path.display()))
                    }
                    SecretSource::Inline(_) => SinkError(e.to_string()),
                })?
                .into_bytes();
            if secret.len() < 16 {
                return Err(SinkError("the secret is shorter than 16 bytes".into()));
            }
            Ok((secret, tls_connector(&cfg)?))
        })
        .await
        .map_err(|e| SinkError(format!("webhook start: {e}")))??;
        if !self.cfg.tls_verify {
            tracing::warn!(webhook = %self.cfg.id, "tls_verify = false: the receiver's certificate is not checked");
        }
        self.secret = Some(secret);
        self.tls = Some(tls);
        Ok(())
    }

    async fn deliver(&mut self, entry: &OutboxEntry) -> Result<(), SinkError> {
        if !self.wants(entry) {
            return Ok(());
        }
        tokio::time::timeout(self.cfg.timeout, self.post(entry))
            .await
            .map_err(|_| {
                SinkError(format!(
                    "POST {}: no answer within {} s",
                    self.cfg.url,
                    self.cfg.timeout.as_secs()
                ))
            })?
    }

    async fn idle(&mut self) -> SinkError {
        // No connection is kept between deliveries.
        std::future::pending().await
    }

    async fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known answer: the key and data of RFC 4231 case 2 with `1.` in front.
    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        let sig = signature(b"Jefe", 1, b"what do ya want for nothing?");
        // HMAC-SHA256("Jefe", "1.what do ya want for nothing?"), computed independently
        // with Python's hmac module.
        assert_eq!(
            sig,
            "sha256=a9049465ce89cfb8e9aac62333abda66f80e3403f51f57f6bae3c3a4485eca38"
        );
    }
}

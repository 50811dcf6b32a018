//! The MQTT sink (rumqttc, MQTT 3.1.1): one publication at a time with QoS 1, each
//! acknowledged by the broker (PUBACK) before the outbox cursor moves.
//!
//! Topics under the configured prefix (default `safe-yolo/<box>/`): `events` (raised),
//! `events/updates` (acknowledged, ended, cleared), `cameras/<id>/status` and
//! `outputs/<id>` (retained), and `status`: `online` (retained) once connected, the
//! broker's last will `offline` (retained) when the box goes away without a goodbye,
//! and `offline` at an orderly shutdown.
//!
//! Each connection is a fresh clean session: a broken one is dropped whole and what it
//! had not acknowledged is sent again from the outbox by the next one.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use safe_yolo_config::{MqttConfig, MqttTransport};
use safe_yolo_store::OutboxEntry;

use crate::deliver::{Sink, SinkError};
use crate::message::publication;
use crate::tls::{self, TlsError};

/// The cursor's name of the MQTT sink.
pub const SINK_NAME: &str = "mqtt";
/// Largest packet sent or accepted.
const MAX_PACKET: usize = 256 * 1024;

/// The MQTT sink.
pub struct MqttSink {
    cfg: MqttConfig,
    box_name: String,
    public_url: Option<String>,
    conn: Option<(AsyncClient, EventLoop)>,
    discovery: Option<crate::discovery::IdsFn>,
}

impl std::fmt::Debug for MqttSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSink")
            .field("host", &self.cfg.host)
            .field("port", &self.cfg.port)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl MqttSink {
    /// A sink for `cfg`, naming the box `box_name` in its messages.
    pub fn new(cfg: MqttConfig, box_name: String, public_url: Option<String>) -> Self {
        Self {
            cfg,
            box_name,
            public_url,
            conn: None,
            discovery: None,
        }
    }

    /// Publishes Home Assistant discovery documents (if `home_assistant` is on) for
    /// the ids `ids` gives, at each connection.
    pub fn with_discovery(mut self, ids: crate::discovery::IdsFn) -> Self {
        self.discovery = Some(ids);
        self
    }

    fn topic(&self, rest: &str) -> String {
        format!("{}{rest}", self.cfg.topic_prefix)
    }
}

/// The client's options: `client_id`, keep-alive, clean session, the last will
/// `offline` on `status_topic` (if given), credentials and TLS.
pub(crate) async fn options(
    c: MqttConfig,
    client_id: String,
    status_topic: Option<String>,
) -> Result<MqttOptions, SinkError> {
    let c = &c;
    {
        let mut o = MqttOptions::new(client_id, c.host.clone(), c.port);
        o.set_keep_alive(c.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some(topic) = status_topic {
            o.set_last_will(LastWill::new(topic, "offline", QoS::AtLeastOnce, true));
        }
        if let Some((user, password)) = &c.credentials {
            let password = match password.clone() {
                None => String::new(),
                Some(p) => tokio::task::spawn_blocking(move || p.load())
                    .await
                    .map_err(|e| SinkError(format!("MQTT password: {e}")))?
                    .map_err(|e| SinkError(format!("MQTT password_file: {e}")))?,
            };
            o.set_credentials(user.clone(), password);
        }
        if c.transport == MqttTransport::Tls {
            let cfg = c.clone();
            let tls = tokio::task::spawn_blocking(move || tls_config(&cfg))
                .await
                .map_err(|e| SinkError(format!("TLS settings: {e}")))?
                .map_err(|e| SinkError(safe_yolo_domain::error_chain(&e).to_string()))?;
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls)));
        }
        Ok(o)
    }
}

impl MqttSink {
    /// Publishes one message with QoS 1 and waits for its PUBACK (pinging meanwhile).
    async fn publish_acked(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), SinkError> {
        let Some((client, events)) = self.conn.as_mut() else {
            return Err(SinkError("not connected".into()));
        };
        client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| SinkError(format!("cannot queue the publication: {e}")))?;
        let mut pkid = None;
        loop {
            match events.poll().await {
                // One publication in flight: the next outgoing PUBLISH is ours.
                Ok(Event::Outgoing(Outgoing::Publish(id))) if pkid.is_none() => pkid = Some(id),
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == pkid => {
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Err(connection_error(&e));
                }
            }
        }
    }
}

pub(crate) fn connection_error(e: &ConnectionError) -> SinkError {
    SinkError(format!("broker connection: {e}"))
}

/// The rustls client settings: the broker verified against `ca_file` (or the system's
/// roots), the client certificate if configured.
fn tls_config(c: &MqttConfig) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(tls::roots(c.ca_file.as_deref())?);
    let config = match &c.client_auth {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsError::pem("client certificate", cert, e))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| TlsError::pem("client key", key, e))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        SINK_NAME
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        self.conn = None;
        let options = options(
            self.cfg.clone(),
            self.cfg.client_id.clone(),
            Some(self.topic("status")),
        )
        .await?;
        let (client, mut events) = AsyncClient::new(options, 16);
        events.network_options.set_connection_timeout(10);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Err(connection_error(&e)),
            }
        }
        self.conn = Some((client, events));
        self.publish_acked(self.topic("status"), b"online".to_vec(), true)
            .await?;
        if let (Some(discovery), Some(ids)) = (self.cfg.home_assistant.clone(), &self.discovery) {
            let docs = crate::discovery::documents(
                &discovery,
                &self.box_name,
                &self.cfg.topic_prefix,
                &ids(),
            );
            for d in docs {
                self.publish_acked(d.topic, d.payload, true).await?;
            }
        }
        Ok(())
    }

    async fn deliver(&mut self, entry: &OutboxEntry) -> Result<(), SinkError> {
        let p = publication(entry, &self.box_name, self.public_url.as_deref())
            .map_err(|e| SinkError(format!("cannot encode outbox entry {}: {e}", entry.seq)))?;
        self.publish_acked(self.topic(&p.topic), p.payload, p.retain)
            .await
    }

    async fn idle(&mut self) -> SinkError {
        let Some((_, events)) = self.conn.as_mut() else {
            return SinkError("not connected".into());
        };
        loop {
            if let Err(e) = events.poll().await {
                self.conn = None;
                return connection_error(&e);
            }
        }
    }

    async fn close(&mut self) {
        if self.conn.is_none() {
            return;
        }
        // An orderly goodbye: `offline` (retained), then DISCONNECT (no last will).
        let goodbye = self.publish_acked(self.topic("status"), b"offline".to_vec(), true);
        if tokio::time::timeout(Duration::from_secs(2), goodbye)
            .await
            .is_ok()
            && let Some((client, mut events)) = self.conn.take()
        {
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while events.poll().await.is_ok() {}
            })
            .await;
        }
        self.conn = None;
    }
}

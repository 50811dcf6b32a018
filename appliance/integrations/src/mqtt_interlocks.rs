//! Interlocks read from MQTT topics on the integrations' broker: a connection of its
//! own (client id `<client_id>-interlocks`, clean session, no last will) subscribed
//! with QoS 1 to each interlock's topic. A message whose payload (trimmed) is the
//! interlock's `armed_value` arms; any other payload disarms. A retained message
//! gives the level at once after each (re)connection.
//!
//! Fail-safe: when the connection is lost every MQTT interlock is unknown (armed) at
//! once, until the broker says again; `stale_after` also applies to each level.
//! Each level change is audited (actor `mqtt`, the topic as source).

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use safe_yolo_alarms::Interlocks;
use safe_yolo_config::{InterlockSource, MqttConfig};
use safe_yolo_domain::{InterlockId, Named};
use safe_yolo_store::Storage;
use tokio_util::sync::CancellationToken;

use crate::mqtt::{connection_error, options};

/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest payload looked at.
const MAX_PAYLOAD: usize = 256;

/// The topics to follow: (topic, interlock, armed value).
fn topics(interlocks: &Interlocks) -> Vec<(String, InterlockId, String)> {
    interlocks
        .specs()
        .into_iter()
        .filter_map(|s| match s.source {
            InterlockSource::Mqtt { topic, armed_value } => Some((topic, s.id, armed_value)),
            InterlockSource::ModbusCoil { .. } | InterlockSource::Gpio => None,
        })
        .collect()
}

/// Follows the MQTT interlocks of `interlocks` on the broker of `cfg` until `stop`.
pub async fn run(
    cfg: MqttConfig,
    interlocks: Interlocks,
    storage: Storage,
    stop: CancellationToken,
) {
    let topics = topics(&interlocks);
    if topics.is_empty() {
        return;
    }
    let ids: Vec<InterlockId> = topics.iter().map(|(_, id, _)| id.clone()).collect();
    let mut backoff = Duration::from_secs(1);
    loop {
        let result = tokio::select! {
            r = session(&cfg, &interlocks, &storage, &topics) => r,
            () = stop.cancelled() => return,
        };
        interlocks.forget(&ids, "the MQTT broker connection was lost");
        tracing::warn!(error = %result, retry_in_s = backoff.as_secs(), "MQTT interlocks: connection lost; their rules are armed (fail-safe)");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection; returns why it ended.
async fn session(
    cfg: &MqttConfig,
    interlocks: &Interlocks,
    storage: &Storage,
    topics: &[(String, InterlockId, String)],
) -> String {
    let o = match options(cfg.clone(), format!("{}-interlocks", cfg.client_id), None).await {
        Ok(o) => o,
        Err(e) => return e.to_string(),
    };
    let (client, mut events) = AsyncClient::new(o, 16);
    events.network_options.set_connection_timeout(10);
    for (topic, _, _) in topics {
        if let Err(e) = client.subscribe(topic.clone(), QoS::AtLeastOnce).await {
            return format!("cannot subscribe to {topic:?}: {e}");
        }
    }
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(topics = topics.len(), "MQTT interlocks: connected");
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some((_, id, armed_value)) = topics.iter().find(|(t, _, _)| *t == p.topic)
                else {
                    continue;
                };
                let payload = &p.payload[..p.payload.len().min(MAX_PAYLOAD)];
                let text = String::from_utf8_lossy(payload);
                let armed = text.trim() == armed_value;
                if let Some(change) = interlocks.set(id, armed, "mqtt") {
                    crate::audit(
                        storage,
                        "mqtt",
                        p.topic.chars().take(200).collect(),
                        "interlock.set",
                        format!("interlock/{id}"),
                        Some(change.before.as_str().to_owned()),
                        Some(change.after.as_str().to_owned()),
                    )
                    .await;
                }
            }
            Ok(_) => {}
            Err(e) => return connection_error(&e).to_string(),
        }
    }
}

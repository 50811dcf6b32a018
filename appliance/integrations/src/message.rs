//! What the plant receives: each outbox entry as a topic (below the sink's prefix), a
//! payload and whether the broker keeps it (retained).
//!
//! Events are the API's event document ([`EventView`], the same JSON as
//! `GET /api/v1/events/{id}`) with the box's name, the outbox position and the snapshot's
//! URL added: `id` is the stored event's id, the idempotency key (with `state`: an event
//! is sent when raised and again at each change of its state).

use safe_yolo_api::views::EventView;
use safe_yolo_store::{OutboxEntry, OutboxMessage, Snapshot};
use serde::Serialize;

/// An event as the integrations send it.
#[derive(Debug, Clone, Serialize)]
pub struct EventMessage {
    /// The box that raised it.
    #[serde(rename = "box")]
    pub box_name: String,
    /// Its outbox position (strictly increasing per box).
    pub outbox_seq: u64,
    /// Where the snapshot can be fetched (the API, authenticated), if one was stored.
    pub snapshot_url: Option<String>,
    /// The event document.
    #[serde(flatten)]
    pub event: EventView,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The topic below the prefix, e.g. `events`, `cameras/dock/status`.
    pub topic: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// Whether the broker keeps it as the topic's last value (states, not events).
    pub retain: bool,
}

/// Encodes `entry` for the box `box_name`; `public_url` (the API's address as the plant
/// reaches it) makes the snapshot URL absolute.
pub fn publication(
    entry: &OutboxEntry,
    box_name: &str,
    public_url: Option<&str>,
) -> Result<Publication, serde_json::Error> {
    let at = entry.at;
    match &entry.message {
        OutboxMessage::EventRaised { event } | OutboxMessage::EventChanged { event } => {
            let snapshot_url = matches!(event.snapshot, Snapshot::Stored(_)).then(|| {
                format!(
                    "{}/api/v1/events/{}/snapshot",
                    public_url.unwrap_or("").trim_end_matches('/'),
                    event.id
                )
            });
            let msg = EventMessage {
                box_name: box_name.to_owned(),
                outbox_seq: entry.seq,
                snapshot_url,
                event: EventView::from((**event).clone()),
            };
            let topic = match entry.message {
                OutboxMessage::EventRaised { .. } => "events",
                _ => "events/updates",
            };
            Ok(Publication {
                topic: topic.to_owned(),
                payload: serde_json::to_vec(&msg)?,
                retain: false,
            })
        }
        OutboxMessage::CameraHealth { camera, health } => Ok(Publication {
            topic: format!("cameras/{camera}/status"),
            payload: serde_json::to_vec(&serde_json::json!({
                "box": box_name, "camera": camera, "health": health, "at": at,
                "outbox_seq": entry.seq,
            }))?,
            retain: true,
        }),
        OutboxMessage::Test { by } => Ok(Publication {
            topic: "test".to_owned(),
            payload: serde_json::to_vec(&serde_json::json!({
                "box": box_name, "kind": "test", "by": by, "at": at, "outbox_seq": entry.seq,
            }))?,
            retain: false,
        }),
        OutboxMessage::ZoneCount { zone, count } => Ok(Publication {
            topic: format!("zones/{zone}/count"),
            payload: serde_json::to_vec(&serde_json::json!({
                "box": box_name, "zone": zone, "count": count, "at": at,
                "outbox_seq": entry.seq,
            }))?,
            retain: true,
        }),
        OutboxMessage::Output { output, active } => Ok(Publication {
            topic: format!("outputs/{output}"),
            payload: serde_json::to_vec(&serde_json::json!({
                "box": box_name, "output": output, "active": active, "at": at,
                "outbox_seq": entry.seq,
            }))?,
            retain: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use safe_yolo_domain::alarm::CameraHealth;
    use safe_yolo_domain::{CameraId, RuleId, Severity};
    use safe_yolo_store::{Event, EventState, SnapshotRef};

    use super::*;

    fn event(snapshot: Snapshot) -> Event {
        Event {
            id: 42,
            camera: CameraId::new("dock").unwrap(),
            rule: RuleId::new("no-entry").unwrap(),
            zone: None,
            track: Some(7),
            kind: "intrusion".into(),
            severity: Severity::Critical,
            started_at: 1_000,
            ended_at: None,
            state: EventState::Active,
            message: "person in the lane".into(),
            details: None,
            snapshot,
            recorded_at: 1_001,
        }
    }

    #[test]
    fn an_event_is_the_api_document_with_the_box_and_the_snapshot_url() {
        let stored = Snapshot::Stored(SnapshotRef {
            file: "x.jpg".into(),
            bytes: 1,
            sha256: "00".into(),
            written_at: 1,
        });
        let entry = OutboxEntry {
            seq: 9,
            at: 5,
            message: OutboxMessage::EventRaised {
                event: Box::new(event(stored)),
            },
        };
        let p = publication(&entry, "press-7", Some("https://box.plant:8443/")).unwrap();
        assert_eq!((p.topic.as_str(), p.retain), ("events", false));
        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        let api = serde_json::to_value(EventView::from(event(Snapshot::None))).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["box"], "press-7");
        assert_eq!(v["outbox_seq"], 9);
        assert_eq!(v["state"], "active");
        assert_eq!(v["severity"], api["severity"]);
        assert_eq!(
            v["snapshot_url"],
            "https://box.plant:8443/api/v1/events/42/snapshot"
        );
        let changed = OutboxEntry {
            message: OutboxMessage::EventChanged {
                event: Box::new(event(Snapshot::None)),
            },
            ..entry
        };
        let p = publication(&changed, "b", None).unwrap();
        assert_eq!(p.topic, "events/updates");
        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        assert!(v["snapshot_url"].is_null());
    }

    #[test]
    fn states_are_retained_per_camera_and_output() {
        let entry = OutboxEntry {
            seq: 3,
            at: 5,
            message: OutboxMessage::CameraHealth {
                camera: CameraId::new("dock").unwrap(),
                health: CameraHealth::Offline,
            },
        };
        let p = publication(&entry, "b", None).unwrap();
        assert_eq!((p.topic.as_str(), p.retain), ("cameras/dock/status", true));
        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(v["health"], "offline");
    }
}

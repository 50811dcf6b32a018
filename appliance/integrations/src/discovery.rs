//! Home Assistant MQTT discovery: retained configuration documents under
//! `<discovery prefix>/<component>/<node>/<object>/config` that make each camera
//! (connectivity), each area zone (persons) and each output (on/off) an entity of one
//! device, the box, with the box's `status` topic as availability. They describe the
//! topics the outbox already fills (`cameras/<id>/status`, `zones/<id>/count`,
//! `outputs/<id>`), so nothing else is sent for Home Assistant.
//!
//! Published (retained) at each connection, for the cameras, zones and outputs
//! configured then. An entity removed from the configuration keeps its document in
//! the broker (Home Assistant shows it unavailable) until deleted there.

use std::sync::Arc;

use safe_yolo_domain::{CameraId, OutputId, ZoneId};
use serde_json::json;

/// The ids the documents are made for, read at each connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryIds {
    /// The cameras.
    pub cameras: Vec<CameraId>,
    /// The area zones.
    pub zones: Vec<ZoneId>,
    /// The outputs.
    pub outputs: Vec<OutputId>,
}

/// Where the ids come from (the live configuration).
pub type IdsFn = Arc<dyn Fn() -> DiscoveryIds + Send + Sync>;

/// One document: its (absolute) topic and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The topic.
    pub topic: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

/// A topic level Home Assistant accepts (`[a-zA-Z0-9_-]`).
fn level(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The documents for `ids` of the box `box_name`, whose topics are under `prefix`
/// (ending with `/`), under the discovery prefix `discovery`.
pub fn documents(
    discovery: &str,
    box_name: &str,
    prefix: &str,
    ids: &DiscoveryIds,
) -> Vec<Document> {
    let node = format!("safe-yolo-{}", level(box_name));
    let device = json!({
        "identifiers": [node],
        "name": box_name,
        "manufacturer": "SAFE-YOLO",
        "model": "industrial-safety CCTV appliance",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let availability = format!("{prefix}status");
    let mut out = Vec::new();
    let mut doc = |component: &str, object: String, body: serde_json::Value| {
        let mut body = body;
        body["unique_id"] = json!(format!("{node}-{object}"));
        body["object_id"] = json!(format!("{node}-{object}"));
        body["device"] = device.clone();
        body["availability_topic"] = json!(availability);
        body["payload_available"] = json!("online");
        body["payload_not_available"] = json!("offline");
        out.push(Document {
            topic: format!("{discovery}/{component}/{node}/{object}/config"),
            payload: body.to_string().into_bytes(),
        });
    };
    for c in &ids.cameras {
        doc(
            "binary_sensor",
            format!("camera-{}", level(c.as_str())),
            json!({
                "name": format!("Camera {c}"),
                "device_class": "connectivity",
                "state_topic": format!("{prefix}cameras/{c}/status"),
                "value_template": "{{ 'ON' if value_json.health == 'ok' else 'OFF' }}",
            }),
        );
    }
    for z in &ids.zones {
        doc(
            "sensor",
            format!("zone-{}", level(z.as_str())),
            json!({
                "name": format!("Persons in {z}"),
                "state_topic": format!("{prefix}zones/{z}/count"),
                "value_template": "{{ value_json.count }}",
                "unit_of_measurement": "persons",
                "state_class": "measurement",
            }),
        );
    }
    for o in &ids.outputs {
        doc(
            "binary_sensor",
            format!("output-{}", level(o.as_str())),
            json!({
                "name": format!("Output {o}"),
                "state_topic": format!("{prefix}outputs/{o}"),
                "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
            }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[test]
    fn each_entity_reads_a_topic_the_outbox_fills() {
        let ids = DiscoveryIds {
            cameras: vec![CameraId::new("dock").unwrap()],
            zones: vec![ZoneId::new("lane").unwrap()],
            outputs: vec![OutputId::new("siren").unwrap()],
        };
        let docs = documents("homeassistant", "press.7", "safe-yolo/press.7/", &ids);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0].topic,
            "homeassistant/binary_sensor/safe-yolo-press_7/camera-dock/config"
        );
        let v: serde_json::Value = serde_json::from_slice(&docs[1].payload).unwrap();
        assert_eq!(v["state_topic"], "safe-yolo/press.7/zones/lane/count");
        assert_eq!(v["availability_topic"], "safe-yolo/press.7/status");
        assert_eq!(v["unique_id"], "safe-yolo-press_7-zone-lane");
        assert_eq!(v["device"]["identifiers"][0], "safe-yolo-press_7");
        let v: serde_json::Value = serde_json::from_slice(&docs[2].payload).unwrap();
        assert_eq!(v["state_topic"], "safe-yolo/press.7/outputs/siren");
    }
}

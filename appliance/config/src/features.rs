//! `[features]`: feature switches.

use serde::Deserialize;

/// `[features]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFeatures {
    pub ppe: Option<bool>,
    pub live_stream: Option<bool>,
    pub web_ui: Option<bool>,
    pub snapshots: Option<bool>,
}

/// Feature switches.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// PPE rules and the PPE model.
    pub ppe: bool,
    /// MJPEG and WebSocket live streams.
    pub live_stream: bool,
    /// The embedded web UI.
    pub web_ui: bool,
    /// JPEG snapshots with events.
    pub snapshots: bool,
}

impl From<&RawFeatures> for Features {
    fn from(raw: &RawFeatures) -> Self {
        Features {
            ppe: raw.ppe.unwrap_or(false),
            live_stream: raw.live_stream.unwrap_or(true),
            web_ui: raw.web_ui.unwrap_or(true),
            snapshots: raw.snapshots.unwrap_or(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppe_is_off_and_the_rest_on_by_default() {
        let f = Features::from(&RawFeatures::default());
        assert!(!f.ppe && f.live_stream && f.web_ui && f.snapshots);
    }
}

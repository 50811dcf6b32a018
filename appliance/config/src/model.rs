//! The whole validated configuration: one field per section, each section's types
//! in its own module (raw form, validated form and checks side by side).

use crate::api::ApiConfig;
use crate::cameras::CameraConfig;
use crate::detector::DetectorConfig;
use crate::features::Features;
use crate::integrations::IntegrationsConfig;
use crate::lines::LineConfig;
use crate::outputs::OutputsConfig;
use crate::rules::RuleConfig;
use crate::storage::StorageConfig;
use crate::system::SystemConfig;
use crate::zones::ZoneConfig;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Daemon-wide settings.
    pub system: SystemConfig,
    /// The detector and its model.
    pub detector: DetectorConfig,
    /// Cameras, in file order.
    pub cameras: Vec<CameraConfig>,
    /// Zones (polygons), in file order.
    pub zones: Vec<ZoneConfig>,
    /// Counting lines, in file order.
    pub lines: Vec<LineConfig>,
    /// Safety rules, in file order.
    pub rules: Vec<RuleConfig>,
    /// Physical outputs and inputs.
    pub outputs: OutputsConfig,
    /// The HTTPS API.
    pub api: ApiConfig,
    /// Where state lives and how long it is kept.
    pub storage: StorageConfig,
    /// Feature switches.
    pub features: Features,
    /// MQTT and the outbox the integrations deliver from.
    pub integrations: IntegrationsConfig,
}

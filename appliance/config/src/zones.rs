//! `[[zones]]`: areas drawn on a camera's image, which area rules watch.

use safe_yolo_domain::{CameraId, Polygon, ZoneId};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::cameras::KnownCameras;
use crate::check::Ctx;

/// Which point of a person's box is tested against zones (the rule engine's word).
pub use safe_yolo_rules::Anchor;

/// A zone as written: a `[[zones]]` entry of the file without its `id`, and the
/// document the API takes and gives for a zone (its id is in the URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ZoneDoc")]
pub struct RawZone {
    /// Camera the zone is drawn on.
    pub camera: String,
    /// Human name, 1-64 characters (default: the id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Outline in normalised coordinates `[x, y]`, 0..=1.
    pub polygon: Vec<[f64; 2]>,
    /// Point of a person's box tested against the zone (default: feet).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Anchor>")]
    pub anchor: Option<String>,
}

impl RawZone {
    /// The zone's own problems, its references (the camera) unchecked, at key paths
    /// under `path`: what can be told of a document before it meets the configuration.
    pub fn problems(&self, id: &str, path: &str) -> Vec<Problem> {
        Ctx::standalone(|ctx| {
            validate_zone(ctx, path, id, self, &KnownCameras::unchecked());
        })
    }
}

/// A polygonal zone.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// Identifier (shared namespace with lines).
    pub id: ZoneId,
    /// Camera the zone is drawn on.
    pub camera: CameraId,
    /// Human name.
    pub name: String,
    /// Outline in normalised coordinates.
    pub polygon: Polygon,
    /// Default anchor for rules on this zone.
    pub anchor: Anchor,
}

/// Checks one zone; `p` is its key path.
pub(crate) fn validate_zone(
    ctx: &mut Ctx<'_>,
    p: &str,
    id: &str,
    v: &RawZone,
    cameras: &KnownCameras<'_>,
) -> Option<ZoneConfig> {
    let id = ctx.id(&format!("{p}.id"), id, ZoneId::new);
    let name = ctx.name(&format!("{p}.name"), v.name.as_deref());
    let camera = cameras.check(ctx, &format!("{p}.camera"), &v.camera);
    let pts: Vec<[f32; 2]> = v
        .polygon
        .iter()
        .map(|[x, y]| [*x as f32, *y as f32])
        .collect();
    let polygon = match Polygon::new(&pts) {
        Ok(poly) => Some(poly),
        Err(e) => {
            ctx.bad(format!("{p}.polygon"), e.to_string());
            None
        }
    };
    let anchor = ctx.named(&format!("{p}.anchor"), v.anchor.as_deref(), Anchor::Feet);
    let id = id?;
    Some(ZoneConfig {
        name: name?.unwrap_or_else(|| id.to_string()),
        id,
        camera: camera?,
        polygon: polygon?,
        anchor: anchor?,
    })
}

impl crate::Config {
    /// Zones and lines, as the rule engine sees them.
    pub fn zone_specs(&self) -> Vec<safe_yolo_rules::ZoneSpec> {
        use safe_yolo_rules::{ZoneShape, ZoneSpec};
        self.zones
            .iter()
            .map(|z| ZoneSpec {
                id: z.id.clone(),
                camera: z.camera.clone(),
                shape: ZoneShape::Area(z.polygon.clone()),
            })
            .chain(self.lines.iter().map(|l| ZoneSpec {
                id: l.id.clone(),
                camera: l.camera.clone(),
                shape: ZoneShape::Line(l.line),
            }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::check::tests::{check, paths};

    #[test]
    fn every_problem_of_a_zone_at_its_key() {
        let cameras = KnownCameras {
            ids: HashSet::from(["cam-1"]),
            incomplete: false,
        };
        let raw = RawZone {
            camera: "cam-2".into(),
            name: None,
            polygon: vec![[0.1, 0.1], [1.5, 0.1], [0.5, 0.9]],
            anchor: Some("head".into()),
        };
        let (z, p) = check(|ctx| validate_zone(ctx, "zones[0]", "dock", &raw, &cameras));
        assert!(z.is_none());
        assert_eq!(
            paths(&p),
            vec!["zones[0].camera", "zones[0].polygon", "zones[0].anchor"]
        );
        let raw = RawZone {
            camera: "cam-1".into(),
            polygon: vec![[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]],
            anchor: None,
            ..raw
        };
        let (z, p) = check(|ctx| validate_zone(ctx, "zones[0]", "dock", &raw, &cameras));
        assert!(p.is_empty(), "{p:?}");
        let z = z.unwrap();
        assert_eq!((z.name.as_str(), z.anchor), ("dock", Anchor::Feet));
        // On its own, the camera is not looked up.
        let raw = RawZone {
            camera: "cam-9".into(),
            name: Some(String::new()),
            ..raw
        };
        assert_eq!(paths(&raw.problems("dock", "doc")), vec!["doc.name"]);
    }
}

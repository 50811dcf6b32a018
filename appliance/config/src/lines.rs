//! `[[lines]]`: counting lines drawn on a camera's image, which line-crossing rules
//! watch. They share the zones' namespace: a rule's `zone` names either.

use safe_yolo_domain::{CameraId, Line, PolygonError, ZoneId};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::cameras::KnownCameras;
use crate::check::Ctx;

/// A counting line as written: a `[[lines]]` entry of the file without its `id`, and
/// the document the API takes and gives for a line (its id is in the URL). Side A is
/// on the left walking from `from` to `to` (image coordinates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LineDoc")]
pub struct RawLine {
    /// Camera the line is drawn on.
    pub camera: String,
    /// Human name, 1-64 characters (default: the id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Start point `[x, y]`, normalised 0..=1.
    pub from: [f64; 2],
    /// End point `[x, y]`, normalised 0..=1.
    pub to: [f64; 2],
}

impl RawLine {
    /// The line's own problems, its references (the camera) unchecked, at key paths
    /// under `path`: what can be told of a document before it meets the configuration.
    pub fn problems(&self, id: &str, path: &str) -> Vec<Problem> {
        Ctx::standalone(|ctx| {
            validate_line(ctx, path, id, self, &KnownCameras::unchecked());
        })
    }
}

/// A counting line.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// Identifier (shared namespace with zones).
    pub id: ZoneId,
    /// Camera the line is drawn on.
    pub camera: CameraId,
    /// Human name.
    pub name: String,
    /// The line; side A is on the left walking from `from` to `to`.
    pub line: Line,
}

/// Checks one line; `p` is its key path.
pub(crate) fn validate_line(
    ctx: &mut Ctx<'_>,
    p: &str,
    id: &str,
    v: &RawLine,
    cameras: &KnownCameras<'_>,
) -> Option<LineConfig> {
    let id = ctx.id(&format!("{p}.id"), id, ZoneId::new);
    let name = ctx.name(&format!("{p}.name"), v.name.as_deref());
    let camera = cameras.check(ctx, &format!("{p}.camera"), &v.camera);
    let line = match Line::new(
        [v.from[0] as f32, v.from[1] as f32],
        [v.to[0] as f32, v.to[1] as f32],
    ) {
        Ok(line) => Some(line),
        Err(e) => {
            // The point at fault when one is outside the frame; else the second.
            let key = match e {
                PolygonError::OutsideFrame { index: 0, .. } => "from",
                _ => "to",
            };
            let reason = match e {
                PolygonError::OutsideFrame { x, y, .. } => format!(
                    "({x}, {y}) is outside the frame; coordinates are fractions from 0.0 to 1.0"
                ),
                other => other.to_string(),
            };
            ctx.bad(format!("{p}.{key}"), reason);
            None
        }
    };
    let id = id?;
    Some(LineConfig {
        name: name?.unwrap_or_else(|| id.to_string()),
        id,
        camera: camera?,
        line: line?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::check::tests::{check, paths};

    #[test]
    fn a_line_is_two_distinct_points_in_the_frame() {
        let cameras = KnownCameras {
            ids: HashSet::from(["cam-1"]),
            incomplete: false,
        };
        let raw = RawLine {
            camera: "cam-1".into(),
            name: Some("Gate".into()),
            from: [0.5, 0.2],
            to: [0.5, 0.2],
        };
        let (l, p) = check(|ctx| validate_line(ctx, "lines[0]", "gate", &raw, &cameras));
        assert!(l.is_none());
        assert_eq!(paths(&p), vec!["lines[0].to"]);
        let outside = RawLine {
            from: [1.5, 0.2],
            ..raw.clone()
        };
        assert_eq!(paths(&outside.problems("gate", "doc")), vec!["doc.from"]);
        let raw = RawLine {
            to: [0.5, 0.8],
            ..raw
        };
        let (l, p) = check(|ctx| validate_line(ctx, "lines[0]", "gate", &raw, &cameras));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(l.unwrap().name, "Gate");
    }
}

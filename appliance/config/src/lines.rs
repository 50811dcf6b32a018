//! `[[lines]]`: counting lines drawn on a camera's image, which line-crossing rules
//! watch. They share the zones' namespace: a rule's `zone` names either.

use safe_yolo_domain::{CameraId, Line, ZoneId};
use serde::Deserialize;

use crate::cameras::KnownCameras;
use crate::check::Ctx;

/// One `[[lines]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLine {
    pub id: String,
    pub camera: String,
    pub name: Option<String>,
    pub from: [f64; 2],
    pub to: [f64; 2],
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
    v: &RawLine,
    cameras: &KnownCameras<'_>,
) -> Option<LineConfig> {
    let id = ctx.id(&format!("{p}.id"), &v.id, ZoneId::new);
    let camera = cameras.check(ctx, &format!("{p}.camera"), &v.camera);
    let line = match Line::new(
        [v.from[0] as f32, v.from[1] as f32],
        [v.to[0] as f32, v.to[1] as f32],
    ) {
        Ok(line) => Some(line),
        Err(e) => {
            ctx.bad(p, e.to_string());
            None
        }
    };
    let id = id?;
    Some(LineConfig {
        name: v.name.clone().unwrap_or_else(|| id.to_string()),
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
            id: "gate".into(),
            camera: "cam-1".into(),
            name: Some("Gate".into()),
            from: [0.5, 0.2],
            to: [0.5, 0.2],
        };
        let (l, p) = check(|ctx| validate_line(ctx, "lines[0]", &raw, &cameras));
        assert!(l.is_none());
        assert_eq!(paths(&p), vec!["lines[0]"]);
        let raw = RawLine {
            to: [0.5, 0.8],
            ..raw
        };
        let (l, p) = check(|ctx| validate_line(ctx, "lines[0]", &raw, &cameras));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(l.unwrap().name, "Gate");
    }
}

//! Zones: validated polygons (areas) and counting lines drawn per camera in
//! normalised coordinates, and the point of a person's box that is tested.

use safe_yolo_domain::{BBox, CameraId, Line, NormPoint, Polygon, ZoneId};

/// The geometry of a zone.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneShape {
    /// An area: a person is in it when their anchor point is inside.
    Area(Polygon),
    /// A counting line: a person crosses it when their anchor point moves
    /// from one side to the other through the segment.
    Line(Line),
}

/// A zone (area or line) of one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSpec {
    /// Unique zone id across the appliance.
    pub id: ZoneId,
    /// The camera the zone is drawn on.
    pub camera: CameraId,
    /// Its geometry, already validated by the domain types.
    pub shape: ZoneShape,
}

/// Largest anchor coordinate: just below 1.0 (see [`Anchor::point`]).
const EDGE_MAX: f32 = 1.0 - 1e-5;

/// Which point of a person's box is tested against zones and lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Anchor {
    /// Bottom-centre of the box: where a standing person's feet are. This
    /// places a person on the floor plan and is the default.
    #[default]
    Feet,
    /// Centre of the box.
    Centre,
}

impl safe_yolo_domain::Named for Anchor {
    const WHAT: &'static str = "anchor";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("feet", Anchor::Feet),
        ("centre", Anchor::Centre),
        ("center", Anchor::Centre),
    ];
}
safe_yolo_domain::named_vocabulary!(Anchor);

impl Anchor {
    /// The anchor point of `bbox` (pixels) in a `width x height` frame,
    /// normalised and clamped into the frame, and kept a hair inside its
    /// bottom and right edges: a person close to the camera, whose box is cut
    /// by the frame's edge, is then inside a zone drawn up to that edge (the
    /// even-odd test would put a point exactly on the zone's edge outside).
    pub fn point(self, bbox: &BBox, width: f32, height: f32) -> NormPoint {
        let p = match self {
            Anchor::Feet => bbox.feet(width, height),
            Anchor::Centre => bbox.centre(width, height),
        };
        NormPoint::clamped(p.x.min(EDGE_MAX), p.y.min(EDGE_MAX))
    }
}

impl ZoneShape {
    /// Whether `p` is inside an area; always false for a line. The polygon's
    /// bounding box is precomputed, so most misses cost four comparisons.
    pub fn contains(&self, p: NormPoint) -> bool {
        match self {
            ZoneShape::Area(poly) => poly.contains(p),
            ZoneShape::Line(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feet_and_centre_anchor_points() {
        let b = BBox {
            x1: 100.0,
            y1: 100.0,
            x2: 200.0,
            y2: 400.0,
        };
        let feet = Anchor::Feet.point(&b, 1000.0, 500.0);
        assert!((feet.x - 0.15).abs() < 1e-6 && (feet.y - 0.8).abs() < 1e-6);
        let c = Anchor::Centre.point(&b, 1000.0, 500.0);
        assert!((c.x - 0.15).abs() < 1e-6 && (c.y - 0.5).abs() < 1e-6);
        // A box hanging out of the frame is clamped onto its edge.
        let out = BBox {
            x1: 900.0,
            y1: 300.0,
            x2: 1200.0,
            y2: 700.0,
        };
        let p = Anchor::Feet.point(&out, 1000.0, 500.0);
        assert!((p.x - 1.0).abs() < 1e-4 && (p.y - 1.0).abs() < 1e-4);
        // And still inside a zone drawn to the frame's bottom-right corner.
        let corner = Polygon::new(&[[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]).unwrap();
        assert!(corner.contains(p));
        assert!(
            !corner.contains(NormPoint::new(1.0, 1.0).unwrap()),
            "the raw corner is outside"
        );
    }

    #[test]
    fn a_line_contains_nothing() {
        let line = ZoneShape::Line(Line::new([0.0, 0.5], [1.0, 0.5]).unwrap());
        assert!(!line.contains(NormPoint::new(0.5, 0.5).unwrap()));
    }
}

//! Geometry: pixel boxes, normalised points, validated zone polygons and lines.
//!
//! Zones are drawn in normalised coordinates (`0.0..=1.0` on both axes, origin
//! top-left) so they survive a change of camera resolution.

/// An axis-aligned box in pixels: `(x1, y1)` top-left, `(x2, y2)` bottom-right.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl BBox {
    /// Width (0 for an inverted box).
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height (0 for an inverted box).
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Intersection over union with `other`, in `[0, 1]`.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let iy = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The box clamped into a `width x height` frame.
    pub fn clamp_to(&self, width: f32, height: f32) -> BBox {
        BBox {
            x1: self.x1.clamp(0.0, width),
            y1: self.y1.clamp(0.0, height),
            x2: self.x2.clamp(0.0, width),
            y2: self.y2.clamp(0.0, height),
        }
    }

    /// Bottom-centre point (where a standing person's feet are), normalised
    /// to a `width x height` frame.
    pub fn feet(&self, width: f32, height: f32) -> NormPoint {
        NormPoint::clamped((self.x1 + self.x2) / 2.0 / width, self.y2 / height)
    }

    /// Centre point, normalised to a `width x height` frame.
    pub fn centre(&self, width: f32, height: f32) -> NormPoint {
        NormPoint::clamped(
            (self.x1 + self.x2) / 2.0 / width,
            (self.y1 + self.y2) / 2.0 / height,
        )
    }
}

/// A point in normalised frame coordinates, both axes in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormPoint {
    /// Horizontal, 0 = left edge, 1 = right edge.
    pub x: f32,
    /// Vertical, 0 = top edge, 1 = bottom edge.
    pub y: f32,
}

impl NormPoint {
    /// A point, or `None` when a coordinate is outside `0..=1` or not finite.
    pub fn new(x: f32, y: f32) -> Option<Self> {
        let ok = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        (ok(x) && ok(y)).then_some(Self { x, y })
    }

    /// A point with both coordinates clamped into `0..=1` (NaN becomes 0).
    pub fn clamped(x: f32, y: f32) -> Self {
        let c = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        Self { x: c(x), y: c(y) }
    }
}

/// Why a polygon or line was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolygonError {
    /// Fewer than 3 vertices.
    #[error("has {count} points; a zone needs at least 3")]
    TooFewPoints {
        /// Number of vertices given.
        count: usize,
    },
    /// More than [`MAX_VERTICES`] vertices.
    #[error("has {count} points; at most {MAX_VERTICES} are allowed")]
    TooManyPoints {
        /// Number of vertices given.
        count: usize,
    },
    /// A vertex is outside the frame.
    #[error(
        "point {index} ({x}, {y}) is outside the frame; coordinates are fractions from 0.0 to 1.0"
    )]
    OutsideFrame {
        /// Index of the vertex.
        index: usize,
        /// Its x.
        x: f32,
        /// Its y.
        y: f32,
    },
    /// Two edges cross.
    #[error("edges {a} and {b} cross each other; the outline must not intersect itself")]
    SelfIntersecting {
        /// First edge (from vertex `a` to `a + 1`).
        a: usize,
        /// Second edge.
        b: usize,
    },
    /// The polygon encloses no area (all points on one line, or repeated).
    #[error("encloses no area")]
    Degenerate,
    /// A line's two ends are the same point.
    #[error("a line needs two distinct end points")]
    DegenerateLine,
}

/// Most vertices a zone may have; bounds the cost of a zone test.
pub const MAX_VERTICES: usize = 64;

/// A validated simple polygon in normalised coordinates, with its bounding box
/// precomputed for a cheap reject before the exact test.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<NormPoint>,
    min: NormPoint,
    max: NormPoint,
}

fn cross(o: NormPoint, a: NormPoint, b: NormPoint) -> f32 {
    (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
}

/// Whether segments `p1-p2` and `p3-p4` intersect (touching counts).
fn segments_intersect(p1: NormPoint, p2: NormPoint, p3: NormPoint, p4: NormPoint) -> bool {
    let d1 = cross(p3, p4, p1);
    let d2 = cross(p3, p4, p2);
    let d3 = cross(p1, p2, p3);
    let d4 = cross(p1, p2, p4);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    let on_segment = |a: NormPoint, b: NormPoint, p: NormPoint| {
        p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) && p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y)
    };
    (d1 == 0.0 && on_segment(p3, p4, p1))
        || (d2 == 0.0 && on_segment(p3, p4, p2))
        || (d3 == 0.0 && on_segment(p1, p2, p3))
        || (d4 == 0.0 && on_segment(p1, p2, p4))
}

impl Polygon {
    /// Validates `points` (`[x, y]` pairs in `0..=1`) as a zone outline:
    /// 3 to [`MAX_VERTICES`] vertices inside the frame, a simple (not
    /// self-intersecting) outline that encloses some area.
    pub fn new(points: &[[f32; 2]]) -> Result<Self, PolygonError> {
        let count = points.len();
        if count < 3 {
            return Err(PolygonError::TooFewPoints { count });
        }
        if count > MAX_VERTICES {
            return Err(PolygonError::TooManyPoints { count });
        }
        let mut pts = Vec::with_capacity(count);
        for (index, &[x, y]) in points.iter().enumerate() {
            pts.push(NormPoint::new(x, y).ok_or(PolygonError::OutsideFrame { index, x, y })?);
        }
        // Every pair of non-adjacent edges must be disjoint.
        for a in 0..count {
            for b in (a + 1)..count {
                let adjacent = b == a + 1 || (a == 0 && b == count - 1);
                if adjacent {
                    continue;
                }
                if segments_intersect(pts[a], pts[(a + 1) % count], pts[b], pts[(b + 1) % count]) {
                    return Err(PolygonError::SelfIntersecting { a, b });
                }
            }
        }
        // Twice the signed area (shoelace); zero means degenerate.
        let area2: f32 = (0..count)
            .map(|i| {
                let (a, b) = (pts[i], pts[(i + 1) % count]);
                a.x * b.y - b.x * a.y
            })
            .sum();
        if area2.abs() < 1e-9 {
            return Err(PolygonError::Degenerate);
        }
        let min = NormPoint {
            x: pts.iter().map(|p| p.x).fold(1.0, f32::min),
            y: pts.iter().map(|p| p.y).fold(1.0, f32::min),
        };
        let max = NormPoint {
            x: pts.iter().map(|p| p.x).fold(0.0, f32::max),
            y: pts.iter().map(|p| p.y).fold(0.0, f32::max),
        };
        Ok(Self {
            points: pts,
            min,
            max,
        })
    }

    /// The vertices.
    pub fn points(&self) -> &[NormPoint] {
        &self.points
    }

    /// Top-left corner of the bounding box.
    pub fn bounds_min(&self) -> NormPoint {
        self.min
    }

    /// Bottom-right corner of the bounding box.
    pub fn bounds_max(&self) -> NormPoint {
        self.max
    }

    /// Whether `p` is inside the polygon (even-odd rule; points exactly on
    /// an edge may fall either way, consistently for a given outline).
    pub fn contains(&self, p: NormPoint) -> bool {
        if p.x < self.min.x || p.x > self.max.x || p.y < self.min.y || p.y > self.max.y {
            return false;
        }
        let mut inside = false;
        let n = self.points.len();
        let mut j = n - 1;
        for i in 0..n {
            let (pi, pj) = (self.points[i], self.points[j]);
            if (pi.y > p.y) != (pj.y > p.y) {
                let x_cross = (pj.x - pi.x) * (p.y - pi.y) / (pj.y - pi.y) + pi.x;
                if p.x < x_cross {
                    inside = !inside;
                }
            }
            j = i;
        }
        inside
    }
}

/// A counting line from `a` to `b` in normalised coordinates. Its left side
/// (seen walking from `a` to `b`) is side A, its right side is side B.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    a: NormPoint,
    b: NormPoint,
}

/// Which side of a [`Line`] a point is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Left of `a -> b` in image coordinates.
    A,
    /// Right of `a -> b`.
    B,
    /// On the line itself.
    On,
}

impl Line {
    /// Validates a line from two `[x, y]` end points in `0..=1`.
    pub fn new(a: [f32; 2], b: [f32; 2]) -> Result<Self, PolygonError> {
        let pa = NormPoint::new(a[0], a[1]).ok_or(PolygonError::OutsideFrame {
            index: 0,
            x: a[0],
            y: a[1],
        })?;
        let pb = NormPoint::new(b[0], b[1]).ok_or(PolygonError::OutsideFrame {
            index: 1,
            x: b[0],
            y: b[1],
        })?;
        if (pa.x - pb.x).abs() < 1e-6 && (pa.y - pb.y).abs() < 1e-6 {
            return Err(PolygonError::DegenerateLine);
        }
        Ok(Self { a: pa, b: pb })
    }

    /// Start point.
    pub fn a(&self) -> NormPoint {
        self.a
    }

    /// End point.
    pub fn b(&self) -> NormPoint {
        self.b
    }

    /// The side of the (infinite) line `p` is on.
    pub fn side(&self, p: NormPoint) -> Side {
        let c = cross(self.a, self.b, p);
        if c > 0.0 {
            Side::B
        } else if c < 0.0 {
            Side::A
        } else {
            Side::On
        }
    }

    /// Whether the movement `from -> to` crosses the segment `a-b`.
    pub fn crossed_by(&self, from: NormPoint, to: NormPoint) -> bool {
        segments_intersect(self.a, self.b, from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn square() -> Polygon {
        Polygon::new(&[[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]).unwrap()
    }

    #[test]
    fn iou_basics() {
        let a = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 10.0,
            y2: 10.0,
        };
        let b = BBox {
            x1: 5.0,
            y1: 0.0,
            x2: 15.0,
            y2: 10.0,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        let far = BBox {
            x1: 20.0,
            y1: 20.0,
            x2: 30.0,
            y2: 30.0,
        };
        assert_eq!(a.iou(&far), 0.0);
    }

    #[test]
    fn polygon_validation_names_the_reason() {
        assert_eq!(
            Polygon::new(&[[0.0, 0.0], [1.0, 0.0]]),
            Err(PolygonError::TooFewPoints { count: 2 })
        );
        assert_eq!(
            Polygon::new(&[[0.0, 0.0], [1.5, 0.0], [0.5, 0.5]]),
            Err(PolygonError::OutsideFrame {
                index: 1,
                x: 1.5,
                y: 0.0
            })
        );
        // A bow tie: edges 0 (0,0)-(1,1) and 2 (1,0)-(0,1) cross.
        assert_eq!(
            Polygon::new(&[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
            Err(PolygonError::SelfIntersecting { a: 0, b: 2 })
        );
        assert_eq!(
            Polygon::new(&[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]),
            Err(PolygonError::Degenerate)
        );
        let many: Vec<[f32; 2]> = (0..65)
            .map(|i| {
                let t = i as f32 / 65.0 * std::f32::consts::TAU;
                [0.5 + 0.4 * t.cos(), 0.5 + 0.4 * t.sin()]
            })
            .collect();
        assert_eq!(
            Polygon::new(&many),
            Err(PolygonError::TooManyPoints { count: 65 })
        );
        assert!(Polygon::new(&many[..64]).is_ok());
    }

    #[test]
    fn contains_square() {
        let sq = square();
        assert!(sq.contains(NormPoint::new(0.4, 0.4).unwrap()));
        assert!(!sq.contains(NormPoint::new(0.1, 0.4).unwrap()));
        assert!(!sq.contains(NormPoint::new(0.7, 0.7).unwrap()));
    }

    #[test]
    fn concave_polygon() {
        // A "U" shape: the notch between x 0.4..0.6 above y 0.5 is outside.
        let u = Polygon::new(&[
            [0.2, 0.2],
            [0.4, 0.2],
            [0.4, 0.5],
            [0.6, 0.5],
            [0.6, 0.2],
            [0.8, 0.2],
            [0.8, 0.8],
            [0.2, 0.8],
        ])
        .unwrap();
        assert!(!u.contains(NormPoint::new(0.5, 0.3).unwrap()));
        assert!(u.contains(NormPoint::new(0.3, 0.3).unwrap()));
        assert!(u.contains(NormPoint::new(0.5, 0.7).unwrap()));
    }

    #[test]
    fn line_sides_and_crossing() {
        let l = Line::new([0.5, 0.0], [0.5, 1.0]).unwrap();
        let left = NormPoint::new(0.2, 0.5).unwrap();
        let right = NormPoint::new(0.8, 0.5).unwrap();
        assert_ne!(l.side(left), l.side(right));
        assert!(l.crossed_by(left, right));
        assert!(!l.crossed_by(left, NormPoint::new(0.3, 0.6).unwrap()));
        assert_eq!(
            Line::new([0.1, 0.1], [0.1, 0.1]),
            Err(PolygonError::DegenerateLine)
        );
    }

    proptest! {
        #[test]
        fn contains_is_invariant_under_vertex_rotation(
            rot in 0usize..4, x in 0.0f32..=1.0, y in 0.0f32..=1.0
        ) {
            let base = [[0.2f32, 0.2], [0.6, 0.25], [0.7, 0.6], [0.25, 0.7]];
            let mut rotated = base.to_vec();
            rotated.rotate_left(rot);
            let a = Polygon::new(&base).unwrap();
            let b = Polygon::new(&rotated).unwrap();
            let p = NormPoint::new(x, y).unwrap();
            prop_assert_eq!(a.contains(p), b.contains(p));
        }

        #[test]
        fn outside_bounds_is_never_inside(x in 0.0f32..=1.0, y in 0.0f32..=1.0) {
            let sq = square();
            let p = NormPoint::new(x, y).unwrap();
            if !(0.2..=0.6).contains(&x) || !(0.2..=0.6).contains(&y) {
                prop_assert!(!sq.contains(p));
            }
        }
    }
}

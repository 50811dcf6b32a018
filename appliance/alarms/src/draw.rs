//! Annotations burnt into snapshot frames: detection boxes and zone outlines.
//! Pure pixel code on an RGB buffer; no fonts, no allocation per pixel.

use safe_yolo_domain::{BBox, NormPoint, RgbFrame};

/// A colour.
pub type Rgb = [u8; 3];

/// Red: the person who raised the alarm.
pub const ALARM: Rgb = [230, 20, 20];
/// Green: other detections.
pub const OTHER: Rgb = [40, 200, 60];
/// Yellow: zone outlines.
pub const ZONE: Rgb = [250, 210, 0];

/// A mutable view of a frame's pixels.
#[derive(Debug)]
pub struct Canvas {
    w: i64,
    h: i64,
    px: Vec<u8>,
}

impl Canvas {
    /// Copies `frame` for drawing.
    pub fn new(frame: &RgbFrame) -> Self {
        Self {
            w: i64::from(frame.width()),
            h: i64::from(frame.height()),
            px: frame.data().to_vec(),
        }
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= self.w || y >= self.h {
            return;
        }
        let Ok(i) = usize::try_from((y * self.w + x) * 3) else {
            return;
        };
        if let Some(p) = self.px.get_mut(i..i + 3) {
            p.copy_from_slice(&c);
        }
    }

    /// A line `thickness` pixels wide (Bresenham, thickened by offsets).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb, thickness: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let half = thickness / 2;
        // Bounded: at most dx + |dy| + 1 steps.
        for _ in 0..=(dx - dy) {
            for ox in -half..=half {
                for oy in -half..=half {
                    self.put(x + ox, y + oy, c);
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A box outline.
    pub fn rect(&mut self, b: &BBox, c: Rgb) {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "pixel coordinates, clamped by put()"
        )]
        let (x1, y1, x2, y2) = (b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64);
        self.line((x1, y1), (x2, y1), c, 3);
        self.line((x2, y1), (x2, y2), c, 3);
        self.line((x2, y2), (x1, y2), c, 3);
        self.line((x1, y2), (x1, y1), c, 3);
    }

    /// A closed outline through normalised points.
    pub fn polygon(&mut self, pts: &[NormPoint], c: Rgb) {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "pixel coordinates, clamped by put()"
        )]
        let to_px = |p: &NormPoint| ((p.x * self.w as f32) as i64, (p.y * self.h as f32) as i64);
        let px: Vec<(i64, i64)> = pts.iter().map(to_px).collect();
        for i in 0..px.len() {
            self.line(px[i], px[(i + 1) % px.len()], c, 2);
        }
    }

    /// The finished frame.
    pub fn finish(self) -> Option<RgbFrame> {
        let w = u32::try_from(self.w).ok()?;
        let h = u32::try_from(self.h).ok()?;
        RgbFrame::new(w, h, self.px)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_draws_edges_only() {
        let f = RgbFrame::new(20, 20, vec![0u8; 20 * 20 * 3]).unwrap();
        let mut c = Canvas::new(&f);
        c.rect(
            &BBox {
                x1: 5.0,
                y1: 5.0,
                x2: 15.0,
                y2: 15.0,
            },
            ALARM,
        );
        let out = c.finish().unwrap();
        let at = |x: usize, y: usize| &out.data()[(y * 20 + x) * 3..(y * 20 + x) * 3 + 3];
        assert_eq!(at(5, 10), &ALARM);
        assert_eq!(at(15, 5), &ALARM);
        assert_eq!(at(10, 10), &[0, 0, 0]);
    }

    #[test]
    fn out_of_frame_is_clipped() {
        let f = RgbFrame::new(4, 4, vec![0u8; 48]).unwrap();
        let mut c = Canvas::new(&f);
        c.line((-10, -10), (100, 100), ZONE, 3);
        let out = c.finish().unwrap();
        assert_eq!(&out.data()[0..3], &ZONE);
    }
}

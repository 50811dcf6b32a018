//! Output decoders for the supported families. Each turns raw output tensors into
//! candidate boxes in input-tensor pixels, filtered by per-class score thresholds.

use safe_yolo_domain::BBox;

use crate::manifest::{DecoderFamily, DecoderSpec};

/// Why model outputs do not fit the declared decoder family.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// No output tensor has the shape the family needs.
    #[error("{family:?} decoder: no output of shape {expected}; the model outputs {found:?}")]
    MissingOutput {
        /// Decoder family.
        family: DecoderFamily,
        /// The expected shape, human-readable.
        expected: String,
        /// Shapes the model has.
        found: Vec<Vec<usize>>,
    },
    /// The model predicts a different number of classes than the class list has.
    #[error(
        "{family:?} decoder: the model predicts {model} classes but the class list has {listed}"
    )]
    ClassCount {
        /// Decoder family.
        family: DecoderFamily,
        /// Classes in the model output.
        model: usize,
        /// Classes in the manifest or metadata.
        listed: usize,
    },
}

/// One output tensor as `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major data.
    pub data: Vec<f32>,
}

/// A box before NMS, in input-tensor pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Class index.
    pub class_id: u32,
    /// Score.
    pub score: f32,
    /// Box in input pixels.
    pub bbox: BBox,
}

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// Per stride: (stride, grid width, score tensor index, box tensor index).
    Nanodet {
        levels: Vec<(usize, usize, usize, usize)>,
        bins: usize,
    },
    /// `[1, 4+nc, N]` at `index`.
    Yolov8 { index: usize, anchors: usize },
    /// `[1, N, 5+nc]` at `index`.
    Yolov5 { index: usize, anchors: usize },
    /// `[1, N, 5+nc]` at `index`; grid per stride when raw.
    Yolox {
        index: usize,
        anchors: usize,
        grids: Option<Vec<(usize, usize, usize)>>,
    },
}

/// A decoder bound to one model's output shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoder {
    family: DecoderFamily,
    classes: usize,
    plan: Plan,
}

fn as_u(v: u32) -> usize {
    v as usize
}

impl Decoder {
    /// Binds `spec` to a model with `output_shapes`, an input of `width x height`
    /// and `classes` class names; fails when the shapes do not fit the family.
    pub fn new(
        spec: &DecoderSpec,
        classes: usize,
        width: u32,
        height: u32,
        output_shapes: &[Vec<usize>],
    ) -> Result<Self, DecodeError> {
        let family = spec.family;
        let found = || output_shapes.to_vec();
        let missing = |expected: String| DecodeError::MissingOutput {
            family,
            expected,
            found: found(),
        };
        let plan = match family {
            DecoderFamily::Nanodet => {
                let bins = as_u(spec.reg_max) + 1;
                let mut levels = Vec::new();
                for &s in &spec.strides {
                    let (gw, gh) = (as_u(width / s), as_u(height / s));
                    let n = gw * gh;
                    let find = |c: usize| {
                        output_shapes
                            .iter()
                            .position(|sh| sh.as_slice() == [1, n, c])
                    };
                    let boxes = find(4 * bins).ok_or_else(|| {
                        missing(format!("[1, {n}, {}] (boxes, stride {s})", 4 * bins))
                    })?;
                    let scores = match find(classes) {
                        Some(i) if i != boxes => i,
                        _ => {
                            let other = output_shapes.iter().enumerate().find(|(i, sh)| {
                                *i != boxes && sh.len() == 3 && sh[0] == 1 && sh[1] == n
                            });
                            return Err(match other {
                                Some((_, sh)) => DecodeError::ClassCount {
                                    family,
                                    model: sh[2],
                                    listed: classes,
                                },
                                None => {
                                    missing(format!("[1, {n}, {classes}] (scores, stride {s})"))
                                }
                            });
                        }
                    };
                    levels.push((as_u(s), gw, scores, boxes));
                }
                Plan::Nanodet { levels, bins }
            }
            DecoderFamily::Yolov8 => {
                let [sh] = output_shapes else {
                    return Err(missing("[1, 4+nc, N] as the only output".into()));
                };
                match sh.as_slice() {
                    [1, c, n] if *c == 4 + classes && n > c => Plan::Yolov8 {
                        index: 0,
                        anchors: *n,
                    },
                    [1, c, n] if n > c && *c > 4 => {
                        return Err(DecodeError::ClassCount {
                            family,
                            model: c - 4,
                            listed: classes,
                        });
                    }
                    _ => return Err(missing(format!("[1, {}, N]", 4 + classes))),
                }
            }
            DecoderFamily::Yolov5 | DecoderFamily::Yolox => {
                let [sh] = output_shapes else {
                    return Err(missing("[1, N, 5+nc] as the only output".into()));
                };
                let anchors = match sh.as_slice() {
                    [1, n, c] if *c == 5 + classes && n > c => *n,
                    [1, n, c] if n > c && *c > 5 => {
                        return Err(DecodeError::ClassCount {
                            family,
                            model: c - 5,
                            listed: classes,
                        });
                    }
                    _ => return Err(missing(format!("[1, N, {}]", 5 + classes))),
                };
                if family == DecoderFamily::Yolov5 {
                    Plan::Yolov5 { index: 0, anchors }
                } else {
                    let grids = if spec.decoded {
                        None
                    } else {
                        let g: Vec<_> = spec
                            .strides
                            .iter()
                            .map(|&s| (as_u(s), as_u(width / s), as_u(height / s)))
                            .collect();
                        let total: usize = g.iter().map(|(_, w, h)| w * h).sum();
                        if total != anchors {
                            return Err(missing(format!(
                                "[1, {total}, {}] (grid of strides {:?})",
                                5 + classes,
                                spec.strides
                            )));
                        }
                        Some(g)
                    };
                    Plan::Yolox {
                        index: 0,
                        anchors,
                        grids,
                    }
                }
            }
        };
        Ok(Self {
            family,
            classes,
            plan,
        })
    }

    /// Number of classes the decoder expects.
    pub fn classes(&self) -> usize {
        self.classes
    }

    fn tensor<'a>(
        &self,
        outputs: &'a [OutputTensor],
        index: usize,
        len: usize,
    ) -> Result<&'a [f32], DecodeError> {
        outputs
            .get(index)
            .map(|t| t.data.as_slice())
            .filter(|d| d.len() == len)
            .ok_or_else(|| DecodeError::MissingOutput {
                family: self.family,
                expected: format!("output {index} with {len} values"),
                found: outputs.iter().map(|t| t.shape.clone()).collect(),
            })
    }

    /// Decodes `outputs` into `out`, keeping boxes whose best class score reaches
    /// `thresholds[class]`.
    pub fn decode(
        &self,
        outputs: &[OutputTensor],
        thresholds: &[f32],
        out: &mut Vec<Candidate>,
    ) -> Result<(), DecodeError> {
        out.clear();
        let nc = self.classes;
        let thr = |c: usize| thresholds.get(c).copied().unwrap_or(1.0);
        match &self.plan {
            Plan::Nanodet { levels, bins } => {
                for &(stride, gw, si, bi) in levels {
                    let n = outputs
                        .get(si)
                        .map_or(0, |t| t.shape.get(1).copied().unwrap_or(0));
                    let scores = self.tensor(outputs, si, n * nc)?;
                    let boxes = self.tensor(outputs, bi, n * 4 * bins)?;
                    for (cell, row) in scores.chunks_exact(nc).enumerate() {
                        let (c, score) = argmax(row);
                        if score < thr(c) {
                            continue;
                        }
                        let reg = &boxes[cell * 4 * bins..(cell + 1) * 4 * bins];
                        let d: Vec<f32> = reg
                            .chunks_exact(*bins)
                            .map(|r| dfl_expectation(r) * stride as f32)
                            .collect();
                        let cx = ((cell % gw) as f32 + 0.5) * stride as f32;
                        let cy = ((cell / gw) as f32 + 0.5) * stride as f32;
                        out.push(candidate(
                            c,
                            score,
                            BBox {
                                x1: cx - d[0],
                                y1: cy - d[1],
                                x2: cx + d[2],
                                y2: cy + d[3],
                            },
                        ));
                    }
                }
            }
            Plan::Yolov8 { index, anchors } => {
                let n = *anchors;
                let data = self.tensor(outputs, *index, (4 + nc) * n)?;
                for i in 0..n {
                    let (mut best, mut score) = (0, f32::NEG_INFINITY);
                    for c in 0..nc {
                        let v = data[(4 + c) * n + i];
                        if v > score {
                            (best, score) = (c, v);
                        }
                    }
                    if score < thr(best) {
                        continue;
                    }
                    let (cx, cy, w, h) = (data[i], data[n + i], data[2 * n + i], data[3 * n + i]);
                    out.push(candidate(best, score, centre_box(cx, cy, w, h)));
                }
            }
            Plan::Yolov5 { index, anchors } => {
                let data = self.tensor(outputs, *index, anchors * (5 + nc))?;
                for row in data.chunks_exact(5 + nc) {
                    let (c, cls) = argmax(&row[5..]);
                    let score = row[4] * cls;
                    if score < thr(c) {
                        continue;
                    }
                    out.push(candidate(
                        c,
                        score,
                        centre_box(row[0], row[1], row[2], row[3]),
                    ));
                }
            }
            Plan::Yolox {
                index,
                anchors,
                grids,
            } => {
                let data = self.tensor(outputs, *index, anchors * (5 + nc))?;
                let mut cells = grids
                    .iter()
                    .flatten()
                    .flat_map(|&(s, gw, gh)| (0..gw * gh).map(move |k| (s, k % gw, k / gw)));
                for row in data.chunks_exact(5 + nc) {
                    let cell = cells.next();
                    let (c, cls) = argmax(&row[5..]);
                    let score = row[4] * cls;
                    if score < thr(c) {
                        continue;
                    }
                    let bbox = match cell {
                        Some((s, gx, gy)) => {
                            let s = s as f32;
                            centre_box(
                                (row[0] + gx as f32) * s,
                                (row[1] + gy as f32) * s,
                                row[2].exp() * s,
                                row[3].exp() * s,
                            )
                        }
                        None => centre_box(row[0], row[1], row[2], row[3]),
                    };
                    out.push(candidate(c, score, bbox));
                }
            }
        }
        Ok(())
    }
}

fn candidate(class: usize, score: f32, bbox: BBox) -> Candidate {
    Candidate {
        class_id: u32::try_from(class).unwrap_or(u32::MAX),
        score,
        bbox,
    }
}

fn centre_box(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
    BBox {
        x1: cx - w / 2.0,
        y1: cy - h / 2.0,
        x2: cx + w / 2.0,
        y2: cy + h / 2.0,
    }
}

/// Index and value of the largest element (first on ties; `(0, -inf)` when empty).
fn argmax(row: &[f32]) -> (usize, f32) {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
}

/// Expected bin index under the softmax of `logits` (GFL distribution focal loss head).
fn dfl_expectation(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut num, mut den) = (0.0f32, 0.0f32);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        num += e * i as f32;
        den += e;
    }
    if den > 0.0 { num / den } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(family: DecoderFamily) -> DecoderSpec {
        DecoderSpec {
            family,
            strides: vec![8, 16, 32],
            reg_max: 10,
            decoded: false,
        }
    }

    fn t(shape: &[usize], data: Vec<f32>) -> OutputTensor {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        OutputTensor {
            shape: shape.to_vec(),
            data,
        }
    }

    /// A `[1, 6, 8]` YOLOv8 output: anchor 1 is class 1 at 0.9, anchor 2 class 0 at 0.3.
    fn v8_data() -> Vec<f32> {
        let n = 8;
        let rows = [
            [10.0, 50.0, 90.0],
            [20.0, 60.0, 90.0],
            [4.0, 10.0, 4.0],
            [6.0, 20.0, 6.0],
            [0.1, 0.2, 0.3],
            [0.0, 0.9, 0.1],
        ];
        let mut d = vec![0.0; 6 * n];
        for (row, vals) in rows.iter().enumerate() {
            d[row * n..row * n + 3].copy_from_slice(vals);
        }
        d
    }

    #[test]
    fn yolov8_layout() {
        let dec =
            Decoder::new(&spec(DecoderFamily::Yolov8), 2, 128, 128, &[vec![1, 6, 8]]).unwrap();
        let mut out = Vec::new();
        dec.decode(&[t(&[1, 6, 8], v8_data())], &[0.25, 0.25], &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].class_id, 1);
        assert_eq!(
            out[0].bbox,
            BBox {
                x1: 45.0,
                y1: 50.0,
                x2: 55.0,
                y2: 70.0
            }
        );
        assert_eq!((out[1].class_id, out[1].score), (0, 0.3));
        // A per-class threshold drops the class-0 box.
        dec.decode(&[t(&[1, 6, 8], v8_data())], &[0.5, 0.25], &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn yolov8_class_mismatch_and_bad_shape() {
        let e = Decoder::new(
            &spec(DecoderFamily::Yolov8),
            80,
            640,
            640,
            &[vec![1, 6, 8400]],
        )
        .unwrap_err();
        assert_eq!(
            e,
            DecodeError::ClassCount {
                family: DecoderFamily::Yolov8,
                model: 2,
                listed: 80
            }
        );
        let e = Decoder::new(
            &spec(DecoderFamily::Yolov8),
            2,
            640,
            640,
            &[vec![1, 8400, 6]],
        )
        .unwrap_err();
        assert!(matches!(e, DecodeError::MissingOutput { .. }), "{e}");
        assert!(
            Decoder::new(
                &spec(DecoderFamily::Yolov8),
                2,
                640,
                640,
                &[vec![1, 6, 8400], vec![1, 6, 8400]]
            )
            .is_err()
        );
    }

    #[test]
    fn yolov5_layout_uses_objectness() {
        let rows = vec![
            100.0, 100.0, 20.0, 40.0, 0.9, 0.1, 0.8, // class 1, 0.72
            50.0, 50.0, 10.0, 10.0, 0.2, 0.9, 0.1, // class 0, 0.18: dropped
        ];
        let dec = Decoder::new(
            &spec(DecoderFamily::Yolov5),
            2,
            64,
            64,
            &[vec![1, 2 + 8, 7]],
        );
        assert!(dec.is_ok());
        let dec = Decoder::new(&spec(DecoderFamily::Yolov5), 2, 64, 64, &[vec![1, 2, 7]]);
        assert!(dec.is_err(), "N must exceed 5+nc");
        let mut padded = rows.clone();
        padded.extend(vec![0.0; 8 * 7]);
        let dec = Decoder::new(&spec(DecoderFamily::Yolov5), 2, 64, 64, &[vec![1, 10, 7]]).unwrap();
        let mut out = Vec::new();
        dec.decode(&[t(&[1, 10, 7], padded)], &[0.25, 0.25], &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
        assert!((out[0].score - 0.72).abs() < 1e-6);
        assert_eq!(
            out[0].bbox,
            BBox {
                x1: 90.0,
                y1: 80.0,
                x2: 110.0,
                y2: 120.0
            }
        );
        let e =
            Decoder::new(&spec(DecoderFamily::Yolov5), 80, 64, 64, &[vec![1, 10, 7]]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::ClassCount {
                family: DecoderFamily::Yolov5,
                model: 2,
                listed: 80
            }
        );
    }

    #[test]
    fn yolox_decodes_grid_offsets() {
        // 32x32 input, strides 8/16/32 -> 16 + 4 + 1 = 21 anchors, 1 class.
        let mut d = vec![0.0; 21 * 6];
        // Anchor 17 is the first of stride 16 (cell (1,0) is anchor 17).
        let row = &mut d[17 * 6..18 * 6];
        row.copy_from_slice(&[0.5, 0.5, 0.0, (2.0f32).ln(), 0.8, 0.5]);
        let dec = Decoder::new(&spec(DecoderFamily::Yolox), 1, 32, 32, &[vec![1, 21, 6]]).unwrap();
        let mut out = Vec::new();
        dec.decode(&[t(&[1, 21, 6], d)], &[0.3], &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let b = out[0].bbox;
        // Cell (1, 0) of stride 16: centre ((0.5 + 1) * 16, 0.5 * 16) = (24, 8), w = 16, h = 32.
        assert!(
            (b.x1 - 16.0).abs() < 1e-4 && (b.x2 - 32.0).abs() < 1e-4,
            "{b:?}"
        );
        assert!(
            (b.y1 + 8.0).abs() < 1e-4 && (b.y2 - 24.0).abs() < 1e-4,
            "{b:?}"
        );
        assert!((out[0].score - 0.4).abs() < 1e-6);
        let e =
            Decoder::new(&spec(DecoderFamily::Yolox), 1, 32, 32, &[vec![1, 20, 6]]).unwrap_err();
        assert!(matches!(e, DecodeError::MissingOutput { .. }));
    }

    #[test]
    fn nanodet_distribution_boxes() {
        // 16x16 input, single stride 8: 2x2 grid, 2 classes, reg_max 1 (2 bins).
        let s = DecoderSpec {
            family: DecoderFamily::Nanodet,
            strides: vec![8],
            reg_max: 1,
            decoded: false,
        };
        let shapes = vec![vec![1, 4, 8], vec![1, 4, 2]];
        let dec = Decoder::new(&s, 2, 16, 16, &shapes).unwrap();
        let mut scores = vec![0.0; 8];
        scores[3 * 2 + 1] = 0.7; // cell 3 = (col 1, row 1), class 1
        let mut boxes = vec![0.0; 32];
        // Each side: logits (0, 0) -> expectation 0.5 bins -> 4 px.
        boxes[3 * 8..4 * 8].copy_from_slice(&[0.0; 8]);
        let mut out = Vec::new();
        dec.decode(
            &[t(&[1, 4, 8], boxes), t(&[1, 4, 2], scores)],
            &[0.5, 0.5],
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
        assert_eq!(
            out[0].bbox,
            BBox {
                x1: 8.0,
                y1: 8.0,
                x2: 16.0,
                y2: 16.0
            }
        );
        let e = Decoder::new(&s, 3, 16, 16, &shapes).unwrap_err();
        assert_eq!(
            e,
            DecodeError::ClassCount {
                family: DecoderFamily::Nanodet,
                model: 2,
                listed: 3
            }
        );
        let e = Decoder::new(&s, 2, 32, 32, &shapes).unwrap_err();
        assert!(matches!(e, DecodeError::MissingOutput { .. }));
    }
}

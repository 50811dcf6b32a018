//! Class-wise NMS, max-detections cap, mapping back to frame pixels and naming.

use std::sync::Arc;

use safe_yolo_domain::Detection;

use crate::decode::Candidate;
use crate::preprocess::FrameTransform;

/// Post-processing settings resolved against the class list.
#[derive(Debug, Clone, PartialEq)]
pub struct PostProcess {
    /// Score threshold per class index.
    pub thresholds: Vec<f32>,
    /// NMS IoU threshold.
    pub nms_iou: f32,
    /// Maximum detections kept per frame.
    pub max_detections: usize,
    /// Class names by index.
    pub names: Arc<[Arc<str>]>,
    /// When set, only these class indices are reported.
    pub class_filter: Option<Vec<u32>>,
}

impl PostProcess {
    /// Greedy class-wise NMS over `candidates` (input pixels), then the cap, then
    /// mapping through `transform`; results sorted by descending score.
    pub fn run(
        &self,
        candidates: &mut Vec<Candidate>,
        transform: &FrameTransform,
    ) -> Vec<Detection> {
        if let Some(filter) = &self.class_filter {
            candidates.retain(|c| filter.contains(&c.class_id));
        }
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Candidate> = Vec::new();
        for c in candidates.iter() {
            if kept.len() >= self.max_detections {
                break;
            }
            let suppressed = kept
                .iter()
                .any(|k| k.class_id == c.class_id && k.bbox.iou(&c.bbox) > self.nms_iou);
            if !suppressed {
                kept.push(*c);
            }
        }
        kept.into_iter()
            .map(|c| Detection {
                class_id: c.class_id,
                class_name: self
                    .names
                    .get(c.class_id as usize)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("unknown")),
                score: c.score,
                bbox: transform.to_frame(&c.bbox),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safe_yolo_domain::BBox;

    fn cand(class_id: u32, score: f32, x: f32) -> Candidate {
        Candidate {
            class_id,
            score,
            bbox: BBox {
                x1: x,
                y1: 0.0,
                x2: x + 10.0,
                y2: 10.0,
            },
        }
    }

    #[test]
    fn classwise_nms_cap_and_mapping() {
        let post = PostProcess {
            thresholds: vec![0.3, 0.3],
            nms_iou: 0.5,
            max_detections: 3,
            names: vec![Arc::from("a"), Arc::from("b")].into(),
            class_filter: None,
        };
        let tr = FrameTransform {
            scale_x: 0.5,
            scale_y: 0.5,
            pad_x: 0.0,
            pad_y: 0.0,
            frame_width: 100,
            frame_height: 100,
        };
        // Same box, two classes: both kept. Overlapping same-class box: suppressed.
        let mut c = vec![
            cand(0, 0.9, 0.0),
            cand(1, 0.8, 0.0),
            cand(0, 0.7, 1.0),
            cand(0, 0.6, 50.0),
            cand(0, 0.5, 80.0),
        ];
        let d = post.run(&mut c, &tr);
        assert_eq!(d.len(), 3, "capped at max_detections");
        assert_eq!(
            d.iter().map(|d| d.score).collect::<Vec<_>>(),
            [0.9, 0.8, 0.6]
        );
        assert_eq!(&*d[1].class_name, "b");
        assert_eq!(
            d[2].bbox,
            BBox {
                x1: 100.0,
                y1: 0.0,
                x2: 100.0,
                y2: 20.0
            },
            "scaled and clamped"
        );
        let post = PostProcess {
            class_filter: Some(vec![1]),
            ..post
        };
        let d = post.run(&mut vec![cand(0, 0.9, 0.0), cand(1, 0.8, 0.0)], &tr);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].class_id, 1);
    }
}

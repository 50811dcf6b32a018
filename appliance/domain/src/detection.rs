//! One detected object.

use std::sync::Arc;

use crate::geometry::BBox;

/// One object found by the detector, in original-frame pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class index in the model's class list.
    pub class_id: u32,
    /// Class name from the model (e.g. `person`, `Without Helmet`).
    pub class_name: Arc<str>,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Box in pixels of the frame that was given to the detector.
    pub bbox: BBox,
}

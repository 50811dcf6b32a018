//! Decoded frames and their metadata.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::ids::CameraId;

/// A packed 8-bit RGB image (`width * height * 3` bytes, row-major, no padding).
#[derive(Clone, PartialEq, Eq)]
pub struct RgbFrame {
    width: u32,
    height: u32,
    data: Arc<[u8]>,
}

impl RgbFrame {
    /// Wraps `data`; `None` when its length is not `width * height * 3`
    /// or a side is zero.
    pub fn new(width: u32, height: u32, data: impl Into<Arc<[u8]>>) -> Option<Self> {
        let data = data.into();
        let expected = (width as usize)
            .checked_mul(height as usize)?
            .checked_mul(3)?;
        (width > 0 && height > 0 && data.len() == expected).then_some(Self {
            width,
            height,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, `RGBRGB...`.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// A cheap clone of the pixel buffer.
    pub fn shared_data(&self) -> Arc<[u8]> {
        Arc::clone(&self.data)
    }
}

impl std::fmt::Debug for RgbFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RgbFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// Where a frame came from and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameMeta {
    /// The camera that delivered the frame.
    pub camera: CameraId,
    /// Per-camera sequence number, counting from 0 at source start.
    pub seq: u64,
    /// Wall-clock capture time (driver timestamp where the source has one).
    pub captured_at: SystemTime,
    /// Monotonic capture time since the source started, for latency maths.
    pub since_start: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_length() {
        assert!(RgbFrame::new(2, 2, vec![0u8; 12]).is_some());
        assert!(RgbFrame::new(2, 2, vec![0u8; 11]).is_none());
        assert!(RgbFrame::new(0, 2, Vec::<u8>::new()).is_none());
    }
}

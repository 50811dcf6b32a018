//! A frame's picture as the camera delivered it, decoded to pixels only by the
//! consumer that needs them.
//!
//! Most frames are never decoded: a frame goes to the detector (decoded at the
//! smallest size its model needs, [`Picture::decode_at_least`]), to a snapshot
//! ([`Picture::decode`]) or to a viewer of a camera that does not deliver JPEG;
//! every other frame stays as captured, and a JPEG camera's live view forwards
//! its bytes ([`Picture::jpeg`]).

use std::sync::Arc;

use safe_yolo_domain::RgbFrame;

use crate::convert::{self, ConvertError};
use crate::frame::{Payload, PixelFormat};

/// A captured frame's picture: the payload and the size its header (or its
/// geometry) declares. Cheap to clone (the bytes are shared).
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    payload: Payload,
    width: u32,
    height: u32,
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picture")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("payload", &self.payload)
            .finish()
    }
}

impl Picture {
    /// The picture of `payload`; a JPEG's size is read from its start-of-frame
    /// header (nothing is decoded). Fails when a JPEG has no readable
    /// start-of-frame or a side is zero or too large.
    pub fn new(payload: Payload) -> Result<Self, ConvertError> {
        let (width, height) = match &payload {
            Payload::Jpeg(data) => {
                crate::mjpeg::dimensions(data).ok_or(ConvertError::NoSize { len: data.len() })?
            }
            Payload::Raw { width, height, .. } => (*width, *height),
        };
        if width == 0 || height == 0 {
            return Err(ConvertError::EmptyFrame { width, height });
        }
        if width as usize > convert::MAX_JPEG_SIDE || height as usize > convert::MAX_JPEG_SIDE {
            return Err(ConvertError::TooLarge { width, height });
        }
        Ok(Self {
            payload,
            width,
            height,
        })
    }

    /// The picture of pixels already decoded (a raw RGB payload sharing them).
    pub fn from_rgb(frame: &RgbFrame) -> Self {
        Self {
            payload: Payload::Raw {
                format: PixelFormat::Rgb24,
                width: frame.width(),
                height: frame.height(),
                stride: frame.width() as usize * 3,
                data: frame.shared_data(),
            },
            width: frame.width(),
            height: frame.height(),
        }
    }

    /// Full width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Full height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The payload as captured.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The camera's own JPEG bytes, when it delivered JPEG.
    pub fn jpeg(&self) -> Option<&Arc<[u8]>> {
        match &self.payload {
            Payload::Jpeg(data) => Some(data),
            Payload::Raw { .. } => None,
        }
    }

    /// The pixels at full size.
    pub fn decode(&self) -> Result<RgbFrame, ConvertError> {
        convert::to_rgb(&self.payload)
    }

    /// The pixels at the smallest size libjpeg-turbo's DCT scaling gives that is
    /// still at least `min_width x min_height` (full size when no reduced one
    /// is; raw payloads are always converted at full size). The caller maps
    /// coordinates back with the ratio of [`Picture::width`] to the result's.
    pub fn decode_at_least(
        &self,
        min_width: u32,
        min_height: u32,
    ) -> Result<RgbFrame, ConvertError> {
        match &self.payload {
            Payload::Jpeg(data) => {
                match convert::jpeg_scale_for((self.width, self.height), (min_width, min_height)) {
                    Some(scale) => convert::decode_jpeg_scaled(data, scale),
                    None => convert::decode_jpeg(data),
                }
            }
            Payload::Raw { .. } => self.decode(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let px: Vec<u8> = (0..w * h * 3).map(|i| (i % 253) as u8).collect();
        let frame = RgbFrame::new(w, h, px).unwrap();
        crate::encode::JpegEncoder::new(90)
            .unwrap()
            .encode(&frame)
            .unwrap()
    }

    #[test]
    fn a_jpeg_picture_knows_its_size_and_keeps_its_bytes() {
        let bytes = jpeg(64, 48);
        let p = Picture::new(Payload::Jpeg(Arc::from(bytes.clone()))).unwrap();
        assert_eq!((p.width(), p.height()), (64, 48));
        assert_eq!(&p.jpeg().unwrap()[..], &bytes[..]);
        let full = p.decode().unwrap();
        assert_eq!((full.width(), full.height()), (64, 48));
    }

    #[test]
    fn decode_at_least_picks_the_smallest_scale_that_is_big_enough() {
        let p = Picture::new(Payload::Jpeg(Arc::from(jpeg(768, 576)))).unwrap();
        for (need, got) in [
            ((90, 70), (96, 72)),
            ((96, 72), (96, 72)),
            ((97, 72), (192, 144)),
            ((320, 240), (384, 288)),
            ((384, 289), (768, 576)),
            ((416, 416), (768, 576)),
            ((0, 0), (96, 72)),
        ] {
            let f = p.decode_at_least(need.0, need.1).unwrap();
            assert_eq!((f.width(), f.height()), got, "need {need:?}");
        }
    }

    #[test]
    fn a_scaled_decode_looks_like_the_full_one_shrunk() {
        // Flat colour blocks survive any scale.
        let (w, h) = (128u32, 64u32);
        let mut px = Vec::new();
        for _y in 0..h {
            for x in 0..w {
                px.extend_from_slice(if x < w / 2 {
                    &[200, 30, 30]
                } else {
                    &[30, 30, 200]
                });
            }
        }
        let frame = RgbFrame::new(w, h, px).unwrap();
        let bytes = crate::encode::JpegEncoder::new(95)
            .unwrap()
            .encode(&frame)
            .unwrap();
        let p = Picture::new(Payload::Jpeg(Arc::from(bytes))).unwrap();
        let half = p.decode_at_least(64, 32).unwrap();
        assert_eq!((half.width(), half.height()), (64, 32));
        let at = |x: usize, y: usize| &half.data()[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3];
        for (got, want) in [(at(8, 16), [200, 30, 30]), (at(56, 16), [30, 30, 200])] {
            for (g, w) in got.iter().zip(want) {
                assert!(i32::from(*g).abs_diff(w) <= 6, "got {got:?} want {want:?}");
            }
        }
    }

    #[test]
    fn raw_pictures_convert_at_full_size_and_have_no_jpeg() {
        let frame = RgbFrame::new(8, 4, vec![7u8; 8 * 4 * 3]).unwrap();
        let p = Picture::from_rgb(&frame);
        assert!(p.jpeg().is_none());
        assert_eq!(p.decode_at_least(2, 2).unwrap(), frame);
        assert_eq!(p.decode().unwrap(), frame);
    }

    #[test]
    fn a_jpeg_without_a_size_is_refused() {
        assert!(matches!(
            Picture::new(Payload::Jpeg(Arc::from(&b"not a jpeg"[..]))),
            Err(ConvertError::NoSize { len: 10 })
        ));
    }
}

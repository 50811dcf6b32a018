//! Frame -> input tensor: resize (stretch or letterbox) with `fast_image_resize`,
//! channel reorder and mean/std normalisation written straight into the tensor.

use fast_image_resize as fir;
use safe_yolo_domain::{BBox, RgbFrame};

use crate::manifest::{ChannelOrder, InputSpec, LetterboxAlign, ResizeMode, TensorLayout};

/// Why a frame could not be turned into an input tensor.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The resizer rejected the images (should not happen for valid frames).
    #[error("resizing a {width}x{height} frame failed")]
    Resize {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// The resizer's cause.
        #[source]
        source: fir::ResizeError,
    },
    /// The frame or scratch buffer did not fit the declared image size.
    #[error("image buffer for a {width}x{height} image is invalid")]
    Buffer {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// The cause.
        #[source]
        source: fir::ImageBufferError,
    },
}

/// An `f32` input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// Shape, `[1, 3, H, W]` or `[1, H, W, 3]`.
    pub shape: [usize; 4],
    /// Data in `shape` order.
    pub data: Vec<f32>,
}

/// Maps input-tensor coordinates back to the original frame:
/// `x_frame = (x_input - pad_x) / scale_x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTransform {
    /// Horizontal scale frame -> input.
    pub scale_x: f32,
    /// Vertical scale frame -> input.
    pub scale_y: f32,
    /// Left padding in input pixels.
    pub pad_x: f32,
    /// Top padding in input pixels.
    pub pad_y: f32,
    /// Frame width.
    pub frame_width: u32,
    /// Frame height.
    pub frame_height: u32,
}

impl FrameTransform {
    /// The box in frame pixels, clamped to the frame.
    pub fn to_frame(&self, b: &BBox) -> BBox {
        BBox {
            x1: (b.x1 - self.pad_x) / self.scale_x,
            y1: (b.y1 - self.pad_y) / self.scale_y,
            x2: (b.x2 - self.pad_x) / self.scale_x,
            y2: (b.y2 - self.pad_y) / self.scale_y,
        }
        .clamp_to(self.frame_width as f32, self.frame_height as f32)
    }
}

/// Reusable preprocessing state (resizer buffers, lookup tables).
#[derive(Debug)]
pub struct Preprocessor {
    spec: InputSpec,
    resizer: fir::Resizer,
    scratch: Vec<u8>,
    /// Per tensor channel: normalised value of each 0-255 level.
    lut: [[f32; 256]; 3],
    /// Per tensor channel: which RGB byte feeds it.
    source_channel: [usize; 3],
}

impl Preprocessor {
    /// A preprocessor for the manifest's input description.
    pub fn new(spec: &InputSpec) -> Self {
        let source_channel = match spec.channels {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        let mut lut = [[0.0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = (v as f32 - spec.mean[c]) / spec.std[c];
            }
        }
        Self {
            spec: spec.clone(),
            resizer: fir::Resizer::new(),
            scratch: Vec::new(),
            lut,
            source_channel,
        }
    }

    /// The tensor shape this preprocessor writes.
    pub fn shape(&self) -> [usize; 4] {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        match self.spec.layout {
            TensorLayout::Nchw => [1, 3, h, w],
            TensorLayout::Nhwc => [1, h, w, 3],
        }
    }

    /// An input tensor of the right size, zero-filled.
    pub fn new_tensor(&self) -> InputTensor {
        let shape = self.shape();
        InputTensor {
            shape,
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// The placement of a `width x height` frame in the input: (scaled width,
    /// scaled height, left pad, top pad).
    pub fn placement(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let (iw, ih) = (self.spec.width, self.spec.height);
        let (nw, nh) = fitted_size(self.spec.resize, (iw, ih), (width, height));
        match (self.spec.resize, self.spec.letterbox_align) {
            (ResizeMode::Stretch, _) | (ResizeMode::Letterbox, LetterboxAlign::TopLeft) => {
                (nw, nh, 0, 0)
            }
            (ResizeMode::Letterbox, LetterboxAlign::Center) => {
                (nw, nh, (iw - nw) / 2, (ih - nh) / 2)
            }
        }
    }

    /// Writes `frame` into `out` (resized from [`Self::new_tensor`]) and returns the
    /// transform mapping input coordinates back to the frame.
    pub fn run(
        &mut self,
        frame: &RgbFrame,
        out: &mut InputTensor,
    ) -> Result<FrameTransform, PreprocessError> {
        let (fw, fh) = (frame.width(), frame.height());
        let (nw, nh, dx, dy) = self.placement(fw, fh);
        let src = fir::images::ImageRef::new(fw, fh, frame.data(), fir::PixelType::U8x3).map_err(
            |source| PreprocessError::Buffer {
                width: fw,
                height: fh,
                source,
            },
        )?;
        let len = nw as usize * nh as usize * 3;
        self.scratch.resize(len, 0);
        let resized: &[u8] = if (nw, nh) == (fw, fh) {
            frame.data()
        } else {
            let mut dst =
                fir::images::Image::from_slice_u8(nw, nh, &mut self.scratch, fir::PixelType::U8x3)
                    .map_err(|source| PreprocessError::Buffer {
                        width: nw,
                        height: nh,
                        source,
                    })?;
            let opts = fir::ResizeOptions::new()
                .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
            self.resizer
                .resize(&src, &mut dst, &opts)
                .map_err(|source| PreprocessError::Resize {
                    width: fw,
                    height: fh,
                    source,
                })?;
            &self.scratch
        };
        let shape = self.shape();
        out.shape = shape;
        out.data.resize(shape.iter().product(), 0.0);
        let (iw, ih) = (self.spec.width as usize, self.spec.height as usize);
        let (nw, nh, dx, dy) = (nw as usize, nh as usize, dx as usize, dy as usize);
        let padded = nw != iw || nh != ih;
        let fill = usize::from(self.spec.letterbox_fill);
        match self.spec.layout {
            TensorLayout::Nchw => {
                let plane = iw * ih;
                for c in 0..3 {
                    let lut = &self.lut[c];
                    let sc = self.source_channel[c];
                    let dst = &mut out.data[c * plane..(c + 1) * plane];
                    if padded {
                        dst.fill(lut[fill]);
                    }
                    for (y, row) in resized.chunks_exact(nw * 3).enumerate() {
                        let start = (y + dy) * iw + dx;
                        for (o, px) in dst[start..start + nw].iter_mut().zip(row.chunks_exact(3)) {
                            *o = lut[usize::from(px[sc])];
                        }
                    }
                }
            }
            TensorLayout::Nhwc => {
                if padded {
                    let value = [self.lut[0][fill], self.lut[1][fill], self.lut[2][fill]];
                    for px in out.data.chunks_exact_mut(3) {
                        px.copy_from_slice(&value);
                    }
                }
                for (y, row) in resized.chunks_exact(nw * 3).enumerate() {
                    let start = ((y + dy) * iw + dx) * 3;
                    for (o, px) in out.data[start..start + nw * 3]
                        .chunks_exact_mut(3)
                        .zip(row.chunks_exact(3))
                    {
                        for ((slot, lut), sc) in
                            o.iter_mut().zip(&self.lut).zip(self.source_channel)
                        {
                            *slot = lut[usize::from(px[sc])];
                        }
                    }
                }
            }
        }
        Ok(FrameTransform {
            scale_x: nw as f32 / fw as f32,
            scale_y: nh as f32 / fh as f32,
            pad_x: dx as f32,
            pad_y: dy as f32,
            frame_width: fw,
            frame_height: fh,
        })
    }
}

/// The size a `width x height` frame is resized to inside an `input` of
/// `resize` mode: the whole input when stretched, the largest size with the
/// frame's aspect ratio that fits when letterboxed.
pub fn fitted_size(
    resize: ResizeMode,
    input: (u32, u32),
    (width, height): (u32, u32),
) -> (u32, u32) {
    let (iw, ih) = input;
    match resize {
        ResizeMode::Stretch => (iw, ih),
        ResizeMode::Letterbox => {
            let s = (f64::from(iw) / f64::from(width.max(1)))
                .min(f64::from(ih) / f64::from(height.max(1)));
            (
                scaled(width, s).clamp(1, iw.max(1)),
                scaled(height, s).clamp(1, ih.max(1)),
            )
        }
    }
}

/// `round(v * s)` as a pixel count.
fn scaled(v: u32, s: f64) -> u32 {
    let r = (f64::from(v) * s).round();
    // The product is bounded by the input size (<= 8192) so the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let r = r.max(0.0) as u32;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ChannelOrder, InputSpec, LetterboxAlign, ResizeMode, TensorLayout};

    fn spec(resize: ResizeMode, channels: ChannelOrder, layout: TensorLayout) -> InputSpec {
        InputSpec {
            width: 8,
            height: 8,
            layout,
            resize,
            letterbox_fill: 114,
            letterbox_align: LetterboxAlign::Center,
            channels,
            mean: [0.0, 0.0, 0.0],
            std: [1.0, 1.0, 1.0],
        }
    }

    fn frame(w: u32, h: u32, rgb: [u8; 3]) -> RgbFrame {
        RgbFrame::new(w, h, rgb.repeat((w * h) as usize)).unwrap()
    }

    #[test]
    fn letterbox_pads_and_maps_back() {
        let mut p = Preprocessor::new(&spec(
            ResizeMode::Letterbox,
            ChannelOrder::Rgb,
            TensorLayout::Nchw,
        ));
        let mut t = p.new_tensor();
        let tr = p.run(&frame(16, 8, [10, 20, 30]), &mut t).unwrap();
        // 16x8 -> 8x4 centred vertically: rows 0-1 and 6-7 are padding.
        assert_eq!(
            (tr.scale_x, tr.scale_y, tr.pad_x, tr.pad_y),
            (0.5, 0.5, 0.0, 2.0)
        );
        assert_eq!(t.data[0], 114.0);
        assert_eq!(t.data[2 * 8], 10.0);
        assert_eq!(t.data[64 + 3 * 8], 20.0);
        assert_eq!(t.data[128 + 7 * 8], 114.0);
        let b = tr.to_frame(&BBox {
            x1: 0.0,
            y1: 2.0,
            x2: 8.0,
            y2: 7.0,
        });
        assert_eq!(
            b,
            BBox {
                x1: 0.0,
                y1: 0.0,
                x2: 16.0,
                y2: 8.0
            },
            "clamped to the frame"
        );
    }

    #[test]
    fn bgr_and_normalisation_and_nhwc() {
        let mut s = spec(ResizeMode::Stretch, ChannelOrder::Bgr, TensorLayout::Nhwc);
        s.mean = [1.0, 2.0, 3.0];
        s.std = [2.0, 2.0, 2.0];
        let mut p = Preprocessor::new(&s);
        let mut t = p.new_tensor();
        assert_eq!(t.shape, [1, 8, 8, 3]);
        p.run(&frame(4, 4, [10, 20, 30]), &mut t).unwrap();
        // Channel 0 is blue: (30 - 1) / 2.
        assert_eq!(&t.data[..3], &[14.5, 9.0, 3.5]);
    }
}

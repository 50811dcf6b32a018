//! Turning a captured [`Payload`] into a packed RGB frame.
//!
//! Raw YUV formats use the ITU-R BT.601 limited-range ("studio swing") matrix,
//! which is what UVC cameras and V4L2 drivers deliver for SDTV/HD capture by
//! default; JPEG payloads are decoded with `zune-jpeg` (pure Rust), which applies
//! the JFIF full-range matrix. Every raw format honours the row stride
//! (`bytesperline`), so padded driver buffers convert correctly.
//!
//! A JPEG needed at less than its full size (the detector's input is smaller
//! than the camera's frame) is decoded by libjpeg-turbo with DCT scaling
//! ([`decode_jpeg_scaled`]): the inverse DCT itself produces the reduced image,
//! so the decoder does a fraction of the work of a full decode and the resize
//! that follows starts from fewer pixels.

use std::sync::Arc;

use safe_yolo_domain::RgbFrame;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::frame::{Payload, PixelFormat};

/// Largest side accepted from a JPEG, so a corrupt or hostile header cannot
/// make the decoder allocate gigabytes.
pub const MAX_JPEG_SIDE: usize = 8192;

/// Why a payload could not be turned into RGB.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The frame has a zero side.
    #[error("frame size {width}x{height} is empty")]
    EmptyFrame {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The stride is shorter than one row of pixels.
    #[error("{format} stride {stride} is shorter than a {width}-pixel row ({min} bytes)")]
    StrideTooSmall {
        /// Pixel format.
        format: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Stride given.
        stride: usize,
        /// Smallest valid stride.
        min: usize,
    },
    /// The buffer holds fewer bytes than the geometry needs.
    #[error(
        "{format} {width}x{height} (stride {stride}) needs {needed} bytes, the buffer has {got}"
    )]
    ShortBuffer {
        /// Pixel format.
        format: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Stride.
        stride: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A multi-plane frame came with another number of planes than its format has.
    #[error("{format} has {expected} planes, the frame has {got}")]
    PlaneCount {
        /// Pixel format.
        format: PixelFormat,
        /// Planes of the format.
        expected: usize,
        /// Planes given.
        got: usize,
    },
    /// A raw payload claims to be MJPEG (MJPEG payloads are `Payload::Jpeg`).
    #[error("a raw payload cannot have the MJPEG format")]
    RawMjpeg,
    /// The JPEG could not be decoded.
    #[error("JPEG of {len} bytes could not be decoded")]
    Jpeg {
        /// Size of the JPEG data.
        len: usize,
        /// The decoder's reason.
        #[source]
        source: zune_jpeg::errors::DecodeErrors,
    },
    /// libjpeg-turbo could not decode the JPEG at a reduced size.
    #[error("JPEG of {len} bytes could not be decoded at {num}/{denom} scale")]
    Scaled {
        /// Size of the JPEG data.
        len: usize,
        /// Numerator of the scale.
        num: u32,
        /// Denominator of the scale.
        denom: u32,
        /// The library's reason.
        #[source]
        source: turbojpeg::Error,
    },
    /// The JPEG has no start-of-frame header to read its size from.
    #[error("JPEG of {len} bytes has no readable start-of-frame header")]
    NoSize {
        /// Size of the JPEG data.
        len: usize,
    },
    /// The JPEG's header declares a side larger than [`MAX_JPEG_SIDE`].
    #[error("JPEG of {width}x{height} is larger than {MAX_JPEG_SIDE} pixels on a side")]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
    },
    /// The decoder returned an image whose size does not match its header.
    #[error("decoded JPEG is {width}x{height} but has {len} bytes")]
    DecodedSize {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Bytes produced.
        len: usize,
    },
}

/// Converts `payload` into a packed RGB frame.
pub fn to_rgb(payload: &Payload) -> Result<RgbFrame, ConvertError> {
    match payload {
        Payload::Jpeg(data) => decode_jpeg(data),
        Payload::Raw {
            format,
            width,
            height,
            stride,
            data,
        } => raw_to_rgb(*format, *width, *height, *stride, data),
    }
}

/// Decodes a JPEG image (baseline or progressive; grayscale is expanded to
/// RGB; MJPEG frames without Huffman tables get the standard ones).
pub fn decode_jpeg(data: &[u8]) -> Result<RgbFrame, ConvertError> {
    with_huffman_tables(data, |data| {
        let mut decoder = zune_decoder(data);
        let jpeg_err = |source| ConvertError::Jpeg {
            len: data.len(),
            source,
        };
        decoder.decode_headers().map_err(jpeg_err)?;
        let pixels = decoder.decode().map_err(jpeg_err)?;
        let (width, height) = decoder
            .dimensions()
            .map(|(w, h)| (w as u32, h as u32))
            .unwrap_or((0, 0));
        let len = pixels.len();
        RgbFrame::new(width, height, pixels).ok_or(ConvertError::DecodedSize { width, height, len })
    })
}

/// The reduced sizes libjpeg-turbo's DCT scaling decodes to, smallest first,
/// as `(numerator, denominator)` of the full size. Only the power-of-two
/// scales: their inverse DCTs (4x4, 2x2, 1x1 of each 8x8 block) are the fast
/// ones.
pub const JPEG_SCALES: [(u32, u32); 3] = [(1, 8), (1, 4), (1, 2)];

/// A side of `full` pixels at scale `num/denom`, rounded up as libjpeg-turbo
/// does (`TJSCALED`).
pub fn scaled_side(full: u32, (num, denom): (u32, u32)) -> u32 {
    (u64::from(full) * u64::from(num))
        .div_ceil(u64::from(denom))
        .try_into()
        .unwrap_or(u32::MAX)
}

/// The smallest of [`JPEG_SCALES`] at which a `width x height` JPEG is still at
/// least `min_width x min_height`; `None` when only the full size is.
pub fn jpeg_scale_for(
    (width, height): (u32, u32),
    (min_width, min_height): (u32, u32),
) -> Option<(u32, u32)> {
    JPEG_SCALES.into_iter().find(|&s| {
        scaled_side(width, s) >= min_width.max(1) && scaled_side(height, s) >= min_height.max(1)
    })
}

/// Decodes a JPEG at `scale` (one of [`JPEG_SCALES`], or `(1, 1)`) of its full
/// size with libjpeg-turbo: the result is `scaled_side(width, scale) x
/// scaled_side(height, scale)`. MJPEG frames without Huffman tables decode
/// too (libjpeg-turbo supplies the standard ones).
pub fn decode_jpeg_scaled(data: &[u8], scale: (u32, u32)) -> Result<RgbFrame, ConvertError> {
    let (num, denom) = scale;
    let turbo = |source| ConvertError::Scaled {
        len: data.len(),
        num,
        denom,
        source,
    };
    let mut decompressor = turbojpeg::Decompressor::new().map_err(turbo)?;
    let header = decompressor.read_header(data).map_err(turbo)?;
    let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let (full_w, full_h) = (side(header.width), side(header.height));
    if full_w as usize > MAX_JPEG_SIDE || full_h as usize > MAX_JPEG_SIDE {
        return Err(ConvertError::TooLarge {
            width: full_w,
            height: full_h,
        });
    }
    let (width, height) = (scaled_side(full_w, scale), scaled_side(full_h, scale));
    if width == 0 || height == 0 {
        return Err(ConvertError::EmptyFrame { width, height });
    }
    let (w, h) = (width as usize, height as usize);
    let mut pixels = vec![0u8; w * h * 3];
    // Given a smaller destination than the JPEG, libjpeg-turbo picks the
    // largest of its scales that fits: with the exact size of `scale`, that
    // is `scale` itself.
    decompressor
        .decompress(
            data,
            turbojpeg::Image {
                pixels: &mut pixels[..],
                width: w,
                pitch: w * 3,
                height: h,
                format: turbojpeg::PixelFormat::RGB,
            },
        )
        .map_err(turbo)?;
    let len = pixels.len();
    RgbFrame::new(width, height, pixels).ok_or(ConvertError::DecodedSize { width, height, len })
}

/// The zune-jpeg decoder for `data`, RGB out, sides capped.
fn zune_decoder(data: &[u8]) -> JpegDecoder<ZCursor<&[u8]>> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(MAX_JPEG_SIDE)
        .set_max_height(MAX_JPEG_SIDE);
    JpegDecoder::new_with_options(ZCursor::new(data), options)
}

/// Runs `f` on `data`, with an `AVI1` marker added first when it lacks Huffman tables.
fn with_huffman_tables<T>(data: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    // Many UVC cameras send MJPEG frames without Huffman tables (the standard
    // ones are implied). zune-jpeg fills them in for frames marked as AVI
    // MJPEG (an `AVI1` APP0 segment), so such a marker is added when needed.
    if lacks_huffman_tables(data) {
        let patched = [&data[..2], AVI1_APP0, &data[2..]].concat();
        f(&patched)
    } else {
        f(data)
    }
}

/// An APP0 segment `AVI1\0`: marks a JPEG as an MJPEG frame whose Huffman
/// tables are the standard ones (ITU T.81 Annex K.3).
const AVI1_APP0: &[u8] = &[0xFF, 0xE0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0x00];

/// Whether a JPEG reaches its first scan without a Huffman table (DHT)
/// segment and without the `AVI1` marker that implies the standard tables.
fn lacks_huffman_tables(jpeg: &[u8]) -> bool {
    if jpeg.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return false;
    }
    let mut i = 2;
    while let (Some(&0xFF), Some(&marker)) = (jpeg.get(i), jpeg.get(i + 1)) {
        match marker {
            0xFF => {
                i += 1;
                continue;
            }
            0xC4 => return false,
            0xDA => return true,
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        let Some(len) = jpeg
            .get(i + 2..i + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return false;
        };
        if marker == 0xE0 && jpeg.get(i + 4..i + 9) == Some(&AVI1_APP0[4..]) {
            return false;
        }
        i += 2 + len;
    }
    false
}

/// Converts an uncompressed image with the given geometry into packed RGB.
pub fn raw_to_rgb(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    data: &[u8],
) -> Result<RgbFrame, ConvertError> {
    if width == 0 || height == 0 {
        return Err(ConvertError::EmptyFrame { width, height });
    }
    if format == PixelFormat::Mjpeg {
        return Err(ConvertError::RawMjpeg);
    }
    let min = format.min_stride(width);
    if stride < min {
        return Err(ConvertError::StrideTooSmall {
            format,
            width,
            stride,
            min,
        });
    }
    let needed = required_len(format, width, height, stride);
    if data.len() < needed {
        return Err(ConvertError::ShortBuffer {
            format,
            width,
            height,
            stride,
            needed,
            got: data.len(),
        });
    }
    let (w, h) = (width as usize, height as usize);
    let mut out = vec![0u8; w * h * 3];
    match (format.single_buffer(), format.semi_planar()) {
        (_, Some((x_div, y_div))) => {
            semi_planar_rows(data, stride, w, h, (x_div, y_div), &mut out);
        }
        (PixelFormat::Rgb24, None) => rgb24_rows(data, stride, w, &mut out),
        (PixelFormat::Bgr24, None) => bgr24_rows(data, stride, w, &mut out),
        (PixelFormat::Yuyv, None) => yuyv_rows(data, stride, w, &mut out),
        (_, None) => return Err(ConvertError::RawMjpeg),
    }
    let data: Arc<[u8]> = out.into();
    let len = data.len();
    RgbFrame::new(width, height, data).ok_or(ConvertError::DecodedSize { width, height, len })
}

/// Bytes a raw image needs: every row but the last may be padded to its
/// plane's stride, the last row only needs its pixels.
fn required_len(format: PixelFormat, width: u32, height: u32, stride: usize) -> usize {
    let planes = format.plane_geometry(width, height, stride);
    let Some((last, before)) = planes.split_last() else {
        return 0;
    };
    before
        .iter()
        .fold(0usize, |sum, p| {
            sum.saturating_add(p.stride.saturating_mul(p.rows))
        })
        .saturating_add(last.stride.saturating_mul(last.rows - 1))
        .saturating_add(last.row)
}

/// The planes of a two-buffer frame (`nv12m`, `nv16m`: each plane's bytes
/// and its `bytesperline`) joined into one payload laid out as its
/// single-buffer twin with `stride` bytes per Y row: one copy, row by row
/// only where a plane's stride differs from the joined layout's. The result
/// is what [`raw_to_rgb`] takes for `format`.
pub fn join_planes(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    planes: &[(&[u8], usize)],
) -> Result<Vec<u8>, ConvertError> {
    if width == 0 || height == 0 {
        return Err(ConvertError::EmptyFrame { width, height });
    }
    let layout = format.plane_geometry(width, height, stride);
    let short = |needed: usize, got: usize| ConvertError::ShortBuffer {
        format,
        width,
        height,
        stride,
        needed,
        got,
    };
    if planes.len() != layout.len() {
        return Err(ConvertError::PlaneCount {
            format,
            expected: layout.len(),
            got: planes.len(),
        });
    }
    let min = format.min_stride(width);
    if stride < min {
        return Err(ConvertError::StrideTooSmall {
            format,
            width,
            stride,
            min,
        });
    }
    for (geometry, &(bytes, plane_stride)) in layout.iter().zip(planes) {
        if plane_stride < geometry.row {
            return Err(ConvertError::StrideTooSmall {
                format,
                width,
                stride: plane_stride,
                min: geometry.row,
            });
        }
        let needed = plane_stride
            .saturating_mul(geometry.rows - 1)
            .saturating_add(geometry.row);
        if bytes.len() < needed {
            return Err(short(needed, bytes.len()));
        }
    }
    // The joined layout pads rows to `stride`; a stride that would make it
    // several times larger than the planes themselves is the driver's error,
    // never an allocation.
    let total = layout.iter().fold(0usize, |sum, p| {
        sum.saturating_add(p.stride.saturating_mul(p.rows))
    });
    let given = planes.iter().map(|(b, _)| b.len()).sum::<usize>();
    if total > given.saturating_mul(4) {
        return Err(short(total, given));
    }
    let mut out = Vec::with_capacity(total);
    for (geometry, &(bytes, plane_stride)) in layout.iter().zip(planes) {
        if plane_stride == geometry.stride {
            let whole = geometry
                .stride
                .saturating_mul(geometry.rows)
                .min(bytes.len());
            out.extend_from_slice(&bytes[..whole]);
            out.resize(out.len() + geometry.stride * geometry.rows - whole, 0);
        } else {
            for row in bytes.chunks(plane_stride).take(geometry.rows) {
                out.extend_from_slice(&row[..geometry.row]);
                out.resize(out.len() + geometry.stride - geometry.row, 0);
            }
        }
    }
    Ok(out)
}

fn rgb24_rows(data: &[u8], stride: usize, w: usize, out: &mut [u8]) {
    for (dst, src) in out.chunks_exact_mut(w * 3).zip(data.chunks(stride)) {
        dst.copy_from_slice(&src[..w * 3]);
    }
}

fn bgr24_rows(data: &[u8], stride: usize, w: usize, out: &mut [u8]) {
    for (dst, src) in out.chunks_exact_mut(w * 3).zip(data.chunks(stride)) {
        for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
            d.copy_from_slice(&[s[2], s[1], s[0]]);
        }
    }
}

fn yuyv_rows(data: &[u8], stride: usize, w: usize, out: &mut [u8]) {
    for (dst, src) in out.chunks_exact_mut(w * 3).zip(data.chunks(stride)) {
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            let pair = &src[(x / 2) * 4..(x / 2) * 4 + 4];
            let y = if x % 2 == 0 { pair[0] } else { pair[2] };
            px.copy_from_slice(&yuv_to_rgb(y, pair[1], pair[3]));
        }
    }
}

/// A semi-planar YUV image (NV12, NV16, NV24): the Y plane, then `U V`
/// pairs, one for every `x_div` pixels and `y_div` rows.
fn semi_planar_rows(
    data: &[u8],
    stride: usize,
    w: usize,
    h: usize,
    (x_div, y_div): (usize, usize),
    out: &mut [u8],
) {
    let chroma_stride = stride * 2 / x_div;
    let (luma, chroma) = data.split_at(stride * h);
    for (row, (dst, src)) in out
        .chunks_exact_mut(w * 3)
        .zip(luma.chunks(stride))
        .enumerate()
    {
        let uv_row = &chroma[(row / y_div) * chroma_stride..];
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            let c = (x / x_div) * 2;
            px.copy_from_slice(&yuv_to_rgb(src[x], uv_row[c], uv_row[c + 1]));
        }
    }
}

/// BT.601 limited-range YCbCr to RGB in 8.8 fixed point (the classic
/// `298/409/100/208/516` coefficients, exact to within one code value of the
/// floating-point matrix).
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    [
        clamp_u8((c + 409 * e + 128) >> 8),
        clamp_u8((c - 100 * d - 208 * e + 128) >> 8),
        clamp_u8((c + 516 * d + 128) >> 8),
    ]
}

fn clamp_u8(v: i32) -> u8 {
    // The clamp makes the narrowing cast lossless.
    v.clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BT.601 limited-range matrix in floating point (the reference the
    /// fixed-point version must match).
    fn reference(y: u8, u: u8, v: u8) -> [f64; 3] {
        let (y, u, v) = (
            f64::from(y) - 16.0,
            f64::from(u) - 128.0,
            f64::from(v) - 128.0,
        );
        [
            1.164_383 * y + 1.596_027 * v,
            1.164_383 * y - 0.391_762 * u - 0.812_968 * v,
            1.164_383 * y + 2.017_232 * u,
        ]
        .map(|c| c.clamp(0.0, 255.0))
    }

    fn assert_close(got: &[u8], want: [f64; 3], what: &str) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1.0,
                "{what}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn yuv_matrix_matches_reference_everywhere() {
        for y in (0..=255u8).step_by(5) {
            for u in (0..=255u8).step_by(15) {
                for v in (0..=255u8).step_by(15) {
                    assert_close(&yuv_to_rgb(y, u, v), reference(y, u, v), "matrix");
                }
            }
        }
    }

    #[test]
    fn yuv_known_colours() {
        // Black, white and the 100% primaries of BT.601 colour bars.
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(126, 128, 128), [128, 128, 128]);
        assert_eq!(yuv_to_rgb(81, 90, 240), [255, 0, 0]);
        let green = yuv_to_rgb(145, 54, 34);
        assert!(
            green[0] <= 1 && green[1] == 255 && green[2] <= 1,
            "{green:?}"
        );
        let blue = yuv_to_rgb(41, 240, 110);
        assert!(blue[0] <= 1 && blue[1] <= 1 && blue[2] == 255, "{blue:?}");
    }

    #[test]
    fn yuyv_with_padding() {
        // 3x2 image (odd width: the last pair is half used), stride 16 with padding 0xEE.
        let mut data = vec![0xEEu8; 16 * 2];
        data[..12].copy_from_slice(&[81, 90, 16, 240, 235, 128, 0, 128, 0, 0, 0, 0]);
        data[16..28].copy_from_slice(&[145, 54, 41, 34, 126, 128, 99, 128, 0, 0, 0, 0]);
        let rgb = raw_to_rgb(PixelFormat::Yuyv, 3, 2, 16, &data).unwrap();
        let px = rgb.data();
        assert_eq!(&px[0..3], &yuv_to_rgb(81, 90, 240));
        assert_eq!(&px[3..6], &yuv_to_rgb(16, 90, 240));
        assert_eq!(&px[6..9], &[255, 255, 255]);
        assert_eq!(&px[9..12], &yuv_to_rgb(145, 54, 34));
        assert_eq!(&px[12..15], &yuv_to_rgb(41, 54, 34));
        assert_eq!(&px[15..18], &[128, 128, 128]);
    }

    #[test]
    fn nv12_with_stride_and_odd_size() {
        // 3x3 image, stride 4: Y plane 3 rows, UV plane 2 rows.
        let (w, h, stride) = (3u32, 3u32, 4usize);
        let ys = [[16u8, 235, 126], [81, 145, 41], [50, 60, 70]];
        let uvs = [[(90u8, 240u8), (128, 128)], [(54, 34), (240, 110)]];
        let mut data = vec![0xEEu8; stride * 5];
        for (r, row) in ys.iter().enumerate() {
            data[r * stride..r * stride + 3].copy_from_slice(row);
        }
        for (r, row) in uvs.iter().enumerate() {
            let base = stride * 3 + r * stride;
            for (c, (u, v)) in row.iter().enumerate() {
                data[base + 2 * c] = *u;
                data[base + 2 * c + 1] = *v;
            }
        }
        let rgb = raw_to_rgb(PixelFormat::Nv12, w, h, stride, &data).unwrap();
        let px = rgb.data();
        for (r, row) in ys.iter().enumerate() {
            for (c, y) in row.iter().enumerate() {
                let (u, v) = uvs[r / 2][c / 2];
                let at = (r * 3 + c) * 3;
                assert_eq!(&px[at..at + 3], &yuv_to_rgb(*y, u, v), "pixel {r},{c}");
                assert_close(&px[at..at + 3], reference(*y, u, v), "nv12");
            }
        }
    }

    /// A deterministic pseudo-random byte per position (no two neighbours alike).
    fn noise(i: usize, salt: usize) -> u8 {
        ((i.wrapping_mul(2_654_435_761) ^ salt.wrapping_mul(40_503)) >> 7) as u8
    }

    /// A semi-planar image with padded rows: its bytes, and per pixel the
    /// `(y, u, v)` it encodes, as the plain formula reads them.
    fn semi_planar_image(
        format: PixelFormat,
        (w, h, stride): (usize, usize, usize),
    ) -> (Vec<u8>, Vec<(u8, u8, u8)>) {
        let (x_div, y_div) = format.semi_planar().unwrap();
        let chroma_stride = stride * 2 / x_div;
        let chroma_rows = h.div_ceil(y_div);
        let mut data = vec![0xEEu8; stride * h + chroma_stride * chroma_rows];
        for (i, b) in data.iter_mut().enumerate() {
            *b = noise(i, format as usize);
        }
        let (luma, chroma) = data.split_at(stride * h);
        let mut yuv = Vec::new();
        for r in 0..h {
            for c in 0..w {
                let at = (r / y_div) * chroma_stride + (c / x_div) * 2;
                yuv.push((luma[r * stride + c], chroma[at], chroma[at + 1]));
            }
        }
        (data, yuv)
    }

    #[test]
    fn nv16_and_nv24_match_the_per_pixel_formula() {
        for format in [PixelFormat::Nv16, PixelFormat::Nv24] {
            // Odd width, padded rows.
            let (w, h, stride) = (7usize, 5usize, 12usize);
            let (data, yuv) = semi_planar_image(format, (w, h, stride));
            let rgb = raw_to_rgb(format, w as u32, h as u32, stride, &data).unwrap();
            for (i, (px, (y, u, v))) in rgb.data().chunks_exact(3).zip(yuv).enumerate() {
                assert_eq!(px, &yuv_to_rgb(y, u, v), "{format} pixel {i}");
                assert_close(px, reference(y, u, v), "semi-planar");
            }
            // The last UV row needs its pairs only (NV16: 4 pairs of a 12-byte
            // row; NV24: 7 pairs of a 24-byte row); one byte less is refused.
            let needed = match format {
                PixelFormat::Nv16 => 12 * 5 + 12 * 4 + 8,
                _ => 12 * 5 + 24 * 4 + 14,
            };
            assert!(matches!(
                raw_to_rgb(format, w as u32, h as u32, stride, &data[..needed - 1]),
                Err(ConvertError::ShortBuffer { .. })
            ));
            assert!(raw_to_rgb(format, w as u32, h as u32, stride, &data[..needed]).is_ok());
        }
    }

    #[test]
    fn nv16_is_nv12_with_every_chroma_row_twice() {
        // NV12's chroma rows, each repeated, make the NV16 of the same picture.
        let (w, h, stride) = (6usize, 4usize, 8usize);
        let (nv12, _) = semi_planar_image(PixelFormat::Nv12, (w, h, stride));
        let (luma, chroma) = nv12.split_at(stride * h);
        let mut nv16 = luma.to_vec();
        for row in chroma.chunks(stride) {
            nv16.extend_from_slice(row);
            nv16.extend_from_slice(row);
        }
        let a = raw_to_rgb(PixelFormat::Nv12, w as u32, h as u32, stride, &nv12).unwrap();
        let b = raw_to_rgb(PixelFormat::Nv16, w as u32, h as u32, stride, &nv16).unwrap();
        assert_eq!(a.data(), b.data());
    }

    #[test]
    fn two_plane_frames_join_into_their_single_buffer_twin() {
        for (format, twin) in [
            (PixelFormat::Nv12m, PixelFormat::Nv12),
            (PixelFormat::Nv16m, PixelFormat::Nv16),
        ] {
            let (w, h, stride) = (9usize, 6usize, 16usize);
            let (contiguous, _) = semi_planar_image(twin, (w, h, stride));
            let want = raw_to_rgb(twin, w as u32, h as u32, stride, &contiguous).unwrap();
            let (luma, chroma) = contiguous.split_at(stride * h);
            // The same strides as the joined layout: the planes as they are.
            let joined = join_planes(
                format,
                w as u32,
                h as u32,
                stride,
                &[(luma, stride), (chroma, stride)],
            )
            .unwrap();
            assert_eq!(joined, contiguous, "{format}");
            let got = raw_to_rgb(format, w as u32, h as u32, stride, &joined).unwrap();
            assert_eq!(got.data(), want.data(), "{format}");
            // A UV plane with its own, wider stride (and no padding after its
            // last row) is repacked row by row.
            let wide = 24;
            let mut uv = Vec::new();
            for row in chroma.chunks(stride) {
                uv.extend_from_slice(&row[..w.div_ceil(2) * 2]);
                uv.resize(uv.len() + wide - w.div_ceil(2) * 2, 0x55);
            }
            uv.truncate(uv.len() - (wide - w.div_ceil(2) * 2));
            let joined = join_planes(
                format,
                w as u32,
                h as u32,
                stride,
                &[(luma, stride), (&uv, wide)],
            )
            .unwrap();
            let got = raw_to_rgb(format, w as u32, h as u32, stride, &joined).unwrap();
            assert_eq!(got.data(), want.data(), "{format} repacked");
            // A plane too short, a stride too small or a plane missing is an error.
            assert!(matches!(
                join_planes(
                    format,
                    w as u32,
                    h as u32,
                    stride,
                    &[(luma, stride), (&uv[..uv.len() - 1], wide)]
                ),
                Err(ConvertError::ShortBuffer { .. })
            ));
            assert!(matches!(
                join_planes(
                    format,
                    w as u32,
                    h as u32,
                    stride,
                    &[(luma, stride), (&uv, 4)]
                ),
                Err(ConvertError::StrideTooSmall { .. })
            ));
            assert!(matches!(
                join_planes(format, w as u32, h as u32, stride, &[(luma, stride)]),
                Err(ConvertError::PlaneCount {
                    expected: 2,
                    got: 1,
                    ..
                })
            ));
        }
        // A stride that would blow the joined frame up is refused, not allocated.
        let y = [0u8; 64];
        assert!(matches!(
            join_planes(PixelFormat::Nv12m, 8, 1, 1 << 40, &[(&y, 64), (&y, 64)]),
            Err(ConvertError::ShortBuffer { .. })
        ));
    }

    #[test]
    fn bgr24_swaps_to_rgb_and_strips_padding() {
        let data = [3, 2, 1, 6, 5, 4, 0, 0, 9, 8, 7, 12, 11, 10];
        let rgb = raw_to_rgb(PixelFormat::Bgr24, 2, 2, 8, &data).unwrap();
        assert_eq!(rgb.data(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn rgb24_strips_padding() {
        let data = [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12];
        let rgb = raw_to_rgb(PixelFormat::Rgb24, 2, 2, 8, &data).unwrap();
        assert_eq!(rgb.data(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn geometry_errors_are_explained() {
        let e = raw_to_rgb(PixelFormat::Rgb24, 4, 2, 8, &[0; 32]).unwrap_err();
        assert!(
            matches!(e, ConvertError::StrideTooSmall { min: 12, .. }),
            "{e}"
        );
        let e = raw_to_rgb(PixelFormat::Yuyv, 4, 2, 8, &[0; 15]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "yuyv 4x2 (stride 8) needs 16 bytes, the buffer has 15"
        );
        let e = raw_to_rgb(PixelFormat::Nv12, 4, 4, 4, &[0; 23]).unwrap_err();
        assert!(
            matches!(e, ConvertError::ShortBuffer { needed: 24, .. }),
            "{e}"
        );
        assert!(matches!(
            raw_to_rgb(PixelFormat::Nv12, 0, 4, 4, &[]),
            Err(ConvertError::EmptyFrame { .. })
        ));
        assert!(matches!(
            raw_to_rgb(PixelFormat::Mjpeg, 4, 4, 4, &[0; 64]),
            Err(ConvertError::RawMjpeg)
        ));
    }

    #[test]
    fn jpeg_decodes_to_reference_colours() {
        // A 32x16 image: left half pure red, right half mid grey; encoded at
        // quality 95 4:4:4 so colours survive within a few code values.
        let mut pixels = Vec::new();
        for _y in 0..16 {
            for x in 0..32 {
                pixels.extend_from_slice(if x < 16 {
                    &[255, 0, 0]
                } else {
                    &[128, 128, 128]
                });
            }
        }
        let src = RgbFrame::new(32, 16, pixels).unwrap();
        let jpeg = crate::encode::JpegEncoder::new(95)
            .unwrap()
            .with_subsampling(crate::encode::Subsampling::None)
            .encode(&src)
            .unwrap();
        let rgb = to_rgb(&Payload::Jpeg(jpeg.into())).unwrap();
        assert_eq!((rgb.width(), rgb.height()), (32, 16));
        let at = |x: usize, y: usize| &rgb.data()[(y * 32 + x) * 3..(y * 32 + x) * 3 + 3];
        for (got, want) in [(at(4, 8), [255, 0, 0]), (at(28, 8), [128, 128, 128])] {
            for (g, w) in got.iter().zip(want) {
                assert!(i32::from(*g).abs_diff(w) <= 4, "got {got:?} want {want:?}");
            }
        }
    }

    #[test]
    fn jpeg_matches_libjpeg_turbo_on_a_photo() {
        let path = safe_yolo_fixtures::media("bus.jpg");
        let data = std::fs::read(&path).unwrap();
        let ours = decode_jpeg(&data).unwrap();
        let theirs = turbojpeg::decompress(&data, turbojpeg::PixelFormat::RGB).unwrap();
        assert_eq!(
            (ours.width() as usize, ours.height() as usize),
            (theirs.width, theirs.height)
        );
        let total: u64 = ours
            .data()
            .iter()
            .zip(&theirs.pixels)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = total as f64 / ours.data().len() as f64;
        assert!(mean < 1.5, "mean abs difference {mean}");
    }

    /// Removes the DHT (Huffman table) segments before the first scan, as
    /// many UVC cameras send MJPEG frames.
    fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while jpeg[i + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    #[test]
    fn mjpeg_frames_without_huffman_tables_decode() {
        let frame = RgbFrame::new(
            48,
            32,
            (0..48 * 32 * 3)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let jpeg = crate::encode::JpegEncoder::new(85)
            .unwrap()
            .encode(&frame)
            .unwrap();
        let bare = strip_huffman_tables(&jpeg);
        assert!(bare.len() < jpeg.len(), "the encoder wrote DHT segments");
        assert!(
            !bare
                .windows(2)
                .take(bare.len() / 4)
                .any(|w| w == [0xFF, 0xC4])
        );
        assert!(lacks_huffman_tables(&bare));
        assert!(!lacks_huffman_tables(&jpeg));
        let with = decode_jpeg(&jpeg).unwrap();
        let without = decode_jpeg(&bare).unwrap();
        assert_eq!(with.data(), without.data());
        // libjpeg-turbo's scaled decode supplies the standard tables itself.
        let scaled_with = decode_jpeg_scaled(&jpeg, (1, 2)).unwrap();
        let scaled_without = decode_jpeg_scaled(&bare, (1, 2)).unwrap();
        assert_eq!((scaled_with.width(), scaled_with.height()), (24, 16));
        assert_eq!(scaled_with.data(), scaled_without.data());
        // A frame that already carries the AVI1 marker is left alone.
        let marked = [&bare[..2], AVI1_APP0, &bare[2..]].concat();
        assert!(!lacks_huffman_tables(&marked));
        assert_eq!(decode_jpeg(&marked).unwrap().data(), with.data());
    }

    #[test]
    fn scales_are_chosen_as_libjpeg_turbo_rounds() {
        assert_eq!(scaled_side(768, (1, 2)), 384);
        assert_eq!(scaled_side(575, (1, 8)), 72);
        assert_eq!(jpeg_scale_for((768, 576), (320, 240)), Some((1, 2)));
        assert_eq!(jpeg_scale_for((768, 576), (416, 416)), None);
        assert_eq!(jpeg_scale_for((1920, 1080), (416, 234)), Some((1, 4)));
    }

    #[test]
    fn corrupt_jpeg_is_an_error() {
        assert!(decode_jpeg_scaled(b"not a jpeg", (1, 2)).is_err());
        let e = decode_jpeg(&[0xFF, 0xD8, 0xFF, 0xDB, 0, 3, 1]).unwrap_err();
        assert!(matches!(e, ConvertError::Jpeg { len: 7, .. }), "{e}");
        assert!(decode_jpeg(b"not a jpeg").is_err());
    }
}

//! Pure helpers for the RKNN backend, compiled on every build so they are unit-tested
//! off-device: tensor layout conversion and int8 (de)quantisation with the
//! parameters `rknn_query` reports per tensor.

/// Quantisation of one RKNN tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantParams {
    /// Plain floating point.
    None,
    /// Affine asymmetric: `real = (q - zero_point) * scale`.
    Affine {
        /// Scale.
        scale: f32,
        /// Zero point.
        zero_point: i32,
    },
    /// Dynamic fixed point: `real = q / 2^fl`.
    Dfp {
        /// Fractional length.
        fl: i8,
    },
}

impl QuantParams {
    /// Dequantises `q` into `out` (cleared first).
    pub fn dequantize(&self, q: &[i8], out: &mut Vec<f32>) {
        out.clear();
        match *self {
            Self::None => out.extend(q.iter().map(|&v| f32::from(v))),
            Self::Affine { scale, zero_point } => {
                // Precomputing the 256 possible values makes this a table lookup.
                let lut: Vec<f32> = (i8::MIN..=i8::MAX)
                    .map(|v| (i32::from(v) - zero_point) as f32 * scale)
                    .collect();
                out.extend(
                    q.iter()
                        .map(|&v| lut[usize::from(v.cast_unsigned()) ^ 0x80]),
                );
            }
            Self::Dfp { fl } => {
                let s = (-f32::from(fl)).exp2();
                out.extend(q.iter().map(|&v| f32::from(v) * s));
            }
        }
    }

    /// Quantises one value with rounding and saturation.
    pub fn quantize(&self, v: f32) -> i8 {
        let q = match *self {
            Self::None => v,
            Self::Affine { scale, zero_point } => (v / scale).round() + zero_point as f32,
            Self::Dfp { fl } => (v * f32::from(fl).exp2()).round(),
        };
        // Saturated into the i8 range first, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let q = q.clamp(-128.0, 127.0) as i8;
        q
    }
}

/// Reorders a `[1, C, H, W]` tensor into `[1, H, W, C]` (RKNN's preferred input layout).
pub fn nchw_to_nhwc<T: Copy>(src: &[T], c: usize, h: usize, w: usize, dst: &mut Vec<T>) {
    dst.clear();
    if src.len() != c * h * w {
        return;
    }
    let plane = h * w;
    dst.extend((0..plane).flat_map(|i| (0..c).map(move |ch| src[ch * plane + i])));
}

/// Reorders an RKNN native `NC1HWC2` tensor (channels split in blocks of `c2`, the
/// last block zero-padded) into `[1, C, H, W]`.
pub fn nc1hwc2_to_nchw<T: Copy>(
    src: &[T],
    c: usize,
    h: usize,
    w: usize,
    c2: usize,
    dst: &mut Vec<T>,
) {
    dst.clear();
    if c2 == 0 {
        return;
    }
    let c1 = c.div_ceil(c2);
    if src.len() < c1 * h * w * c2 {
        return;
    }
    for ch in 0..c {
        let (block, lane) = (ch / c2, ch % c2);
        for i in 0..h * w {
            dst.push(src[(block * h * w + i) * c2 + lane]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_round_trip_and_saturation() {
        let q = QuantParams::Affine {
            scale: 0.5,
            zero_point: -10,
        };
        let mut out = Vec::new();
        q.dequantize(&[-10, 0, 127, -128], &mut out);
        assert_eq!(out, [0.0, 5.0, 68.5, -59.0]);
        assert_eq!(q.quantize(5.0), 0);
        assert_eq!(q.quantize(1000.0), 127);
        assert_eq!(q.quantize(-1000.0), -128);
        for v in [-3.0f32, 0.0, 2.5, 11.0] {
            let mut o = Vec::new();
            q.dequantize(&[q.quantize(v)], &mut o);
            assert!((o[0] - v).abs() <= 0.25, "{v} -> {}", o[0]);
        }
    }

    #[test]
    fn dfp_and_none() {
        let mut out = Vec::new();
        QuantParams::Dfp { fl: 3 }.dequantize(&[8, -16], &mut out);
        assert_eq!(out, [1.0, -2.0]);
        assert_eq!(QuantParams::Dfp { fl: 3 }.quantize(1.0), 8);
        QuantParams::None.dequantize(&[7], &mut out);
        assert_eq!(out, [7.0]);
    }

    #[test]
    fn layouts() {
        // C=2, H=1, W=3.
        let nchw = [1, 2, 3, 10, 20, 30];
        let mut nhwc = Vec::new();
        nchw_to_nhwc(&nchw, 2, 1, 3, &mut nhwc);
        assert_eq!(nhwc, [1, 10, 2, 20, 3, 30]);
        // C=3 in blocks of C2=2: block 0 holds channels 0,1; block 1 holds channel 2 + padding.
        let native = [1, 10, 2, 20, 100, 0, 200, 0];
        let mut back = Vec::new();
        nc1hwc2_to_nchw(&native, 3, 1, 2, 2, &mut back);
        assert_eq!(back, [1, 2, 10, 20, 100, 200]);
    }
}

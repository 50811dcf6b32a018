//! Format negotiation as pure functions over what a device offers, so the
//! choices are unit-tested without hardware.

use std::fmt;

use crate::frame::PixelFormat;

/// A frame size a device offers for one pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRange {
    /// One fixed size.
    Discrete {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Any size in a range, on a step grid (continuous ranges have step 1).
    Stepwise {
        /// Smallest width.
        min_width: u32,
        /// Largest width.
        max_width: u32,
        /// Width step.
        step_width: u32,
        /// Smallest height.
        min_height: u32,
        /// Largest height.
        max_height: u32,
        /// Height step.
        step_height: u32,
    },
}

/// A frame interval (seconds per frame, as a fraction) a device offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalRange {
    /// One fixed interval `numerator / denominator` seconds.
    Discrete {
        /// Numerator.
        numerator: u32,
        /// Denominator.
        denominator: u32,
    },
    /// Any interval between `min` and `max` (fractions as `(num, den)`).
    Stepwise {
        /// Shortest interval (highest rate).
        min: (u32, u32),
        /// Longest interval (lowest rate).
        max: (u32, u32),
    },
}

/// One pixel format a device offers, with its sizes (empty when the driver
/// does not enumerate sizes: then any size is tried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOffer {
    /// The V4L2 FourCC.
    pub fourcc: [u8; 4],
    /// The sizes offered.
    pub sizes: Vec<SizeRange>,
}

/// The size and format negotiation settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatChoice {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width to request.
    pub width: u32,
    /// Height to request.
    pub height: u32,
}

/// Why no format could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiateError {
    /// The device offers none of the formats this crate converts.
    #[error(
        "the device offers none of {} (it offers: {offered})",
        FourccList(PixelFormat::ALL.map(PixelFormat::fourcc).to_vec())
    )]
    NoUsableFormat {
        /// What it offers, as FourCCs.
        offered: FourccList,
    },
    /// The required format is not offered.
    #[error(
        "the device does not offer the required format {wanted} ({}; it offers: {offered})",
        String::from_utf8_lossy(&wanted.fourcc())
    )]
    FormatNotOffered {
        /// The configured format.
        wanted: PixelFormat,
        /// What it offers.
        offered: FourccList,
    },
}

/// A list of FourCC codes, displayed as `YUYV, MJPG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FourccList(pub Vec<[u8; 4]>);

impl fmt::Display for FourccList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Formats listed before the rest is summarised (vivid offers 60).
        const SHOWN: usize = 12;
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        for (i, code) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&fourcc_text(*code))?;
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// `V4L2_PIX_FMT_FLAG_BE`: the top bit of a FourCC's last byte marks the
/// big-endian variant of a format (`Y16 ` and `Y16 ` big-endian are two formats).
const FOURCC_FLAG_BE: u8 = 0x80;

/// A FourCC as its letters (`MJPG`, `Y10` for `Y10 `); a big-endian variant
/// ends in `-BE` (`Y16-BE`), so that two formats never read the same. A byte
/// that is no letter shows as `?`.
pub fn fourcc_text(code: [u8; 4]) -> String {
    let [a, b, c, d] = code;
    let big_endian = d & FOURCC_FLAG_BE != 0;
    let letters: String = [a, b, c, d & !FOURCC_FLAG_BE]
        .into_iter()
        .map(char::from)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let letters = letters.trim_end();
    if big_endian {
        format!("{letters}-BE")
    } else {
        letters.to_owned()
    }
}

/// Chooses the pixel format and size closest to the request.
///
/// With a required format, only that one is considered. Otherwise the size
/// matters most (the smallest `|dw| + |dh|` distance to the request, exact
/// first), then the order of [`PixelFormat::ALL`] (MJPEG, YUYV, NV12, RGB24,
/// then the formats of Rockchip's ISP and HDMI-in: NV12M, NV16, NV16M, NV24, BGR24).
pub fn choose_format(
    offers: &[FormatOffer],
    width: u32,
    height: u32,
    required: Option<PixelFormat>,
) -> Result<FormatChoice, NegotiateError> {
    let offered = || FourccList(offers.iter().map(|o| o.fourcc).collect());
    let usable = offers
        .iter()
        .filter_map(|o| PixelFormat::from_fourcc(o.fourcc).map(|f| (f, o)))
        .filter(|(f, _)| required.is_none_or(|r| r == *f));
    let best = usable
        .map(|(format, offer)| {
            let (w, h, distance) = best_size(&offer.sizes, width, height);
            let rank = PixelFormat::ALL
                .iter()
                .position(|f| *f == format)
                .unwrap_or(PixelFormat::ALL.len());
            (
                (distance, rank),
                FormatChoice {
                    format,
                    width: w,
                    height: h,
                },
            )
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, choice)| choice);
    best.ok_or_else(|| match required {
        Some(wanted) => NegotiateError::FormatNotOffered {
            wanted,
            offered: offered(),
        },
        None => NegotiateError::NoUsableFormat { offered: offered() },
    })
}

/// The offered size closest to `width x height` and its distance.
pub fn best_size(sizes: &[SizeRange], width: u32, height: u32) -> (u32, u32, u64) {
    let distance = |w: u32, h: u32| u64::from(w.abs_diff(width)) + u64::from(h.abs_diff(height));
    sizes
        .iter()
        .map(|s| match *s {
            SizeRange::Discrete {
                width: w,
                height: h,
            } => (w, h),
            SizeRange::Stepwise {
                min_width,
                max_width,
                step_width,
                min_height,
                max_height,
                step_height,
            } => (
                snap(width, min_width, max_width, step_width),
                snap(height, min_height, max_height, step_height),
            ),
        })
        .map(|(w, h)| (w, h, distance(w, h)))
        .min_by_key(|(w, h, d)| (*d, std::cmp::Reverse(u64::from(*w) * u64::from(*h))))
        .unwrap_or((width, height, 0))
}

/// `value` clamped to `min..=max` and rounded to the nearest `min + k * step`.
fn snap(value: u32, min: u32, max: u32, step: u32) -> u32 {
    let (min, max) = (min.min(max), max.max(min));
    let v = value.clamp(min, max);
    let step = step.max(1);
    let k = (v - min + step / 2) / step;
    let snapped = min.saturating_add(k.saturating_mul(step));
    if snapped > max {
        snapped - step
    } else {
        snapped
    }
}

/// Frames per second of an interval `numerator / denominator` seconds.
pub fn fps_of(numerator: u32, denominator: u32) -> Option<f32> {
    (numerator > 0 && denominator > 0).then(|| denominator as f32 / numerator as f32)
}

/// The interval to request for `fps`, as `(numerator, denominator)`: the
/// offered discrete interval with the closest rate (ties go to the faster),
/// or `1000 / (fps * 1000)` clamped into a stepwise range; with nothing offered,
/// the plain request (the driver adjusts it).
pub fn choose_interval(offers: &[IntervalRange], fps: f32) -> (u32, u32) {
    let plain = |fps: f32| (1000, (fps * 1000.0).round().max(1.0) as u32);
    let candidates = offers.iter().filter_map(|o| match *o {
        IntervalRange::Discrete {
            numerator,
            denominator,
        } => fps_of(numerator, denominator).map(|r| (r, (numerator, denominator))),
        IntervalRange::Stepwise { min, max } => {
            let fast = fps_of(min.0, min.1)?;
            let slow = fps_of(max.0, max.1)?;
            let r = fps.clamp(slow.min(fast), fast.max(slow));
            Some((r, plain(r)))
        }
    });
    candidates
        .min_by(|(a, _), (b, _)| {
            let (da, db) = ((a - fps).abs(), (b - fps).abs());
            da.total_cmp(&db).then(b.total_cmp(a))
        })
        .map(|(_, interval)| interval)
        .unwrap_or_else(|| plain(fps))
}

/// The bytes per row to use for a negotiated raw format: the driver's
/// `bytesperline`, or the packed row size when it reports 0 or less than a row.
pub fn effective_stride(format: PixelFormat, width: u32, bytesperline: u32) -> usize {
    let min = format.min_stride(width);
    let reported = bytesperline as usize;
    if reported < min { min } else { reported }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_text_tells_big_endian_variants_apart() {
        // As vivid lists them: `Y16 ` and its big-endian twin (flag in the
        // top bit of the last byte), `XR15` and its twin.
        assert_eq!(fourcc_text(*b"MJPG"), "MJPG");
        assert_eq!(fourcc_text(*b"Y16 "), "Y16");
        assert_eq!(fourcc_text([b'Y', b'1', b'6', b' ' | 0x80]), "Y16-BE");
        assert_eq!(fourcc_text(*b"XR15"), "XR15");
        assert_eq!(fourcc_text([b'X', b'R', b'1', b'5' | 0x80]), "XR15-BE");
        // The flag is only in the last byte: a high bit elsewhere is no letter.
        assert_eq!(fourcc_text([b'A' | 0x80, b'B', b'C', b'D']), "?BCD");
        assert_eq!(fourcc_text([0, b'B', b'C', b'D']), "?BCD");
    }

    fn discrete(sizes: &[(u32, u32)]) -> Vec<SizeRange> {
        sizes
            .iter()
            .map(|&(width, height)| SizeRange::Discrete { width, height })
            .collect()
    }

    /// A typical UVC webcam: MJPEG up to 1080p, YUYV only small sizes, plus an
    /// H.264 node format this crate does not handle.
    fn webcam() -> Vec<FormatOffer> {
        vec![
            FormatOffer {
                fourcc: *b"YUYV",
                sizes: discrete(&[(640, 480), (320, 240)]),
            },
            FormatOffer {
                fourcc: *b"MJPG",
                sizes: discrete(&[(1920, 1080), (1280, 720), (640, 480)]),
            },
            FormatOffer {
                fourcc: *b"H264",
                sizes: discrete(&[(1920, 1080)]),
            },
        ]
    }

    /// vivid's webcam input: raw formats with a continuous size range.
    fn vivid() -> Vec<FormatOffer> {
        let range = SizeRange::Stepwise {
            min_width: 16,
            max_width: 1920,
            step_width: 2,
            min_height: 16,
            max_height: 1080,
            step_height: 1,
        };
        ["YUYV", "NV12", "RGB3"]
            .iter()
            .map(|c| FormatOffer {
                fourcc: c.as_bytes().try_into().unwrap(),
                sizes: vec![range],
            })
            .collect()
    }

    fn choice(format: PixelFormat, width: u32, height: u32) -> FormatChoice {
        FormatChoice {
            format,
            width,
            height,
        }
    }

    #[test]
    fn prefers_an_exact_size_then_mjpeg() {
        let c = choose_format(&webcam(), 1280, 720, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Mjpeg, 1280, 720));
        // Both offer 640x480: MJPEG wins on rank.
        let c = choose_format(&webcam(), 640, 480, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Mjpeg, 640, 480));
    }

    #[test]
    fn honours_a_required_format_at_its_closest_size() {
        let c = choose_format(&webcam(), 1280, 720, Some(PixelFormat::Yuyv)).unwrap();
        assert_eq!(c, choice(PixelFormat::Yuyv, 640, 480));
        let e = choose_format(&webcam(), 1280, 720, Some(PixelFormat::Nv12)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the device does not offer the required format nv12 (NV12; it offers: YUYV, MJPG, H264)"
        );
    }

    #[test]
    fn refuses_devices_without_usable_formats() {
        let offers = [FormatOffer {
            fourcc: *b"H264",
            sizes: vec![],
        }];
        let e = choose_format(&offers, 640, 480, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the device offers none of MJPG, YUYV, NV12, RGB3, NM12, NV16, NM16, NV24, BGR3 (it offers: H264)"
        );
        assert!(matches!(
            choose_format(&[], 640, 480, None),
            Err(NegotiateError::NoUsableFormat { .. })
        ));
        // Long lists are cut; big-endian flags and padding do not garble the
        // text (a big-endian variant is named as such).
        let mut many: Vec<[u8; 4]> = (0..14u8).map(|i| [b'A' + i, b'B', b'C', b'D']).collect();
        many[1] = [b'Y', b'1', b'6', b' ' | 0x80];
        let text = FourccList(many).to_string();
        assert!(text.starts_with("ABCD, Y16-BE, CBCD"), "{text}");
        assert!(text.ends_with(", LBCD and 2 more"), "{text}");
    }

    #[test]
    fn stepwise_sizes_are_clamped_and_snapped() {
        let c = choose_format(&vivid(), 1280, 720, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Yuyv, 1280, 720));
        let c = choose_format(&vivid(), 4000, 3000, Some(PixelFormat::Rgb24)).unwrap();
        assert_eq!(c, choice(PixelFormat::Rgb24, 1920, 1080));
        let c = choose_format(&vivid(), 641, 8, None).unwrap();
        assert_eq!((c.width % 2, c.height), (0, 16));
        assert_eq!(snap(7, 0, 100, 4), 8);
        assert_eq!(snap(99, 0, 98, 4), 96, "never above max on the grid");
        assert_eq!(snap(5, 10, 0, 0), 5, "reversed bounds and zero step");
    }

    #[test]
    fn closest_size_prefers_the_larger_on_ties() {
        let sizes = discrete(&[(600, 400), (700, 500)]);
        assert_eq!(best_size(&sizes, 650, 450), (700, 500, 100));
        assert_eq!(
            best_size(&[], 650, 450),
            (650, 450, 0),
            "unknown sizes: ask as is"
        );
    }

    /// What Rockchip's multi-planar nodes list: rkisp's main path (single-
    /// and two-buffer YUV, stepwise sizes) and rk_hdmirx (the source's size only).
    fn rkisp() -> Vec<FormatOffer> {
        let range = SizeRange::Stepwise {
            min_width: 32,
            max_width: 4672,
            step_width: 8,
            min_height: 32,
            max_height: 3504,
            step_height: 8,
        };
        ["NV16", "NV12", "NM16", "NM12", "YUYV"]
            .iter()
            .map(|c| FormatOffer {
                fourcc: c.as_bytes().try_into().unwrap(),
                sizes: vec![range],
            })
            .collect()
    }

    fn hdmirx() -> Vec<FormatOffer> {
        ["BGR3", "NV24", "NV16", "NV12"]
            .iter()
            .map(|c| FormatOffer {
                fourcc: c.as_bytes().try_into().unwrap(),
                sizes: discrete(&[(1920, 1080)]),
            })
            .collect()
    }

    #[test]
    fn multi_planar_nodes_negotiate_their_formats() {
        // Auto: the cheapest format at the size (NV12 before its two-buffer twin).
        let c = choose_format(&rkisp(), 1280, 720, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Yuyv, 1280, 720));
        let yuv420: Vec<_> = rkisp()
            .into_iter()
            .filter(|o| &o.fourcc != b"YUYV")
            .collect();
        let c = choose_format(&yuv420, 1280, 720, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Nv12, 1280, 720));
        let two_buffers: Vec<_> = rkisp()
            .into_iter()
            .filter(|o| o.fourcc[1] == b'M')
            .collect();
        let c = choose_format(&two_buffers, 1280, 720, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Nv12m, 1280, 720));
        for (format, size) in [
            (PixelFormat::Nv12m, (1920, 1080)),
            (PixelFormat::Nv16m, (1920, 1080)),
            (PixelFormat::Nv16, (1920, 1080)),
        ] {
            let c = choose_format(&rkisp(), 1920, 1080, Some(format)).unwrap();
            assert_eq!(c, choice(format, size.0, size.1));
        }
        // HDMI-in: the source's size in NV12 unless a format is required.
        let c = choose_format(&hdmirx(), 1280, 720, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Nv12, 1920, 1080));
        for format in [PixelFormat::Bgr24, PixelFormat::Nv24, PixelFormat::Nv16] {
            let c = choose_format(&hdmirx(), 1920, 1080, Some(format)).unwrap();
            assert_eq!(c.format, format);
        }
        let e = choose_format(&hdmirx(), 1920, 1080, Some(PixelFormat::Nv12m)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the device does not offer the required format nv12m (NM12; it offers: BGR3, NV24, NV16, NV12)"
        );
        // Every name of the configuration is a FourCC a driver lists, and back.
        for format in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(format.fourcc()), Some(format));
        }
    }

    #[test]
    fn formats_without_size_lists_are_usable() {
        let offers = [FormatOffer {
            fourcc: *b"RGB3",
            sizes: vec![],
        }];
        let c = choose_format(&offers, 800, 600, None).unwrap();
        assert_eq!(c, choice(PixelFormat::Rgb24, 800, 600));
    }

    #[test]
    fn intervals_pick_the_closest_rate() {
        let offers = [
            IntervalRange::Discrete {
                numerator: 1,
                denominator: 30,
            },
            IntervalRange::Discrete {
                numerator: 1,
                denominator: 15,
            },
            IntervalRange::Discrete {
                numerator: 1,
                denominator: 5,
            },
        ];
        assert_eq!(choose_interval(&offers, 12.0), (1, 15));
        assert_eq!(choose_interval(&offers, 100.0), (1, 30));
        assert_eq!(
            choose_interval(&offers, 10.0),
            (1, 15),
            "tie goes to the faster rate"
        );
        let stepwise = [IntervalRange::Stepwise {
            min: (1, 25),
            max: (1, 1),
        }];
        assert_eq!(choose_interval(&stepwise, 12.5), (1000, 12500));
        assert_eq!(choose_interval(&stepwise, 60.0), (1000, 25000));
        assert_eq!(choose_interval(&[], 7.5), (1000, 7500));
        assert_eq!(
            fps_of(1001, 30000).map(|f| (f * 100.0).round()),
            Some(2997.0)
        );
        assert_eq!(fps_of(0, 30), None);
    }

    #[test]
    fn stride_uses_bytesperline_when_sane() {
        assert_eq!(effective_stride(PixelFormat::Yuyv, 640, 1280), 1280);
        assert_eq!(
            effective_stride(PixelFormat::Yuyv, 640, 1536),
            1536,
            "padded rows"
        );
        assert_eq!(
            effective_stride(PixelFormat::Yuyv, 640, 0),
            1280,
            "not reported"
        );
        assert_eq!(effective_stride(PixelFormat::Rgb24, 641, 100), 1923);
        assert_eq!(effective_stride(PixelFormat::Nv12, 641, 0), 642);
        assert_eq!(effective_stride(PixelFormat::Nv12m, 641, 0), 642);
        assert_eq!(effective_stride(PixelFormat::Nv16, 641, 640), 642);
        assert_eq!(effective_stride(PixelFormat::Nv24, 641, 0), 641);
        assert_eq!(effective_stride(PixelFormat::Bgr24, 641, 2048), 2048);
    }
}

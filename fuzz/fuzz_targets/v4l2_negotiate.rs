//! V4L2 format negotiation on a device's answers (`capture::v4l2::negotiate`): the
//! formats, frame sizes and intervals a driver enumerates, the format it then sets,
//! its `bytesperline`, and a raw frame converted with that geometry
//! (`capture::convert::raw_to_rgb`; a two-plane format's planes joined first by
//! `capture::convert::join_planes`). Drivers are hostile here: any value may come.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use safe_yolo_capture::PixelFormat;
use safe_yolo_capture::convert::{join_planes, raw_to_rgb};
use safe_yolo_capture::v4l2::negotiate::{
    FormatOffer, FourccList, IntervalRange, SizeRange, choose_format, choose_interval,
    effective_stride, fourcc_text,
};

/// A FourCC as a driver lists it: mostly formats the appliance knows.
#[derive(Debug, Arbitrary)]
enum Code {
    Known(u8),
    Other([u8; 4]),
}

impl Code {
    fn fourcc(&self) -> [u8; 4] {
        const KNOWN: [&[u8; 4]; 11] = [
            b"MJPG", b"JPEG", b"YUYV", b"NV12", b"RGB3", b"H264", b"NV16", b"NV24", b"BGR3",
            b"NM12", b"NM16",
        ];
        match self {
            Code::Known(i) => *KNOWN[usize::from(*i) % KNOWN.len()],
            Code::Other(c) => *c,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Size {
    Discrete(u32, u32),
    Stepwise([u32; 6]),
}

#[derive(Debug, Arbitrary)]
enum Interval {
    Discrete(u32, u32),
    Stepwise((u32, u32), (u32, u32)),
}

#[derive(Debug, Arbitrary)]
struct Answers {
    offers: Vec<(Code, Vec<Size>)>,
    intervals: Vec<Interval>,
    /// The configuration's request (validated ranges: 160-7680 x 120-4320, 0.5-120 fps).
    width: u16,
    height: u16,
    fps_tenths: u16,
    required: Option<u8>,
    /// What `VIDIOC_S_FMT` answered.
    set_width: u32,
    set_height: u32,
    bytesperline: u32,
    /// The second plane's `bytesperline` and where the payload splits into
    /// planes (two-plane formats).
    uv_bytesperline: u32,
    split: u16,
    payload: Vec<u8>,
}

fuzz_target!(|a: Answers| {
    let offers: Vec<FormatOffer> = a
        .offers
        .iter()
        .map(|(code, sizes)| FormatOffer {
            fourcc: code.fourcc(),
            sizes: sizes
                .iter()
                .map(|s| match *s {
                    Size::Discrete(width, height) => SizeRange::Discrete { width, height },
                    Size::Stepwise([a, b, c, d, e, f]) => SizeRange::Stepwise {
                        min_width: a,
                        max_width: b,
                        step_width: c,
                        min_height: d,
                        max_height: e,
                        step_height: f,
                    },
                })
                .collect(),
        })
        .collect();
    let width = 160 + u32::from(a.width) % (7680 - 160 + 1);
    let height = 120 + u32::from(a.height) % (4320 - 120 + 1);
    let fps = 0.5 + f32::from(a.fps_tenths % 1196) / 10.0;
    let required = a.required.map(|i| PixelFormat::ALL[usize::from(i) % PixelFormat::ALL.len()]);
    let _ = FourccList(offers.iter().map(|o| o.fourcc).collect()).to_string();
    for o in &offers {
        let _ = fourcc_text(o.fourcc);
    }
    let Ok(choice) = choose_format(&offers, width, height, required) else {
        return;
    };
    if required.is_some() {
        assert_eq!(Some(choice.format), required);
    }
    // The chosen size is one the device offers for a listing of that format (a
    // listing without sizes takes any).
    let fits = |s: &SizeRange| match *s {
        SizeRange::Discrete { width, height } => (width, height) == (choice.width, choice.height),
        SizeRange::Stepwise {
            min_width,
            max_width,
            min_height,
            max_height,
            ..
        } => {
            (min_width.min(max_width)..=max_width.max(min_width)).contains(&choice.width)
                && (min_height.min(max_height)..=max_height.max(min_height))
                    .contains(&choice.height)
        }
    };
    let listed = offers
        .iter()
        .filter(|o| PixelFormat::from_fourcc(o.fourcc) == Some(choice.format))
        .any(|o| o.sizes.is_empty() || o.sizes.iter().any(fits));
    assert!(listed, "{choice:?} is not offered");
    let intervals: Vec<IntervalRange> = a
        .intervals
        .iter()
        .map(|i| match *i {
            Interval::Discrete(numerator, denominator) => IntervalRange::Discrete {
                numerator,
                denominator,
            },
            Interval::Stepwise(min, max) => IntervalRange::Stepwise { min, max },
        })
        .collect();
    let (num, den) = choose_interval(&intervals, fps);
    assert!(num > 0 && den > 0, "{num}/{den}");
    if choice.format == PixelFormat::Mjpeg {
        return;
    }
    let stride = effective_stride(choice.format, a.set_width, a.bytesperline);
    assert!(stride >= choice.format.min_stride(a.set_width));
    let joined;
    let data = if choice.format.planes() == 2 {
        let (y, uv) = a.payload.split_at(usize::from(a.split).min(a.payload.len()));
        let planes = [(y, stride), (uv, a.uv_bytesperline as usize)];
        match join_planes(choice.format, a.set_width, a.set_height, stride, &planes) {
            Ok(bytes) => {
                joined = bytes;
                &joined[..]
            }
            Err(_) => return,
        }
    } else {
        &a.payload[..]
    };
    if let Ok(frame) = raw_to_rgb(choice.format, a.set_width, a.set_height, stride, data) {
        assert_eq!((frame.width(), frame.height()), (a.set_width, a.set_height));
    }
});

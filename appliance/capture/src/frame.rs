//! What a source delivers: a captured frame with its timing and its still-encoded payload.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The pixel formats the capture layer can negotiate and convert. Their JSON
/// names (`mjpeg`, `yuyv`, `nv12`, `rgb24`) are the values of a camera source's
/// `format` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG: every buffer is a complete JPEG image.
    Mjpeg,
    /// Packed YUV 4:2:2, `Y0 U Y1 V` per two pixels.
    Yuyv,
    /// Semi-planar YUV 4:2:0: a Y plane, then interleaved `U V` at half resolution.
    Nv12,
    /// Packed 8-bit `R G B`.
    Rgb24,
}

impl safe_yolo_domain::Named for PixelFormat {
    const WHAT: &'static str = "pixel format";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("mjpeg", Self::Mjpeg),
        ("yuyv", Self::Yuyv),
        ("nv12", Self::Nv12),
        ("rgb24", Self::Rgb24),
    ];
}
safe_yolo_domain::named_vocabulary!(PixelFormat);

impl PixelFormat {
    /// Every supported format, in the default preference order for negotiation
    /// (MJPEG first: it needs the least USB bandwidth at a given size and rate).
    pub const ALL: [PixelFormat; 4] = [
        PixelFormat::Mjpeg,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Rgb24,
    ];

    /// The V4L2 FourCC code of the format.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Rgb24 => *b"RGB3",
        }
    }

    /// The format with V4L2 FourCC `code`, if it is one this crate handles.
    /// `JPEG` is accepted as an alias of `MJPG` (some drivers report it).
    pub fn from_fourcc(code: [u8; 4]) -> Option<PixelFormat> {
        match &code {
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"NV12" => Some(PixelFormat::Nv12),
            b"RGB3" => Some(PixelFormat::Rgb24),
            _ => None,
        }
    }

    /// The smallest `bytesperline` a row of `width` pixels needs (0 for MJPEG,
    /// which has no rows; for NV12 this is the Y plane's row, the UV plane uses
    /// the same stride).
    pub fn min_stride(self, width: u32) -> usize {
        let w = width as usize;
        match self {
            PixelFormat::Mjpeg => 0,
            PixelFormat::Yuyv => w.div_ceil(2) * 4,
            PixelFormat::Nv12 => w.div_ceil(2) * 2,
            PixelFormat::Rgb24 => w * 3,
        }
    }

    /// Bytes a raw image of `height` rows with `stride` bytes per row needs
    /// (`None` for MJPEG or on overflow).
    pub fn image_size(self, stride: usize, height: u32) -> Option<usize> {
        let h = height as usize;
        match self {
            PixelFormat::Mjpeg => None,
            PixelFormat::Yuyv | PixelFormat::Rgb24 => stride.checked_mul(h),
            PixelFormat::Nv12 => stride.checked_mul(h.checked_add(h.div_ceil(2))?),
        }
    }
}

/// The bytes of one frame, as the source produced them. Decoding or converting
/// to RGB is a separate step ([`crate::convert::to_rgb`]) so the pipeline can
/// run it in its own stage.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    /// A complete JPEG image (MJPEG cameras, replays).
    Jpeg(Arc<[u8]>),
    /// An uncompressed image.
    Raw {
        /// Layout of `data`.
        format: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes per row (V4L2 `bytesperline`), at least `format.min_stride(width)`.
        stride: usize,
        /// The image bytes.
        data: Arc<[u8]>,
    },
}

impl Payload {
    /// Size of the payload in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Jpeg(d) | Payload::Raw { data: d, .. } => d.len(),
        }
    }

    /// Whether the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Jpeg(d) => f.debug_struct("Jpeg").field("len", &d.len()).finish(),
            Payload::Raw {
                format,
                width,
                height,
                stride,
                data,
            } => f
                .debug_struct("Raw")
                .field("format", format)
                .field("width", width)
                .field("height", height)
                .field("stride", stride)
                .field("len", &data.len())
                .finish(),
        }
    }
}

/// One frame as captured, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// Sequence number, counting from 0 when the source was opened.
    pub seq: u64,
    /// Wall-clock capture time: the driver's timestamp for V4L2 (translated
    /// from its monotonic clock), the moment of delivery for replays.
    pub captured_at: SystemTime,
    /// Monotonic time since the source was opened, on the same clock as `captured_at`.
    pub since_start: Duration,
    /// For replays, the frame's position in the recording (`index / fps`);
    /// `None` for live sources.
    pub media_position: Option<Duration>,
    /// The frame's bytes.
    pub payload: Payload,
}

/// What kind of source delivers the frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A V4L2 capture device (the resolved character-device path).
    V4l2 {
        /// Resolved device node, e.g. `/dev/video0`.
        device: PathBuf,
        /// Driver name reported by `VIDIOC_QUERYCAP`.
        driver: String,
        /// Card (device) name reported by `VIDIOC_QUERYCAP`.
        card: String,
    },
    /// A folder of JPEG frames.
    ReplayFolder {
        /// The folder (canonical).
        path: PathBuf,
    },
    /// A file of concatenated JPEG images.
    ReplayMjpeg {
        /// The file (canonical).
        path: PathBuf,
    },
    /// An IP camera over RTSP.
    Rtsp {
        /// `rtsp://host:port` (the stream's path and query are left out: some
        /// cameras take a token there).
        origin: String,
    },
}

/// Negotiated properties of an open source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Where frames come from.
    pub kind: SourceKind,
    /// Pixel format of the payloads.
    pub format: PixelFormat,
    /// Frame width, when known before the first frame (replays learn it from
    /// their first frame: 0 until then).
    pub width: u32,
    /// Frame height, as `width`.
    pub height: u32,
    /// Nominal frame rate (negotiated for V4L2, configured for replays; `None`
    /// when unknown or unpaced).
    pub fps: Option<f32>,
    /// For replays, the number of frames in the recording.
    pub frame_count: Option<u64>,
}

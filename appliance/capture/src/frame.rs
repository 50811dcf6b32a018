//! What a source delivers: a captured frame with its timing and its still-encoded payload.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The pixel formats the capture layer can negotiate and convert. Their JSON
/// names (`mjpeg`, `yuyv`, `nv12`, `nv16`, `nv24`, `rgb24`, `bgr24`, `nv12m`,
/// `nv16m`) are the values of a camera source's `format` key.
///
/// The `...m` formats are V4L2's true multi-plane formats (multi-planar nodes
/// only: the Y and the UV plane in separate buffers); a captured frame of one
/// carries its planes one after the other, exactly as its single-buffer twin
/// ([`PixelFormat::single_buffer`]) lays them out, so the converter sees one
/// contiguous payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG: every buffer is a complete JPEG image.
    Mjpeg,
    /// Packed YUV 4:2:2, `Y0 U Y1 V` per two pixels.
    Yuyv,
    /// Semi-planar YUV 4:2:0: a Y plane, then interleaved `U V` at half resolution.
    Nv12,
    /// Semi-planar YUV 4:2:2: a Y plane, then interleaved `U V` at half width, full height.
    Nv16,
    /// Semi-planar YUV 4:4:4: a Y plane, then interleaved `U V` for every pixel
    /// (the UV rows are twice the Y stride).
    Nv24,
    /// Packed 8-bit `R G B`.
    Rgb24,
    /// Packed 8-bit `B G R`.
    Bgr24,
    /// NV12 with the Y and the UV plane in two buffers (V4L2 `NM12`).
    Nv12m,
    /// NV16 with the Y and the UV plane in two buffers (V4L2 `NM16`).
    Nv16m,
}

impl safe_yolo_domain::Named for PixelFormat {
    const WHAT: &'static str = "pixel format";
    const NAMED: &'static [(&'static str, Self)] = &[
        ("mjpeg", Self::Mjpeg),
        ("yuyv", Self::Yuyv),
        ("nv12", Self::Nv12),
        ("nv16", Self::Nv16),
        ("nv24", Self::Nv24),
        ("rgb24", Self::Rgb24),
        ("bgr24", Self::Bgr24),
        ("nv12m", Self::Nv12m),
        ("nv16m", Self::Nv16m),
    ];
}
safe_yolo_domain::named_vocabulary!(PixelFormat);

impl PixelFormat {
    /// Every supported format, in the default preference order for negotiation
    /// (MJPEG first: it needs the least USB bandwidth at a given size and rate;
    /// then the formats with the fewest bytes a pixel, a single buffer before
    /// two planes).
    pub const ALL: [PixelFormat; 9] = [
        PixelFormat::Mjpeg,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Rgb24,
        PixelFormat::Nv12m,
        PixelFormat::Nv16,
        PixelFormat::Nv16m,
        PixelFormat::Nv24,
        PixelFormat::Bgr24,
    ];

    /// The V4L2 FourCC code of the format.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Nv16 => *b"NV16",
            PixelFormat::Nv24 => *b"NV24",
            PixelFormat::Rgb24 => *b"RGB3",
            PixelFormat::Bgr24 => *b"BGR3",
            PixelFormat::Nv12m => *b"NM12",
            PixelFormat::Nv16m => *b"NM16",
        }
    }

    /// The format with V4L2 FourCC `code`, if it is one this crate handles.
    /// `JPEG` is accepted as an alias of `MJPG` (some drivers report it).
    pub fn from_fourcc(code: [u8; 4]) -> Option<PixelFormat> {
        match &code {
            b"JPEG" => Some(PixelFormat::Mjpeg),
            _ => Self::ALL.into_iter().find(|f| f.fourcc() == code),
        }
    }

    /// The buffers (V4L2 memory planes) a frame of this format comes in: 2
    /// for `nv12m`/`nv16m`, 1 for every other.
    pub fn planes(self) -> usize {
        match self {
            PixelFormat::Nv12m | PixelFormat::Nv16m => 2,
            _ => 1,
        }
    }

    /// The single-buffer format with the same layout once the planes are put
    /// one after the other (`nv12m` is `nv12`); the format itself for the others.
    pub fn single_buffer(self) -> PixelFormat {
        match self {
            PixelFormat::Nv12m => PixelFormat::Nv12,
            PixelFormat::Nv16m => PixelFormat::Nv16,
            other => other,
        }
    }

    /// The chroma subsampling of a semi-planar YUV format, `(x_div, y_div)`:
    /// one `U V` pair for every `x_div` pixels of a row and every `y_div`
    /// rows (`None` for packed formats and MJPEG).
    pub fn semi_planar(self) -> Option<(usize, usize)> {
        match self.single_buffer() {
            PixelFormat::Nv12 => Some((2, 2)),
            PixelFormat::Nv16 => Some((2, 1)),
            PixelFormat::Nv24 => Some((1, 1)),
            _ => None,
        }
    }

    /// The smallest `bytesperline` a row of `width` pixels needs (0 for MJPEG,
    /// which has no rows; for a semi-planar format this is the Y plane's row,
    /// see [`PixelFormat::plane_geometry`] for the UV plane's).
    pub fn min_stride(self, width: u32) -> usize {
        let w = width as usize;
        match self.single_buffer() {
            PixelFormat::Mjpeg => 0,
            PixelFormat::Yuyv => w.div_ceil(2) * 4,
            PixelFormat::Nv12 | PixelFormat::Nv16 => w.div_ceil(2) * 2,
            PixelFormat::Nv24 => w,
            _ => w * 3,
        }
    }

    /// The planes of a raw image with `stride` bytes per (Y) row and `height`
    /// rows, as `(rows, bytes per row, bytes a row needs)` each: one plane for
    /// packed formats, the Y and the UV plane for semi-planar ones (`V4L2`
    /// gives the UV plane of `NV24` twice the Y stride). Empty for MJPEG.
    pub fn plane_geometry(self, width: u32, height: u32, stride: usize) -> Vec<PlaneGeometry> {
        let h = height as usize;
        let row = self.min_stride(width);
        match (self, self.semi_planar()) {
            (PixelFormat::Mjpeg, _) => Vec::new(),
            (_, None) => vec![PlaneGeometry {
                rows: h,
                stride,
                row,
            }],
            (_, Some((x_div, y_div))) => {
                let luma = PlaneGeometry {
                    rows: h,
                    stride,
                    row,
                };
                let chroma = PlaneGeometry {
                    rows: h.div_ceil(y_div),
                    stride: stride.saturating_mul(2) / x_div,
                    row: row * 2 / x_div,
                };
                vec![luma, chroma]
            }
        }
    }

    /// Bytes a raw image of `height` rows with `stride` bytes per row needs
    /// (`None` for MJPEG or on overflow).
    pub fn image_size(self, stride: usize, height: u32) -> Option<usize> {
        if self == PixelFormat::Mjpeg {
            return None;
        }
        self.plane_geometry(0, height, stride)
            .iter()
            .try_fold(0usize, |sum, p| {
                sum.checked_add(p.stride.checked_mul(p.rows)?)
            })
    }
}

/// One plane of a raw image (see [`PixelFormat::plane_geometry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneGeometry {
    /// Rows of the plane.
    pub rows: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Bytes of a row that hold pixels.
    pub row: usize,
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
        /// Layout of `data` (a two-buffer format's planes one after the other,
        /// laid out as its [`PixelFormat::single_buffer`] twin).
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

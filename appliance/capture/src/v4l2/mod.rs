//! The V4L2 backend: a capture node opened by path (or stable id link),
//! negotiated to one of the formats this crate converts, streamed through
//! memory-mapped buffers, with the driver's timestamps.
//!
//! Single-planar nodes (UVC cameras, vivid, most USB grabbers) and
//! multi-planar ones (Rockchip ISP and HDMI-in, vivid `multiplanar=2`) go
//! through the same code, the buffer API named by [`mmap::BufType`]. A frame
//! of a two-plane format (`nv12m`: Y and UV in separate buffers) is copied
//! out of its buffers once, its planes one after the other
//! ([`crate::convert::join_planes`]), as every frame is copied once before its
//! buffer goes back to the driver.

pub mod discover;
mod mmap;
pub mod negotiate;

pub use self::discover::{
    DiscoverError, DiscoverLimits, DiscoveredDevice, DiscoveredFormat, DiscoveredSize, Discovery,
    SkippedNode, discover,
};

use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use v4l::Device;

use self::mmap::{BufType, Dequeued, MmapStream};
use self::negotiate::{
    FormatOffer, IntervalRange, NegotiateError, choose_format, choose_interval, effective_stride,
    fps_of,
};
use crate::convert::{self, ConvertError};
use crate::frame::{CapturedFrame, Payload, PixelFormat, SourceInfo, SourceKind};
use crate::sandbox::V4l2Spec;
use crate::source::{CaptureError, FrameSource};

/// Driver buffers requested: enough to absorb a slow consumer for a few frames.
const BUFFER_COUNT: u32 = 4;

/// `V4L2_CAP_STREAMING`.
const CAP_STREAMING: u32 = 0x0400_0000;

/// Why a V4L2 device could not be opened or stopped delivering.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    /// The node could not be opened.
    #[error("the device cannot be opened")]
    Open(#[source] io::Error),
    /// `VIDIOC_QUERYCAP` failed.
    #[error("the device does not answer VIDIOC_QUERYCAP (not a V4L2 device?)")]
    QueryCaps(#[source] io::Error),
    /// The node is not a streaming video capture node.
    #[error("{card} ({driver}) is not a streaming video capture node: it is {what}")]
    NotCapture {
        /// Driver name.
        driver: String,
        /// Card name.
        card: String,
        /// What it is instead.
        what: &'static str,
    },
    /// The formats could not be listed.
    #[error("the device's formats cannot be listed")]
    EnumFormats(#[source] io::Error),
    /// No usable format.
    #[error("format negotiation failed")]
    Negotiate(#[source] NegotiateError),
    /// `VIDIOC_S_FMT` failed.
    #[error("setting the format {format} {width}x{height} failed")]
    SetFormat {
        /// Format asked for.
        format: PixelFormat,
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// The driver's error.
        #[source]
        source: io::Error,
    },
    /// The driver switched to a format this crate cannot convert.
    #[error("the driver answered format {got} instead of {wanted}")]
    FormatReplaced {
        /// Format asked for.
        wanted: PixelFormat,
        /// FourCC the driver chose.
        got: String,
    },
    /// The driver set a format with another number of planes than it has.
    #[error("the driver set {format} with {planes} planes")]
    Planes {
        /// The format in force.
        format: PixelFormat,
        /// Planes the driver reported.
        planes: usize,
    },
    /// The planes of a two-plane frame do not hold its image.
    #[error("the frame's planes cannot be joined")]
    Join(#[source] ConvertError),
    /// Buffer set-up or stream start failed.
    #[error("starting the mmap stream failed")]
    Stream(#[source] io::Error),
    /// Waiting for or taking a buffer failed (device unplugged, driver error).
    #[error("capturing a frame failed")]
    Capture(#[source] io::Error),
    /// Giving a buffer back to the driver failed.
    #[error("re-queueing buffer {index} failed")]
    Requeue {
        /// The buffer.
        index: usize,
        /// The driver's error.
        #[source]
        source: io::Error,
    },
}

/// A live V4L2 camera.
pub struct V4l2Source {
    spec: V4l2Spec,
    info: SourceInfo,
    stride: usize,
    /// `bytesperline` of each plane of a two-plane format.
    plane_strides: Vec<usize>,
    // Field order matters: the stream unmaps before the device closes.
    stream: MmapStream,
    _device: Device,
    opened: Instant,
    opened_mono: Duration,
    seq: u64,
    last_sequence: Option<u32>,
    /// Frames the driver dropped (gaps in its sequence numbers), including
    /// the stale ones skipped here.
    dropped: u64,
    /// Older buffers skipped in favour of a newer one.
    stale: u64,
}

impl std::fmt::Debug for V4l2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Source")
            .field("device", &self.spec.device)
            .field("info", &self.info)
            .field("stride", &self.stride)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl V4l2Source {
    /// Opens and starts a validated device (see [`crate::SourcePolicy::check`]).
    pub fn open(spec: V4l2Spec) -> Result<Self, V4l2Error> {
        let device = Device::with_path(&spec.device).map_err(V4l2Error::Open)?;
        let fd = device.handle().fd();
        let caps = mmap::query_caps(fd).map_err(V4l2Error::QueryCaps)?;
        let not_capture = |what| V4l2Error::NotCapture {
            driver: caps.driver.clone(),
            card: caps.card.clone(),
            what,
        };
        let buf_type = discover::capture_type(&caps).map_err(not_capture)?;
        if caps.capabilities & CAP_STREAMING == 0 {
            return Err(not_capture(
                "a capture node without streaming I/O (read() only)",
            ));
        }

        let offers = list_offers(fd, buf_type)?;
        let choice = choose_format(&offers, spec.width, spec.height, spec.format)
            .map_err(V4l2Error::Negotiate)?;
        let actual = mmap::set_format(
            fd,
            buf_type,
            choice.format.fourcc(),
            choice.width,
            choice.height,
        )
        .map_err(|source| V4l2Error::SetFormat {
            format: choice.format,
            width: choice.width,
            height: choice.height,
            source,
        })?;
        let format = PixelFormat::from_fourcc(actual.fourcc)
            .filter(|f| buf_type == BufType::CaptureMplane || f.planes() == 1)
            .ok_or_else(|| V4l2Error::FormatReplaced {
                wanted: choice.format,
                got: negotiate::fourcc_text(actual.fourcc),
            })?;
        if actual.strides.len() != format.planes() {
            return Err(V4l2Error::Planes {
                format,
                planes: actual.strides.len(),
            });
        }
        if (actual.width, actual.height) != (spec.width, spec.height)
            || spec.format.is_some_and(|f| f != format)
        {
            tracing::warn!(
                device = %spec.configured.display(),
                requested = %format_args!("{}x{}", spec.width, spec.height),
                requested_format = ?spec.format,
                negotiated = %format_args!("{}x{} {}", actual.width, actual.height, format),
                "camera does not offer the requested size; using the closest"
            );
        }
        let stride = effective_stride(format, actual.width, actual.strides[0]);
        let plane_strides = format
            .plane_geometry(actual.width, actual.height, stride)
            .iter()
            .zip(&actual.strides)
            .map(|(geometry, reported)| (*reported as usize).max(geometry.row))
            .collect();

        let fps = set_frame_rate(fd, buf_type, &spec, format, actual.width, actual.height);

        // Taken before streaming starts, so no frame predates the origin.
        let opened = Instant::now();
        let opened_mono = mmap::monotonic_now();
        let mut stream = MmapStream::new(device.handle(), buf_type, format.planes(), BUFFER_COUNT)
            .map_err(V4l2Error::Stream)?;
        stream.start().map_err(V4l2Error::Stream)?;
        tracing::info!(
            device = %spec.configured.display(),
            node = %spec.device.display(),
            driver = %caps.driver,
            card = %caps.card,
            format = %format,
            multiplanar = buf_type == BufType::CaptureMplane,
            width = actual.width,
            height = actual.height,
            stride,
            fps = ?fps,
            buffers = stream.len(),
            "camera streaming"
        );
        let info = SourceInfo {
            kind: SourceKind::V4l2 {
                device: spec.device.clone(),
                driver: caps.driver,
                card: caps.card,
            },
            format,
            width: actual.width,
            height: actual.height,
            fps,
            frame_count: None,
        };
        Ok(Self {
            spec,
            info,
            stride,
            plane_strides,
            stream,
            _device: device,
            opened,
            opened_mono,
            seq: 0,
            last_sequence: None,
            dropped: 0,
            stale: 0,
        })
    }

    fn device(&self) -> PathBuf {
        self.spec.device.clone()
    }

    fn fail(&self, source: V4l2Error) -> CaptureError {
        CaptureError::V4l2 {
            device: self.device(),
            source,
        }
    }

    /// Skips to the newest filled buffer, re-queueing older ones, so a slow
    /// consumer gets the latest picture instead of one several frames old.
    fn newest(&mut self, mut buf: Dequeued) -> Result<Dequeued, CaptureError> {
        loop {
            let newer = match self.stream.dequeue() {
                Ok(newer) => newer,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(buf);
                }
                Err(e) => return Err(self.fail(V4l2Error::Capture(e))),
            };
            let (stale, keep) = if newer.flags & mmap::FLAG_ERROR != 0 || newer.bytesused == 0 {
                (newer, buf)
            } else {
                self.stale += 1;
                (buf, newer)
            };
            self.stream.queue(stale.index).map_err(|source| {
                self.fail(V4l2Error::Requeue {
                    index: stale.index,
                    source,
                })
            })?;
            buf = keep;
        }
    }

    /// Builds the frame from a dequeued buffer and gives the buffer back.
    fn take(&mut self, buf: Dequeued) -> Result<CapturedFrame, CaptureError> {
        // One copy out of the driver's buffer, which goes back right after.
        let data: Result<Arc<[u8]>, ConvertError> = if self.stream.planes() == 1 {
            Ok(Arc::from(self.stream.plane(&buf, 0)))
        } else {
            let planes: Vec<(&[u8], usize)> = self
                .plane_strides
                .iter()
                .enumerate()
                .map(|(i, stride)| (self.stream.plane(&buf, i), *stride))
                .collect();
            convert::join_planes(
                self.info.format,
                self.info.width,
                self.info.height,
                self.stride,
                &planes,
            )
            .map(Arc::from)
        };
        self.stream.queue(buf.index).map_err(|source| {
            self.fail(V4l2Error::Requeue {
                index: buf.index,
                source,
            })
        })?;
        let data = data.map_err(|e| self.fail(V4l2Error::Join(e)))?;
        if let Some(last) = self.last_sequence {
            let gap = buf.sequence.wrapping_sub(last).saturating_sub(1);
            if gap > 0 {
                self.dropped += u64::from(gap);
                tracing::debug!(
                    device = %self.spec.configured.display(),
                    gap,
                    missed_total = self.dropped,
                    skipped_stale_total = self.stale,
                    "frames missed (driver drops or stale buffers skipped)"
                );
            }
        }
        self.last_sequence = Some(buf.sequence);

        let (captured_at, since_start) = frame_time(
            buf.flags,
            buf.timestamp,
            mmap::monotonic_now(),
            SystemTime::now(),
            self.opened_mono,
        );
        let since_start = since_start.unwrap_or_else(|| self.opened.elapsed());
        let payload = match self.info.format {
            PixelFormat::Mjpeg => Payload::Jpeg(data),
            format => Payload::Raw {
                format,
                width: self.info.width,
                height: self.info.height,
                stride: self.stride,
                data,
            },
        };
        let frame = CapturedFrame {
            seq: self.seq,
            captured_at,
            since_start,
            media_position: None,
            payload,
        };
        self.seq += 1;
        Ok(frame)
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame, CaptureError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let ms = i32::try_from(remaining.as_millis().max(1)).unwrap_or(i32::MAX);
            let ready = self
                .stream
                .wait(ms)
                .map_err(|e| self.fail(V4l2Error::Capture(e)))?;
            if !ready {
                if Instant::now() >= deadline {
                    return Err(CaptureError::Timeout { waited: timeout });
                }
                continue;
            }
            let buf = match self.stream.dequeue() {
                Ok(buf) => buf,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(CaptureError::Timeout { waited: timeout });
                    }
                    continue;
                }
                Err(e) => return Err(self.fail(V4l2Error::Capture(e))),
            };
            if buf.flags & mmap::FLAG_ERROR != 0 || buf.bytesused == 0 {
                // A corrupt or empty frame (USB hiccup): give the buffer back
                // and wait for the next one.
                tracing::debug!(
                    device = %self.spec.configured.display(),
                    flags = buf.flags,
                    bytesused = buf.bytesused,
                    "driver flagged a bad frame; skipped"
                );
                self.stream.queue(buf.index).map_err(|source| {
                    self.fail(V4l2Error::Requeue {
                        index: buf.index,
                        source,
                    })
                })?;
                if Instant::now() >= deadline {
                    return Err(CaptureError::Timeout { waited: timeout });
                }
                continue;
            }
            let buf = self.newest(buf)?;
            return self.take(buf);
        }
    }

    fn info(&self) -> SourceInfo {
        self.info.clone()
    }
}

/// Formats and sizes read from a device when it is opened (vivid lists
/// about 60 formats); a driver that never ends a list is cut there.
const MAX_OFFERS: u32 = 256;

/// Lists the formats (and their sizes) the device offers.
fn list_offers(fd: RawFd, buf_type: BufType) -> Result<Vec<FormatOffer>, V4l2Error> {
    let mut offers = Vec::new();
    for index in 0..MAX_OFFERS {
        let Some(desc) = mmap::enum_format(fd, buf_type, index).map_err(V4l2Error::EnumFormats)?
        else {
            break;
        };
        let sizes = (0..MAX_OFFERS)
            .map_while(|i| mmap::enum_size(fd, desc.fourcc, i).ok().flatten())
            .collect();
        offers.push(FormatOffer {
            fourcc: desc.fourcc,
            sizes,
        });
    }
    Ok(offers)
}

/// Asks for the frame rate closest to the request and returns the one in force
/// (`None` when the driver has no frame-rate control).
fn set_frame_rate(
    fd: RawFd,
    buf_type: BufType,
    spec: &V4l2Spec,
    format: PixelFormat,
    width: u32,
    height: u32,
) -> Option<f32> {
    let intervals: Vec<IntervalRange> = (0..MAX_OFFERS)
        .map_while(|i| {
            mmap::enum_interval(fd, format.fourcc(), width, height, i)
                .ok()
                .flatten()
        })
        .collect();
    let (numerator, denominator) = choose_interval(&intervals, spec.fps);
    let actual = match mmap::set_interval(fd, buf_type, numerator, denominator) {
        Ok((n, d)) => fps_of(n, d),
        Err(e) => {
            tracing::warn!(
                device = %spec.configured.display(),
                error = %e,
                requested_fps = spec.fps,
                "camera has no frame-rate control; it runs at its own rate"
            );
            return None;
        }
    };
    if let Some(fps) = actual
        && (fps - spec.fps).abs() > 0.5
    {
        tracing::warn!(
            device = %spec.configured.display(),
            requested_fps = spec.fps,
            negotiated_fps = fps,
            "camera does not offer the requested frame rate; using the closest"
        );
    }
    actual
}

/// Capture time of a buffer: with a monotonic driver timestamp, the wall-clock
/// time is `wall_now - (mono_now - timestamp)` and `since_start` is measured
/// from `opened_mono`; otherwise (no or copied timestamp) the frame is dated
/// now and `since_start` is left to the caller (`None`).
pub(crate) fn frame_time(
    flags: u32,
    timestamp: Option<Duration>,
    mono_now: Duration,
    wall_now: SystemTime,
    opened_mono: Duration,
) -> (SystemTime, Option<Duration>) {
    let monotonic = flags & mmap::FLAG_TIMESTAMP_MASK == mmap::FLAG_TIMESTAMP_MONOTONIC;
    match timestamp {
        Some(ts) if monotonic && ts <= mono_now => {
            let age = mono_now - ts;
            (
                wall_now.checked_sub(age).unwrap_or(wall_now),
                Some(ts.saturating_sub(opened_mono)),
            )
        }
        _ => (wall_now, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_timestamps_become_wall_clock_times() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mono_now = Duration::from_secs(500);
        let ts = Duration::from_millis(499_960);
        let (at, since) = frame_time(
            mmap::FLAG_TIMESTAMP_MONOTONIC,
            Some(ts),
            mono_now,
            wall,
            Duration::from_secs(400),
        );
        assert_eq!(wall.duration_since(at).unwrap(), Duration::from_millis(40));
        assert_eq!(since, Some(Duration::from_millis(99_960)));
    }

    #[test]
    fn other_timestamps_are_dated_on_arrival() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let now = Duration::from_secs(5);
        // Copied timestamps (from an output device) are not capture times.
        let (at, since) = frame_time(
            0x4000,
            Some(Duration::from_secs(1)),
            now,
            wall,
            Duration::ZERO,
        );
        assert_eq!((at, since), (wall, None));
        // A missing timestamp, or one in the future, is not trusted either.
        assert_eq!(
            frame_time(0x2000, None, now, wall, Duration::ZERO),
            (wall, None)
        );
        assert_eq!(
            frame_time(
                0x2000,
                Some(Duration::from_secs(6)),
                now,
                wall,
                Duration::ZERO
            ),
            (wall, None)
        );
    }

    #[test]
    fn refuses_a_non_device_before_any_ioctl() {
        let spec = V4l2Spec {
            configured: "/dev/null".into(),
            device: "/dev/null".into(),
            width: 640,
            height: 480,
            fps: 10.0,
            format: None,
        };
        // /dev/null opens but is no V4L2 device: QUERYCAP fails with a clear error.
        let e = V4l2Source::open(spec).unwrap_err();
        assert!(matches!(e, V4l2Error::QueryCaps(_)), "{e}");
    }
}

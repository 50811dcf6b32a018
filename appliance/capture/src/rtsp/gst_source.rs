//! The RTSP source: `rtspsrc ! decodebin ! videoconvert ! NV12 ! appsink`.
//!
//! - Only video streams are set up (`select-stream`); audio is never received.
//! - `decodebin` picks the decoder by rank; the board's preferred decoders
//!   ([`super::RtspSpec::decoders`]) are ranked above all others when installed,
//!   so a Rockchip box decodes in `mppvideodec` and a PC falls back to libav.
//! - The appsink keeps one sample and drops older ones (the pipeline's own
//!   drop-oldest rule applies after it); it does not sync to the clock: frames are
//!   handed over as soon as they are decoded.
//! - Capture time: the pipeline runs on the realtime system clock, so a buffer's
//!   running time plus the base time is wall-clock time. The jitter buffer maps
//!   the camera's RTP timestamps onto that clock (skew-corrected against arrival),
//!   so `captured_at` follows the camera's own frame timing, not the decode time.
//! - Errors are read from the bus between short waits, so a 401, a refused
//!   connection or a dropped server end `next_frame` within ~200 ms, not at the
//!   caller's timeout.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::{RtspError, RtspSpec, RtspTransport, read_password};
use crate::frame::{CapturedFrame, Payload, PixelFormat, SourceInfo, SourceKind};
use crate::source::{CaptureError, FrameSource};

/// The longest single wait on the appsink before the bus is read again.
const SLICE: Duration = Duration::from_millis(200);

/// How long a TCP connect or read may stall before rtspsrc gives up.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// An open RTSP camera.
pub struct RtspSource {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    bus: gst::Bus,
    origin: String,
    seq: u64,
    opened: Instant,
    width: u32,
    height: u32,
    fps: Option<f32>,
    decoder: Arc<Mutex<Option<String>>>,
    decoder_logged: bool,
}

impl std::fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSource")
            .field("origin", &self.origin)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn gst_err(what: impl Into<String>) -> impl FnOnce(glib::BoolError) -> RtspError {
    let what = what.into();
    move |e| RtspError::Gstreamer {
        what: format!("{what}: {e}"),
    }
}

fn make(factory: &str) -> Result<gst::Element, RtspError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| RtspError::Gstreamer {
            what: format!("element {factory:?} is not installed"),
        })
}

/// Ranks the board's decoders above every other (once per process is enough, but
/// it is idempotent).
fn prefer_decoders(decoders: &[String]) {
    for (i, name) in decoders.iter().enumerate() {
        match gst::ElementFactory::find(name) {
            Some(factory) => {
                let bonus = i32::try_from(decoders.len() - i).unwrap_or(1);
                factory.set_rank(gst::Rank::PRIMARY + 100 + bonus);
            }
            None => {
                tracing::warn!(decoder = %name, "the board's decoder is not installed; another decoder is used")
            }
        }
    }
}

impl RtspSource {
    /// Builds the pipeline and starts connecting; connection and authentication
    /// errors surface from [`FrameSource::next_frame`].
    pub fn open(spec: RtspSpec) -> Result<RtspSource, RtspError> {
        gst::init().map_err(|e| RtspError::Gstreamer {
            what: format!("init: {e}"),
        })?;
        prefer_decoders(&spec.decoders);
        let req = spec.request;
        let password = req
            .password_file
            .as_deref()
            .map(read_password)
            .transpose()?;
        let origin = req.url.origin().to_owned();

        let pipeline = gst::Pipeline::new();
        let src = make("rtspsrc")?;
        src.set_property("location", req.url.as_str());
        src.set_property(
            "latency",
            u32::try_from(req.latency.as_millis()).unwrap_or(u32::MAX),
        );
        src.set_property("drop-on-latency", true);
        src.set_property(
            "tcp-timeout",
            u64::try_from(TCP_TIMEOUT.as_micros()).unwrap_or(u64::MAX),
        );
        src.set_property_from_str(
            "protocols",
            match req.transport {
                RtspTransport::Tcp => "tcp",
                RtspTransport::Udp => "udp",
            },
        );
        if let Some(user) = &req.username {
            src.set_property("user-id", user);
        }
        if let Some(pw) = &password {
            src.set_property("user-pw", pw);
        }
        // Video only: an audio track would be received and dropped for nothing.
        src.connect("select-stream", false, |args| {
            let video = args
                .get(2)
                .and_then(|v| v.get::<gst::Caps>().ok())
                .and_then(|caps| {
                    caps.structure(0)
                        .and_then(|s| s.get::<&str>("media").ok())
                        .map(|m| m == "video")
                })
                .unwrap_or(false);
            Some(video.to_value())
        });
        let decode = make("decodebin")?;
        let convert = make("videoconvert")?;
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::Nv12)
                    .build(),
            )
            .max_buffers(1)
            .drop(true)
            .sync(false)
            .build();
        pipeline
            .add_many([&src, &decode, &convert, sink.upcast_ref()])
            .map_err(gst_err("add elements"))?;
        convert
            .link(&sink)
            .map_err(gst_err("link videoconvert to appsink"))?;

        let decode_weak = decode.downgrade();
        src.connect_pad_added(move |_, pad| {
            let Some(decode) = decode_weak.upgrade() else {
                return;
            };
            let Some(sinkpad) = decode.static_pad("sink") else {
                return;
            };
            if !sinkpad.is_linked()
                && let Err(e) = pad.link(&sinkpad)
            {
                tracing::warn!(error = ?e, "rtsp: cannot link the stream to the decoder");
            }
        });
        let convert_weak = convert.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let is_video = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            let Some(sinkpad) = convert.static_pad("sink") else {
                return;
            };
            if is_video
                && !sinkpad.is_linked()
                && let Err(e) = pad.link(&sinkpad)
            {
                tracing::warn!(error = ?e, "rtsp: cannot link the decoder to the converter");
            }
        });
        // Which decoder decodebin chose: logged once, for the board's bring-up.
        let decoder = Arc::new(Mutex::new(None));
        let chosen = Arc::clone(&decoder);
        if let Some(bin) = decode.downcast_ref::<gst::Bin>() {
            bin.connect_deep_element_added(move |_, _, element| {
                if let Some(factory) = element.factory()
                    && factory.klass().contains("Decoder")
                {
                    *chosen.lock() = Some(factory.name().to_string());
                }
            });
        }

        let clock = glib::Object::builder::<gst::SystemClock>()
            .property("clock-type", gst::ClockType::Realtime)
            .build();
        pipeline.use_clock(Some(&clock));
        let bus = pipeline.bus().ok_or_else(|| RtspError::Gstreamer {
            what: "pipeline without a bus".into(),
        })?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| RtspError::Connection {
                origin: origin.clone(),
                message: "the pipeline did not start".into(),
            })?;
        Ok(RtspSource {
            pipeline,
            sink,
            bus,
            origin,
            seq: 0,
            opened: Instant::now(),
            width: 0,
            height: 0,
            fps: None,
            decoder,
            decoder_logged: false,
        })
    }

    /// The first error or end-of-stream waiting on the bus, if any.
    fn bus_error(&self) -> Option<RtspError> {
        while let Some(msg) = self
            .bus
            .pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])
        {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    let e = err.error();
                    let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
                    let origin = self.origin.clone();
                    let message = format!("{e} ({})", first_line(&debug));
                    return Some(match e.kind::<gst::ResourceError>() {
                        Some(gst::ResourceError::NotAuthorized) => {
                            RtspError::Unauthorized { origin }
                        }
                        Some(gst::ResourceError::NotFound) => RtspError::NotFound { origin },
                        Some(_) => RtspError::Connection { origin, message },
                        None => RtspError::Stream { origin, message },
                    });
                }
                gst::MessageView::Eos(_) => {
                    return Some(RtspError::Ended {
                        origin: self.origin.clone(),
                    });
                }
                _ => {}
            }
        }
        None
    }

    fn frame(&mut self, sample: &gst::Sample) -> Result<CapturedFrame, RtspError> {
        let stream_err = |message: &str| RtspError::Stream {
            origin: self.origin.clone(),
            message: message.to_owned(),
        };
        let caps = sample
            .caps()
            .ok_or_else(|| stream_err("a frame without caps"))?;
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| stream_err("a frame with unusable caps"))?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| stream_err("a sample without a buffer"))?;
        let map = buffer
            .map_readable()
            .map_err(|_| stream_err("an unreadable buffer"))?;
        let (width, height) = (info.width(), info.height());
        let h = height as usize;
        let stride = usize::try_from(info.stride()[0]).unwrap_or(0);
        let uv_stride = usize::try_from(info.stride()[1]).unwrap_or(0);
        let uv_offset = info.offset()[1];
        let size = PixelFormat::Nv12
            .image_size(stride, height)
            .ok_or_else(|| stream_err("an impossible frame size"))?;
        let data: Arc<[u8]> = if uv_offset == stride * h && uv_stride == stride {
            Arc::from(map.get(..size).ok_or_else(|| stream_err("a short frame"))?)
        } else {
            // Padded between the planes: lay them out as NV12 is read.
            let mut out = Vec::with_capacity(size);
            out.extend_from_slice(
                map.get(..stride * h)
                    .ok_or_else(|| stream_err("a short frame"))?,
            );
            for row in 0..h.div_ceil(2) {
                let at = uv_offset + row * uv_stride;
                out.extend_from_slice(
                    map.get(at..at + stride)
                        .ok_or_else(|| stream_err("a short frame"))?,
                );
            }
            Arc::from(out)
        };
        self.width = width;
        self.height = height;
        let fps = info.fps();
        if fps.numer() > 0 && fps.denom() > 0 {
            self.fps = Some(fps.numer() as f32 / fps.denom() as f32);
        }
        // Running time + base time on the realtime clock = wall-clock time.
        let running = buffer.pts().unwrap_or(gst::ClockTime::ZERO);
        let base = self.pipeline.base_time().unwrap_or(gst::ClockTime::ZERO);
        let now = SystemTime::now();
        let captured_at = UNIX_EPOCH
            .checked_add(Duration::from_nanos((base + running).nseconds()))
            // A frame time in the future or over a minute old is not believed.
            .filter(|t| {
                now.duration_since(*t)
                    .is_ok_and(|age| age < Duration::from_secs(60))
            })
            .unwrap_or(now);
        let seq = self.seq;
        self.seq += 1;
        if !self.decoder_logged {
            self.decoder_logged = true;
            let decoder = self.decoder.lock().clone();
            tracing::info!(camera_url = %self.origin, width, height, decoder = decoder.as_deref().unwrap_or("?"), "rtsp: first frame decoded");
        }
        Ok(CapturedFrame {
            seq,
            captured_at,
            since_start: self.opened.elapsed(),
            media_position: None,
            payload: Payload::Raw {
                format: PixelFormat::Nv12,
                width,
                height,
                stride,
                data,
            },
        })
    }

    /// The decoder decodebin chose, once the stream is set up.
    pub fn decoder(&self) -> Option<String> {
        self.decoder.lock().clone()
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

impl FrameSource for RtspSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame, CaptureError> {
        let deadline = Instant::now() + timeout;
        let fail = |source: RtspError, origin: &str| CaptureError::Rtsp {
            origin: origin.to_owned(),
            source,
        };
        loop {
            if let Some(e) = self.bus_error() {
                return Err(fail(e, &self.origin));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CaptureError::Timeout { waited: timeout });
            }
            let wait = left.min(SLICE);
            let wait_ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_nseconds(wait_ns))
            {
                return self.frame(&sample).map_err(|e| fail(e, &self.origin));
            }
        }
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Rtsp {
                origin: self.origin.clone(),
            },
            format: PixelFormat::Nv12,
            width: self.width,
            height: self.height,
            fps: self.fps,
            frame_count: None,
        }
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        // Tears the session down (TEARDOWN is sent, bounded by rtspsrc's
        // teardown-timeout) and releases the decoder.
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

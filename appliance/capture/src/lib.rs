//! Frame sources for SAFE-YOLO: live V4L2 cameras, IP cameras over RTSP
//! ([`rtsp`], GStreamer) and recorded replays, the
//! sandbox that decides which paths may be opened, and the conversions from a
//! captured payload to RGB (and from RGB to JPEG for the stream).
//!
//! Capture runs in one OS thread per camera: [`FrameSource::next_frame`]
//! blocks, but never longer than the timeout it is given, so a dead camera
//! shows up as [`CaptureError::Timeout`] or another error within that time,
//! and the caller can mark it offline and [`open`] it again with backoff.
//!
//! Decoding is deliberately not part of a source: a [`CapturedFrame`] carries
//! the bytes as captured ([`Payload::Jpeg`] or [`Payload::Raw`]) and
//! [`convert::to_rgb`] turns them into a [`safe_yolo_domain::RgbFrame`] in
//! whichever pipeline stage suits. A [`Picture`] is a payload with its size,
//! decoded only by a consumer that needs pixels (the detector, at the
//! smallest DCT-scaled size its model needs; a snapshot; a viewer of a camera
//! that does not deliver JPEG).
//!
//! Architecture invariants:
//! - Every source is opened through [`SourcePolicy::check`]: V4L2 paths must
//!   resolve to a video character device (major 81), replay paths must stay
//!   inside the media directory (no `..`, no symlink escape).
//! - Memory per replay is bounded: frames are read when due, never preloaded.
//! - The only `unsafe` code is the V4L2 mmap/ioctl module (`v4l2::mmap`).
//! - Discovery ([`v4l2::discover`]) looks only at nodes the sandbox allows and is
//!   bounded: entries per list and a time budget for the whole walk.
#![deny(unsafe_code)]

pub mod convert;
pub mod encode;
pub mod frame;
pub mod mjpeg;
pub mod picture;
pub mod replay;
pub mod rtsp;
pub mod sandbox;
pub mod source;
pub mod v4l2;

pub use convert::{ConvertError, to_rgb};
pub use encode::{EncodeError, JpegEncoder, Subsampling};
pub use frame::{CapturedFrame, Payload, PixelFormat, SourceInfo, SourceKind};
pub use picture::Picture;
pub use replay::{ReplayError, ReplaySource};
pub use rtsp::{RtspError, RtspRequest, RtspSpec, RtspTransport, RtspUrl, RtspUrlError};
pub use sandbox::{
    Pacing, ReplayKind, ReplaySpec, SandboxError, SourcePolicy, SourceRequest, SourceSpec, V4l2Spec,
};
pub use source::{CaptureError, FrameSource, open, open_spec};
pub use v4l2::{
    DiscoverError, DiscoverLimits, DiscoveredDevice, DiscoveredFormat, DiscoveredSize, Discovery,
    SkippedNode, V4l2Error, V4l2Source,
};

//! The `FrameSource` seam and the factory that opens a sandboxed source.

use std::path::PathBuf;
use std::time::Duration;

use crate::frame::{CapturedFrame, SourceInfo};
use crate::replay::{ReplayError, ReplaySource};
use crate::rtsp::RtspError;
use crate::sandbox::{SandboxError, SourcePolicy, SourceRequest, SourceSpec};
use crate::v4l2::{V4l2Error, V4l2Source};

/// A camera-like source of frames.
///
/// Capture runs in a dedicated OS thread per camera, so the calls block; but
/// `next_frame` never blocks for (much) longer than its `timeout`, so the
/// thread can notice a dead camera and shutdown requests. A source that fails
/// is dropped and opened again with [`open`] (with backoff, by the caller).
pub trait FrameSource: Send {
    /// Waits up to `timeout` for the next frame.
    ///
    /// Errors: [`CaptureError::Timeout`] when nothing arrived in time (the
    /// source may recover), [`CaptureError::Ended`] when a non-looping replay is
    /// over, anything else when the source is broken and must be reopened.
    fn next_frame(&mut self, timeout: Duration) -> Result<CapturedFrame, CaptureError>;

    /// What the source is and what it negotiated.
    fn info(&self) -> SourceInfo;
}

/// Why a source could not be opened or could not deliver a frame.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The sandbox refused the source.
    #[error("the source was refused")]
    Refused(#[source] SandboxError),
    /// No frame arrived within the timeout.
    #[error("no frame within {waited:?}")]
    Timeout {
        /// How long the call waited.
        waited: Duration,
    },
    /// A non-looping replay delivered its last frame.
    #[error("the replay reached its end")]
    Ended,
    /// A replay failed (file removed, corrupt, unreadable).
    #[error("replay {path:?} failed")]
    Replay {
        /// The footage.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: ReplayError,
    },
    /// An RTSP camera failed (unreachable, refused the credentials, dropped the
    /// stream, sent what cannot be decoded).
    #[error("RTSP camera {origin} failed")]
    Rtsp {
        /// `rtsp://host:port`.
        origin: String,
        /// What went wrong.
        #[source]
        source: RtspError,
    },
    /// A V4L2 device failed (unplugged, driver error, unsupported format).
    #[error("camera {device:?} failed")]
    V4l2 {
        /// The device node.
        device: PathBuf,
        /// What went wrong.
        #[source]
        source: V4l2Error,
    },
}

impl CaptureError {
    /// Whether this is a timeout (the source is silent but not known broken).
    pub fn is_timeout(&self) -> bool {
        matches!(self, CaptureError::Timeout { .. })
    }

    /// Whether a non-looping replay is over (not a fault).
    pub fn is_end(&self) -> bool {
        matches!(self, CaptureError::Ended)
    }
}

/// Checks `request` against `policy` and opens the source. Call it again to
/// reopen after a failure: the sandbox check runs every time.
pub fn open(
    request: &SourceRequest,
    policy: &SourcePolicy,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    let spec = policy.check(request).map_err(CaptureError::Refused)?;
    open_spec(spec)
}

/// Opens an already validated source (prefer [`open`], which validates again).
pub fn open_spec(spec: SourceSpec) -> Result<Box<dyn FrameSource>, CaptureError> {
    match spec {
        SourceSpec::Replay(spec) => {
            let path = spec.path.clone();
            let source =
                ReplaySource::open(spec).map_err(|source| CaptureError::Replay { path, source })?;
            Ok(Box::new(source))
        }
        SourceSpec::V4l2(spec) => {
            let device = spec.device.clone();
            let source =
                V4l2Source::open(spec).map_err(|source| CaptureError::V4l2 { device, source })?;
            Ok(Box::new(source))
        }
        SourceSpec::Rtsp(spec) => open_rtsp(spec),
    }
}

#[cfg(feature = "rtsp")]
fn open_rtsp(spec: crate::rtsp::RtspSpec) -> Result<Box<dyn FrameSource>, CaptureError> {
    let origin = spec.request.url.origin().to_owned();
    let source = crate::rtsp::RtspSource::open(spec)
        .map_err(|source| CaptureError::Rtsp { origin, source })?;
    Ok(Box::new(source))
}

#[cfg(not(feature = "rtsp"))]
fn open_rtsp(spec: crate::rtsp::RtspSpec) -> Result<Box<dyn FrameSource>, CaptureError> {
    Err(CaptureError::Rtsp {
        origin: spec.request.url.origin().to_owned(),
        source: RtspError::NotBuilt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn sources_and_encoder_move_to_their_threads() {
        assert_send::<ReplaySource>();
        assert_send::<V4l2Source>();
        assert_send::<Box<dyn FrameSource>>();
        assert_send::<crate::encode::JpegEncoder>();
        assert_send::<CaptureError>();
    }

    #[test]
    fn errors_classify() {
        assert!(
            CaptureError::Timeout {
                waited: Duration::from_secs(2)
            }
            .is_timeout()
        );
        assert!(CaptureError::Ended.is_end());
        assert!(!CaptureError::Ended.is_timeout());
    }
}

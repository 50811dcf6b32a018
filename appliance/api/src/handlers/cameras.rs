//! Choosing a camera's source: which V4L2 devices are present
//! (`GET /api/v1/cameras/discovery`) and one still picture of a source
//! (`POST /api/v1/cameras/preview`), before a camera is configured.
//!
//! Both go through the capture sandbox, both block (ioctls, file reads, JPEG
//! work) and so run on the blocking pool, each within a time budget, and at most
//! [`PROBES`] of them at once. Neither disturbs a running camera: discovery sets
//! no format and takes no buffer, and a preview of a device a running camera
//! captures from is refused before the device is opened (`409`, naming the
//! camera).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use safe_yolo_capture::{
    CaptureError, ConvertError, DiscoverLimits, EncodeError, JpegEncoder, SourceRequest,
};
use safe_yolo_config::RawSource;
use safe_yolo_domain::{CameraId, error_chain};
use safe_yolo_store::SettingKind;

use crate::audit;
use crate::auth::Principal;
use crate::body::ValidJson;
use crate::control::{ControlError, Document};
use crate::error::HttpError;
use crate::state::AppState;
use crate::views::DiscoveryView;

/// Discoveries and previews running at once; more get `503`.
pub(crate) const PROBES: usize = 2;
/// Longest a preview waits for its frame.
pub(crate) const PREVIEW_FRAME_BUDGET: Duration = Duration::from_secs(5);
/// Beyond a budget: opening the source, decoding and encoding the picture.
const GRACE: Duration = Duration::from_secs(2);

/// Why a preview has no picture.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreviewError {
    /// A running camera captures from the device.
    #[error("device busy: {device:?} is in use by camera {camera}")]
    InUse {
        /// The device as asked for.
        device: PathBuf,
        /// The camera.
        camera: CameraId,
    },
    /// The sandbox refused the source or it cannot be opened.
    #[error("the source cannot be opened")]
    Open(#[source] CaptureError),
    /// No frame within the budget.
    #[error("no frame within {} s", waited.as_secs())]
    NoFrame {
        /// How long it waited.
        waited: Duration,
    },
    /// The source failed before its first frame.
    #[error("the source delivered no frame")]
    Capture(#[source] CaptureError),
    /// The frame cannot be decoded.
    #[error("the frame cannot be decoded")]
    Decode(#[source] ConvertError),
    /// The picture cannot be encoded.
    #[error("the preview cannot be encoded")]
    Encode(#[source] EncodeError),
}

/// Has a running camera's tamper check learn its view again (the camera was
/// re-aimed on purpose): `moved` and `defocused` clear at once and are judged
/// against the picture of the next `learn` seconds. Audited.
pub(crate) async fn relearn_tamper(
    State(s): State<AppState>,
    axum::Extension(p): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    s.live
        .taps()
        .iter()
        .find(|t| t.id.as_str() == id)
        .ok_or_else(|| HttpError::not_found(format!("running camera {id}")))?
        .tamper
        .relearn();
    let row = audit::row(
        &p,
        "camera.tamper_relearn",
        format!("camera/{id}"),
        None,
        Some("the tamper check learns the camera's view again".into()),
    );
    s.store()?
        .transaction(move |t| t.append_audit(row))
        .await
        .map_err(|e| HttpError::store("recording the relearn in the audit log", e))?;
    Ok(StatusCode::ACCEPTED)
}

/// The V4L2 devices of the running cameras, as configured (enabled ones only).
fn running_devices(s: &AppState) -> Vec<(CameraId, PathBuf)> {
    let media_dir = s.source_policy.media_dir().to_path_buf();
    s.control
        .current(SettingKind::Camera)
        .into_iter()
        .filter_map(|(id, doc)| match doc {
            Document::Camera(c) if c.enabled != Some(false) => {
                match c.source.validate(&media_dir) {
                    Ok(SourceRequest::V4l2 { device, .. }) => {
                        CameraId::new(id).ok().map(|id| (id, device))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// The running cameras' devices resolved to their nodes (blocking: file system).
fn resolve(devices: Vec<(CameraId, PathBuf)>) -> Vec<(CameraId, PathBuf)> {
    devices
        .into_iter()
        .filter_map(|(id, d)| d.canonicalize().ok().map(|node| (id, node)))
        .collect()
}

/// 503 while [`PROBES`] discoveries or previews run.
fn busy() -> HttpError {
    HttpError {
        retry_after: Some(1),
        ..HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{PROBES} camera probes are running; try again in a moment"),
        )
    }
}

fn timed_out(what: &str, budget: Duration) -> HttpError {
    HttpError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        format!("{what} took longer than {} s", budget.as_secs()),
    )
}

pub(crate) async fn discovery(
    State(s): State<AppState>,
) -> Result<axum::Json<DiscoveryView>, HttpError> {
    let permit = Arc::clone(&s.probe_gate)
        .try_acquire_owned()
        .map_err(|_| busy())?;
    let running = running_devices(&s);
    let limits = DiscoverLimits::default();
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        (safe_yolo_capture::v4l2::discover(&limits), resolve(running))
    });
    let (found, in_use) = tokio::time::timeout(limits.budget + GRACE, work)
        .await
        .map_err(|_| timed_out("listing the cameras", limits.budget))?
        .map_err(|e| HttpError::internal("listing the cameras", &e))?;
    let found = found.map_err(|e| HttpError::internal("listing the cameras", &e))?;
    Ok(axum::Json(DiscoveryView::new(found, &in_use)))
}

pub(crate) async fn preview(
    State(s): State<AppState>,
    ValidJson(mut doc): ValidJson<RawSource>,
) -> Result<Response, HttpError> {
    let running_password_files: Vec<String> = s
        .control
        .current(SettingKind::Camera)
        .into_iter()
        .filter_map(|(_, d)| match d {
            Document::Camera(c) => c.source.password_file.clone(),
            _ => None,
        })
        .collect();
    let _password =
        crate::secrets::preview_password(&mut doc, &s.settings.state_dir, &running_password_files)?;
    let source = doc
        .validate(s.source_policy.media_dir())
        .map_err(|problems| {
            HttpError::control(ControlError::Invalid {
                problems,
                object: String::new(),
            })
        })?;
    let field = match source {
        SourceRequest::V4l2 { .. } => "device",
        SourceRequest::Replay { .. } => "path",
        SourceRequest::Rtsp(_) => "url",
    };
    let request = source;
    let permit = Arc::clone(&s.probe_gate)
        .try_acquire_owned()
        .map_err(|_| busy())?;
    let running = running_devices(&s);
    let sources = Arc::clone(&s.sources);
    let quality = s.settings.api.jpeg_quality;
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        grab(&request, resolve(running), |r| sources(r), quality)
    });
    let jpeg = tokio::time::timeout(PREVIEW_FRAME_BUDGET + GRACE, work)
        .await
        .map_err(|_| timed_out("the preview", PREVIEW_FRAME_BUDGET))?
        .map_err(|e| HttpError::internal("the preview", &e))?
        .map_err(|e| preview_error(field, e))?;
    let mut resp = (StatusCode::OK, jpeg).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Opens the source, takes its first frame within [`PREVIEW_FRAME_BUDGET`] and
/// encodes it as JPEG; the source is closed before the encoding. A device a
/// running camera captures from (`in_use`, resolved) is not opened at all.
pub(crate) fn grab(
    request: &SourceRequest,
    in_use: Vec<(CameraId, PathBuf)>,
    open: impl Fn(&SourceRequest) -> Result<Box<dyn safe_yolo_capture::FrameSource>, CaptureError>,
    quality: u8,
) -> Result<Vec<u8>, PreviewError> {
    if let SourceRequest::V4l2 { device, .. } = request
        && let Ok(node) = device.canonicalize()
        && let Some((camera, _)) = in_use.into_iter().find(|(_, n)| *n == node)
    {
        return Err(PreviewError::InUse {
            device: device.clone(),
            camera,
        });
    }
    let frame = {
        let mut source = open(request).map_err(PreviewError::Open)?;
        source
            .next_frame(PREVIEW_FRAME_BUDGET)
            .map_err(|e| match e {
                CaptureError::Timeout { waited } => PreviewError::NoFrame { waited },
                other => PreviewError::Capture(other),
            })?
    };
    let rgb = safe_yolo_capture::to_rgb(&frame.payload).map_err(PreviewError::Decode)?;
    JpegEncoder::new(quality)
        .and_then(|mut e| e.encode(&rgb))
        .map_err(PreviewError::Encode)
}

/// Whether an OS error in `e`'s chain says the device is busy (`EBUSY`).
fn device_busy(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ResourceBusy)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The response of a failed preview; `field` is the source's key (`device` or `path`).
fn preview_error(field: &'static str, e: PreviewError) -> HttpError {
    let message = error_chain(&e);
    match &e {
        PreviewError::InUse { .. } => HttpError {
            field: Some(field.into()),
            ..HttpError::conflict(message)
        },
        PreviewError::Open(CaptureError::Refused(refused)) => {
            tracing::info!(error = %message, "preview source refused by the sandbox");
            HttpError::invalid(refused.field(), refused.public_message())
        }
        PreviewError::Open(_) | PreviewError::Capture(_) if device_busy(&e) => HttpError {
            field: Some(field.into()),
            ..HttpError::conflict(format!(
                "device busy (in use by another program): {message}"
            ))
        },
        PreviewError::Open(_) | PreviewError::Capture(_) | PreviewError::Decode(_) => {
            HttpError::invalid(field, message)
        }
        PreviewError::NoFrame { .. } => HttpError {
            field: Some(field.into()),
            ..HttpError::new(StatusCode::GATEWAY_TIMEOUT, "no_frame", message)
        },
        PreviewError::Encode(_) => HttpError::internal("encoding the preview", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_in_use_is_refused_before_it_is_opened() {
        let request = SourceRequest::V4l2 {
            device: "/dev/null".into(),
            width: 640,
            height: 480,
            fps: 10.0,
            format: None,
        };
        let camera = CameraId::new("dock").unwrap();
        let e = grab(
            &request,
            vec![(camera, PathBuf::from("/dev/null"))],
            |_| panic!("a device in use must not be opened"),
            80,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "device busy: \"/dev/null\" is in use by camera dock"
        );
        let http = preview_error("device", e);
        assert_eq!(http.status, StatusCode::CONFLICT);
        assert_eq!(http.field.as_deref(), Some("device"));
    }

    #[test]
    fn errors_map_to_statuses_naming_the_field() {
        let busy = PreviewError::Open(CaptureError::V4l2 {
            device: "/dev/video0".into(),
            source: safe_yolo_capture::V4l2Error::Stream(std::io::Error::from_raw_os_error(16)),
        });
        let http = preview_error("device", busy);
        assert_eq!(http.status, StatusCode::CONFLICT);
        assert!(http.message.starts_with("device busy"), "{}", http.message);
        let silent = preview_error(
            "device",
            PreviewError::NoFrame {
                waited: PREVIEW_FRAME_BUDGET,
            },
        );
        assert_eq!(silent.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(silent.message, "no frame within 5 s");
        let gone = preview_error(
            "path",
            PreviewError::Open(CaptureError::Replay {
                path: "/srv/media/x".into(),
                source: safe_yolo_capture::ReplayError::EmptyFolder,
            }),
        );
        assert_eq!(gone.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(gone.field.as_deref(), Some("path"));
        assert!(
            gone.message.contains("holds no JPEG frames"),
            "{}",
            gone.message
        );
    }
}

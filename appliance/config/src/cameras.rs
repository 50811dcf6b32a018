//! `[[cameras]]`: the frame sources.
//!
//! A camera's raw form ([`RawCamera`], an entry without its `id`) is also the API's
//! camera document; it is checked here only ([`RawCamera::problems`] on its own,
//! `validate_camera` with the file). Cameras are wiring: the running system refuses
//! live edits of them, so they are never laid over the file.

use std::collections::HashSet;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Component, Path, PathBuf};

use safe_yolo_capture::{Pacing, PixelFormat, SourceRequest};
use safe_yolo_domain::{CameraId, Named as _};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::check::Ctx;

/// The cameras' ids, for the sections that name a camera.
#[derive(Debug)]
pub(crate) struct KnownCameras<'a> {
    /// Every camera id of the file.
    pub ids: HashSet<&'a str>,
    /// Some list failed to parse: references are not checked (follow-on noise).
    pub incomplete: bool,
}

impl KnownCameras<'_> {
    /// No camera known, none looked up: for a document checked on its own.
    pub(crate) fn unchecked() -> Self {
        KnownCameras {
            ids: HashSet::new(),
            incomplete: true,
        }
    }

    /// The camera id `cam` at `path`, if it is one and names a camera.
    pub(crate) fn check(&self, ctx: &mut Ctx<'_>, path: &str, cam: &str) -> Option<CameraId> {
        let id = ctx.id(path, cam, CameraId::new)?;
        if !self.incomplete && !self.ids.contains(cam) {
            ctx.bad(path, format!("no camera has the id {cam:?}"));
            return None;
        }
        Some(id)
    }
}

/// A camera as written: a `[[cameras]]` entry of the file without its `id`, and the
/// document the API takes and gives for a camera (its id is in the URL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "CameraDoc")]
pub struct RawCamera {
    /// Human name shown in the UI, 1-64 characters (default: the id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Disabled cameras are not opened (default: true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Where the frames come from.
    pub source: RawSource,
    /// Detection runs on every Nth frame, 1-100 (default: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_every: Option<i64>,
    /// Bound of each inter-stage queue in frames, 1-16 (default: 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<i64>,
}

impl RawCamera {
    /// The camera's own problems at key paths under `path`: what can be told of a
    /// document before it meets the configuration. Replay footage must lie inside
    /// `media_dir`.
    pub fn problems(&self, id: &str, path: &str, media_dir: &Path) -> Vec<Problem> {
        self.validate(id, path, media_dir).err().unwrap_or_default()
    }

    /// The camera on its own, validated (as [`RawCamera::problems`] checks it): what
    /// the pipeline would run, e.g. to sandbox-check its source.
    pub fn validate(
        &self,
        id: &str,
        path: &str,
        media_dir: &Path,
    ) -> Result<CameraConfig, Vec<Problem>> {
        let mut camera = None;
        let problems = Ctx::standalone(|ctx| {
            camera = validate_camera(ctx, path, id, self, media_dir);
        });
        match camera {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
        }
    }
}

/// A camera's `source` as written: the keys of both kinds, each allowed by its kind only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SourceDoc")]
pub struct RawSource {
    /// `v4l2` (a capture device) or `replay` (recorded footage).
    pub kind: String,
    /// Replay: footage inside the media directory (an MJPEG file or a folder of JPEGs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Replay: start again at the end (default: true).
    #[serde(rename = "loop", skip_serializing_if = "Option::is_none")]
    pub looping: Option<bool>,
    /// Replay: `realtime` (default) or `fast`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pace: Option<String>,
    /// Replay: first frame to play (default: 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_frame: Option<i64>,
    /// V4L2: device path under `/dev`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// V4L2: requested width (default: 1280).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    /// V4L2: requested height (default: 720).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// V4L2: preferred pixel format: `auto` (default), `mjpeg`, `yuyv`, `nv12`, `nv16`, `nv24`,
    /// `rgb24`, `bgr24`, or on a multi-planar node (Rockchip ISP, HDMI-in) also `nv12m`, `nv16m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Frame rate, 0.5-120 (default: 10 for a replay, 15 for a device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
}

impl RawSource {
    /// The source on its own, checked as a camera's `source` is (replay footage
    /// inside `media_dir`): every problem at its key in the document (`path`,
    /// `fps`), or the validated source.
    pub fn validate(&self, media_dir: &Path) -> Result<SourceRequest, Vec<Problem>> {
        let mut source = None;
        let problems = Ctx::standalone(|ctx| {
            source = validate_source(ctx, "", self, media_dir);
        });
        match source {
            Some(source) if problems.is_empty() => Ok(source),
            _ => Err(problems),
        }
    }
}

/// One camera.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Identifier.
    pub id: CameraId,
    /// Human name shown in the UI.
    pub name: String,
    /// Disabled cameras are not opened.
    pub enabled: bool,
    /// Frame source.
    /// In the capture crate's terms (its sandbox checks it again at every open).
    pub source: SourceRequest,
    /// Detection runs on every Nth frame (a turn at the shared detector; a
    /// frame still waiting at the next frame's arrival is replaced by it).
    pub detect_every: NonZeroU32,
    /// Bound of each inter-stage queue, in frames.
    pub queue_depth: NonZeroUsize,
}

/// The `format` that lets negotiation choose.
const AUTO_FORMAT: &str = "auto";

/// A replay path must stay inside the media directory: relative, without
/// `..`. (The capture crate re-checks the real path, symlinks resolved, when
/// it opens the source.)
fn replay_path(ctx: &mut Ctx<'_>, path: &str, raw: &str, media_dir: &Path) -> Option<PathBuf> {
    let p = Path::new(raw);
    if raw.trim().is_empty() {
        ctx.bad(path, "must not be empty");
        return None;
    }
    let rel = if p.is_absolute() {
        match p.strip_prefix(media_dir) {
            Ok(rel) => rel.to_owned(),
            Err(_) => {
                ctx.bad(
                    path,
                    format!(
                        "{raw:?} is outside the media directory {}",
                        media_dir.display()
                    ),
                );
                return None;
            }
        }
    } else {
        p.to_owned()
    };
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        ctx.bad(
            path,
            format!(
                "{raw:?} must not contain `..`: replay footage must be inside the media directory"
            ),
        );
        return None;
    }
    Some(media_dir.join(rel))
}

/// The key of field `name` of the source at `sp` (the field alone when `sp` is
/// empty: a source document checked on its own).
fn key(sp: &str, name: &str) -> String {
    if sp.is_empty() {
        name.to_owned()
    } else {
        format!("{sp}.{name}")
    }
}

/// Checks a camera's source at key path `sp`.
fn validate_source(
    ctx: &mut Ctx<'_>,
    sp: &str,
    s: &RawSource,
    media_dir: &Path,
) -> Option<SourceRequest> {
    let fps = |ctx: &mut Ctx<'_>, default: f64| -> Option<f32> {
        let v = s.fps.unwrap_or(default);
        if !(0.5..=120.0).contains(&v) {
            ctx.bad(
                key(sp, "fps"),
                format!("must be between 0.5 and 120, got {v}"),
            );
            return None;
        }
        Some(v as f32)
    };
    let not_for = |ctx: &mut Ctx<'_>, kind: &str, fields: &[(&str, bool)]| {
        for (name, present) in fields {
            if *present {
                ctx.bad(key(sp, name), format!("does not apply to a {kind} source"));
            }
        }
    };
    match s.kind.as_str() {
        "replay" => {
            not_for(
                ctx,
                "replay",
                &[
                    ("device", s.device.is_some()),
                    ("width", s.width.is_some()),
                    ("height", s.height.is_some()),
                    ("format", s.format.is_some()),
                ],
            );
            let path = match s.path.as_deref() {
                Some(raw) => replay_path(ctx, &key(sp, "path"), raw, media_dir),
                None => {
                    ctx.bad(key(sp, "path"), "is required for a replay source");
                    None
                }
            };
            let pace = ctx.named(&key(sp, "pace"), s.pace.as_deref(), Pacing::RealTime);
            let start_frame =
                ctx.int_in::<u64>(&key(sp, "start_frame"), s.start_frame, 0, 0, 10_000_000);
            let fps = fps(ctx, 10.0);
            match (path, pace, start_frame, fps) {
                (Some(path), Some(pace), Some(start_frame), Some(fps)) => {
                    Some(SourceRequest::Replay {
                        path,
                        looping: s.looping.unwrap_or(true),
                        pacing: pace,
                        fps,
                        start_frame,
                    })
                }
                _ => None,
            }
        }
        "v4l2" => {
            not_for(
                ctx,
                "v4l2",
                &[
                    ("path", s.path.is_some()),
                    ("loop", s.looping.is_some()),
                    ("pace", s.pace.is_some()),
                    ("start_frame", s.start_frame.is_some()),
                ],
            );
            let device = match s.device.as_deref() {
                Some(d) if Path::new(d).starts_with("/dev") && !d.contains("..") => {
                    Some(PathBuf::from(d))
                }
                Some(d) => {
                    ctx.bad(key(sp, "device"), format!("{d:?} is not a device path under /dev (e.g. /dev/video0 or /dev/v4l/by-id/...)"));
                    None
                }
                None => {
                    ctx.bad(key(sp, "device"), "is required for a v4l2 source");
                    None
                }
            };
            let width = ctx.int_in::<u32>(&key(sp, "width"), s.width, 1280, 160, 7680);
            let height = ctx.int_in::<u32>(&key(sp, "height"), s.height, 720, 120, 4320);
            // `auto` (or nothing): negotiation picks from the driver's list.
            let format = match s.format.as_deref() {
                None | Some(AUTO_FORMAT) => Some(None),
                Some(name) => match PixelFormat::from_name(name) {
                    Some(f) => Some(Some(f)),
                    None => {
                        let names = PixelFormat::names().join(", ");
                        ctx.bad(
                            key(sp, "format"),
                            format!("{name:?} is not one of: {AUTO_FORMAT}, {names}"),
                        );
                        None
                    }
                },
            };
            let fps = fps(ctx, 15.0);
            match (device, width, height, format, fps) {
                (Some(device), Some(width), Some(height), Some(format), Some(fps)) => {
                    Some(SourceRequest::V4l2 {
                        device,
                        width,
                        height,
                        fps,
                        format,
                    })
                }
                _ => None,
            }
        }
        other => {
            ctx.bad(
                key(sp, "kind"),
                format!("{other:?} is not one of: v4l2, replay"),
            );
            None
        }
    }
}

/// Checks one camera; `p` is its key path, `id` its id.
pub(crate) fn validate_camera(
    ctx: &mut Ctx<'_>,
    p: &str,
    id: &str,
    c: &RawCamera,
    media_dir: &Path,
) -> Option<CameraConfig> {
    let id = ctx.id(&format!("{p}.id"), id, CameraId::new);
    let name = ctx.name(&format!("{p}.name"), c.name.as_deref());
    let detect_every = ctx
        .int_in::<u32>(&format!("{p}.detect_every"), c.detect_every, 1, 1, 100)
        .and_then(NonZeroU32::new);
    let queue_depth = ctx
        .int_in::<usize>(&format!("{p}.queue_depth"), c.queue_depth, 2, 1, 16)
        .and_then(NonZeroUsize::new);
    let source = validate_source(ctx, &format!("{p}.source"), &c.source, media_dir);
    let id = id?;
    Some(CameraConfig {
        name: name?.unwrap_or_else(|| id.to_string()),
        id,
        enabled: c.enabled.unwrap_or(true),
        source: source?,
        detect_every: detect_every?,
        queue_depth: queue_depth?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{check, paths};

    fn replay(path: &str) -> RawCamera {
        RawCamera {
            name: None,
            enabled: None,
            source: RawSource {
                kind: "replay".into(),
                path: Some(path.into()),
                looping: None,
                pace: None,
                start_frame: None,
                device: None,
                width: Some(640),
                height: None,
                format: None,
                fps: None,
            },
            detect_every: None,
            queue_depth: None,
        }
    }

    #[test]
    fn replay_footage_stays_in_the_media_directory() {
        let media = Path::new("/srv/media");
        let (c, p) =
            check(|ctx| validate_camera(ctx, "cameras[0]", "cam-1", &replay("../x.mjpeg"), media));
        assert!(c.is_none());
        assert_eq!(
            paths(&p),
            vec!["cameras[0].source.width", "cameras[0].source.path"]
        );
        let mut ok = replay("walk.mjpeg");
        ok.source.width = None;
        let (c, p) = check(|ctx| validate_camera(ctx, "cameras[0]", "cam-1", &ok, media));
        assert!(p.is_empty(), "{p:?}");
        let Some(CameraConfig {
            source: SourceRequest::Replay { path, .. },
            ..
        }) = c
        else {
            panic!("not a replay camera")
        };
        assert_eq!(path, PathBuf::from("/srv/media/walk.mjpeg"));
    }

    /// On its own, a document is checked by the same code as a file entry: every
    /// problem at its key under the given path, the name and ranges included.
    #[test]
    fn a_document_has_the_problems_of_a_file_entry() {
        let media = Path::new("/srv/media");
        let mut doc = replay("/etc/passwd");
        doc.name = Some(" ".into());
        doc.detect_every = Some(0);
        doc.source.width = None;
        doc.source.fps = Some(500.0);
        assert_eq!(
            paths(&doc.problems("bad id", "doc", media)),
            vec![
                "doc.id",
                "doc.name",
                "doc.detect_every",
                "doc.source.path",
                "doc.source.fps"
            ]
        );
        let mut ok = RawCamera {
            name: Some("Gate".into()),
            detect_every: Some(100),
            ..replay("/srv/media/walk.mjpeg")
        };
        ok.source.width = None;
        assert_eq!(ok.problems("cam-1", "doc", media), Vec::new());
    }

    /// The document's JSON uses the file's keys (`loop`), and absent keys stay absent.
    #[test]
    fn the_document_uses_the_file_keys() {
        let doc: RawCamera = serde_json::from_value(serde_json::json!({
            "source": {"kind": "replay", "path": "walk.mjpeg", "loop": false}
        }))
        .unwrap();
        assert_eq!(doc.source.looping, Some(false));
        assert_eq!(
            serde_json::to_value(&doc).unwrap(),
            serde_json::json!({"source": {"kind": "replay", "path": "walk.mjpeg", "loop": false}})
        );
        let unknown = serde_json::from_value::<RawCamera>(serde_json::json!({
            "source": {"kind": "replay", "path": "walk.mjpeg", "looping": false}
        }));
        assert!(unknown.is_err());
    }

    #[test]
    fn a_source_on_its_own_names_its_keys_and_maps_to_the_capture_request() {
        let media = Path::new("/srv/media");
        let doc = |v: serde_json::Value| serde_json::from_value::<RawSource>(v).unwrap();
        let problems =
            doc(serde_json::json!({"kind": "replay", "path": "/etc/passwd", "fps": 500}))
                .validate(media)
                .unwrap_err();
        assert_eq!(paths(&problems), vec!["path", "fps"]);
        let problems =
            doc(serde_json::json!({"kind": "v4l2", "device": "/dev/video0", "pace": "fast"}))
                .validate(media)
                .unwrap_err();
        assert_eq!(paths(&problems), vec!["pace"]);
        let ok = doc(
            serde_json::json!({"kind": "replay", "path": "yard", "pace": "fast", "start_frame": 3}),
        )
        .validate(media)
        .unwrap();
        assert_eq!(
            ok,
            safe_yolo_capture::SourceRequest::Replay {
                path: media.join("yard"),
                looping: true,
                pacing: safe_yolo_capture::Pacing::AsFastAsPossible,
                fps: 10.0,
                start_frame: 3,
            }
        );
        let cam =
            doc(serde_json::json!({"kind": "v4l2", "device": "/dev/video0", "format": "yuyv"}))
                .validate(media)
                .unwrap();
        assert!(matches!(
            cam,
            safe_yolo_capture::SourceRequest::V4l2 {
                width: 1280,
                height: 720,
                format: Some(safe_yolo_capture::PixelFormat::Yuyv),
                ..
            }
        ));
    }
}

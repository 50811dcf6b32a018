//! `[[cameras]]`: the frame sources.

use std::collections::HashSet;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Component, Path, PathBuf};

use safe_yolo_domain::CameraId;
use serde::Deserialize;

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

/// One `[[cameras]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCamera {
    pub id: String,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub source: RawSource,
    pub detect_every: Option<i64>,
    pub queue_depth: Option<i64>,
}

/// A camera's `source` as written (the keys of both kinds).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub kind: String,
    // Replay.
    pub path: Option<String>,
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    pub pace: Option<String>,
    pub start_frame: Option<i64>,
    // V4L2.
    pub device: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub format: Option<String>,
    // Both.
    pub fps: Option<f64>,
}

/// How a replay source is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// At the footage's frame rate, as a live camera would.
    Realtime,
    /// As fast as the pipeline takes frames.
    Fast,
}

/// Preferred V4L2 pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Let the driver's list decide (MJPEG preferred for bandwidth).
    Auto,
    /// Motion JPEG.
    Mjpeg,
    /// Packed YUV 4:2:2.
    Yuyv,
    /// Semi-planar YUV 4:2:0.
    Nv12,
    /// Packed RGB 8:8:8.
    Rgb24,
}

/// Where a camera's frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// A real V4L2 capture device.
    V4l2 {
        /// Device path (`/dev/video0` or a stable `/dev/v4l/by-id/...` link).
        device: PathBuf,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Requested frame rate.
        fps: f32,
        /// Preferred pixel format.
        format: PixelFormat,
    },
    /// Recorded footage: a folder of JPEG frames or an MJPEG file.
    Replay {
        /// Path inside the media directory (absolute after loading).
        path: PathBuf,
        /// Start again at the end.
        looping: bool,
        /// Pacing.
        pace: Pace,
        /// Frame rate used for pacing.
        fps: f32,
        /// First frame to play (staggers cameras that share footage).
        start_frame: u64,
    },
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
    pub source: SourceConfig,
    /// Detection runs on every Nth frame (a turn at the shared detector; a
    /// frame still waiting at the next frame's arrival is replaced by it).
    pub detect_every: NonZeroU32,
    /// Bound of each inter-stage queue, in frames.
    pub queue_depth: NonZeroUsize,
}

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

/// Checks one camera; `p` is its key path.
pub(crate) fn validate_camera(
    ctx: &mut Ctx<'_>,
    p: &str,
    c: &RawCamera,
    media_dir: &Path,
) -> Option<CameraConfig> {
    let id = ctx.id(&format!("{p}.id"), &c.id, CameraId::new);
    let detect_every = ctx
        .int_in::<u32>(&format!("{p}.detect_every"), c.detect_every, 1, 1, 100)
        .and_then(NonZeroU32::new);
    let queue_depth = ctx
        .int_in::<usize>(&format!("{p}.queue_depth"), c.queue_depth, 2, 1, 16)
        .and_then(NonZeroUsize::new);
    let s = &c.source;
    let sp = format!("{p}.source");
    let fps = |ctx: &mut Ctx<'_>, default: f64| -> Option<f32> {
        let v = s.fps.unwrap_or(default);
        if !(0.5..=120.0).contains(&v) {
            ctx.bad(
                format!("{sp}.fps"),
                format!("must be between 0.5 and 120, got {v}"),
            );
            return None;
        }
        Some(v as f32)
    };
    let not_for = |ctx: &mut Ctx<'_>, kind: &str, fields: &[(&str, bool)]| {
        for (name, present) in fields {
            if *present {
                ctx.bad(
                    format!("{sp}.{name}"),
                    format!("does not apply to a {kind} source"),
                );
            }
        }
    };
    let source = match s.kind.as_str() {
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
                Some(raw) => replay_path(ctx, &format!("{sp}.path"), raw, media_dir),
                None => {
                    ctx.bad(format!("{sp}.path"), "is required for a replay source");
                    None
                }
            };
            let pace = ctx.choice(
                &format!("{sp}.pace"),
                s.pace.as_deref(),
                Pace::Realtime,
                &[("realtime", Pace::Realtime), ("fast", Pace::Fast)],
            );
            let start_frame = ctx.int_in::<u64>(
                &format!("{sp}.start_frame"),
                s.start_frame,
                0,
                0,
                10_000_000,
            );
            let fps = fps(ctx, 10.0);
            match (path, pace, start_frame, fps) {
                (Some(path), Some(pace), Some(start_frame), Some(fps)) => {
                    Some(SourceConfig::Replay {
                        path,
                        looping: s.looping.unwrap_or(true),
                        pace,
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
                    ctx.bad(format!("{sp}.device"), format!("{d:?} is not a device path under /dev (e.g. /dev/video0 or /dev/v4l/by-id/...)"));
                    None
                }
                None => {
                    ctx.bad(format!("{sp}.device"), "is required for a v4l2 source");
                    None
                }
            };
            let width = ctx.int_in::<u32>(&format!("{sp}.width"), s.width, 1280, 160, 7680);
            let height = ctx.int_in::<u32>(&format!("{sp}.height"), s.height, 720, 120, 4320);
            let format = ctx.choice(
                &format!("{sp}.format"),
                s.format.as_deref(),
                PixelFormat::Auto,
                &[
                    ("auto", PixelFormat::Auto),
                    ("mjpeg", PixelFormat::Mjpeg),
                    ("yuyv", PixelFormat::Yuyv),
                    ("nv12", PixelFormat::Nv12),
                    ("rgb24", PixelFormat::Rgb24),
                ],
            );
            let fps = fps(ctx, 15.0);
            match (device, width, height, format, fps) {
                (Some(device), Some(width), Some(height), Some(format), Some(fps)) => {
                    Some(SourceConfig::V4l2 {
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
                format!("{sp}.kind"),
                format!("{other:?} is not one of: v4l2, replay"),
            );
            None
        }
    };
    Some(CameraConfig {
        name: c.name.clone().unwrap_or_else(|| c.id.clone()),
        id: id?,
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
            id: "cam-1".into(),
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
        let (c, p) = check(|ctx| validate_camera(ctx, "cameras[0]", &replay("../x.mjpeg"), media));
        assert!(c.is_none());
        assert_eq!(
            paths(&p),
            vec!["cameras[0].source.width", "cameras[0].source.path"]
        );
        let mut ok = replay("walk.mjpeg");
        ok.source.width = None;
        let (c, p) = check(|ctx| validate_camera(ctx, "cameras[0]", &ok, media));
        assert!(p.is_empty(), "{p:?}");
        let Some(CameraConfig {
            source: SourceConfig::Replay { path, .. },
            ..
        }) = c
        else {
            panic!("not a replay camera")
        };
        assert_eq!(path, PathBuf::from("/srv/media/walk.mjpeg"));
    }
}

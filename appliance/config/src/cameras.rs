//! `[[cameras]]`: the frame sources.
//!
//! A camera's raw form ([`RawCamera`], an entry without its `id`) is also the API's
//! camera document; it is checked here only ([`RawCamera::problems`] on its own,
//! `validate_camera` with the file). Cameras are wiring: the running system refuses
//! live edits of them, so they are never laid over the file.

use std::collections::HashSet;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use safe_yolo_capture::{Pacing, PixelFormat, RtspRequest, RtspTransport, RtspUrl, SourceRequest};
use safe_yolo_domain::{CameraId, Named as _};
use safe_yolo_rules::TamperConfig;
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
    /// The tamper check's thresholds (`[cameras.tamper]`; default: on, with the
    /// documented defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tamper: Option<RawTamper>,
}

/// `[cameras.tamper]`: when a camera that delivers frames counts as frozen,
/// covered, blinded, defocused or moved. On the camera, not in the rule: the
/// measures depend on the camera's scene, lens and light (one check per camera,
/// whatever rules watch it), and a `camera_tamper` rule only picks the reasons it
/// alarms on. Every key is optional; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TamperDoc")]
pub struct RawTamper {
    /// Run the check (default: true). Off, the camera never reports a reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Usable frames over this long make the camera's sharpness baseline and
    /// reference picture, 1-600 s (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learn_s: Option<f64>,
    /// `frozen` after the picture (or the capture time) has not changed this
    /// long, 1-3600 s (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_after_s: Option<f64>,
    /// Largest mean absolute luma change between frames, in 0-255 levels, that
    /// counts as unchanged, 0-10 (default 0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_max_change: Option<f64>,
    /// `covered` or `blinded` after the picture has been nearly uniform this
    /// long, 1-3600 s (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covered_after_s: Option<f64>,
    /// Largest luma standard deviation of a nearly uniform picture, 0-64
    /// levels (default 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uniform_max_std: Option<f64>,
    /// Least mean luma of a uniform picture that is `blinded` rather than
    /// `covered`, 0-255 (default 200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blinded_min_luma: Option<f64>,
    /// `defocused` after the sharpness has been low this long, 1-3600 s (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defocused_after_s: Option<f64>,
    /// Sharpness, as a fraction of the camera's learnt baseline, at or below
    /// which it is defocused, 0.01-0.95 (default 0.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defocus_max_ratio: Option<f64>,
    /// `moved` after the view has not matched the reference this long,
    /// 1-3600 s (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_after_s: Option<f64>,
    /// Least correlation of the picture's edges with the reference picture's
    /// of a camera in place, 0-0.99 (default 0.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_min_correlation: Option<f64>,
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

/// A camera's `source` as written: the keys of every kind, each allowed by its kind only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SourceDoc")]
pub struct RawSource {
    /// `v4l2` (a capture device), `rtsp` (an IP camera) or `replay` (recorded footage).
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
    /// Frame rate, 0.5-120 (default: 10 for a replay, 15 for a device; an RTSP
    /// camera sends at its own rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// RTSP: `rtsp[s]://host[:port]/path`, without credentials (the camera's
    /// sub-stream is the cheaper choice for detection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// RTSP: user name, when the camera asks for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// RTSP, API only, write-only: the password. The box keeps it in a file of its
    /// own (mode 0600, outside backups) and shows `password_file` instead; it is
    /// never read back, logged or audited. Omit it in a PUT to keep the stored one.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// RTSP: a file (mode 0600) whose first line is the password, read at every
    /// connection. Set by the box when a password comes through the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// RTSP: `tcp` (default, interleaved: passes firewalls, loses nothing) or `udp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// RTSP: jitter-buffer latency in ms, 0-5000 (default: 200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
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
    /// The tamper check's thresholds.
    pub tamper: TamperConfig,
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
            not_for(ctx, "replay", &rtsp_fields(s));
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
            not_for(ctx, "v4l2", &rtsp_fields(s));
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
        "rtsp" => {
            not_for(
                ctx,
                "rtsp",
                &[
                    ("path", s.path.is_some()),
                    ("loop", s.looping.is_some()),
                    ("pace", s.pace.is_some()),
                    ("start_frame", s.start_frame.is_some()),
                    ("device", s.device.is_some()),
                    ("width", s.width.is_some()),
                    ("height", s.height.is_some()),
                    ("format", s.format.is_some()),
                    ("fps", s.fps.is_some()),
                ],
            );
            validate_rtsp(ctx, sp, s)
        }
        other => {
            ctx.bad(
                key(sp, "kind"),
                format!("{other:?} is not one of: v4l2, replay, rtsp"),
            );
            None
        }
    }
}

/// The RTSP-only fields of a source, for the kinds they do not apply to.
fn rtsp_fields(s: &RawSource) -> [(&'static str, bool); 6] {
    [
        ("url", s.url.is_some()),
        ("username", s.username.is_some()),
        ("password", s.password.is_some()),
        ("password_file", s.password_file.is_some()),
        ("transport", s.transport.is_some()),
        ("latency_ms", s.latency_ms.is_some()),
    ]
}

/// Checks an RTSP source at key path `sp`.
fn validate_rtsp(ctx: &mut Ctx<'_>, sp: &str, s: &RawSource) -> Option<SourceRequest> {
    let url = match s.url.as_deref() {
        // The reason never repeats the URL: it may carry the credentials refused.
        Some(u) => match RtspUrl::parse(u) {
            Ok(url) => Some(url),
            Err(e) => {
                ctx.bad(key(sp, "url"), e.to_string());
                None
            }
        },
        None => {
            ctx.bad(key(sp, "url"), "is required for an rtsp source");
            None
        }
    };
    let username = match s.username.as_deref() {
        Some(u)
            if u.is_empty()
                || u.len() > safe_yolo_capture::rtsp::MAX_USERNAME_LEN
                || u.chars().any(char::is_control) =>
        {
            ctx.bad(
                key(sp, "username"),
                "must be 1-128 characters without control characters",
            );
            None
        }
        u => Some(u.map(str::to_owned)),
    };
    if s.password.is_some() {
        // The API moves a password into a file of its own before this check; in
        // the configuration file it would be copied into every backup.
        ctx.bad(
            key(sp, "password"),
            "is not kept in the configuration file (it goes into backups): write it to a file (mode 0600) named by password_file, or set it through the API",
        );
    }
    let password_file = match s.password_file.as_deref() {
        Some(p) if Path::new(p).is_absolute() && !p.contains("..") && p.len() <= 4096 => {
            Some(Some(PathBuf::from(p)))
        }
        Some(_) => {
            ctx.bad(
                key(sp, "password_file"),
                "must be an absolute path without `..`",
            );
            None
        }
        None => Some(None),
    };
    if s.password_file.is_some() && s.username.is_none() {
        ctx.bad(key(sp, "username"), "is required when a password is given");
    }
    let transport = ctx.named(
        &key(sp, "transport"),
        s.transport.as_deref(),
        RtspTransport::Tcp,
    );
    let latency = ctx.int_in::<u64>(
        &key(sp, "latency_ms"),
        s.latency_ms,
        safe_yolo_capture::rtsp::DEFAULT_LATENCY.as_millis() as i64,
        0,
        5000,
    );
    Some(SourceRequest::Rtsp(RtspRequest {
        url: url?,
        username: username?,
        password_file: password_file?,
        transport: transport?,
        latency: std::time::Duration::from_millis(latency?),
    }))
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
    let tamper = validate_tamper(
        ctx,
        &format!("{p}.tamper"),
        c.tamper.as_ref().unwrap_or(&RawTamper::default()),
    );
    let id = id?;
    Some(CameraConfig {
        name: name?.unwrap_or_else(|| id.to_string()),
        id,
        enabled: c.enabled.unwrap_or(true),
        source: source?,
        detect_every: detect_every?,
        queue_depth: queue_depth?,
        tamper: tamper?,
    })
}

/// Checks a camera's `[cameras.tamper]` at key path `p`; absent keys take
/// [`TamperConfig::default`]'s values.
fn validate_tamper(ctx: &mut Ctx<'_>, p: &str, t: &RawTamper) -> Option<TamperConfig> {
    let d = TamperConfig::default();
    let secs = |ctx: &mut Ctx<'_>, key: &str, v, default: Duration, lo, hi| {
        ctx.secs_in(&format!("{p}.{key}"), v, default.as_secs_f64(), lo, hi)
    };
    let num = |ctx: &mut Ctx<'_>, key: &str, v: Option<f64>, default: f32, lo: f64, hi: f64| {
        let v = v.unwrap_or(f64::from(default));
        if !v.is_finite() || v < lo || v > hi {
            ctx.bad(
                format!("{p}.{key}"),
                format!("must be between {lo} and {hi}, got {v}"),
            );
            return None;
        }
        Some(v as f32)
    };
    let learn = secs(ctx, "learn_s", t.learn_s, d.learn, 1.0, 600.0);
    let frozen_after = secs(
        ctx,
        "frozen_after_s",
        t.frozen_after_s,
        d.frozen_after,
        1.0,
        3600.0,
    );
    let frozen_max_change = num(
        ctx,
        "frozen_max_change",
        t.frozen_max_change,
        d.frozen_max_change,
        0.0,
        10.0,
    );
    let covered_after = secs(
        ctx,
        "covered_after_s",
        t.covered_after_s,
        d.covered_after,
        1.0,
        3600.0,
    );
    let uniform_max_std = num(
        ctx,
        "uniform_max_std",
        t.uniform_max_std,
        d.uniform_max_std,
        0.0,
        64.0,
    );
    let blinded_min_luma = num(
        ctx,
        "blinded_min_luma",
        t.blinded_min_luma,
        d.blinded_min_luma,
        0.0,
        255.0,
    );
    let defocused_after = secs(
        ctx,
        "defocused_after_s",
        t.defocused_after_s,
        d.defocused_after,
        1.0,
        3600.0,
    );
    let defocus_max_ratio = num(
        ctx,
        "defocus_max_ratio",
        t.defocus_max_ratio,
        d.defocus_max_ratio,
        0.01,
        0.95,
    );
    let moved_after = secs(
        ctx,
        "moved_after_s",
        t.moved_after_s,
        d.moved_after,
        1.0,
        3600.0,
    );
    let moved_min_correlation = num(
        ctx,
        "moved_min_correlation",
        t.moved_min_correlation,
        d.moved_min_correlation,
        0.0,
        0.99,
    );
    Some(TamperConfig {
        enabled: t.enabled.unwrap_or(d.enabled),
        learn: learn?,
        frozen_after: frozen_after?,
        frozen_max_change: frozen_max_change?,
        covered_after: covered_after?,
        uniform_max_std: uniform_max_std?,
        blinded_min_luma: blinded_min_luma?,
        defocused_after: defocused_after?,
        defocus_max_ratio: defocus_max_ratio?,
        moved_after: moved_after?,
        moved_min_correlation: moved_min_correlation?,
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
                ..RawSource::default()
            },
            detect_every: None,
            queue_depth: None,
            tamper: None,
        }
    }

    /// `[cameras.tamper]`: absent keys take the documented defaults; a value out
    /// of its range names its key.
    #[test]
    fn tamper_thresholds_default_and_name_the_bad_key() {
        let media = Path::new("/srv/media");
        let mut cam = replay("a.mjpeg");
        cam.source.width = None;
        let (c, p) = check(|ctx| validate_camera(ctx, "cameras[0]", "cam-1", &cam, media));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.unwrap().tamper, TamperConfig::default());
        cam.tamper = Some(RawTamper {
            moved_after_s: Some(60.0),
            enabled: Some(false),
            ..RawTamper::default()
        });
        let (c, p) = check(|ctx| validate_camera(ctx, "cameras[0]", "cam-1", &cam, media));
        assert!(p.is_empty(), "{p:?}");
        let t = c.unwrap().tamper;
        assert_eq!((t.moved_after, t.enabled), (Duration::from_secs(60), false));
        cam.tamper = Some(RawTamper {
            defocus_max_ratio: Some(1.5),
            frozen_after_s: Some(0.0),
            uniform_max_std: Some(f64::NAN),
            ..RawTamper::default()
        });
        let (c, p) = check(|ctx| validate_camera(ctx, "cameras[0]", "cam-1", &cam, media));
        assert!(c.is_none());
        assert_eq!(
            paths(&p),
            [
                "cameras[0].tamper.frozen_after_s",
                "cameras[0].tamper.uniform_max_std",
                "cameras[0].tamper.defocus_max_ratio"
            ]
        );
        let unknown = toml::from_str::<RawTamper>("moved_after = 3");
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `moved_after`")
        );
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

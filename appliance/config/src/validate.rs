//! Raw -> validated, collecting every problem.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use safe_yolo_domain::{CameraId, IdError, Line, Named, OutputId, Polygon, ZoneId};

use crate::Problem;
use crate::model::*;
use crate::raw::*;
use crate::rules::{RuleContext, validate_rule};

pub(crate) struct Ctx<'a> {
    problems: &'a mut Vec<Problem>,
    base: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn bad(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }

    pub(crate) fn id<T>(
        &mut self,
        path: &str,
        value: &str,
        f: fn(String) -> Result<T, IdError>,
    ) -> Option<T> {
        match f(value.to_owned()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.bad(path, format!("{value:?} {e}"));
                None
            }
        }
    }

    pub(crate) fn int_in<T: TryFrom<i64>>(
        &mut self,
        path: &str,
        v: Option<i64>,
        default: i64,
        lo: i64,
        hi: i64,
    ) -> Option<T> {
        let v = v.unwrap_or(default);
        if !(lo..=hi).contains(&v) {
            self.bad(path, format!("must be between {lo} and {hi}, got {v}"));
            return None;
        }
        T::try_from(v).ok()
    }

    pub(crate) fn secs_in(
        &mut self,
        path: &str,
        v: Option<f64>,
        default: f64,
        lo: f64,
        hi: f64,
    ) -> Option<Duration> {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v < lo || v > hi {
            self.bad(
                path,
                format!("must be between {lo} and {hi} seconds, got {v}"),
            );
            return None;
        }
        Some(Duration::from_secs_f64(v))
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        normalize(&if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        })
    }

    /// One word of a vocabulary ([`Named`]); `default` when absent.
    pub(crate) fn named<T: Named>(&mut self, path: &str, v: Option<&str>, default: T) -> Option<T> {
        let Some(v) = v else { return Some(default) };
        let t = T::from_name(v);
        if t.is_none() {
            self.bad(path, T::unknown(v));
        }
        t
    }

    fn choice<T: Copy>(
        &mut self,
        path: &str,
        v: Option<&str>,
        default: T,
        options: &[(&str, T)],
    ) -> Option<T> {
        let Some(v) = v else { return Some(default) };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v) {
            return Some(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.bad(path, format!("{v:?} is not one of: {}", names.join(", ")));
        None
    }

    fn line_ref(&mut self, path: &str, offset: Option<i64>, name: Option<&str>) -> Option<LineRef> {
        match (offset, name) {
            (Some(o), None) => self
                .int_in::<u32>(&format!("{path}.offset"), Some(o), 0, 0, 511)
                .map(LineRef::Offset),
            (None, Some(n)) if !n.trim().is_empty() => Some(LineRef::Name(n.to_owned())),
            (None, Some(_)) => {
                self.bad(format!("{path}.name"), "must not be empty");
                None
            }
            (Some(_), Some(_)) => {
                self.bad(path, "give either `offset` or `name`, not both");
                None
            }
            (None, None) => {
                self.bad(path, "needs the line's `offset` on the chip or its `name`");
                None
            }
        }
    }
}

/// Removes `.` and resolves `..` lexically (`config/../state` -> `state`),
/// so paths in logs and sandbox checks are the plain paths they denote.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

fn unique<'a>(ctx: &mut Ctx<'_>, what: &str, items: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (path, id) in items {
        if let Some(first) = seen.get(id) {
            ctx.bad(
                format!("{path}.id"),
                format!("duplicate {what} id {id:?} (first used at {first})"),
            );
        } else {
            seen.insert(id, path);
        }
    }
}

pub(crate) fn validate(raw: RawConfig, base: &Path, problems: &mut Vec<Problem>) -> Config {
    let mut ctx = Ctx { problems, base };
    let incomplete = raw.incomplete;

    let system = SystemConfig {
        board: raw.system.board.clone(),
        board_dir: raw.system.board_dir.as_deref().map_or_else(
            || PathBuf::from("/usr/share/safe-yolo/board"),
            |d| ctx.path(d),
        ),
        stall_timeout: ctx
            .secs_in(
                "system.stall_timeout_s",
                raw.system.stall_timeout_s,
                10.0,
                1.0,
                300.0,
            )
            .unwrap_or(Duration::from_secs(10)),
        shutdown_timeout: ctx
            .secs_in(
                "system.shutdown_timeout_s",
                raw.system.shutdown_timeout_s,
                4.0,
                0.5,
                60.0,
            )
            .unwrap_or(Duration::from_secs(4)),
        detect_workers: ctx
            .int_in::<usize>("system.detect_workers", raw.system.detect_workers, 1, 1, 16)
            .and_then(NonZeroUsize::new)
            .unwrap_or(NonZeroUsize::MIN),
        detect_nice: ctx
            .int_in::<i32>("system.detect_nice", raw.system.detect_nice, 5, 0, 19)
            .unwrap_or(5),
        api_nice: ctx
            .int_in::<i32>("system.api_nice", raw.system.api_nice, 10, 0, 19)
            .unwrap_or(10),
    };

    let detector = validate_detector(
        &mut ctx,
        &raw.detector,
        raw.failed_sections.contains(&"detector"),
    );
    let storage = validate_storage(&mut ctx, &raw.storage);
    let features = Features {
        ppe: raw.features.ppe.unwrap_or(false),
        live_stream: raw.features.live_stream.unwrap_or(true),
        web_ui: raw.features.web_ui.unwrap_or(true),
        snapshots: raw.features.snapshots.unwrap_or(true),
    };

    unique(
        &mut ctx,
        "camera",
        raw.cameras
            .iter()
            .map(|c| (c.path.as_str(), c.value.id.as_str())),
    );
    let cameras: Vec<CameraConfig> = raw
        .cameras
        .iter()
        .filter_map(|c| validate_camera(&mut ctx, &c.path, &c.value, &storage.media_dir))
        .collect();
    let camera_ids: HashSet<&str> = raw.cameras.iter().map(|c| c.value.id.as_str()).collect();

    // Zones and lines share one namespace: a rule names either.
    unique(
        &mut ctx,
        "zone or line",
        raw.zones
            .iter()
            .map(|z| (z.path.as_str(), z.value.id.as_str()))
            .chain(
                raw.lines
                    .iter()
                    .map(|l| (l.path.as_str(), l.value.id.as_str())),
            ),
    );
    let check_camera = |ctx: &mut Ctx<'_>, path: &str, cam: &str| -> Option<CameraId> {
        let id = ctx.id(path, cam, CameraId::new)?;
        if !incomplete && !camera_ids.contains(cam) {
            ctx.bad(path, format!("no camera has the id {cam:?}"));
            return None;
        }
        Some(id)
    };
    let mut zones = Vec::new();
    for z in &raw.zones {
        let (p, v) = (&z.path, &z.value);
        let id = ctx.id(&format!("{p}.id"), &v.id, ZoneId::new);
        let camera = check_camera(&mut ctx, &format!("{p}.camera"), &v.camera);
        let pts: Vec<[f32; 2]> = v
            .polygon
            .iter()
            .map(|[x, y]| [*x as f32, *y as f32])
            .collect();
        let polygon = match Polygon::new(&pts) {
            Ok(poly) => Some(poly),
            Err(e) => {
                ctx.bad(format!("{p}.polygon"), e.to_string());
                None
            }
        };
        let anchor = ctx.named(&format!("{p}.anchor"), v.anchor.as_deref(), Anchor::Feet);
        if let (Some(id), Some(camera), Some(polygon), Some(anchor)) = (id, camera, polygon, anchor)
        {
            zones.push(ZoneConfig {
                name: v.name.clone().unwrap_or_else(|| id.to_string()),
                id,
                camera,
                polygon,
                anchor,
            });
        }
    }
    let mut lines = Vec::new();
    for l in &raw.lines {
        let (p, v) = (&l.path, &l.value);
        let id = ctx.id(&format!("{p}.id"), &v.id, ZoneId::new);
        let camera = check_camera(&mut ctx, &format!("{p}.camera"), &v.camera);
        let line = match Line::new(
            [v.from[0] as f32, v.from[1] as f32],
            [v.to[0] as f32, v.to[1] as f32],
        ) {
            Ok(line) => Some(line),
            Err(e) => {
                ctx.bad(p.clone(), e.to_string());
                None
            }
        };
        if let (Some(id), Some(camera), Some(line)) = (id, camera, line) {
            lines.push(LineConfig {
                name: v.name.clone().unwrap_or_else(|| id.to_string()),
                id,
                camera,
                line,
            });
        }
    }

    let outputs = validate_outputs(&mut ctx, &raw, system.stall_timeout);

    unique(
        &mut ctx,
        "rule",
        raw.rules
            .iter()
            .map(|r| (r.path.as_str(), r.value.id.as_str())),
    );
    let zone_cams: HashMap<&str, (&str, bool)> = raw
        .zones
        .iter()
        .map(|z| (z.value.id.as_str(), (z.value.camera.as_str(), false)))
        .chain(
            raw.lines
                .iter()
                .map(|l| (l.value.id.as_str(), (l.value.camera.as_str(), true))),
        )
        .collect();
    let output_ids: HashSet<&str> = raw
        .output_lines
        .iter()
        .map(|o| o.value.id.as_str())
        .collect();
    let rc = RuleContext {
        zones: zone_cams,
        cameras: camera_ids,
        outputs: output_ids,
        detector: &detector,
        features,
        has_door: outputs.inputs.door_contact.is_some(),
        incomplete,
    };
    let rules = raw
        .rules
        .iter()
        .filter_map(|r| validate_rule(&mut ctx, &r.path, &r.value, &rc))
        .collect();

    let api = validate_api(&mut ctx, &raw.api);

    Config {
        system,
        detector,
        cameras,
        zones,
        lines,
        rules,
        outputs,
        api,
        storage,
        features,
    }
}

fn validate_detector(ctx: &mut Ctx<'_>, raw: &RawDetector, failed: bool) -> DetectorConfig {
    let backend = ctx
        .choice(
            "detector.backend",
            raw.backend.as_deref(),
            Backend::Auto,
            &[
                ("auto", Backend::Auto),
                ("tract", Backend::Tract),
                ("onnxruntime", Backend::OnnxRuntime),
                ("rknn", Backend::Rknn),
            ],
        )
        .unwrap_or(Backend::Auto);
    let model = match raw.model.as_deref() {
        Some(m) if !m.trim().is_empty() => ctx.path(m),
        _ if failed => PathBuf::new(),
        _ => {
            ctx.bad(
                "detector.model",
                "is required: the path of a model manifest (models/<name>/model.toml)",
            );
            PathBuf::new()
        }
    };
    let score_threshold = raw.score_threshold.and_then(|s| {
        if (0.01..=0.99).contains(&s) {
            Some(s as f32)
        } else {
            ctx.bad(
                "detector.score_threshold",
                format!("must be between 0.01 and 0.99, got {s}"),
            );
            None
        }
    });
    DetectorConfig {
        backend,
        model,
        ppe_model: raw.ppe_model.as_deref().map(|p| ctx.path(p)),
        threads: ctx
            .int_in::<usize>("detector.threads", raw.threads, 1, 1, 16)
            .and_then(NonZeroUsize::new)
            .unwrap_or(NonZeroUsize::MIN),
        score_threshold,
        classes: raw.classes.clone().unwrap_or_default(),
    }
}

fn validate_storage(ctx: &mut Ctx<'_>, raw: &RawStorage) -> StorageConfig {
    let state_dir = match raw.state_dir.as_deref() {
        Some(s) if !s.trim().is_empty() => ctx.path(s),
        Some(_) => {
            ctx.bad("storage.state_dir", "must not be empty");
            PathBuf::new()
        }
        None => PathBuf::from("/var/lib/safe-yolo"),
    };
    let media_dir = match raw.media_dir.as_deref() {
        Some(s) if !s.trim().is_empty() => ctx.path(s),
        Some(_) => {
            ctx.bad("storage.media_dir", "must not be empty");
            PathBuf::new()
        }
        None => state_dir.join("media"),
    };
    let days = |ctx: &mut Ctx<'_>, path: &str, v: Option<i64>, default: i64| {
        ctx.int_in::<u64>(path, v, default, 1, 3650)
            .map(|d| Duration::from_secs(d * 86_400))
            .unwrap_or(Duration::from_secs(default.unsigned_abs() * 86_400))
    };
    let event_retention = days(
        ctx,
        "storage.event_retention_days",
        raw.event_retention_days,
        90,
    );
    let audit_retention = days(
        ctx,
        "storage.audit_retention_days",
        raw.audit_retention_days,
        730,
    );
    if audit_retention < event_retention {
        ctx.bad(
            "storage.audit_retention_days",
            "must be at least storage.event_retention_days: the audit log outlives the events it explains",
        );
    }
    StorageConfig {
        state_dir,
        media_dir,
        event_retention,
        audit_retention,
        snapshot_quota_bytes: ctx
            .int_in::<u64>(
                "storage.snapshot_quota_mb",
                raw.snapshot_quota_mb,
                2048,
                16,
                1_048_576,
            )
            .unwrap_or(2048)
            * 1024
            * 1024,
    }
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

fn validate_camera(
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

fn validate_input(ctx: &mut Ctx<'_>, path: &str, raw: &RawInput) -> Option<InputConfig> {
    let line = ctx.line_ref(path, raw.offset, raw.name.as_deref());
    let debounce = ctx.int_in::<u64>(&format!("{path}.debounce_ms"), raw.debounce_ms, 30, 0, 1000);
    Some(InputConfig {
        line: line?,
        active_low: raw.active_low.unwrap_or(false),
        debounce: Duration::from_millis(debounce?),
    })
}

/// The outputs section, read into the outputs crate's model and checked by its
/// validator, whose problems carry this file's key paths.
fn validate_outputs(ctx: &mut Ctx<'_>, raw: &RawConfig, health_timeout: Duration) -> OutputsConfig {
    let head = &raw.outputs;
    let backend = ctx
        .named(
            "outputs.backend",
            head.backend.as_deref(),
            BackendKind::Simulated,
        )
        .unwrap_or(BackendKind::Simulated);
    let mut complete = true;
    let mut lines = Vec::new();
    for o in &raw.output_lines {
        let (p, v) = (&o.path, &o.value);
        let id = ctx.id(&format!("{p}.id"), &v.id, OutputId::new);
        let role = ctx.named(
            &format!("{p}.role"),
            Some(v.role.as_str()),
            OutputRole::Relay,
        );
        let line = ctx.line_ref(p, v.offset, v.name.as_deref());
        let safe_state = ctx.named(
            &format!("{p}.safe_state"),
            v.safe_state.as_deref(),
            SafeState::Off,
        );
        if let (Some(id), Some(role), Some(line), Some(safe_state)) = (id, role, line, safe_state) {
            lines.push(OutputLineConfig {
                id,
                role,
                line,
                active_low: v.active_low.unwrap_or(false),
                safe_state,
            });
        } else {
            complete = false;
        }
    }
    let mut input = |path: &str, raw: &Option<RawInput>| match raw {
        None => None,
        Some(i) => {
            let v = validate_input(ctx, path, i);
            complete &= v.is_some();
            v
        }
    };
    let inputs = InputsConfig {
        ack_button: input("outputs.ack_button", &head.ack_button),
        door_contact: input("outputs.door_contact", &head.door_contact),
    };
    let outputs = OutputsConfig {
        backend,
        chip: head.chip.clone().unwrap_or_default(),
        lines,
        inputs,
        health_timeout,
        sim_log: head.sim_log.as_deref().map(|p| ctx.path(p)),
    };
    // The outputs' own checks need every line: their paths count lines by position.
    if complete {
        for p in outputs.problems() {
            ctx.bad(p.field, p.reason);
        }
    }
    outputs
}

fn parse_net(s: &str) -> Option<IpNet> {
    let (a, p) = s.split_once('/').unwrap_or((s, ""));
    let addr: std::net::IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = if p.is_empty() { max } else { p.parse().ok()? };
    (prefix <= max).then_some(IpNet { addr, prefix })
}

fn validate_origin(o: &str) -> Result<(), &'static str> {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty()
        || rest.contains('/')
        || rest.contains('*')
        || rest.contains(char::is_whitespace)
    {
        return Err("must be scheme://host[:port] with no path and no wildcard");
    }
    Ok(())
}

fn validate_api(ctx: &mut Ctx<'_>, raw: &RawApi) -> ApiConfig {
    let addr = |ctx: &mut Ctx<'_>, path: &str, v: &str| -> Option<SocketAddr> {
        v.parse()
            .map_err(|_| {
                ctx.bad(
                    path,
                    format!("{v:?} is not an address:port such as 0.0.0.0:8443"),
                )
            })
            .ok()
    };
    let bind = addr(
        ctx,
        "api.bind",
        raw.bind.as_deref().unwrap_or("0.0.0.0:8443"),
    )
    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443)));
    let http_redirect_bind = raw
        .http_redirect_bind
        .as_deref()
        .and_then(|v| addr(ctx, "api.http_redirect_bind", v));
    if http_redirect_bind.is_some_and(|r| r.port() == bind.port() && r.ip() == bind.ip()) {
        ctx.bad("api.http_redirect_bind", "must differ from api.bind");
    }
    let tls_min_version = ctx
        .choice(
            "api.tls_min_version",
            raw.tls_min_version.as_deref(),
            TlsMinVersion::Tls13,
            &[("1.3", TlsMinVersion::Tls13), ("1.2", TlsMinVersion::Tls12)],
        )
        .unwrap_or(TlsMinVersion::Tls13);
    if raw.cert.is_some() != raw.key.is_some() {
        ctx.bad("api.cert", "api.cert and api.key go together: give both or neither (a self-signed pair is generated when neither is given)");
    }
    let mut cors_origins = Vec::new();
    for (i, o) in raw
        .cors_origins
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match validate_origin(&o) {
            Ok(()) => cors_origins.push(o),
            Err(why) => ctx.bad(format!("api.cors_origins[{i}]"), format!("{o:?} {why}")),
        }
    }
    let mut setup_networks = Vec::new();
    for (i, n) in raw
        .setup_networks
        .clone()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match parse_net(n) {
            Some(net) => setup_networks.push(net),
            None => ctx.bad(
                format!("api.setup_networks[{i}]"),
                format!("{n:?} is not a network such as 192.168.1.0/24"),
            ),
        }
    }
    ApiConfig {
        bind,
        tls_min_version,
        cert: raw.cert.as_deref().map(|p| ctx.path(p)),
        key: raw.key.as_deref().map(|p| ctx.path(p)),
        http_redirect_bind,
        cors_origins,
        setup_networks,
        jpeg_quality: ctx
            .int_in::<u8>("api.jpeg_quality", raw.jpeg_quality, 75, 10, 100)
            .unwrap_or(75),
        max_body_bytes: ctx
            .int_in::<usize>("api.max_body_kib", raw.max_body_kib, 256, 4, 65_536)
            .unwrap_or(256)
            * 1024,
        rate_limit_per_s: ctx
            .int_in::<u32>("api.rate_limit_per_s", raw.rate_limit_per_s, 50, 1, 10_000)
            .unwrap_or(50),
        rate_limit_burst: ctx
            .int_in::<u32>(
                "api.rate_limit_burst",
                raw.rate_limit_burst,
                100,
                1,
                100_000,
            )
            .unwrap_or(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(
            normalize(Path::new("config/../state/demo")),
            Path::new("state/demo")
        );
        assert_eq!(
            normalize(Path::new("/etc/safe-yolo/./../x")),
            Path::new("/etc/x")
        );
        assert_eq!(normalize(Path::new("../a")), Path::new("../a"));
        assert_eq!(normalize(Path::new("a/..")), Path::new("."));
    }

    #[test]
    fn nets() {
        let n = parse_net("192.168.1.0/24").unwrap();
        assert!(n.contains("192.168.1.77".parse().unwrap()));
        assert!(!n.contains("192.168.2.1".parse().unwrap()));
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(
            parse_net("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(
            parse_net("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn origins() {
        assert!(validate_origin("https://scada.plant.local:8443").is_ok());
        assert!(validate_origin("https://*.plant").is_err());
        assert!(validate_origin("scada.plant").is_err());
        assert!(validate_origin("https://a/b").is_err());
    }
}

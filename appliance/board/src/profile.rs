//! Board profiles: a TOML file per supported board, parsed and validated into
//! a [`Profile`].
//!
//! Unknown keys are errors, and parsing does not stop at the first mistake:
//! each section (and each camera and thermal zone) is read on its own, then
//! checked, and every problem comes back with its key path, for example
//! `gpio.lines.siren.offset` or `cameras[1].path`.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use safe_yolo_domain::CameraId;
use serde::Deserialize;

/// Folder the image installs board profiles into (`<name>.toml`).
pub const PROFILE_DIR: &str = "/usr/share/safe-yolo/board";

/// Library folders searched for an accelerator runtime when a profile names none.
pub const DEFAULT_LIBRARY_DIRS: &[&str] = &["/usr/lib", "/usr/lib64", "/lib", "/usr/local/lib"];

/// One thing wrong with a profile or with the hardware: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path in the profile, e.g. `gpio.lines.siren` or `cameras[0].path`.
    pub path: String,
    /// What is wrong, in words a technician can act on.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Renders problems as an indented list, one per line.
pub(crate) fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a board profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile name cannot be a file name in the profile folder.
    #[error("board profile name {name:?} is invalid: use lowercase letters, digits and '-' only")]
    BadName {
        /// The rejected name.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read board profile {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has problems; all of them are listed.
    #[error("board profile {} has {} problem(s):\n{}", path.display(), problems.len(), list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// CPU architecture of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 64-bit Arm.
    Aarch64,
    /// 64-bit x86.
    X86_64,
}

/// A GPIO chip, by device path or by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChipRef {
    /// Character device path, e.g. `/dev/gpiochip3`.
    Path(PathBuf),
    /// Chip label as the driver reports it, e.g. `gpio3` or `tegra234-gpio`.
    Label(String),
}

impl ChipRef {
    /// Reads `/dev/...` as a path and anything else as a label.
    pub fn parse(s: &str) -> ChipRef {
        if s.starts_with('/') {
            ChipRef::Path(PathBuf::from(s))
        } else {
            ChipRef::Label(s.to_owned())
        }
    }
}

impl fmt::Display for ChipRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChipRef::Path(p) => write!(f, "{}", p.display()),
            ChipRef::Label(l) => write!(f, "label {l:?}"),
        }
    }
}

/// What a GPIO line does on the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineRole {
    /// Output: the audible alarm.
    Siren,
    /// Output: a relay (beacon, machine stop).
    Relay,
    /// Output: held on while the pipeline is alive (read by the PLC).
    Healthy,
    /// Input: the acknowledge button.
    Ack,
    /// Input: the door contact.
    Door,
}

impl LineRole {
    /// Every role, in profile order.
    pub const ALL: [LineRole; 5] = [
        LineRole::Siren,
        LineRole::Relay,
        LineRole::Healthy,
        LineRole::Ack,
        LineRole::Door,
    ];

    /// The key used in the profile.
    pub fn as_str(self) -> &'static str {
        match self {
            LineRole::Siren => "siren",
            LineRole::Relay => "relay",
            LineRole::Healthy => "healthy",
            LineRole::Ack => "ack",
            LineRole::Door => "door",
        }
    }

    /// Whether every profile must name this line.
    pub fn required(self) -> bool {
        matches!(self, LineRole::Siren | LineRole::Healthy)
    }

    /// Whether the line is an input (button, contact).
    pub fn is_input(self) -> bool {
        matches!(self, LineRole::Ack | LineRole::Door)
    }
}

impl fmt::Display for LineRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line on its chip, by offset or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LineSel {
    /// Offset on the chip.
    Offset(u32),
    /// Line name (device tree `gpio-line-names`, gpio-sim `name`).
    Name(String),
}

impl fmt::Display for LineSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineSel::Offset(o) => write!(f, "offset {o}"),
            LineSel::Name(n) => write!(f, "name {n:?}"),
        }
    }
}

/// One named GPIO line of the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    /// What the line does.
    pub role: LineRole,
    /// Its chip (the line's own `chip`, else `gpio.chip`).
    pub chip: ChipRef,
    /// The line on the chip.
    pub line: LineSel,
    /// Electrical polarity: active when the level is low.
    pub active_low: bool,
}

/// A camera node of the board, by stable path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraNode {
    /// Identifier, for logs and the API.
    pub id: CameraId,
    /// Stable path under `/dev/v4l/by-path/` or `/dev/v4l/by-id/`.
    pub path: PathBuf,
    /// Free text (connector, sensor).
    pub description: String,
}

/// Inference backend of the board's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccelBackend {
    /// Rockchip NPU through `librknnrt.so`.
    Rknn,
    /// ONNX Runtime with the CUDA execution provider (NVIDIA GPU).
    OnnxruntimeCuda,
    /// ONNX Runtime on the CPU.
    Onnxruntime,
    /// tract, pure Rust, no runtime library.
    Tract,
}

impl AccelBackend {
    /// The value of the daemon config's `detector.backend` this maps to.
    pub fn config_backend(self) -> &'static str {
        match self {
            AccelBackend::Rknn => "rknn",
            AccelBackend::OnnxruntimeCuda | AccelBackend::Onnxruntime => "onnxruntime",
            AccelBackend::Tract => "tract",
        }
    }

    /// Runtime libraries the backend loads at run time.
    pub fn default_libraries(self) -> &'static [&'static str] {
        match self {
            AccelBackend::Rknn => &["librknnrt.so"],
            AccelBackend::OnnxruntimeCuda => {
                &["libonnxruntime.so", "libonnxruntime_providers_cuda.so"]
            }
            AccelBackend::Onnxruntime => &["libonnxruntime.so"],
            AccelBackend::Tract => &[],
        }
    }
}

/// The board's accelerator and the model variant built for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accelerator {
    /// Backend.
    pub backend: AccelBackend,
    /// Model name (a folder under `/usr/share/safe-yolo/models`).
    pub model: String,
    /// Variant of that model for this accelerator (`int8`, `fp16`, `rk3588-int8`).
    pub variant: String,
    /// Device node the accelerator needs, if any (e.g. the NPU's render node).
    pub device: Option<PathBuf>,
    /// Runtime libraries that must be present (file names).
    pub runtime_libraries: Vec<String>,
    /// Folders searched for them.
    pub library_dirs: Vec<PathBuf>,
}

/// What a temperature means for the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThermalLevel {
    /// Below the warning limit.
    Normal,
    /// At or above the warning limit: log and report.
    Warn,
    /// At or above the throttle limit: lower the detection rate.
    Throttle,
    /// At or above the critical limit: the box is out of its envelope.
    Critical,
}

/// A thermal zone and its limits (degrees Celsius).
#[derive(Debug, Clone, PartialEq)]
pub struct ThermalZone {
    /// The zone's `type` in `/sys/class/thermal/thermal_zone*/type`.
    pub zone_type: String,
    /// Warning limit.
    pub warn_c: f64,
    /// Throttle limit.
    pub throttle_c: f64,
    /// Critical limit.
    pub critical_c: f64,
}

impl ThermalZone {
    /// Classifies a temperature against this zone's limits.
    pub fn level(&self, celsius: f64) -> ThermalLevel {
        if celsius >= self.critical_c {
            ThermalLevel::Critical
        } else if celsius >= self.throttle_c {
            ThermalLevel::Throttle
        } else if celsius >= self.warn_c {
            ThermalLevel::Warn
        } else {
            ThermalLevel::Normal
        }
    }
}

/// A validated board profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Profile name (also the file name without `.toml`).
    pub name: String,
    /// Human description of the board.
    pub description: String,
    /// CPU architecture.
    pub arch: Arch,
    /// GPIO lines, in [`LineRole::ALL`] order.
    pub lines: Vec<LineSpec>,
    /// Camera nodes.
    pub cameras: Vec<CameraNode>,
    /// Accelerator and model variant.
    pub accelerator: Accelerator,
    /// Thermal zones watched, with their limits.
    pub thermal: Vec<ThermalZone>,
    /// GStreamer video decoders for RTSP cameras, best first (`[video] decoders`):
    /// the board's hardware decoders. Empty: whatever is installed (libav).
    pub video_decoders: Vec<String>,
}

impl Profile {
    /// The line with the given role, if the board has one.
    pub fn line(&self, role: LineRole) -> Option<&LineSpec> {
        self.lines.iter().find(|l| l.role == role)
    }
}

// === raw (serde) shapes ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    name: String,
    #[serde(default)]
    description: String,
    arch: Arch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    chip: Option<String>,
    name: Option<String>,
    offset: Option<u32>,
    #[serde(default)]
    active_low: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLines {
    siren: Option<RawLine>,
    relay: Option<RawLine>,
    healthy: Option<RawLine>,
    ack: Option<RawLine>,
    door: Option<RawLine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpio {
    chip: String,
    lines: RawLines,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    id: String,
    path: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccel {
    backend: AccelBackend,
    model: String,
    variant: String,
    device: Option<String>,
    runtime_libraries: Option<Vec<String>>,
    library_dirs: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    #[serde(rename = "type")]
    zone_type: String,
    warn_c: f64,
    throttle_c: f64,
    critical_c: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVideo {
    decoders: Vec<String>,
}

const SECTIONS: &[&str] = &[
    "board",
    "gpio",
    "cameras",
    "accelerator",
    "thermal",
    "video",
];

/// Collects problems while a profile is read.
struct Ctx {
    problems: Vec<Problem>,
}

impl Ctx {
    fn bad(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// Deserializes `value` into `T`, recording an error under `prefix`.
    fn section<T: for<'de> Deserialize<'de>>(
        &mut self,
        prefix: &str,
        value: toml::Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let path = if inner == "." {
                    prefix.to_owned()
                } else {
                    format!("{prefix}.{inner}")
                };
                self.bad(path, e.inner().to_string().trim().to_owned());
                None
            }
        }
    }

    fn absolute(&mut self, path: &str, value: &str) -> Option<PathBuf> {
        let p = Path::new(value);
        if !p.is_absolute() {
            self.bad(path, format!("{value:?} must be an absolute path"));
            return None;
        }
        if p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            self.bad(path, format!("{value:?} must not contain '..'"));
            return None;
        }
        Some(p.to_owned())
    }
}

/// Whether `name` is a valid profile name: 1-32 of `a-z`, `0-9`, `-`, starting
/// with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

/// Loads the profile `name` from `dir` (`<dir>/<name>.toml`), checking that
/// the file's `board.name` matches.
pub fn load_named(dir: &Path, name: &str) -> Result<Profile, ProfileError> {
    if !valid_name(name) {
        return Err(ProfileError::BadName {
            name: name.to_owned(),
        });
    }
    let path = dir.join(format!("{name}.toml"));
    let profile = load(&path)?;
    if profile.name != name {
        return Err(ProfileError::Invalid {
            path,
            problems: vec![Problem {
                path: "board.name".into(),
                reason: format!("is {:?} but the file is named for {name:?}", profile.name),
            }],
        });
    }
    Ok(profile)
}

/// Reads and validates the profile at `path`.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|problems| ProfileError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// Parses and validates profile text, reporting every problem found.
pub fn parse(text: &str) -> Result<Profile, Vec<Problem>> {
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![Problem {
                path: "(file)".into(),
                reason: format!("not valid TOML: {}", e.message().trim()),
            }]);
        }
    };
    let mut cx = Ctx {
        problems: Vec::new(),
    };
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            cx.bad(
                key.clone(),
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            );
        }
    }

    let board = take(&mut cx, &mut table, "board").and_then(|v| cx.section::<RawBoard>("board", v));
    let gpio = take(&mut cx, &mut table, "gpio").and_then(|v| cx.section::<RawGpio>("gpio", v));
    let accel = take(&mut cx, &mut table, "accelerator")
        .and_then(|v| cx.section::<RawAccel>("accelerator", v));
    let cameras = elements(&mut cx, table.remove("cameras"), "cameras")
        .into_iter()
        .filter_map(|(path, v)| cx.section::<RawCamera>(&path, v).map(|c| (path, c)))
        .collect::<Vec<_>>();
    let video = table
        .remove("video")
        .and_then(|v| cx.section::<RawVideo>("video", v));
    let zones = thermal_zones(&mut cx, table.remove("thermal"))
        .into_iter()
        .filter_map(|(path, v)| cx.section::<RawZone>(&path, v).map(|z| (path, z)))
        .collect::<Vec<_>>();

    let name = board.as_ref().map(|b| b.name.clone()).unwrap_or_default();
    if board.is_some() && !valid_name(&name) {
        cx.bad(
            "board.name",
            format!("{name:?} must be 1-32 of a-z, 0-9 and '-'"),
        );
    }
    let lines = gpio.map(|g| check_lines(&mut cx, g)).unwrap_or_default();
    let cameras = check_cameras(&mut cx, cameras);
    let accelerator = accel.and_then(|a| check_accel(&mut cx, a));
    let thermal = check_zones(&mut cx, zones);
    let video_decoders = video.map(|v| v.decoders).unwrap_or_default();
    for (i, d) in video_decoders.iter().enumerate() {
        // A GStreamer element factory name.
        if d.is_empty()
            || d.len() > 64
            || !d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            cx.bad(
                format!("video.decoders[{i}]"),
                format!("{d:?} is not a GStreamer element name (1-64 of a-z, 0-9, '_', '-')"),
            );
        }
    }

    match (board, accelerator) {
        (Some(board), Some(accelerator)) if cx.problems.is_empty() => Ok(Profile {
            name,
            description: board.description,
            arch: board.arch,
            lines,
            cameras,
            accelerator,
            thermal,
            video_decoders,
        }),
        _ => Err(cx.problems),
    }
}

fn take(cx: &mut Ctx, table: &mut toml::Table, key: &str) -> Option<toml::Value> {
    let v = table.remove(key);
    if v.is_none() {
        cx.bad(key, "missing section");
    }
    v
}

/// Splits an optional array of tables into `(key path, element)` pairs.
fn elements(cx: &mut Ctx, value: Option<toml::Value>, prefix: &str) -> Vec<(String, toml::Value)> {
    match value {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{prefix}[{i}]"), v))
            .collect(),
        Some(_) => {
            cx.bad(prefix, "must be an array of tables ([[...]])");
            Vec::new()
        }
    }
}

fn thermal_zones(cx: &mut Ctx, value: Option<toml::Value>) -> Vec<(String, toml::Value)> {
    match value {
        None => {
            cx.bad(
                "thermal",
                "missing section (write `[thermal]` with `zones = []` for a board without sensors)",
            );
            Vec::new()
        }
        Some(toml::Value::Table(mut t)) => {
            let zones = t.remove("zones");
            for key in t.keys() {
                cx.bad(format!("thermal.{key}"), "unknown key; expected `zones`");
            }
            if zones.is_none() {
                cx.bad("thermal.zones", "missing key");
            }
            elements(cx, zones, "thermal.zones")
        }
        Some(_) => {
            cx.bad("thermal", "must be a table");
            Vec::new()
        }
    }
}

fn check_lines(cx: &mut Ctx, gpio: RawGpio) -> Vec<LineSpec> {
    if gpio.chip.trim().is_empty() {
        cx.bad(
            "gpio.chip",
            "must name a chip path (/dev/gpiochipN) or a chip label",
        );
    } else if gpio.chip.starts_with('/') {
        cx.absolute("gpio.chip", &gpio.chip);
    }
    let default_chip = ChipRef::parse(&gpio.chip);
    let RawLines {
        siren,
        relay,
        healthy,
        ack,
        door,
    } = gpio.lines;
    let mut out = Vec::new();
    let mut seen: HashSet<(String, LineSel)> = HashSet::new();
    for (role, raw) in LineRole::ALL
        .into_iter()
        .zip([siren, relay, healthy, ack, door])
    {
        let path = format!("gpio.lines.{role}");
        let Some(raw) = raw else {
            if role.required() {
                cx.bad(path, "missing: every board needs this line");
            }
            continue;
        };
        let chip = match raw.chip.as_deref() {
            Some(c) if c.trim().is_empty() => {
                cx.bad(format!("{path}.chip"), "must not be empty");
                continue;
            }
            Some(c) => ChipRef::parse(c),
            None => default_chip.clone(),
        };
        let line = match (raw.name, raw.offset) {
            (Some(_), Some(_)) => {
                cx.bad(&path, "give either `name` or `offset`, not both");
                continue;
            }
            (None, None) => {
                cx.bad(&path, "give the line's `name` or its `offset`");
                continue;
            }
            (Some(n), None) if n.trim().is_empty() => {
                cx.bad(format!("{path}.name"), "must not be empty");
                continue;
            }
            (Some(n), None) => LineSel::Name(n),
            (None, Some(o)) => LineSel::Offset(o),
        };
        if !seen.insert((chip.to_string(), line.clone())) {
            cx.bad(
                &path,
                format!("{line} on {chip} is already used by another role"),
            );
        }
        out.push(LineSpec {
            role,
            chip,
            line,
            active_low: raw.active_low,
        });
    }
    out
}

fn check_cameras(cx: &mut Ctx, raw: Vec<(String, RawCamera)>) -> Vec<CameraNode> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (path, cam) in raw {
        let id = match CameraId::new(cam.id.clone()) {
            Ok(id) => id,
            Err(e) => {
                cx.bad(format!("{path}.id"), format!("{:?} {e}", cam.id));
                continue;
            }
        };
        if !ids.insert(id.clone()) {
            cx.bad(
                format!("{path}.id"),
                format!("{:?} is used by another camera", cam.id),
            );
        }
        let Some(node) = cx.absolute(&format!("{path}.path"), &cam.path) else {
            continue;
        };
        if !(node.starts_with("/dev/v4l/by-path") || node.starts_with("/dev/v4l/by-id")) {
            cx.bad(
                format!("{path}.path"),
                format!(
                    "{:?} is not a stable name: use /dev/v4l/by-path/... or /dev/v4l/by-id/... (/dev/videoN changes with probe order)",
                    cam.path
                ),
            );
            continue;
        }
        out.push(CameraNode {
            id,
            path: node,
            description: cam.description,
        });
    }
    out
}

fn check_accel(cx: &mut Ctx, raw: RawAccel) -> Option<Accelerator> {
    let before = cx.problems.len();
    if !valid_name(&raw.model) {
        cx.bad(
            "accelerator.model",
            format!("{:?} must be 1-32 of a-z, 0-9 and '-'", raw.model),
        );
    }
    if !valid_name(&raw.variant) {
        cx.bad(
            "accelerator.variant",
            format!("{:?} must be 1-32 of a-z, 0-9 and '-'", raw.variant),
        );
    }
    let device = raw
        .device
        .as_deref()
        .and_then(|d| cx.absolute("accelerator.device", d));
    let runtime_libraries = match raw.runtime_libraries {
        Some(libs) => libs,
        None => raw
            .backend
            .default_libraries()
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    for (i, lib) in runtime_libraries.iter().enumerate() {
        if lib.is_empty() || lib.contains('/') {
            cx.bad(
                format!("accelerator.runtime_libraries[{i}]"),
                format!("{lib:?} must be a file name, without folders (see library_dirs)"),
            );
        }
    }
    let mut library_dirs = Vec::new();
    match raw.library_dirs {
        Some(dirs) => {
            for (i, d) in dirs.iter().enumerate() {
                if let Some(p) = cx.absolute(&format!("accelerator.library_dirs[{i}]"), d) {
                    library_dirs.push(p);
                }
            }
        }
        None => library_dirs.extend(DEFAULT_LIBRARY_DIRS.iter().map(PathBuf::from)),
    }
    (cx.problems.len() == before).then_some(Accelerator {
        backend: raw.backend,
        model: raw.model,
        variant: raw.variant,
        device,
        runtime_libraries,
        library_dirs,
    })
}

fn check_zones(cx: &mut Ctx, raw: Vec<(String, RawZone)>) -> Vec<ThermalZone> {
    let mut out = Vec::new();
    let mut types = HashSet::new();
    for (path, z) in raw {
        let before = cx.problems.len();
        if z.zone_type.trim().is_empty() {
            cx.bad(format!("{path}.type"), "must name the zone's type");
        } else if !types.insert(z.zone_type.clone()) {
            cx.bad(
                format!("{path}.type"),
                format!("{:?} is listed twice", z.zone_type),
            );
        }
        for (key, v) in [
            ("warn_c", z.warn_c),
            ("throttle_c", z.throttle_c),
            ("critical_c", z.critical_c),
        ] {
            if !v.is_finite() || !(0.0..=150.0).contains(&v) {
                cx.bad(
                    format!("{path}.{key}"),
                    format!("must be between 0 and 150 degrees C, got {v}"),
                );
            }
        }
        if !(z.warn_c < z.throttle_c && z.throttle_c < z.critical_c) {
            cx.bad(
                path.clone(),
                format!(
                    "limits must rise: warn_c ({}) < throttle_c ({}) < critical_c ({})",
                    z.warn_c, z.throttle_c, z.critical_c
                ),
            );
        }
        if cx.problems.len() == before {
            out.push(ThermalZone {
                zone_type: z.zone_type,
                warn_c: z.warn_c,
                throttle_c: z.throttle_c,
                critical_c: z.critical_c,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[board]
name = "test-board"
description = "A board for tests"
arch = "aarch64"

[gpio]
chip = "gpio3"
[gpio.lines]
siren = { name = "SIREN" }
relay = { offset = 18, active_low = true }
healthy = { offset = 19, chip = "/dev/gpiochip1" }
ack = { offset = 20, active_low = true }

[[cameras]]
id = "cam0"
path = "/dev/v4l/by-path/platform-vivid.0-video-index0"

[accelerator]
backend = "rknn"
model = "nanodet-m-416-coco"
variant = "rk3588-int8"
device = "/dev/dri/renderD129"

[thermal]
zones = [{ type = "soc-thermal", warn_c = 75.0, throttle_c = 85.0, critical_c = 95.0 }]
"#;

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(p) => panic!("expected problems, parsed {p:?}"),
            Err(ps) => ps.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn good_profile_parses() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.name, "test-board");
        assert_eq!(p.arch, Arch::Aarch64);
        assert_eq!(p.lines.len(), 4);
        let siren = p.line(LineRole::Siren).unwrap();
        assert_eq!(siren.chip, ChipRef::Label("gpio3".into()));
        assert_eq!(siren.line, LineSel::Name("SIREN".into()));
        let healthy = p.line(LineRole::Healthy).unwrap();
        assert_eq!(healthy.chip, ChipRef::Path("/dev/gpiochip1".into()));
        assert!(p.line(LineRole::Relay).unwrap().active_low);
        assert!(p.line(LineRole::Door).is_none());
        assert_eq!(
            p.accelerator.runtime_libraries,
            vec!["librknnrt.so".to_owned()]
        );
        assert_eq!(p.accelerator.backend.config_backend(), "rknn");
        assert_eq!(p.thermal[0].level(80.0), ThermalLevel::Warn);
        assert_eq!(p.thermal[0].level(96.0), ThermalLevel::Critical);
        assert_eq!(p.thermal[0].level(20.0), ThermalLevel::Normal);
    }

    #[test]
    fn unknown_keys_are_reported_with_their_path() {
        let text = GOOD
            .replace("arch = \"aarch64\"", "arch = \"aarch64\"\ncolour = \"red\"")
            .replace("relay = { offset = 18", "relay = { offst = 18")
            .replace("[thermal]", "[fans]\nspeed = 1\n[thermal]");
        let ps = problems(&text);
        assert!(
            ps.iter()
                .any(|p| p.starts_with("board.colour: unknown field")),
            "{ps:?}"
        );
        assert!(
            ps.iter()
                .any(|p| p.starts_with("gpio.lines.relay.offst: unknown field")),
            "{ps:?}"
        );
        assert!(
            ps.iter().any(|p| p.starts_with("fans: unknown section")),
            "{ps:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = GOOD
            .replace("siren = { name = \"SIREN\" }\n", "")
            .replace("ack = { offset = 20", "ack = { offset = 18")
            .replace(
                "/dev/v4l/by-path/platform-vivid.0-video-index0",
                "/dev/video0",
            )
            .replace("backend = \"rknn\"", "backend = \"npu\"")
            .replace("throttle_c = 85.0", "throttle_c = 99.0");
        let ps = problems(&text);
        let want = [
            "gpio.lines.siren: missing",
            "gpio.lines.ack: offset 18 on label \"gpio3\" is already used",
            "cameras[0].path: \"/dev/video0\" is not a stable name",
            "accelerator.backend: unknown variant `npu`",
            "thermal.zones[0]: limits must rise",
        ];
        for w in want {
            assert!(
                ps.iter().any(|p| p.starts_with(w)),
                "missing {w:?} in {ps:?}"
            );
        }
        assert_eq!(ps.len(), want.len(), "{ps:?}");
    }

    #[test]
    fn line_needs_exactly_one_of_name_and_offset() {
        let ps = problems(&GOOD.replace(
            "siren = { name = \"SIREN\" }",
            "siren = { name = \"S\", offset = 1 }",
        ));
        assert_eq!(
            ps,
            vec!["gpio.lines.siren: give either `name` or `offset`, not both"]
        );
        let ps = problems(&GOOD.replace(
            "siren = { name = \"SIREN\" }",
            "siren = { active_low = true }",
        ));
        assert_eq!(
            ps,
            vec!["gpio.lines.siren: give the line's `name` or its `offset`"]
        );
    }

    #[test]
    fn missing_sections_and_bad_toml() {
        let ps = problems("[board]\nname = \"x\"\narch = \"x86_64\"\n");
        for s in [
            "gpio: missing section",
            "accelerator: missing section",
            "thermal: missing section",
        ] {
            assert!(ps.iter().any(|p| p.starts_with(s)), "{ps:?}");
        }
        let ps = problems("[board\n");
        assert!(ps[0].starts_with("(file): not valid TOML"), "{ps:?}");
    }

    #[test]
    fn library_names_and_dirs_are_checked() {
        let text = GOOD.replace(
            "device = \"/dev/dri/renderD129\"",
            "runtime_libraries = [\"/usr/lib/librknnrt.so\"]\nlibrary_dirs = [\"usr/lib\"]",
        );
        let ps = problems(&text);
        assert!(
            ps.iter()
                .any(|p| p.starts_with("accelerator.runtime_libraries[0]:")),
            "{ps:?}"
        );
        assert!(
            ps.iter()
                .any(|p| p.starts_with("accelerator.library_dirs[0]:")),
            "{ps:?}"
        );
    }

    #[test]
    fn names_are_checked_before_touching_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_named(dir.path(), "../etc/passwd").unwrap_err();
        assert!(matches!(err, ProfileError::BadName { .. }), "{err}");
        std::fs::write(dir.path().join("other.toml"), GOOD).unwrap();
        let err = load_named(dir.path(), "other").unwrap_err();
        assert!(
            err.to_string().contains("board.name: is \"test-board\""),
            "{err}"
        );
        let err = load_named(dir.path(), "absent").unwrap_err();
        assert!(matches!(err, ProfileError::Read { .. }), "{err}");
    }
}

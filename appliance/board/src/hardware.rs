//! Checks a [`Profile`] against the hardware present: GPIO chips and lines,
//! camera nodes, the accelerator's device and runtime libraries, thermal zones.
//!
//! Every absolute path of the profile is resolved under a root folder (`/` on
//! the box, a temporary tree in tests), and the two things a plain file tree
//! cannot fake (GPIO chip ioctls and character-device numbers) go through the
//! [`Probe`] trait. All missing pieces are reported together, each with the
//! profile key that names it.
//!
//! What refuses the start and what only warns follows what makes the box
//! unsafe, not what is missing:
//! - **Refused** (a [`BoardError::Mismatch`]): a GPIO chip or line of the
//!   profile that is missing or ambiguous (the outputs could not be driven, nor
//!   held in their safe state), and the accelerator's device or runtime
//!   libraries (no detector can load, so no camera could raise an alarm; the
//!   check names the missing piece before the model load fails less clearly).
//! - **Warned** ([`HardwareReport::warnings`], logged by the daemon): a camera
//!   node that is missing or is not a V4L2 node, and a thermal zone that is
//!   missing or unreadable. One unplugged camera must not silence the others:
//!   the pipeline opens cameras with backoff, shows a missing one offline and
//!   raises its `camera_offline` rule; thermal zones are monitoring only.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::profile::{ChipRef, LineRole, LineSel, Problem, Profile, ThermalLevel, list};

/// Major number of V4L2 character devices (`video4linux`).
pub const V4L2_MAJOR: u32 = 81;

/// Why the hardware does not match the profile.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// Pieces the profile names are missing or wrong; all are listed.
    #[error("board {board:?} does not match this hardware ({} problem(s)):\n{}", problems.len(), list(problems))]
    Mismatch {
        /// Profile name.
        board: String,
        /// Every mismatch, keyed by the profile entry.
        problems: Vec<Problem>,
    },
}

impl BoardError {
    /// The mismatches.
    pub fn problems(&self) -> &[Problem] {
        match self {
            BoardError::Mismatch { problems, .. } => problems,
        }
    }
}

/// Why a probe could not read a device.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file-system access failed.
    #[error("cannot access {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The GPIO character device did not answer.
    #[error("GPIO chip {} does not answer", path.display())]
    Gpio {
        /// The chip path.
        path: PathBuf,
        /// The gpiocdev error.
        #[source]
        source: gpiocdev::Error,
    },
}

/// What a GPIO chip reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipInfo {
    /// Kernel name (`gpiochip3`).
    pub name: String,
    /// Driver label (`gpio3`, `tegra234-gpio`, `gpio-sim.0-node0`).
    pub label: String,
    /// Line names by offset (empty when the line has none).
    pub line_names: Vec<String>,
}

/// A device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceNumber {
    /// Major number (driver class).
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// Access to the hardware facts a file tree cannot fake.
pub trait Probe {
    /// Root under which the profile's absolute paths are resolved.
    fn root(&self) -> &Path;
    /// Reads a GPIO chip's name, label and line names (`path` is already rooted).
    fn chip(&self, path: &Path) -> Result<ChipInfo, ProbeError>;
    /// The device number if `path` (already rooted, symlinks followed) is a
    /// character device, `None` if it exists but is something else.
    fn char_device(&self, path: &Path) -> Result<Option<DeviceNumber>, ProbeError>;
}

/// The real system, through the GPIO character device and `stat`.
#[derive(Debug, Clone)]
pub struct SystemProbe {
    root: PathBuf,
}

impl SystemProbe {
    /// Probes the running system (root `/`).
    pub fn new() -> SystemProbe {
        SystemProbe {
            root: PathBuf::from("/"),
        }
    }

    /// Probes a system whose root is mounted at `root`.
    pub fn with_root(root: impl Into<PathBuf>) -> SystemProbe {
        SystemProbe { root: root.into() }
    }
}

impl Default for SystemProbe {
    fn default() -> Self {
        SystemProbe::new()
    }
}

impl Probe for SystemProbe {
    fn root(&self) -> &Path {
        &self.root
    }

    fn chip(&self, path: &Path) -> Result<ChipInfo, ProbeError> {
        let gpio = |source| ProbeError::Gpio {
            path: path.to_owned(),
            source,
        };
        let chip = gpiocdev::Chip::from_path(path).map_err(gpio)?;
        let info = chip.info().map_err(gpio)?;
        let mut line_names = Vec::with_capacity(usize::try_from(info.num_lines).unwrap_or(0));
        for offset in 0..info.num_lines {
            line_names.push(chip.line_info(offset).map_err(gpio)?.name);
        }
        Ok(ChipInfo {
            name: info.name,
            label: info.label,
            line_names,
        })
    }

    fn char_device(&self, path: &Path) -> Result<Option<DeviceNumber>, ProbeError> {
        let meta = std::fs::metadata(path).map_err(|source| ProbeError::Io {
            path: path.to_owned(),
            source,
        })?;
        if !meta.file_type().is_char_device() {
            return Ok(None);
        }
        Ok(Some(split_dev(meta.rdev())))
    }
}

/// Splits a Linux `dev_t` into major and minor (glibc's encoding).
pub fn split_dev(dev: u64) -> DeviceNumber {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    DeviceNumber {
        major: u32::try_from(major & 0xffff_ffff).unwrap_or(u32::MAX),
        minor: u32::try_from(minor & 0xffff_ffff).unwrap_or(u32::MAX),
    }
}

/// A GPIO line found on its chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundLine {
    /// What the line does.
    pub role: LineRole,
    /// Chip device path as seen by the daemon (without the probe root).
    pub chip_path: PathBuf,
    /// Chip label.
    pub chip_label: String,
    /// Offset on the chip.
    pub offset: u32,
    /// Line name (may be empty).
    pub name: String,
    /// Electrical polarity from the profile.
    pub active_low: bool,
}

/// A camera node found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCamera {
    /// Profile id.
    pub id: String,
    /// Stable path from the profile.
    pub path: PathBuf,
    /// Device number of the V4L2 node it points to.
    pub device: DeviceNumber,
}

/// A thermal zone read.
#[derive(Debug, Clone, PartialEq)]
pub struct ThermalReading {
    /// Zone type.
    pub zone_type: String,
    /// The `temp` file read (without the probe root).
    pub temp_path: PathBuf,
    /// Temperature, degrees Celsius.
    pub celsius: f64,
    /// What it means against the profile's limits.
    pub level: ThermalLevel,
}

/// Everything the profile names, as found on this box.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareReport {
    /// Profile name.
    pub board: String,
    /// GPIO lines, resolved to chip paths and offsets.
    pub lines: Vec<FoundLine>,
    /// Camera nodes.
    pub cameras: Vec<FoundCamera>,
    /// Accelerator runtime libraries found (without the probe root).
    pub runtime_libraries: Vec<PathBuf>,
    /// Thermal zones and their temperatures.
    pub thermal: Vec<ThermalReading>,
    /// What is missing or wrong but does not make the outputs unsafe (cameras,
    /// thermal zones), each with the profile key that names it.
    pub warnings: Vec<Problem>,
}

impl HardwareReport {
    /// The line with the given role, if the board has one.
    pub fn line(&self, role: LineRole) -> Option<&FoundLine> {
        self.lines.iter().find(|l| l.role == role)
    }
}

/// Checks `profile` against the running system (root `/`).
pub fn check_hardware(profile: &Profile) -> Result<HardwareReport, BoardError> {
    check_hardware_with(profile, &SystemProbe::new())
}

/// Checks `profile` against the system seen through `probe`.
pub fn check_hardware_with(
    profile: &Profile,
    probe: &dyn Probe,
) -> Result<HardwareReport, BoardError> {
    let mut cx = Check {
        probe,
        problems: Vec::new(),
        warnings: Vec::new(),
        chips: Vec::new(),
    };
    let lines = cx.lines(profile);
    let cameras = cx.cameras(profile);
    let runtime_libraries = cx.accelerator(profile);
    let thermal = cx.thermal(profile);
    if cx.problems.is_empty() {
        let report = HardwareReport {
            board: profile.name.clone(),
            lines,
            cameras,
            runtime_libraries,
            thermal,
            warnings: cx.warnings,
        };
        tracing::info!(
            board = %report.board,
            lines = report.lines.len(),
            cameras = report.cameras.len(),
            thermal_zones = report.thermal.len(),
            warnings = report.warnings.len(),
            "board profile matches the hardware"
        );
        Ok(report)
    } else {
        Err(BoardError::Mismatch {
            board: profile.name.clone(),
            problems: cx.problems,
        })
    }
}

struct Check<'a> {
    probe: &'a dyn Probe,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Chips opened so far: (unrooted path, info).
    chips: Vec<(PathBuf, ChipInfo)>,
}

impl Check<'_> {
    fn bad(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// Something missing that does not make the outputs unsafe.
    fn warn(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }

    fn rooted(&self, p: &Path) -> PathBuf {
        self.probe.root().join(p.strip_prefix("/").unwrap_or(p))
    }

    /// All `gpiochip*` nodes under `<root>/dev`, sorted.
    fn chip_nodes(&self) -> Vec<PathBuf> {
        let dev = self.rooted(Path::new("/dev"));
        let mut out: Vec<PathBuf> = std::fs::read_dir(&dev)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("gpiochip"))
            .map(|e| PathBuf::from("/dev").join(e.file_name()))
            .collect();
        out.sort();
        out
    }

    fn open_chip(&mut self, path: &Path) -> Result<ChipInfo, ProbeError> {
        if let Some((_, info)) = self.chips.iter().find(|(p, _)| p == path) {
            return Ok(info.clone());
        }
        let info = self.probe.chip(&self.rooted(path))?;
        self.chips.push((path.to_owned(), info.clone()));
        Ok(info)
    }

    fn find_chip(&mut self, key: &str, chip: &ChipRef) -> Option<(PathBuf, ChipInfo)> {
        match chip {
            ChipRef::Path(p) => match self.open_chip(p) {
                Ok(info) => Some((p.clone(), info)),
                Err(e) => {
                    self.bad(
                        key,
                        format!(
                            "GPIO chip {} is missing or not a GPIO chip: {}",
                            p.display(),
                            chain(&e)
                        ),
                    );
                    None
                }
            },
            ChipRef::Label(label) => {
                let mut found = Vec::new();
                let mut seen = Vec::new();
                for node in self.chip_nodes() {
                    match self.open_chip(&node) {
                        Ok(info) if info.label == *label => found.push((node, info)),
                        Ok(info) => seen.push(format!("{} ({:?})", node.display(), info.label)),
                        Err(e) => {
                            tracing::debug!(chip = %node.display(), error = %chain(&e), "skipping unreadable GPIO chip")
                        }
                    }
                }
                match found.len() {
                    1 => found.pop(),
                    0 => {
                        let present = if seen.is_empty() {
                            "none".to_owned()
                        } else {
                            seen.join(", ")
                        };
                        self.bad(
                            key,
                            format!("no GPIO chip labelled {label:?}; chips present: {present}"),
                        );
                        None
                    }
                    n => {
                        self.bad(
                            key,
                            format!("{n} GPIO chips are labelled {label:?}; name the chip by path"),
                        );
                        None
                    }
                }
            }
        }
    }

    fn lines(&mut self, profile: &Profile) -> Vec<FoundLine> {
        let mut out = Vec::new();
        for spec in &profile.lines {
            let key = format!("gpio.lines.{}", spec.role);
            let Some((chip_path, info)) = self.find_chip(&key, &spec.chip) else {
                continue;
            };
            let found = match &spec.line {
                LineSel::Offset(o) => {
                    let n = u32::try_from(info.line_names.len()).unwrap_or(u32::MAX);
                    if *o >= n {
                        self.bad(
                            &key,
                            format!(
                                "offset {o} is beyond {} ({:?}), which has {n} lines",
                                chip_path.display(),
                                info.label
                            ),
                        );
                        continue;
                    }
                    let name = usize::try_from(*o)
                        .ok()
                        .and_then(|i| info.line_names.get(i))
                        .cloned()
                        .unwrap_or_default();
                    (*o, name)
                }
                LineSel::Name(name) => {
                    let hits: Vec<usize> = info
                        .line_names
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| *n == name)
                        .map(|(i, _)| i)
                        .collect();
                    match hits.as_slice() {
                        [i] => (u32::try_from(*i).unwrap_or(u32::MAX), name.clone()),
                        [] => {
                            self.bad(
                                &key,
                                format!(
                                    "no line named {name:?} on {} ({:?})",
                                    chip_path.display(),
                                    info.label
                                ),
                            );
                            continue;
                        }
                        _ => {
                            self.bad(
                                &key,
                                format!(
                                    "{} lines are named {name:?} on {}; use `offset`",
                                    hits.len(),
                                    chip_path.display()
                                ),
                            );
                            continue;
                        }
                    }
                }
            };
            out.push(FoundLine {
                role: spec.role,
                chip_path,
                chip_label: info.label.clone(),
                offset: found.0,
                name: found.1,
                active_low: spec.active_low,
            });
        }
        out
    }

    fn cameras(&mut self, profile: &Profile) -> Vec<FoundCamera> {
        let mut out = Vec::new();
        for (i, cam) in profile.cameras.iter().enumerate() {
            let key = format!("cameras[{i}].path");
            match self.probe.char_device(&self.rooted(&cam.path)) {
                Ok(Some(dev)) if dev.major == V4L2_MAJOR => out.push(FoundCamera {
                    id: cam.id.as_str().to_owned(),
                    path: cam.path.clone(),
                    device: dev,
                }),
                Ok(Some(dev)) => self.warn(
                    key,
                    format!(
                        "{} is character device {}:{}, not a V4L2 node (major {V4L2_MAJOR})",
                        cam.path.display(),
                        dev.major,
                        dev.minor
                    ),
                ),
                Ok(None) => self.warn(
                    key,
                    format!("{} is not a character device", cam.path.display()),
                ),
                Err(e) => self.warn(
                    key,
                    format!("camera {} is missing: {}", cam.path.display(), chain(&e)),
                ),
            }
        }
        out
    }

    fn accelerator(&mut self, profile: &Profile) -> Vec<PathBuf> {
        let acc = &profile.accelerator;
        if let Some(dev) = &acc.device {
            match self.probe.char_device(&self.rooted(dev)) {
                Ok(Some(_)) => {}
                Ok(None) => self.bad(
                    "accelerator.device",
                    format!("{} is not a character device", dev.display()),
                ),
                Err(e) => self.bad(
                    "accelerator.device",
                    format!("{} is missing: {}", dev.display(), chain(&e)),
                ),
            }
        }
        let mut found = Vec::new();
        for (i, lib) in acc.runtime_libraries.iter().enumerate() {
            let hit = acc
                .library_dirs
                .iter()
                .map(|d| d.join(lib))
                .find(|p| self.rooted(p).is_file());
            match hit {
                Some(p) => found.push(p),
                None => {
                    let dirs: Vec<String> = acc
                        .library_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect();
                    self.bad(
                        format!("accelerator.runtime_libraries[{i}]"),
                        format!(
                            "backend {:?} needs {lib}, which is in none of {}",
                            acc.backend.config_backend(),
                            dirs.join(", ")
                        ),
                    );
                }
            }
        }
        found
    }

    fn thermal(&mut self, profile: &Profile) -> Vec<ThermalReading> {
        let base = Path::new("/sys/class/thermal");
        let mut zones: Vec<(String, PathBuf)> = std::fs::read_dir(self.rooted(base))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
            .filter_map(|e| {
                let ty = std::fs::read_to_string(e.path().join("type")).ok()?;
                Some((ty.trim().to_owned(), base.join(e.file_name())))
            })
            .collect();
        zones.sort_by(|a, b| a.1.cmp(&b.1));
        let mut out = Vec::new();
        for (i, zone) in profile.thermal.iter().enumerate() {
            let key = format!("thermal.zones[{i}]");
            let Some((_, dir)) = zones.iter().find(|(ty, _)| *ty == zone.zone_type) else {
                let present: Vec<&str> = zones.iter().map(|(t, _)| t.as_str()).collect();
                self.warn(
                    key,
                    format!(
                        "no thermal zone of type {:?}; present: {}",
                        zone.zone_type,
                        if present.is_empty() {
                            "none".to_owned()
                        } else {
                            present.join(", ")
                        }
                    ),
                );
                continue;
            };
            let temp_path = dir.join("temp");
            match std::fs::read_to_string(self.rooted(&temp_path)) {
                Ok(text) => match text.trim().parse::<i64>() {
                    Ok(milli) => {
                        #[allow(
                            clippy::cast_precision_loss,
                            reason = "millidegrees are far below 2^52"
                        )]
                        let celsius = milli as f64 / 1000.0;
                        out.push(ThermalReading {
                            zone_type: zone.zone_type.clone(),
                            temp_path,
                            celsius,
                            level: zone.level(celsius),
                        });
                    }
                    Err(_) => self.warn(
                        key,
                        format!(
                            "{} holds {:?}, not millidegrees",
                            temp_path.display(),
                            text.trim()
                        ),
                    ),
                },
                Err(e) => self.warn(key, format!("cannot read {}: {e}", temp_path.display())),
            }
        }
        out
    }
}

use crate::error_chain as chain;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;

    use super::*;
    use crate::profile::parse;

    /// A fake system: files in a temp dir, chips and device numbers in maps
    /// keyed by the canonical (symlink-resolved) rooted path.
    struct FakeProbe {
        root: tempfile::TempDir,
        chips: HashMap<PathBuf, ChipInfo>,
        devices: HashMap<PathBuf, DeviceNumber>,
    }

    impl FakeProbe {
        fn new() -> FakeProbe {
            FakeProbe {
                root: tempfile::tempdir().unwrap(),
                chips: HashMap::new(),
                devices: HashMap::new(),
            }
        }

        fn file(&self, path: &str, content: &str) -> PathBuf {
            let p = self.root.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
            p
        }

        fn device(&mut self, path: &str, major: u32, minor: u32) {
            let p = self.file(path, "");
            self.devices
                .insert(fs::canonicalize(p).unwrap(), DeviceNumber { major, minor });
        }

        fn symlink(&self, link: &str, target: &str) {
            let p = self.root.path().join(link.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        }

        fn add_chip(&mut self, path: &str, label: &str, names: &[&str]) {
            let p = self.file(path, "");
            self.chips.insert(
                fs::canonicalize(p).unwrap(),
                ChipInfo {
                    name: path.rsplit('/').next().unwrap().to_owned(),
                    label: label.to_owned(),
                    line_names: names.iter().map(|s| (*s).to_owned()).collect(),
                },
            );
        }
    }

    impl Probe for FakeProbe {
        fn root(&self) -> &Path {
            self.root.path()
        }

        fn chip(&self, path: &Path) -> Result<ChipInfo, ProbeError> {
            let io = |source| ProbeError::Io {
                path: path.to_owned(),
                source,
            };
            let canon = fs::canonicalize(path).map_err(io)?;
            self.chips
                .get(&canon)
                .cloned()
                .ok_or_else(|| io(std::io::Error::other("not a GPIO chip")))
        }

        fn char_device(&self, path: &Path) -> Result<Option<DeviceNumber>, ProbeError> {
            let canon = fs::canonicalize(path).map_err(|source| ProbeError::Io {
                path: path.to_owned(),
                source,
            })?;
            Ok(self.devices.get(&canon).copied())
        }
    }

    const PROFILE: &str = r#"
[board]
name = "fake"
arch = "aarch64"
[gpio]
chip = "gpio3"
[gpio.lines]
siren = { name = "SIREN" }
relay = { offset = 1 }
healthy = { name = "HEALTHY" }
door = { offset = 0, chip = "/dev/gpiochip0" }
[[cameras]]
id = "cam0"
path = "/dev/v4l/by-path/platform-fe2c0000-video-index0"
[accelerator]
backend = "rknn"
model = "m"
variant = "rk3588-int8"
device = "/dev/dri/renderD129"
[thermal]
zones = [{ type = "soc-thermal", warn_c = 70.0, throttle_c = 80.0, critical_c = 90.0 }]
"#;

    /// A box on which everything the profile names is present.
    fn good_box() -> FakeProbe {
        let mut f = FakeProbe::new();
        f.add_chip("/dev/gpiochip0", "gpio0", &["", ""]);
        f.add_chip("/dev/gpiochip3", "gpio3", &["SIREN", "", "HEALTHY", ""]);
        f.device("/dev/video11", 81, 11);
        f.symlink(
            "/dev/v4l/by-path/platform-fe2c0000-video-index0",
            "../../video11",
        );
        f.device("/dev/dri/renderD129", 226, 129);
        f.file("/usr/lib/librknnrt.so", "ELF");
        f.file("/sys/class/thermal/thermal_zone0/type", "soc-thermal\n");
        f.file("/sys/class/thermal/thermal_zone0/temp", "72500\n");
        f.file("/sys/class/thermal/thermal_zone1/type", "npu-thermal\n");
        f.file("/sys/class/thermal/thermal_zone1/temp", "50000\n");
        f
    }

    fn problems(probe: &FakeProbe) -> Vec<String> {
        let profile = parse(PROFILE).unwrap();
        match check_hardware_with(&profile, probe) {
            Ok(r) => panic!("expected a mismatch, got {r:?}"),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    /// The warnings of a check that passes (cameras and thermal zones only warn).
    fn warnings(probe: &FakeProbe) -> Vec<String> {
        let profile = parse(PROFILE).unwrap();
        match check_hardware_with(&profile, probe) {
            Ok(r) => r.warnings.iter().map(ToString::to_string).collect(),
            Err(e) => panic!("expected the check to pass with warnings, got {e}"),
        }
    }

    #[test]
    fn matching_box_is_reported() {
        let probe = good_box();
        let profile = parse(PROFILE).unwrap();
        let r = check_hardware_with(&profile, &probe).unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let siren = r.line(LineRole::Siren).unwrap();
        assert_eq!(
            (siren.chip_path.as_path(), siren.offset),
            (Path::new("/dev/gpiochip3"), 0)
        );
        assert_eq!(r.line(LineRole::Healthy).unwrap().offset, 2);
        assert_eq!(r.line(LineRole::Relay).unwrap().offset, 1);
        let door = r.line(LineRole::Door).unwrap();
        assert_eq!((door.chip_label.as_str(), door.offset), ("gpio0", 0));
        assert_eq!(
            r.cameras[0].device,
            DeviceNumber {
                major: 81,
                minor: 11
            }
        );
        assert_eq!(
            r.runtime_libraries,
            vec![PathBuf::from("/usr/lib/librknnrt.so")]
        );
        assert_eq!(r.thermal.len(), 1);
        assert!((r.thermal[0].celsius - 72.5).abs() < 1e-9);
        assert_eq!(r.thermal[0].level, ThermalLevel::Warn);
        assert_eq!(
            r.thermal[0].temp_path,
            PathBuf::from("/sys/class/thermal/thermal_zone0/temp")
        );
    }

    #[test]
    fn missing_line_and_library_are_named() {
        let mut probe = good_box();
        probe.add_chip("/dev/gpiochip3", "gpio3", &["SIRENE", "", "HEALTHY", ""]);
        fs::remove_file(probe.root.path().join("usr/lib/librknnrt.so")).unwrap();
        let ps = problems(&probe);
        assert_eq!(ps.len(), 2, "{ps:?}");
        assert!(
            ps[0].starts_with("gpio.lines.siren: no line named \"SIREN\" on /dev/gpiochip3"),
            "{ps:?}"
        );
        assert!(
            ps[1].starts_with(
                "accelerator.runtime_libraries[0]: backend \"rknn\" needs librknnrt.so"
            ),
            "{ps:?}"
        );
    }

    #[test]
    fn missing_chip_label_lists_the_chips_present() {
        let mut probe = good_box();
        probe.add_chip(
            "/dev/gpiochip3",
            "gpio-sim.0-node0",
            &["SIREN", "", "HEALTHY", ""],
        );
        let ps = problems(&probe);
        // siren, relay and healthy all live on the missing chip.
        assert_eq!(ps.len(), 3, "{ps:?}");
        assert!(ps[0].contains("no GPIO chip labelled \"gpio3\"; chips present: /dev/gpiochip0 (\"gpio0\"), /dev/gpiochip3 (\"gpio-sim.0-node0\")"), "{ps:?}");
    }

    #[test]
    fn offset_beyond_chip_and_missing_chip_path() {
        let mut probe = good_box();
        probe.add_chip("/dev/gpiochip3", "gpio3", &["SIREN"]);
        fs::remove_file(probe.root.path().join("dev/gpiochip0")).unwrap();
        let ps = problems(&probe);
        assert!(
            ps.iter()
                .any(|p| p.starts_with("gpio.lines.relay: offset 1 is beyond /dev/gpiochip3")),
            "{ps:?}"
        );
        assert!(
            ps.iter()
                .any(|p| p.starts_with("gpio.lines.door: GPIO chip /dev/gpiochip0 is missing")),
            "{ps:?}"
        );
    }

    #[test]
    fn a_missing_or_wrong_camera_warns_and_the_box_still_starts() {
        let mut probe = good_box();
        probe.devices.insert(
            fs::canonicalize(probe.root.path().join("dev/video11")).unwrap(),
            DeviceNumber { major: 1, minor: 3 },
        );
        assert_eq!(
            warnings(&probe),
            vec![
                "cameras[0].path: /dev/v4l/by-path/platform-fe2c0000-video-index0 is character device 1:3, not a V4L2 node (major 81)"
            ]
        );
        probe.devices.clear();
        probe.device("/dev/dri/renderD129", 226, 129);
        assert_eq!(
            warnings(&probe),
            vec![
                "cameras[0].path: /dev/v4l/by-path/platform-fe2c0000-video-index0 is not a character device"
            ]
        );
        fs::remove_file(probe.root.path().join("dev/video11")).unwrap();
        let ws = warnings(&probe);
        assert_eq!(ws.len(), 1, "{ws:?}");
        assert!(
            ws[0].starts_with(
                "cameras[0].path: camera /dev/v4l/by-path/platform-fe2c0000-video-index0 is missing"
            ),
            "{ws:?}"
        );
        // The camera is not in the report; the outputs are.
        let r = check_hardware_with(&parse(PROFILE).unwrap(), &probe).unwrap();
        assert!(r.cameras.is_empty());
        assert!(r.line(LineRole::Siren).is_some());
    }

    #[test]
    fn a_missing_camera_does_not_hide_a_missing_output_line() {
        let mut probe = good_box();
        fs::remove_file(probe.root.path().join("dev/video11")).unwrap();
        probe.add_chip("/dev/gpiochip3", "gpio3", &["SIRENE", "", "HEALTHY", ""]);
        // The line refuses the start; the camera is no reason to.
        let ps = problems(&probe);
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert!(ps[0].starts_with("gpio.lines.siren: "), "{ps:?}");
    }

    #[test]
    fn thermal_zone_missing_or_garbled_warns() {
        let probe = good_box();
        probe.file("/sys/class/thermal/thermal_zone0/temp", "hot\n");
        assert_eq!(
            warnings(&probe),
            vec![
                "thermal.zones[0]: /sys/class/thermal/thermal_zone0/temp holds \"hot\", not millidegrees"
            ]
        );
        probe.file("/sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
        assert_eq!(
            warnings(&probe),
            vec![
                "thermal.zones[0]: no thermal zone of type \"soc-thermal\"; present: cpu-thermal, npu-thermal"
            ]
        );
    }

    #[test]
    fn system_probe_reads_real_device_numbers() {
        let probe = SystemProbe::new();
        // /dev/null is character device 1:3 on every Linux system.
        assert_eq!(
            probe.char_device(Path::new("/dev/null")).unwrap(),
            Some(DeviceNumber { major: 1, minor: 3 })
        );
        assert_eq!(probe.char_device(Path::new("/")).unwrap(), None);
        assert!(probe.chip(Path::new("/dev/null")).is_err());
        // makedev(81, 300) in glibc's encoding.
        assert_eq!(
            split_dev(0x0010_512c),
            DeviceNumber {
                major: 81,
                minor: 300
            }
        );
    }
}

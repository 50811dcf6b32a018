//! The A/B update state: which RAUC slot is booted, which version runs, and
//! whether this boot has been marked good.
//!
//! The parsing functions are pure and take the text of `/proc/cmdline`,
//! `/etc/os-release` and `rauc status --detailed --output-format=json`;
//! [`read_update_state`] gathers those texts from a system.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long `rauc status` may take before it is abandoned.
pub const RAUC_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the RAUC status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The text is not the JSON `rauc status --output-format=json` prints.
    #[error("rauc status output is not valid JSON")]
    Json {
        /// The parser error.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON lacks a field every RAUC status has.
    #[error("rauc status output has no {field:?}")]
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// `rauc` could not be started.
    #[error("cannot run {}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `rauc status` failed.
    #[error("{} status exited with {status}: {stderr}", program.display())]
    Failed {
        /// The program.
        program: PathBuf,
        /// Exit status, as text.
        status: String,
        /// Its error output (trimmed).
        stderr: String,
    },
    /// `rauc status` did not finish in time (the RAUC service hangs).
    #[error("{} status did not answer within {timeout:?}", program.display())]
    Timeout {
        /// The program.
        program: PathBuf,
        /// The time allowed.
        timeout: Duration,
    },
}

/// One slot as RAUC reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct SlotStatus {
    /// Slot name (`rootfs.0`).
    pub name: String,
    /// Slot class (`rootfs`).
    pub class: String,
    /// Boot name the bootloader knows (`A`), for bootable slots.
    pub bootname: Option<String>,
    /// `booted`, `active` or `inactive`.
    pub state: String,
    /// The bootloader's view: `good` or `bad`, when RAUC can tell.
    pub boot_status: Option<String>,
    /// Version of the bundle last installed into this slot.
    pub bundle_version: Option<String>,
    /// When that install happened (RFC 3339, as RAUC writes it).
    pub installed_timestamp: Option<String>,
}

/// `rauc status` in typed form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RaucStatus {
    /// The system's compatible string.
    pub compatible: String,
    /// Boot name of the booted slot.
    pub booted: Option<String>,
    /// Slot the bootloader will try first on the next boot.
    pub boot_primary: Option<String>,
    /// Every slot.
    pub slots: Vec<SlotStatus>,
}

impl RaucStatus {
    /// The booted slot, if RAUC knows it.
    pub fn booted_slot(&self) -> Option<&SlotStatus> {
        self.slots.iter().find(|s| s.state == "booted")
    }
}

/// Where the booted slot's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlotSource {
    /// `rauc status`.
    Rauc,
    /// The kernel command line (`rauc.slot=`).
    Cmdline,
    /// Not an A/B system (development box, VM without RAUC).
    Unknown,
}

/// What the API reports about updates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct UpdateState {
    /// Boot name of the running slot (`A`, `B`).
    pub booted_slot: Option<String>,
    /// Where that came from.
    pub slot_source: SlotSource,
    /// Version of the running system: the booted slot's bundle version,
    /// else `VERSION_ID` from os-release.
    pub version: Option<String>,
    /// The system's compatible string (from RAUC).
    pub compatible: Option<String>,
    /// Whether the booted slot is marked good; `None` when unknown.
    pub boot_good: Option<bool>,
    /// Slot name the bootloader tries first next time (`rootfs.1`).
    pub boot_primary: Option<String>,
    /// Whether another slot is primary: an update waits for a reboot, or
    /// this boot is a fallback after a failed one.
    pub primary_differs: bool,
    /// Every slot RAUC knows.
    pub slots: Vec<SlotStatus>,
    /// Why `rauc status` could not be used, if it could not.
    pub rauc_error: Option<String>,
}

/// The slot named by `rauc.slot=` on a kernel command line.
pub fn slot_from_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|arg| arg.strip_prefix("rauc.slot="))
        .rfind(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `VERSION_ID` (else `VERSION`) from os-release text, unquoted.
pub fn os_release_version(text: &str) -> Option<String> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            let v = v.trim().trim_matches('"').trim_matches('\'');
            (!v.is_empty()).then(|| v.to_owned())
        })
    };
    get("VERSION_ID").or_else(|| get("VERSION"))
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Parses `rauc status [--detailed] --output-format=json` (RAUC 1.8 and later).
pub fn parse_rauc_status(json: &str) -> Result<RaucStatus, UpdateError> {
    let v: Value = serde_json::from_str(json).map_err(|source| UpdateError::Json { source })?;
    let compatible = text(&v, "compatible").ok_or(UpdateError::MissingField {
        field: "compatible",
    })?;
    let slots_json = v
        .get("slots")
        .and_then(Value::as_array)
        .ok_or(UpdateError::MissingField { field: "slots" })?;
    let mut slots = Vec::new();
    // Each element is a one-entry object: {"rootfs.0": {...}}.
    for entry in slots_json.iter().filter_map(Value::as_object) {
        for (name, s) in entry {
            let status = s.get("slot_status");
            slots.push(SlotStatus {
                name: name.clone(),
                class: text(s, "class").unwrap_or_default(),
                bootname: text(s, "bootname"),
                state: text(s, "state").unwrap_or_default(),
                boot_status: text(s, "boot_status"),
                bundle_version: status
                    .and_then(|st| st.get("bundle"))
                    .and_then(|b| text(b, "version")),
                installed_timestamp: status
                    .and_then(|st| st.get("installed"))
                    .and_then(|i| text(i, "timestamp")),
            });
        }
    }
    Ok(RaucStatus {
        compatible,
        booted: text(&v, "booted"),
        boot_primary: text(&v, "boot_primary"),
        slots,
    })
}

/// Combines what was read into the state the API reports.
pub fn combine(
    cmdline: Option<&str>,
    os_release: Option<&str>,
    rauc: Result<Option<RaucStatus>, UpdateError>,
) -> UpdateState {
    let release_version = os_release.and_then(os_release_version);
    let cmdline_slot = cmdline.and_then(slot_from_cmdline);
    let (status, rauc_error) = match rauc {
        Ok(s) => (s, None),
        Err(e) => (None, Some(crate::error_chain(&e))),
    };
    match status {
        Some(st) => {
            let booted = st.booted_slot().cloned();
            let primary_differs = match (&st.boot_primary, &booted) {
                (Some(p), Some(b)) => *p != b.name,
                _ => false,
            };
            UpdateState {
                booted_slot: st
                    .booted
                    .clone()
                    .or_else(|| booted.as_ref().and_then(|b| b.bootname.clone()))
                    .or(cmdline_slot),
                slot_source: SlotSource::Rauc,
                version: booted
                    .as_ref()
                    .and_then(|b| b.bundle_version.clone())
                    .or(release_version),
                compatible: Some(st.compatible.clone()),
                boot_good: booted
                    .as_ref()
                    .and_then(|b| b.boot_status.as_deref())
                    .map(|s| s == "good"),
                boot_primary: st.boot_primary.clone(),
                primary_differs,
                slots: st.slots,
                rauc_error,
            }
        }
        None => UpdateState {
            slot_source: if cmdline_slot.is_some() {
                SlotSource::Cmdline
            } else {
                SlotSource::Unknown
            },
            booted_slot: cmdline_slot,
            version: release_version,
            compatible: None,
            boot_good: None,
            boot_primary: None,
            primary_differs: false,
            slots: Vec::new(),
            rauc_error,
        },
    }
}

/// Runs `<program> status --detailed --output-format=json`, with [`RAUC_TIMEOUT`].
///
/// Blocking: call it from a blocking thread (`spawn_blocking`), never from
/// the async reactor.
pub fn run_rauc_status(program: &Path) -> Result<RaucStatus, UpdateError> {
    let mut child = Command::new(program)
        .args(["status", "--detailed", "--output-format=json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| UpdateError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < RAUC_TIMEOUT => {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "documented as blocking; runs on a blocking thread"
                )]
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                // Best effort: the child is abandoned either way.
                let _ = child.kill();
                let _ = child.wait();
                return Err(UpdateError::Timeout {
                    program: program.to_owned(),
                    timeout: RAUC_TIMEOUT,
                });
            }
            Err(source) => {
                return Err(UpdateError::Spawn {
                    program: program.to_owned(),
                    source,
                });
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|source| UpdateError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(UpdateError::Failed {
            program: program.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    parse_rauc_status(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the update state of the system whose root is `root` (`/` on the
/// box): `<root>/proc/cmdline`, `<root>/etc/os-release`, and `rauc status`
/// when `<root>/usr/bin/rauc` exists. Never fails: what cannot be read is
/// left out and the reason is kept in [`UpdateState::rauc_error`].
///
/// Blocking (it may run `rauc`): call it from a blocking thread.
pub fn read_update_state(root: &Path) -> UpdateState {
    let cmdline = std::fs::read_to_string(root.join("proc/cmdline")).ok();
    let os_release = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .ok();
    let rauc = root.join("usr/bin/rauc");
    let status = if rauc.is_file() {
        run_rauc_status(&rauc).map(Some)
    } else {
        Ok(None)
    };
    if let Err(e) = &status {
        tracing::warn!(error = %crate::error_chain(e), "cannot read the RAUC status; reporting the slot from the kernel command line");
    }
    combine(cmdline.as_deref(), os_release.as_deref(), status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_slot() {
        let c = "root=PARTUUID=1234 rootwait rauc.slot=B console=ttyS2,1500000\n";
        assert_eq!(slot_from_cmdline(c).as_deref(), Some("B"));
        assert_eq!(
            slot_from_cmdline("rauc.slot=A rauc.slot=B").as_deref(),
            Some("B")
        );
        assert_eq!(slot_from_cmdline("quiet rauc.slot= splash"), None);
        assert_eq!(slot_from_cmdline("quiet xrauc.slot=A"), None);
    }

    #[test]
    fn os_release() {
        let t = "NAME=\"SAFE-YOLO OS\"\nVERSION=\"2026.11.2 (wrynose)\"\nVERSION_ID=2026.11.2\n";
        assert_eq!(os_release_version(t).as_deref(), Some("2026.11.2"));
        assert_eq!(
            os_release_version("VERSION='1.0 beta'\n").as_deref(),
            Some("1.0 beta")
        );
        assert_eq!(os_release_version("NAME=x\n"), None);
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(matches!(
            parse_rauc_status("not json"),
            Err(UpdateError::Json { .. })
        ));
        assert!(matches!(
            parse_rauc_status("{\"slots\": []}"),
            Err(UpdateError::MissingField {
                field: "compatible"
            })
        ));
    }

    #[test]
    fn without_rauc_the_cmdline_is_used() {
        let s = combine(Some("rauc.slot=A"), Some("VERSION_ID=1.2\n"), Ok(None));
        assert_eq!(s.booted_slot.as_deref(), Some("A"));
        assert_eq!(s.slot_source, SlotSource::Cmdline);
        assert_eq!(s.version.as_deref(), Some("1.2"));
        assert_eq!(s.boot_good, None);
        let s = combine(
            None,
            None,
            Err(UpdateError::MissingField { field: "slots" }),
        );
        assert_eq!(s.slot_source, SlotSource::Unknown);
        assert_eq!(
            s.rauc_error.as_deref(),
            Some("rauc status output has no \"slots\"")
        );
    }

    #[test]
    fn read_from_a_root_without_rauc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("proc/cmdline"),
            "console=ttyS0 rauc.slot=B\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/os-release"), "VERSION_ID=\"3.1\"\n").unwrap();
        let s = read_update_state(dir.path());
        assert_eq!(
            (s.booted_slot.as_deref(), s.version.as_deref()),
            (Some("B"), Some("3.1"))
        );
    }

    #[test]
    fn failing_rauc_is_reported() {
        let err = run_rauc_status(Path::new("/bin/false")).unwrap_err();
        assert!(matches!(err, UpdateError::Failed { .. }), "{err}");
        let err = run_rauc_status(Path::new("/nonexistent/rauc")).unwrap_err();
        assert!(matches!(err, UpdateError::Spawn { .. }), "{err}");
    }
}

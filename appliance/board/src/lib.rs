//! The board an appliance runs on, and the state of its A/B updates.
//!
//! - [`profile`]: one TOML profile per supported board (GPIO chip and lines,
//!   camera nodes by stable path, accelerator backend and model variant,
//!   thermal limits), parsed with unknown keys rejected and every problem
//!   reported with its key path.
//! - [`hardware`]: checks a profile against the hardware present and resolves
//!   it (chip paths, line offsets, device numbers, temperatures), or lists
//!   everything that is missing.
//! - [`update`]: the booted RAUC slot, the running version and whether this
//!   boot was marked good, for the system API.
//!
//! Profiles live in the repository's `board/` folder and are installed to
//! [`profile::PROFILE_DIR`]; the daemon config's `system.board` names one.
#![forbid(unsafe_code)]

pub mod hardware;
pub mod profile;
pub mod update;

pub use hardware::{
    BoardError, ChipInfo, DeviceNumber, FoundCamera, FoundLine, HardwareReport, Probe, ProbeError,
    SystemProbe, ThermalReading, check_hardware, check_hardware_with,
};
pub use profile::{
    AccelBackend, Accelerator, Arch, CameraNode, ChipRef, LineRole, LineSel, LineSpec, PROFILE_DIR,
    Problem, Profile, ProfileError, ThermalLevel, ThermalZone,
};
pub use update::{RaucStatus, SlotSource, SlotStatus, UpdateError, UpdateState, read_update_state};

pub(crate) use safe_yolo_domain::error_chain;

//! The detector child's sandbox: what a compromised or confused inference
//! library can still do.
//!
//! In order, in the child: `PR_SET_NO_NEW_PRIVS`; a Landlock ruleset (reads
//! only of the model, the system libraries and the few `/proc` and `/sys`
//! files the backends size themselves from; writes only in the child's own
//! scratch directory and the configured accelerator nodes; no TCP, no signal
//! or abstract socket outside the sandbox); the model is loaded (and its
//! sha256 verified); then a seccomp filter on every thread. The daemon's
//! state directory (database, `jwt.key`, `tls.key`) is not among the paths, so
//! it cannot be read.
//!
//! The syscall policy is data: `seccomp-<arch>.json` beside this file, in
//! seccompiler's JSON format (as Firecracker keeps its filters), compiled when
//! the child applies it. It holds two filters, both installed:
//!
//! - `detector`: the allow list of what inference and the control channel
//!   need. Anything else fails with `EPERM` (a call missing on some image
//!   degrades that call rather than crash-looping the detector).
//! - `denied`: the network family, `execve`, `ptrace` and other escapes,
//!   refused with `EPERM` whatever the allow list says (seccomp applies the
//!   strictest answer of all filters), so a line added to the allow list by
//!   mistake cannot open them.
//!
//! Without Landlock (kernels before 5.13, or one booted without it) the child
//! goes on under the seccomp filter alone; the daemon logs which Landlock ABI
//! was enforced (fully, partially, not), from the child's `Loaded` message.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus,
    PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

/// The syscall policy of x86_64 children.
pub const SECCOMP_X86_64: &str = include_str!("seccomp-x86_64.json");
/// The syscall policy of aarch64 children.
pub const SECCOMP_AARCH64: &str = include_str!("seccomp-aarch64.json");

/// The Landlock ABI the ruleset is written for (Linux 6.12: file system,
/// device ioctls, TCP, scopes). A newer kernel enforces exactly this; an older
/// one what it has of it.
const LANDLOCK_ABI: ABI = ABI::V6;

/// Read-only for every child: the dynamic loader's files and the system
/// libraries (an inference library is opened at run time), and what thread
/// pools and CPU feature detection read. Paths this box lacks are skipped.
pub const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    // The child's own /proc directory (the link resolves to /proc/<pid>).
    "/proc/self",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
    "/sys/fs/cgroup",
    // librknnrt checks the SoC.
    "/proc/device-tree",
    "/sys/firmware/devicetree",
    "/dev/null",
    "/dev/urandom",
];

/// What the child may touch: made by the daemon's side, applied by the child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// The child's private scratch directory: the one place it may write.
    pub scratch: PathBuf,
    /// Read-only beyond [`SYSTEM_READ`]: the model's files, the inference
    /// library's directory.
    pub read: Vec<PathBuf>,
    /// Accelerator device nodes (or directories of them), read-write with ioctls.
    pub devices: Vec<PathBuf>,
}

/// Why the sandbox could not be made (the child then refuses to run).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `PR_SET_NO_NEW_PRIVS` failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] std::io::Error),
    /// The Landlock ruleset could not be made or applied.
    #[error("cannot apply the Landlock ruleset")]
    Landlock(#[source] landlock::RulesetError),
    /// A path of the policy could not be opened to make its rule.
    #[error("cannot open {path} for its Landlock rule")]
    LandlockPath {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: landlock::PathFdError,
    },
    /// The seccomp policy is not the JSON the sandbox expects.
    #[error("the seccomp policy for {arch} cannot be read: {reason}")]
    Policy {
        /// The architecture.
        arch: &'static str,
        /// Why.
        reason: String,
    },
    /// The seccomp policy does not compile.
    #[error("the seccomp policy for {arch} does not compile")]
    Compile {
        /// The architecture.
        arch: &'static str,
        /// Why.
        #[source]
        source: seccompiler::Error,
    },
    /// The policy lacks one of its filters.
    #[error("the seccomp policy has no filter {0:?}")]
    MissingFilter(&'static str),
    /// Landlock restricts the calling thread and those it starts later: made
    /// with other threads running, it would leave them out.
    #[error("the Landlock ruleset must be made while the process has one thread, it has {0}")]
    Threads(usize),
    /// This architecture has no policy.
    #[error("no seccomp policy for this architecture")]
    UnsupportedArch,
    /// The kernel refused the filter.
    #[error("cannot install the seccomp filter {filter:?}")]
    Apply {
        /// Which filter.
        filter: &'static str,
        /// Why.
        #[source]
        source: seccompiler::Error,
    },
}

/// How much of Landlock the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandlockLevel {
    /// Every restriction of the ruleset.
    Full,
    /// Those of an older ABI (best effort).
    Partial,
    /// None: the kernel has no Landlock (seccomp alone).
    None,
}

/// What sandbox a child runs in, reported to the daemon once loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxReport {
    /// The Landlock ruleset's enforcement.
    pub landlock: LandlockLevel,
    /// The kernel's Landlock ABI (0: none).
    pub landlock_abi: i32,
    /// The seccomp filter is installed on every thread.
    pub seccomp: bool,
}

impl std::fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let landlock = match self.landlock {
            LandlockLevel::Full => "Landlock fully enforced",
            LandlockLevel::Partial => "Landlock partially enforced",
            LandlockLevel::None => "no Landlock",
        };
        let seccomp = if self.seccomp {
            "seccomp filter"
        } else {
            "no seccomp filter"
        };
        write!(
            f,
            "{seccomp}, {landlock} (kernel ABI {})",
            self.landlock_abi
        )
    }
}

/// Sets `PR_SET_NO_NEW_PRIVS` on the calling thread (and the threads it starts
/// later): nothing this process executes gains privileges. First step.
pub fn no_new_privs() -> Result<(), SandboxError> {
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| SandboxError::NoNewPrivs(std::io::Error::from(e)))
}

/// Applies the Landlock ruleset of `policy` to the calling thread and the
/// threads it starts later (call it before any other thread runs). Returns
/// the enforcement level and the kernel's ABI.
pub fn restrict_filesystem(policy: &SandboxPolicy) -> Result<(LandlockLevel, i32), SandboxError> {
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        let threads = tasks.count();
        if threads > 1 {
            return Err(SandboxError::Threads(threads));
        }
    }
    let abi = LANDLOCK_ABI;
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = read
        | AccessFs::WriteFile
        | AccessFs::Truncate
        | AccessFs::MakeReg
        | AccessFs::MakeDir
        | AccessFs::RemoveFile
        | AccessFs::RemoveDir;
    let device = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir | AccessFs::IoctlDev;
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = Vec::new();
    rules.extend(SYSTEM_READ.iter().map(|p| (PathBuf::from(p), read)));
    rules.extend(policy.read.iter().map(|p| (p.clone(), read)));
    rules.extend(policy.devices.iter().map(|p| (p.clone(), device)));
    rules.push((policy.scratch.clone(), write));
    // Coverage builds (cargo-llvm-cov, tests only) write their profile when
    // the process ends.
    #[cfg(coverage)]
    rules.extend(
        std::env::var_os("LLVM_PROFILE_FILE")
            .and_then(|p| Path::new(&p).parent().map(Path::to_path_buf))
            .map(|d| (d, write)),
    );
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(Ruleset::create)
        .map_err(SandboxError::Landlock)?;
    for (path, access) in rules {
        let fd = match PathFd::new(&path) {
            Ok(fd) => fd,
            // A system path this box lacks, or a device not fitted.
            Err(landlock::PathFdError::OpenCall { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            Err(source) => return Err(SandboxError::LandlockPath { path, source }),
        };
        // A file takes only file rights (not ReadDir and the making ones).
        let access = if path.is_dir() {
            access
        } else {
            access & (AccessFs::from_file(abi) | AccessFs::IoctlDev)
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(SandboxError::Landlock)?;
    }
    let status = ruleset.restrict_self().map_err(SandboxError::Landlock)?;
    let level = match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockLevel::Full,
        RulesetStatus::PartiallyEnforced => LandlockLevel::Partial,
        RulesetStatus::NotEnforced => LandlockLevel::None,
    };
    let kernel_abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or_else(|| abi_number(effective_abi)),
        LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => 0,
    };
    Ok((level, kernel_abi))
}

/// The number of a Landlock ABI the crate knows.
fn abi_number(abi: ABI) -> i32 {
    [
        ABI::V1,
        ABI::V2,
        ABI::V3,
        ABI::V4,
        ABI::V5,
        ABI::V6,
        ABI::V7,
        ABI::V8,
        ABI::V9,
        ABI::V10,
    ]
    .iter()
    .zip(1..)
    .find_map(|(a, n)| (*a == abi).then_some(n))
    .unwrap_or(0)
}

/// The seccomp architecture of this build.
fn this_arch() -> Result<(seccompiler::TargetArch, &'static str, &'static str), SandboxError> {
    if cfg!(target_arch = "x86_64") {
        Ok((seccompiler::TargetArch::x86_64, "x86_64", SECCOMP_X86_64))
    } else if cfg!(target_arch = "aarch64") {
        Ok((seccompiler::TargetArch::aarch64, "aarch64", SECCOMP_AARCH64))
    } else {
        Err(SandboxError::UnsupportedArch)
    }
}

/// The filters of `policy` (a `seccomp-<arch>.json`) compiled for `arch`, in
/// the order they are installed: the deny list, then the allow list (which
/// does not allow `seccomp` itself, so it must come last).
pub fn compile(
    policy: &str,
    arch: seccompiler::TargetArch,
    arch_name: &'static str,
    control_fd: i32,
) -> Result<[(&'static str, seccompiler::BpfProgram); 2], SandboxError> {
    let policy = with_control_fd(policy, control_fd).map_err(|reason| SandboxError::Policy {
        arch: arch_name,
        reason,
    })?;
    let mut map = seccompiler::compile_from_json(policy.as_bytes(), arch).map_err(|source| {
        SandboxError::Compile {
            arch: arch_name,
            source,
        }
    })?;
    let mut take = |name: &'static str| {
        map.remove(name)
            .map(|p| (name, p))
            .ok_or(SandboxError::MissingFilter(name))
    };
    Ok([take("denied")?, take("detector")?])
}

/// The placeholder of the control channel's descriptor in the policy's
/// argument conditions (`"val": "control_fd"`).
const CONTROL_FD: &str = "control_fd";

/// The policy with every `"val": "control_fd"` of an argument condition
/// replaced by `control_fd`: the channel's descriptor number is known only in
/// the child, the rest of the policy is data.
fn with_control_fd(policy: &str, control_fd: i32) -> Result<String, String> {
    let mut v: serde_json::Value =
        serde_json::from_str(policy).map_err(|e| format!("not JSON: {e}"))?;
    let filters = v
        .as_object_mut()
        .ok_or("the policy is not a map of filters")?;
    for filter in filters.values_mut() {
        let rules = filter
            .get_mut("filter")
            .and_then(|f| f.as_array_mut())
            .ok_or("a filter without its rule list")?;
        for arg in rules
            .iter_mut()
            .filter_map(|r| r.get_mut("args").and_then(|a| a.as_array_mut()))
            .flatten()
        {
            if arg.get("val").and_then(|x| x.as_str()) == Some(CONTROL_FD) {
                arg["val"] = serde_json::Value::from(control_fd);
            }
        }
    }
    serde_json::to_string(&v).map_err(|e| format!("cannot write it back: {e}"))
}

/// Installs this architecture's seccomp filters on every thread of the
/// process (the inference library's threads run already: `TSYNC`);
/// `control_fd` is the only descriptor messages may be sent on or received
/// from.
pub fn restrict_syscalls(control_fd: i32) -> Result<(), SandboxError> {
    let (arch, name, policy) = this_arch()?;
    for (filter, program) in compile(policy, arch, name, control_fd)? {
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|source| SandboxError::Apply { filter, source })?;
    }
    Ok(())
}

/// The read-only paths a model and its backend need: the manifest's
/// directory, the directory of every weights file it names, and that of the
/// inference library when one is given or set in `ORT_DYLIB_PATH`.
pub fn model_paths(manifest: &Path, libraries: &[Option<&Path>]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let dir = |p: &Path| p.parent().map(Path::to_path_buf);
    paths.extend(dir(manifest));
    if let Ok(m) = crate::Manifest::from_path(manifest) {
        paths.extend(m.weight_files().iter().filter_map(|f| dir(f)));
    }
    let ort = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    paths.extend(
        libraries
            .iter()
            .flatten()
            .filter_map(|p| dir(p))
            .chain(ort.as_deref().and_then(dir)),
    );
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn names(policy: &str, filter: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(policy).unwrap();
        v[filter]["filter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["syscall"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_seccomp_policy_compiles_for_both_architectures_and_never_allows_what_it_denies() {
        for (policy, arch, name) in [
            (SECCOMP_X86_64, seccompiler::TargetArch::x86_64, "x86_64"),
            (SECCOMP_AARCH64, seccompiler::TargetArch::aarch64, "aarch64"),
        ] {
            let [(d, deny), (a, allow)] = compile(policy, arch, name, 3).unwrap();
            assert_eq!((d, a), ("denied", "detector"));
            assert!(!allow.is_empty() && !deny.is_empty(), "{name}");
            let allowed = names(policy, "detector");
            let denied = names(policy, "denied");
            let v: serde_json::Value = serde_json::from_str(policy).unwrap();
            let conditional: Vec<&str> = v["denied"]["filter"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r.get("args").is_some())
                .map(|r| r["syscall"].as_str().unwrap())
                .collect();
            // Denied outright and allowed would be a contradiction; a denial on a
            // condition (sendmsg on any descriptor but the channel's) narrows.
            for n in &denied {
                assert!(
                    !allowed.contains(n) || conditional.contains(&n.as_str()),
                    "{name}: {n} both allowed and denied"
                );
            }
            assert_eq!(conditional, ["sendmsg", "recvmsg"], "{name}");
            for must in ["socket", "connect", "execve", "ptrace", "bind", "sendto"] {
                assert!(
                    denied.iter().any(|n| n == must),
                    "{name}: {must} not denied"
                );
            }
            for must in [
                "recvmsg",
                "sendmsg",
                "mmap",
                "futex",
                "exit_group",
                "openat",
            ] {
                assert!(
                    allowed.iter().any(|n| n == must),
                    "{name}: {must} not allowed"
                );
            }
        }
        // An unknown syscall name is a compile error, not a silent hole.
        let bad = SECCOMP_X86_64.replacen("\"read\"", "\"no_such_call\"", 1);
        assert!(compile(&bad, seccompiler::TargetArch::x86_64, "x86_64", 3).is_err());
        // A placeholder left unfilled does not compile either.
        let bad = SECCOMP_X86_64.replacen("control_fd", "contrl_fd", 1);
        assert!(compile(&bad, seccompiler::TargetArch::x86_64, "x86_64", 3).is_err());
    }

    #[test]
    fn the_report_says_what_was_enforced() {
        let r = SandboxReport {
            landlock: LandlockLevel::Full,
            landlock_abi: 7,
            seccomp: true,
        };
        assert_eq!(
            r.to_string(),
            "seccomp filter, Landlock fully enforced (kernel ABI 7)"
        );
    }
}

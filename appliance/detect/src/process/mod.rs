//! The detector in a supervised child process.
//!
//! Inference libraries (ONNX Runtime, librknnrt, CUDA) are large native code: a
//! segfault, an abort or a hang in one of them must not take the alarm path with
//! it. [`ProcessDetector`] runs the real detector in a child process (the daemon
//! re-executed in its detector role, [`serve`] on the child's side) and implements
//! [`Detector`] itself, so the pipeline does not know the difference.
//!
//! ```text
//!  daemon (detect worker thread)                     child (safe-yolo detector-worker)
//!  frame ──write──▶ shared slot (memfd, mmap) ◀──read── model
//!        ── Frame{seq,w,h} ─▶ SOCK_SEQPACKET ──▶
//!        ◀─ Found{seq, detections} ──            (JSON, a few hundred bytes)
//! ```
//!
//! One frame is in flight per child (the pipeline's worker waits for it), so one
//! slot per child suffices; several workers are several children. A child that
//! crashes, exits, breaks the protocol or does not answer within its deadline is
//! killed and reaped; frames are refused (`DetectError::Process`) at once while a
//! background thread starts a new child with backoff, so the worker thread never
//! waits for a restart and its heartbeat keeps beating.
//!
//! Each child gets a private scratch directory (mode 0700, its `TMPDIR`, removed
//! when it is reaped) and runs in a sandbox ([`sandbox`]): Landlock, then the
//! model, then a seccomp filter.

#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod sandbox;
mod shm;
mod signals;
mod wire;

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use safe_yolo_domain::{Detection, RgbFrame, error_chain};

use crate::{DetectError, Detector, ModelInfo};
use sandbox::{SandboxError, SandboxPolicy, SandboxReport};
use shm::Shm;
pub use wire::WireError;
use wire::{FromChild, ToChild, WireDetection};

/// Shortest deadline for one frame, however fast the model measured.
pub const MIN_FRAME_WAIT: Duration = Duration::from_millis(500);
/// A frame's deadline is this many times the model's measured latency (its
/// moving average), between [`MIN_FRAME_WAIT`] and [`ChildSpec::max_wait`].
pub const WAIT_FACTOR: u32 = 10;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Why the detector child could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The child could not be started.
    #[error("cannot start the detector process {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The child could not set itself up (its signal dispositions).
    #[error("the detector process cannot set itself up")]
    Setup(#[source] std::io::Error),
    /// The child's scratch directory could not be made.
    #[error("cannot make the detector process's scratch directory in {root}")]
    Scratch {
        /// Where it was to be made.
        root: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The child could not sandbox itself (it refuses to run unsandboxed).
    #[error("the detector process cannot sandbox itself")]
    Sandbox(#[source] SandboxError),
    /// The control channel or the frame slot failed.
    #[error("detector process channel failed")]
    Channel(#[from] WireError),
    /// The frame slot could not be made.
    #[error("cannot make a shared frame slot of {len} bytes")]
    Slot {
        /// Its size.
        len: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The child could not load the model; its own error text.
    #[error("the detector process could not load the model: {error}")]
    LoadFailed {
        /// The child's error, with its causes.
        error: String,
    },
    /// The model failed on one frame (the child goes on); its error text.
    #[error("the detector process failed on the frame: {error}")]
    FrameFailed {
        /// The child's error, with its causes.
        error: String,
    },
    /// The child sent something out of turn.
    #[error("the detector process broke the protocol: {reason}")]
    Protocol {
        /// What it sent.
        reason: String,
    },
    /// The child did not answer in time (killed).
    #[error("the detector process did not answer within {} ms (killed)", waited.as_millis())]
    Hung {
        /// How long it was given.
        waited: Duration,
    },
    /// The child ended.
    #[error("the detector process ended: {status}")]
    Ended {
        /// Exit code or signal.
        status: String,
    },
    /// No child runs now: the last one failed and a new one is starting.
    #[error("the detector process is restarting after: {reason}")]
    Restarting {
        /// Why the last one was stopped.
        reason: String,
    },
}

/// What the supervisor reports, for logs, metrics and the detector-fault alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// The child failed and was stopped, or a restart failed; frames are
    /// refused until a new one runs.
    Fault {
        /// Which model (`main`, `ppe`).
        model: String,
        /// What happened.
        reason: String,
        /// The detector was running until now: an outage begins. `false` for a
        /// restart that failed during an outage already reported.
        outage_begins: bool,
    },
    /// A new child loaded the model: frames are detected again (the outage
    /// ends; once per outage).
    Recovered {
        /// Which model.
        model: String,
        /// The new child's process id.
        pid: u32,
    },
}

/// How to start a detector child.
#[derive(Clone)]
pub struct ChildSpec {
    /// The model's role in logs and events (`main`, `ppe`).
    pub model: String,
    /// The program (the daemon's own executable).
    pub program: PathBuf,
    /// Its arguments (the detector role and what to load).
    pub args: Vec<OsString>,
    /// Longest wait for one frame's detections (keep it under the pipeline's
    /// stall timeout: the worker's heartbeat waits with it).
    pub max_wait: Duration,
    /// Longest wait for the model to load.
    pub load_timeout: Duration,
    /// Where each child's private scratch directory is made
    /// (`safe-yolo-<model>-<daemon pid>-<n>`, mode 0700, removed once the child
    /// is reaped); the child gets it as `--scratch DIR` and as `TMPDIR`, `HOME`
    /// and `XDG_CACHE_HOME`.
    pub scratch_root: PathBuf,
    /// Told of faults and recoveries.
    pub events: Arc<dyn Fn(ChildEvent) + Send + Sync>,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("model", &self.model)
            .field("program", &self.program)
            .field("args", &self.args)
            .field("max_wait", &self.max_wait)
            .field("scratch_root", &self.scratch_root)
            .finish_non_exhaustive()
    }
}

/// A control socket pair: one end per side.
fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)
}

/// A child's private scratch directory, removed when dropped.
#[derive(Debug)]
struct Scratch(PathBuf);

/// Numbers the scratch directories of this daemon.
static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    /// A new directory under `root`, readable by this user alone. A name taken
    /// already (a stale one, or planted) is never reused: the next is tried.
    fn create(root: &Path, model: &str) -> Result<Self, ProcessError> {
        let model: String = model
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut last = None;
        for _ in 0..100 {
            let n = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
            let dir = root.join(format!("safe-yolo-{model}-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(source) => {
                    return Err(ProcessError::Scratch {
                        root: root.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Err(ProcessError::Scratch {
            root: root.to_path_buf(),
            source: last.unwrap_or_else(|| std::io::Error::other("no free name")),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running child with its channel and frame slot.
struct Running {
    child: Child,
    /// Dropped after the child is reaped (fields drop after `Drop::drop`).
    scratch: Scratch,
    /// The sandbox it reported (`None`: unsandboxed).
    sandbox: Option<SandboxReport>,
    socket: OwnedFd,
    slot: Option<Shm>,
    seq: u64,
    buf: Vec<u8>,
    /// Moving average of the answer time.
    latency: Option<Duration>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Killed and reaped: never a zombie, never two children per worker.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started child, its model and classes; or why it did not start.
type Started = Result<(Running, ModelInfo, Vec<String>), ProcessError>;

/// Starts a child and waits until it loaded the model.
fn start(spec: &ChildSpec) -> Started {
    let (ours, theirs) = channel().map_err(|source| ProcessError::Spawn {
        program: spec.program.clone(),
        source,
    })?;
    let scratch = Scratch::create(&spec.scratch_root, &spec.model)?;
    let child = Command::new(&spec.program)
        .args(&spec.args)
        .arg("--scratch")
        .arg(&scratch.0)
        // Temporary files, and the caches libraries keep under the home
        // directory (ONNX Runtime's), go to the child's own directory.
        .env("TMPDIR", &scratch.0)
        .env("HOME", &scratch.0)
        .env("XDG_CACHE_HOME", &scratch.0)
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            program: spec.program.clone(),
            source,
        })?;
    let mut running = Running {
        child,
        scratch,
        sandbox: None,
        socket: ours,
        slot: None,
        seq: 0,
        buf: Vec::new(),
        latency: None,
    };
    rustix::net::sockopt::set_socket_timeout(
        &running.socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(spec.load_timeout),
    )
    .map_err(|e| ProcessError::Channel(WireError::Io(e.into())))?;
    match running.receive(spec.load_timeout)? {
        FromChild::Loaded {
            info,
            classes,
            sandbox,
        } => {
            running.sandbox = sandbox;
            log_sandbox(&spec.model, running.child.id(), sandbox);
            Ok((running, info, classes))
        }
        FromChild::LoadFailed { error } => Err(ProcessError::LoadFailed { error }),
        other => Err(ProcessError::Protocol {
            reason: format!("{other:?} before the model was loaded"),
        }),
    }
}

/// Logs a new child's sandbox; a weaker one than asked for warns, once per daemon.
fn log_sandbox(model: &str, pid: u32, sandbox: Option<SandboxReport>) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let weak = match sandbox {
        None => Some("the detector process runs unsandboxed (detector.sandbox = false)"),
        Some(r) if r.landlock != sandbox::LandlockLevel::Full => Some(
            "the kernel does not enforce the whole Landlock ruleset: the detector process's file access is limited by the seccomp filter and its user only",
        ),
        Some(_) => None,
    };
    let text = sandbox.map_or_else(|| "none".to_owned(), |r| r.to_string());
    match weak {
        Some(warning) if !WARNED.swap(true, Ordering::Relaxed) => {
            tracing::warn!(model, pid, sandbox = text, "{warning}");
        }
        _ => tracing::info!(model, pid, sandbox = text, "detector process sandboxed"),
    }
}

impl Running {
    /// The next message, or why there is none within `wait`.
    fn receive(&mut self, wait: Duration) -> Result<FromChild, ProcessError> {
        match wire::recv::<FromChild>(&self.socket, &mut self.buf) {
            Ok((msg, _)) => Ok(msg),
            Err(WireError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(ProcessError::Hung { waited: wait })
            }
            Err(WireError::Closed | WireError::Io(_)) => Err(self.ended()),
            Err(e) => Err(ProcessError::Channel(e)),
        }
    }

    /// How the child ended (it is reaped; a live one is killed first).
    fn ended(&mut self) -> ProcessError {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                // The channel broke but the child runs: give it a moment to go
                // (the detect worker's own thread, never the async reactor).
                #[allow(clippy::disallowed_methods, reason = "a detect worker thread")]
                std::thread::sleep(Duration::from_millis(20));
                self.child.try_wait().ok().flatten()
            }
        };
        let status = status.map_or_else(
            || "closed its channel".to_owned(),
            |s| match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
                _ => s.to_string(),
            },
        );
        ProcessError::Ended { status }
    }

    /// Detects `frame` through the child within `wait`.
    fn detect(
        &mut self,
        frame: &RgbFrame,
        wait: Duration,
        classes: &[Arc<str>],
    ) -> Result<Vec<Detection>, ProcessError> {
        let data = frame.data();
        if self.slot.as_ref().is_none_or(|s| s.len() < data.len()) {
            let slot = Shm::create(data.len()).map_err(|source| ProcessError::Slot {
                len: data.len(),
                source,
            })?;
            let sent = wire::send(
                self.socket.as_fd(),
                &ToChild::Slot { len: slot.len() },
                Some(slot.fd().as_fd()),
            );
            sent.map_err(|e| self.fault_of(e))?;
            self.slot = Some(slot);
        }
        let Some(target) = self.slot.as_mut().and_then(Shm::as_mut_slice) else {
            return Err(ProcessError::Protocol {
                reason: "no writable frame slot".into(),
            });
        };
        target[..data.len()].copy_from_slice(data);
        self.seq += 1;
        let seq = self.seq;
        rustix::net::sockopt::set_socket_timeout(
            &self.socket,
            rustix::net::sockopt::Timeout::Recv,
            Some(wait),
        )
        .map_err(|e| ProcessError::Channel(WireError::Io(e.into())))?;
        let t0 = Instant::now();
        let sent = wire::send(
            self.socket.as_fd(),
            &ToChild::Frame {
                seq,
                width: frame.width(),
                height: frame.height(),
            },
            None,
        );
        sent.map_err(|e| self.fault_of(e))?;
        let answer = self.receive(wait)?;
        let took = t0.elapsed();
        self.latency = Some(self.latency.map_or(took, |l| (l * 7 + took) / 8));
        match answer {
            FromChild::Found { seq: s, found } if s == seq => found
                .into_iter()
                .map(|d| {
                    let id = d.class_id;
                    d.into_detection(classes)
                        .ok_or_else(|| ProcessError::Protocol {
                            reason: format!("class index {id} out of range"),
                        })
                })
                .collect(),
            FromChild::Failed { seq: s, error } if s == seq => {
                Err(ProcessError::FrameFailed { error })
            }
            other => Err(ProcessError::Protocol {
                reason: format!("{other:?} in answer to frame {seq}"),
            }),
        }
    }

    fn fault_of(&mut self, e: WireError) -> ProcessError {
        match e {
            WireError::Io(_) | WireError::Closed => self.ended(),
            e => ProcessError::Channel(e),
        }
    }
}

/// The name of a fatal signal, for the fault's text.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

/// Where the supervisor is.
enum State {
    Running(Running),
    /// No child: a new one starts at `next_try` (or is starting).
    Down {
        reason: String,
        next_try: Instant,
        backoff: Duration,
        starting: Option<JoinHandle<Started>>,
    },
}

/// A [`Detector`] whose model runs in a supervised child process.
pub struct ProcessDetector {
    spec: Arc<ChildSpec>,
    info: ModelInfo,
    classes: Arc<[Arc<str>]>,
    state: State,
}

impl std::fmt::Debug for ProcessDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessDetector")
            .field("spec", &self.spec)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl ProcessDetector {
    /// Starts the child and waits until its model is loaded (a model that does
    /// not load fails here, with the child's error text).
    pub fn start(spec: ChildSpec) -> Result<Self, DetectError> {
        let (running, mut info, classes) = start(&spec).map_err(DetectError::Process)?;
        let classes: Arc<[Arc<str>]> = classes.iter().map(|c| Arc::from(c.as_str())).collect();
        info.classes = Arc::clone(&classes);
        tracing::info!(model = %spec.model, pid = running.child.id(), "detector process started");
        Ok(Self {
            spec: Arc::new(spec),
            info,
            classes,
            state: State::Running(running),
        })
    }

    /// The running child's process id.
    pub fn pid(&self) -> Option<u32> {
        match &self.state {
            State::Running(r) => Some(r.child.id()),
            State::Down { .. } => None,
        }
    }

    /// The running child's scratch directory.
    pub fn scratch(&self) -> Option<&Path> {
        match &self.state {
            State::Running(r) => Some(&r.scratch.0),
            State::Down { .. } => None,
        }
    }

    /// The running child's sandbox (`None` also when it runs unsandboxed).
    pub fn sandbox(&self) -> Option<SandboxReport> {
        match &self.state {
            State::Running(r) => r.sandbox,
            State::Down { .. } => None,
        }
    }

    /// Moves to `Down` after `e`, killing the child, and reports the fault.
    fn fail(&mut self, e: &ProcessError, backoff: Duration) {
        let reason = error_chain(e);
        tracing::error!(model = %self.spec.model, reason, "detector process failed; frames are not detected until it restarts");
        (self.spec.events)(ChildEvent::Fault {
            model: self.spec.model.clone(),
            reason: reason.clone(),
            outage_begins: matches!(self.state, State::Running(_)),
        });
        // Dropping `Running` kills and reaps the child.
        self.state = State::Down {
            reason,
            next_try: Instant::now() + backoff,
            backoff,
            starting: None,
        };
    }

    /// A frame's deadline, from the measured latency.
    fn wait(&self, r: &Running) -> Duration {
        r.latency
            .map_or(self.spec.max_wait, |l| l * WAIT_FACTOR)
            .clamp(MIN_FRAME_WAIT, self.spec.max_wait.max(MIN_FRAME_WAIT))
    }

    /// While down: takes a child that finished starting, or starts one when
    /// its backoff elapsed. Never waits.
    fn poll_restart(&mut self) {
        let State::Down {
            next_try,
            backoff,
            starting,
            ..
        } = &mut self.state
        else {
            return;
        };
        if let Some(h) = starting.as_ref()
            && h.is_finished()
        {
            let backoff = *backoff;
            let outcome = starting
                .take()
                .map(|h| h.join())
                .unwrap_or_else(|| Err(Box::new("no restart thread")));
            match outcome {
                Ok(Ok((running, _, classes))) if classes.len() == self.classes.len() => {
                    let pid = running.child.id();
                    tracing::info!(model = %self.spec.model, pid, "detector process restarted; frames are detected again");
                    (self.spec.events)(ChildEvent::Recovered {
                        model: self.spec.model.clone(),
                        pid,
                    });
                    self.state = State::Running(running);
                }
                Ok(Ok(_)) => {
                    let e = ProcessError::Protocol {
                        reason: "the restarted model has other classes".into(),
                    };
                    self.fail(&e, (backoff * 2).min(BACKOFF_MAX));
                }
                Ok(Err(e)) => self.fail(&e, (backoff * 2).min(BACKOFF_MAX)),
                Err(_) => {
                    let e = ProcessError::Protocol {
                        reason: "the restart thread panicked".into(),
                    };
                    self.fail(&e, (backoff * 2).min(BACKOFF_MAX));
                }
            }
            return;
        }
        if starting.is_none() && Instant::now() >= *next_try {
            let spec = Arc::clone(&self.spec);
            match std::thread::Builder::new()
                .name(format!("restart-{}", spec.model))
                .spawn(move || start(&spec))
            {
                Ok(h) => *starting = Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the detector restart thread");
                    *next_try = Instant::now() + *backoff;
                }
            }
        }
    }
}

impl Detector for ProcessDetector {
    fn detect(&mut self, frame: &RgbFrame) -> Result<Vec<Detection>, DetectError> {
        self.poll_restart();
        let wait = match &self.state {
            State::Running(r) => self.wait(r),
            State::Down { reason, .. } => {
                return Err(DetectError::Process(ProcessError::Restarting {
                    reason: reason.clone(),
                }));
            }
        };
        let classes = Arc::clone(&self.classes);
        let State::Running(r) = &mut self.state else {
            return Err(DetectError::Process(ProcessError::Restarting {
                reason: "no detector process".into(),
            }));
        };
        match r.detect(frame, wait, &classes) {
            Ok(found) => Ok(found),
            // A frame the model refused: the child goes on.
            Err(e @ ProcessError::FrameFailed { .. }) => Err(DetectError::Process(e)),
            Err(e) => {
                self.fail(&e, BACKOFF_MIN);
                Err(DetectError::Process(e))
            }
        }
    }

    fn info(&self) -> &ModelInfo {
        &self.info
    }
}

/// Tells the daemon the child could not load (or sandbox itself), and returns
/// the error for the child's own exit.
fn refuse(control: &OwnedFd, e: ProcessError) -> ProcessError {
    let error = error_chain(&e);
    if let Err(w) = wire::send(control.as_fd(), &FromChild::LoadFailed { error }, None) {
        return w.into();
    }
    e
}

/// The child's side: sandboxes itself (`sandbox`: Landlock first, the seccomp
/// filter once the model is loaded), loads the model with `load`, reports it on
/// `control` (the socket the daemon passed as standard input), then detects
/// every frame the daemon puts in the shared slot until the daemon closes the
/// channel. `scratch` is the child's scratch directory (fault commands wait
/// there in test builds).
pub fn serve(
    control: OwnedFd,
    scratch: Option<&Path>,
    sandbox: Option<&SandboxPolicy>,
    load: impl FnOnce() -> Result<Box<dyn Detector>, DetectError>,
) -> Result<(), ProcessError> {
    // A segfault (or `kill -SEGV`) ends this process at once: the daemon restarts it.
    signals::default_fatal_signals().map_err(ProcessError::Setup)?;
    // Still one thread: every thread the inference library starts inherits it.
    let landlock = match sandbox {
        Some(policy) => {
            match sandbox::no_new_privs().and_then(|()| sandbox::restrict_filesystem(policy)) {
                Ok(l) => Some(l),
                Err(e) => return Err(refuse(&control, ProcessError::Sandbox(e))),
            }
        }
        None => None,
    };
    let mut detector = match load() {
        Ok(d) => d,
        Err(e) => {
            return Err(refuse(
                &control,
                ProcessError::LoadFailed {
                    error: error_chain(&e),
                },
            ));
        }
    };
    // The model is read and verified: from here on only inference and the channel.
    let report = match landlock {
        Some((landlock, landlock_abi)) => {
            match sandbox::restrict_syscalls(std::os::fd::AsRawFd::as_raw_fd(&control)) {
                Ok(()) => Some(SandboxReport {
                    landlock,
                    landlock_abi,
                    seccomp: true,
                }),
                Err(e) => return Err(refuse(&control, ProcessError::Sandbox(e))),
            }
        }
        None => None,
    };
    let info = detector.info().clone();
    let classes = info.classes.iter().map(|c| c.to_string()).collect();
    wire::send(
        control.as_fd(),
        &FromChild::Loaded {
            info,
            classes,
            sandbox: report,
        },
        None,
    )?;
    #[cfg(not(feature = "fault-injection"))]
    let _ = scratch;
    let mut slot: Option<Shm> = None;
    let mut buf = Vec::new();
    loop {
        let (msg, fd) = match wire::recv::<ToChild>(&control, &mut buf) {
            Ok(m) => m,
            // The daemon closed the channel (it stops or replaces us).
            Err(WireError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match msg {
            ToChild::Slot { len } => {
                let fd = fd.ok_or_else(|| ProcessError::Protocol {
                    reason: "a slot without its descriptor".into(),
                })?;
                slot = Some(
                    Shm::map(fd, len, false)
                        .map_err(|source| ProcessError::Slot { len, source })?,
                );
            }
            ToChild::Frame { seq, width, height } => {
                #[cfg(feature = "fault-injection")]
                if let Some(error) = scratch.and_then(fault::obey) {
                    wire::send(control.as_fd(), &FromChild::Failed { seq, error }, None)?;
                    continue;
                }
                let answer = detect_slot(detector.as_mut(), slot.as_ref(), width, height)
                    .map_or_else(
                        |error| FromChild::Failed { seq, error },
                        |found| FromChild::Found {
                            seq,
                            found: found.iter().map(WireDetection::from).collect(),
                        },
                    );
                wire::send(control.as_fd(), &answer, None)?;
            }
        }
    }
}

/// Detects the frame of `width` x `height` in `slot`.
fn detect_slot(
    detector: &mut dyn Detector,
    slot: Option<&Shm>,
    width: u32,
    height: u32,
) -> Result<Vec<Detection>, String> {
    let slot = slot.ok_or("a frame before any slot")?;
    let len = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .filter(|n| *n <= slot.len())
        .ok_or_else(|| {
            format!(
                "a {width}x{height} frame does not fit the slot of {} bytes",
                slot.len()
            )
        })?;
    // One copy out of the slot, straight into the frame's shared buffer.
    let frame = RgbFrame::new(width, height, Arc::<[u8]>::from(&slot.as_slice()[..len]))
        .ok_or_else(|| format!("a {width}x{height} frame is empty"))?;
    detector.detect(&frame).map_err(|e| error_chain(&e))
}

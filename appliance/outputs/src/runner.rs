//! The runner: owns a backend, applies the driver's levels, debounces inputs.
//!
//! One task (on the caller's tokio runtime, or on a dedicated thread with its own
//! runtime) owns the [`LineBackend`]. Commands arrive over a bounded channel through an
//! [`OutputsHandle`]; every tick (10 ms by default) the runner polls the inputs, asks
//! the [`Driver`] for the level of every line and writes the lines whose level changed.
//!
//! Fail-safe duties:
//! - On start, every line is written to its safe level before anything else.
//! - On [`Command::Shutdown`], or when every handle is dropped, every line goes to its
//!   safe level (retried for a few ticks if writes fail) and the runner stops.
//! - If the runner is dropped anyway (task aborted, runtime shut down), a guard writes
//!   the safe levels from its `Drop`.
//! - A failed write is logged, counted and retried on the next tick; nothing panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use safe_yolo_domain::OutputId;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backend::{InputEdge, LineBackend};
use crate::debounce::{Debounced, Debouncer};
use crate::driver::{Activation, Driver, DriverError, DriverStatus, Mode};
use crate::spec::{AckTarget, ActionSpec, InputRole, OutputRole, OutputSpec, SafeState, Source};

/// Capacity of the command channel.
pub const COMMAND_CAPACITY: usize = 256;
/// Ticks the runner keeps retrying the safe state on shutdown before giving up.
const SHUTDOWN_RETRIES: u32 = 20;
/// After the first failure in a streak, a write error is logged once per this many.
const ERROR_LOG_EVERY: u64 = 100;

/// Why a request to the outputs failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputsError {
    /// The driver refused the request.
    #[error("request refused")]
    Refused(#[source] DriverError),
    /// The command channel is full (only from the `try_` methods).
    #[error("the outputs command queue is full")]
    Busy,
    /// The runner has stopped.
    #[error("the outputs runner has stopped")]
    Stopped,
    /// The dedicated thread or its runtime could not be started.
    #[error("cannot start the outputs thread: {detail}")]
    Spawn {
        /// The OS error, rendered.
        detail: String,
    },
}

/// A command to the runner. Built by [`OutputsHandle`]'s methods.
#[derive(Debug)]
pub enum Command {
    /// Start or refresh an action on some outputs.
    Activate {
        /// Who asks.
        source: Source,
        /// The outputs to drive.
        outputs: Vec<OutputId>,
        /// What they do.
        action: ActionSpec,
        /// Capture time of the camera frame that caused it, for the
        /// glass-to-output latency (none for API and test activations).
        origin: Option<SystemTime>,
        /// Where to send the outcome, if the sender waits for it.
        reply: Option<oneshot::Sender<Result<Activation, DriverError>>>,
    },
    /// End the actions an acknowledgement covers.
    Acknowledge {
        /// Which actions.
        target: AckTarget,
        /// Where to send the number of (source, output) actions ended.
        reply: Option<oneshot::Sender<usize>>,
    },
    /// An operator test of one output.
    Test {
        /// The output.
        output: OutputId,
        /// How long.
        duration: Duration,
        /// Where to send the outcome.
        reply: Option<oneshot::Sender<Result<(), DriverError>>>,
    },
    /// The pipeline's health: `true` is a heartbeat, `false` an explicit fault.
    PipelineHealth {
        /// Whether the pipeline is alive.
        alive: bool,
    },
    /// Whether any camera is watched (the healthy line is off while none is).
    Guarding {
        /// Some camera is watched.
        guarding: bool,
    },
    /// Put every line in its safe state and stop.
    Shutdown,
}

/// A debounced input change, broadcast to subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputEvent {
    /// The input.
    pub role: InputRole,
    /// Its new debounced level (`true` = pressed / open).
    pub active: bool,
    /// When it became stable, in milliseconds since the runner started.
    pub at_ms: u64,
}

/// One output line as it is on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LineStatus {
    /// The output.
    pub id: OutputId,
    /// Its role.
    pub role: OutputRole,
    /// Its safe state.
    pub safe_state: SafeState,
    /// The logical level last written successfully (`false` before the first success).
    pub on: bool,
    /// The logical level the driver wants now.
    pub desired: bool,
    /// Whether `on` is confirmed: a write succeeded and the latest one did not fail.
    pub confirmed: bool,
}

/// A debounced input level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InputLevel {
    /// The input.
    pub role: InputRole,
    /// Its debounced level.
    pub active: bool,
}

/// A status snapshot for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OutputsStatus {
    /// The backend's kind.
    pub backend: &'static str,
    /// Milliseconds since the runner started.
    pub uptime_ms: u64,
    /// Every output line: what is on the wire and what the driver wants.
    pub outputs: Vec<LineStatus>,
    /// The driver's mode, desired levels, active actions and tests.
    pub driver: DriverStatus,
    /// The inputs' debounced levels.
    pub inputs: Vec<InputLevel>,
    /// Write errors since start.
    pub write_errors: u64,
    /// Input read errors since start.
    pub read_errors: u64,
}

/// What the runner reports when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerReport {
    /// Whether every line was confirmed at its safe level.
    pub safe: bool,
    /// Write errors over the runner's life.
    pub write_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    write_errors: AtomicU64,
    read_errors: AtomicU64,
}

/// The cheap, cloneable front of a running [`OutputsRunner`].
#[derive(Debug, Clone)]
pub struct OutputsHandle {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<OutputsStatus>,
    events: broadcast::Sender<InputEvent>,
    counters: Arc<Counters>,
    specs: Arc<[OutputSpec]>,
}

impl OutputsHandle {
    async fn send(&self, cmd: Command) -> Result<(), OutputsError> {
        self.tx.send(cmd).await.map_err(|_| OutputsError::Stopped)
    }

    fn try_send(&self, cmd: Command) -> Result<(), OutputsError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => OutputsError::Busy,
            mpsc::error::TrySendError::Closed(_) => OutputsError::Stopped,
        })
    }

    /// Starts (or refreshes) an action and waits for the outcome.
    pub async fn activate(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
    ) -> Result<Activation, OutputsError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Activate {
            source,
            outputs,
            action,
            origin: None,
            reply: Some(reply),
        })
        .await?;
        rx.await
            .map_err(|_| OutputsError::Stopped)?
            .map_err(OutputsError::Refused)
    }

    /// Queues an activation without waiting (for synchronous callers); the runner logs
    /// a refusal.
    pub fn try_activate(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
    ) -> Result<(), OutputsError> {
        self.try_activate_from(source, outputs, action, None)
    }

    /// [`Self::try_activate`] for an alarm decided on a camera frame captured at
    /// `origin`: once the lines are written, the runner reports the time from
    /// capture to the line change to its latency observer.
    pub fn try_activate_from(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
        origin: Option<SystemTime>,
    ) -> Result<(), OutputsError> {
        self.try_send(Command::Activate {
            source,
            outputs,
            action,
            origin,
            reply: None,
        })
    }

    /// Queues an acknowledgement without waiting (for synchronous callers).
    pub fn try_acknowledge(&self, target: AckTarget) -> Result<(), OutputsError> {
        self.try_send(Command::Acknowledge {
            target,
            reply: None,
        })
    }

    /// Acknowledges actions; returns how many (source, output) actions ended.
    pub async fn acknowledge(&self, target: AckTarget) -> Result<usize, OutputsError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Acknowledge {
            target,
            reply: Some(reply),
        })
        .await?;
        rx.await.map_err(|_| OutputsError::Stopped)
    }

    /// The operator-only manual test: drives `output` to its active level (a healthy
    /// output is dropped instead) for `duration`. Refused unless the pipeline is alive.
    pub async fn test(&self, output: OutputId, duration: Duration) -> Result<(), OutputsError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Test {
            output,
            duration,
            reply: Some(reply),
        })
        .await?;
        rx.await
            .map_err(|_| OutputsError::Stopped)?
            .map_err(OutputsError::Refused)
    }

    /// Reports the pipeline's health without waiting: call with `true` as a heartbeat
    /// (well within the health timeout, e.g. every quarter of it) and with `false` on a
    /// fault. A dropped heartbeat (`Busy`) is harmless if the next one gets through.
    pub fn pipeline_health(&self, alive: bool) -> Result<(), OutputsError> {
        self.try_send(Command::PipelineHealth { alive })
    }

    /// Tells the runner whether any camera is watched: while none is, the healthy
    /// line stays off (the appliance runs but guards nothing).
    pub async fn set_guarding(&self, guarding: bool) -> Result<(), OutputsError> {
        self.send(Command::Guarding { guarding }).await
    }

    /// Asks the runner to put every line in its safe state and stop.
    pub async fn shutdown(&self) -> Result<(), OutputsError> {
        self.send(Command::Shutdown).await
    }

    /// The latest status snapshot.
    pub fn status(&self) -> OutputsStatus {
        self.status.borrow().clone()
    }

    /// A receiver of status snapshots, to await changes.
    pub fn watch_status(&self) -> watch::Receiver<OutputsStatus> {
        self.status.clone()
    }

    /// Subscribes to debounced input changes.
    pub fn subscribe_inputs(&self) -> broadcast::Receiver<InputEvent> {
        self.events.subscribe()
    }

    /// Write errors since start.
    pub fn write_errors(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }

    /// The configured outputs.
    pub fn outputs(&self) -> &[OutputSpec] {
        &self.specs
    }
}

/// The non-blocking seam the pipeline and the API program against; [`OutputsHandle`]
/// implements it, and their unit tests can use a mock.
pub trait Outputs: Send + Sync {
    /// Queues an activation (see [`OutputsHandle::try_activate`]).
    fn try_activate(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
    ) -> Result<(), OutputsError>;
    /// Queues an acknowledgement (see [`OutputsHandle::try_acknowledge`]).
    fn try_acknowledge(&self, target: AckTarget) -> Result<(), OutputsError>;
    /// Reports the pipeline's health (see [`OutputsHandle::pipeline_health`]).
    fn pipeline_health(&self, alive: bool) -> Result<(), OutputsError>;
    /// The latest status snapshot.
    fn status(&self) -> OutputsStatus;
}

impl Outputs for OutputsHandle {
    fn try_activate(
        &self,
        source: Source,
        outputs: Vec<OutputId>,
        action: ActionSpec,
    ) -> Result<(), OutputsError> {
        OutputsHandle::try_activate(self, source, outputs, action)
    }
    fn try_acknowledge(&self, target: AckTarget) -> Result<(), OutputsError> {
        OutputsHandle::try_acknowledge(self, target)
    }
    fn pipeline_health(&self, alive: bool) -> Result<(), OutputsError> {
        OutputsHandle::pipeline_health(self, alive)
    }
    fn status(&self) -> OutputsStatus {
        OutputsHandle::status(self)
    }
}

/// Puts every line in its safe state when dropped (the last resort).
#[derive(Debug)]
struct SafeGuard<B: LineBackend> {
    backend: B,
    safe: Vec<(OutputId, bool)>,
}

impl<B: LineBackend> SafeGuard<B> {
    fn apply_safe(&mut self) -> bool {
        let mut ok = true;
        for (id, on) in &self.safe {
            if let Err(e) = self.backend.set_output(id, *on) {
                tracing::error!(output = %id, error = %e, "cannot put output in its safe state");
                ok = false;
            }
        }
        ok
    }
}

impl<B: LineBackend> Drop for SafeGuard<B> {
    fn drop(&mut self) {
        self.apply_safe();
    }
}

/// The runner. Build it with [`OutputsRunner::new`], then [`spawn`](OutputsRunner::spawn)
/// it on the current runtime or [`spawn_thread`](OutputsRunner::spawn_thread) it.
#[derive(Debug)]
pub struct OutputsRunner<B: LineBackend> {
    guard: SafeGuard<B>,
    driver: Driver,
    debounce: Vec<(InputRole, Duration)>,
    tick: Duration,
    rx: mpsc::Receiver<Command>,
    status: watch::Sender<OutputsStatus>,
    events: broadcast::Sender<InputEvent>,
    counters: Arc<Counters>,
    /// Capture times of the frames behind activations applied since the
    /// lines were last written.
    origins: Vec<(Source, SystemTime)>,
    observer: Option<LatencyObserver>,
}

/// Receives the glass-to-output latency (frame capture to the line write
/// that carried out the alarm's activation) of every alarm activation.
pub struct LatencyObserver(Box<ObserverFn>);

type ObserverFn = dyn Fn(&Source, Duration) + Send;

impl LatencyObserver {
    /// Wraps a callback.
    pub fn new(f: impl Fn(&Source, Duration) + Send + 'static) -> Self {
        Self(Box::new(f))
    }
}

impl std::fmt::Debug for LatencyObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LatencyObserver")
    }
}

fn line_statuses(
    specs: &[OutputSpec],
    desired: &[bool],
    written: &[Option<bool>],
    failing: &[u64],
) -> Vec<LineStatus> {
    specs
        .iter()
        .zip(desired)
        .zip(written.iter().zip(failing))
        .map(|((s, desired), (on, f))| LineStatus {
            id: s.id.clone(),
            role: s.role,
            safe_state: s.safe_state,
            on: on.unwrap_or(false),
            desired: *desired,
            confirmed: on.is_some() && *f == 0,
        })
        .collect()
}

/// Sleeps until `at`, or forever when there is nothing to wake for.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<B: LineBackend + 'static> OutputsRunner<B> {
    /// A runner for `backend`, driven by `driver`, with the inputs' debounce periods
    /// and the tick period. Returns the runner and its handle.
    pub fn new(
        backend: B,
        driver: Driver,
        debounce: Vec<(InputRole, Duration)>,
        tick: Duration,
    ) -> (Self, OutputsHandle) {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let specs: Arc<[OutputSpec]> = driver.specs().to_vec().into();
        let initial = OutputsStatus {
            backend: backend.kind(),
            uptime_ms: 0,
            outputs: line_statuses(
                &specs,
                &driver.levels(Duration::ZERO),
                &vec![None; specs.len()],
                &vec![0; specs.len()],
            ),
            driver: driver.status(Duration::ZERO),
            inputs: Vec::new(),
            write_errors: 0,
            read_errors: 0,
        };
        let (status, status_rx) = watch::channel(initial);
        let (events, _) = broadcast::channel(64);
        let counters = Arc::new(Counters::default());
        let safe = specs
            .iter()
            .map(|s| (s.id.clone(), s.safe_state.is_on()))
            .collect();
        let handle = OutputsHandle {
            tx,
            status: status_rx,
            events: events.clone(),
            counters: Arc::clone(&counters),
            specs,
        };
        let runner = Self {
            guard: SafeGuard { backend, safe },
            driver,
            debounce,
            tick: tick.max(Duration::from_millis(1)),
            rx,
            status,
            events,
            counters,
            origins: Vec::new(),
            observer: None,
        };
        (runner, handle)
    }

    /// Reports the glass-to-output latency of every alarm activation that
    /// carried its frame's capture time to `observer` (called on the
    /// runner's thread right after the line write: keep it cheap).
    pub fn with_latency_observer(mut self, observer: LatencyObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs on the current runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<RunnerReport> {
        tokio::spawn(self.run())
    }

    /// Runs on a dedicated thread with its own single-threaded runtime, so a busy main
    /// runtime cannot delay the outputs.
    pub fn spawn_thread(self) -> Result<std::thread::JoinHandle<RunnerReport>, OutputsError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| OutputsError::Spawn {
                detail: e.to_string(),
            })?;
        std::thread::Builder::new()
            .name("safe-yolo-outputs".into())
            .spawn(move || rt.block_on(self.run()))
            .map_err(|e| OutputsError::Spawn {
                detail: e.to_string(),
            })
    }

    /// The runner's loop; returns after a shutdown.
    pub async fn run(mut self) -> RunnerReport {
        let origin = Instant::now();
        let n = self.driver.specs().len();
        let mut written: Vec<Option<bool>> = vec![None; n];
        let mut failing: Vec<u64> = vec![0; n];

        // The safe state goes out before anything else.
        let start_levels = self.driver.levels(Duration::ZERO);
        self.write_levels(&start_levels, &mut written, &mut failing);
        tracing::info!(
            backend = self.guard.backend.kind(),
            outputs = n,
            "outputs in their safe state"
        );

        let mut debouncers: Vec<(InputRole, Debouncer)> = Vec::new();
        match self.guard.backend.read_inputs() {
            Ok(levels) => {
                for (role, level) in levels {
                    let period = self
                        .debounce
                        .iter()
                        .find(|(r, _)| *r == role)
                        .map_or(Duration::ZERO, |(_, p)| *p);
                    debouncers.push((role, Debouncer::new(period, level, Duration::ZERO)));
                }
            }
            Err(e) => {
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot read the initial input levels; inputs assumed inactive");
                for (role, period) in &self.debounce {
                    debouncers.push((*role, Debouncer::new(*period, false, Duration::ZERO)));
                }
            }
        }

        let mut interval = tokio::time::interval(self.tick);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut edges: Vec<InputEdge> = Vec::new();
        let mut shutdown_ticks = 0u32;
        loop {
            // Besides the tick, wake exactly when a pattern edge, an expiry, the health
            // timeout or a debounce period is due, so timing does not depend on the tick.
            let elapsed = origin.elapsed();
            let wake = self
                .driver
                .next_change(elapsed)
                .into_iter()
                .chain(debouncers.iter().filter_map(|(_, d)| d.due_at()))
                .filter(|t| *t > elapsed)
                .min()
                .map(|t| origin + t);
            let cmd = tokio::select! {
                biased;
                cmd = self.rx.recv(), if self.driver.mode(elapsed) != Mode::ShutDown => Some(cmd),
                _ = interval.tick() => None,
                () = sleep_until_opt(wake) => None,
            };
            let now = origin.elapsed();
            match cmd {
                Some(Some(cmd)) => self.handle(cmd, now),
                Some(None) => {
                    tracing::info!("every outputs handle dropped; shutting down");
                    self.driver.shutdown();
                }
                None => {}
            }

            // Inputs.
            edges.clear();
            if let Err(e) = self.guard.backend.poll_edges(&mut edges) {
                let count = self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                if count.is_multiple_of(ERROR_LOG_EVERY) {
                    tracing::warn!(error = %e, count = count + 1, "reading input edges failed");
                }
            }
            let mut changes: Vec<(InputRole, Debounced)> = Vec::new();
            for edge in &edges {
                if let Some((role, d)) = debouncers.iter_mut().find(|(r, _)| *r == edge.role)
                    && let Some(c) = d.edge(edge.active, now)
                {
                    changes.push((*role, c));
                }
            }
            for (role, d) in &mut debouncers {
                if let Some(c) = d.poll(now) {
                    changes.push((*role, c));
                }
            }
            for (role, c) in changes {
                self.on_input(role, c, now);
            }

            // Outputs.
            self.driver.prune(now);
            let levels = self.driver.levels(now);
            self.write_levels(&levels, &mut written, &mut failing);
            if !self.origins.is_empty() {
                let wrote = SystemTime::now();
                for (source, origin) in self.origins.drain(..) {
                    if let (Some(observe), Ok(lat)) = (&self.observer, wrote.duration_since(origin))
                    {
                        (observe.0)(&source, lat);
                    }
                }
            }
            self.publish(now, &written, &failing, &debouncers);

            if self.driver.mode(now) == Mode::ShutDown {
                let all_safe = failing.iter().all(|f| *f == 0);
                if all_safe || shutdown_ticks >= SHUTDOWN_RETRIES {
                    if all_safe {
                        tracing::info!("outputs shut down in their safe state");
                    } else {
                        tracing::error!(
                            "outputs shut down, but some lines could not be confirmed safe"
                        );
                    }
                    return RunnerReport {
                        safe: all_safe,
                        write_errors: self.counters.write_errors.load(Ordering::Relaxed),
                    };
                }
                shutdown_ticks += 1;
            }
        }
    }

    fn handle(&mut self, cmd: Command, now: Duration) {
        match cmd {
            Command::Activate {
                source,
                outputs,
                action,
                origin,
                reply,
            } => {
                let r = self.driver.activate(now, &source, &outputs, action);
                if let (Some(origin), Ok(Activation::Applied)) = (origin, &r) {
                    self.origins.push((source.clone(), origin));
                }
                match &r {
                    Ok(Activation::Applied) => {
                        tracing::info!(%source, outputs = ?outputs, action = ?action, "outputs activated");
                    }
                    Ok(Activation::AlreadyAcknowledged) => {
                        tracing::debug!(%source, "activation of an acknowledged event ignored");
                    }
                    Err(e) => tracing::warn!(%source, error = %e, "activation refused"),
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Command::Acknowledge { target, reply } => {
                let ended = self.driver.acknowledge(&target);
                tracing::info!(target = ?target, ended, "outputs acknowledged");
                if let Some(reply) = reply {
                    let _ = reply.send(ended);
                }
            }
            Command::Test {
                output,
                duration,
                reply,
            } => {
                let r = self.driver.test(now, &output, duration);
                match &r {
                    Ok(()) => {
                        tracing::info!(output = %output, duration_ms = millis(duration), "manual output test")
                    }
                    Err(e) => {
                        tracing::warn!(output = %output, error = %e, "manual output test refused")
                    }
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Command::Guarding { guarding } => {
                if !guarding {
                    tracing::warn!("not guarding: the healthy line stays off");
                }
                self.driver.set_guarding(guarding);
            }
            Command::PipelineHealth { alive } => {
                let before = self.driver.mode(now);
                self.driver.heartbeat(now, alive);
                let after = self.driver.mode(now);
                if before != after {
                    tracing::info!(from = ?before, to = ?after, "outputs mode changed");
                }
            }
            Command::Shutdown => {
                tracing::info!("outputs shutdown requested");
                self.driver.shutdown();
            }
        }
    }

    fn on_input(&mut self, role: InputRole, change: Debounced, now: Duration) {
        tracing::info!(input = %role, active = change.level, "input changed");
        if role == InputRole::AckButton && change.level && self.driver.mode(now) != Mode::ShutDown {
            let ended = self.driver.acknowledge(&AckTarget::All);
            tracing::info!(ended, "acknowledge button pressed");
        }
        // Nobody listening is fine.
        let _ = self.events.send(InputEvent {
            role,
            active: change.level,
            at_ms: millis(change.at),
        });
    }

    fn write_levels(&mut self, levels: &[bool], written: &mut [Option<bool>], failing: &mut [u64]) {
        for (i, (spec, on)) in self.guard.safe.iter().zip(levels).enumerate() {
            let id = &spec.0;
            if written[i] == Some(*on) && failing[i] == 0 {
                continue;
            }
            match self.guard.backend.set_output(id, *on) {
                Ok(()) => {
                    if failing[i] > 0 {
                        tracing::info!(output = %id, failed_writes = failing[i], "output write recovered");
                    }
                    written[i] = Some(*on);
                    failing[i] = 0;
                }
                Err(e) => {
                    let total = self.counters.write_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if failing[i].is_multiple_of(ERROR_LOG_EVERY) {
                        tracing::error!(output = %id, error = %e, streak = failing[i] + 1, total, "output write failed; retrying");
                    }
                    failing[i] += 1;
                }
            }
        }
    }

    fn publish(
        &self,
        now: Duration,
        written: &[Option<bool>],
        failing: &[u64],
        debouncers: &[(InputRole, Debouncer)],
    ) {
        let driver = self.driver.status(now);
        let desired: Vec<bool> = driver.outputs.iter().map(|o| o.on).collect();
        let status = OutputsStatus {
            backend: self.guard.backend.kind(),
            uptime_ms: millis(now),
            outputs: line_statuses(self.driver.specs(), &desired, written, failing),
            driver,
            inputs: debouncers
                .iter()
                .map(|(role, d)| InputLevel {
                    role: *role,
                    active: d.level(),
                })
                .collect(),
            write_errors: self.counters.write_errors.load(Ordering::Relaxed),
            read_errors: self.counters.read_errors.load(Ordering::Relaxed),
        };
        self.status.send_replace(status);
    }
}

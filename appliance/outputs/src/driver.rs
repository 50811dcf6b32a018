//! The pure output state machine: specs + actions + health + time -> line levels.
//!
//! The driver never does I/O and never reads a clock: every method that depends on time
//! takes `now`, a monotonic [`Duration`] since an arbitrary origin (the runner uses the
//! time since it started). Levels are logical (`true` = output active); the mapping to
//! electrical levels (active-low) is the backend's business.
//!
//! Priority, highest first:
//! 1. Shut down, or the pipeline is not alive (no heartbeat yet, an explicit fault, or
//!    no heartbeat within the health timeout): every line at its configured safe level.
//! 2. An operator test on the line: on for the test's duration (a healthy line is
//!    dropped instead, to show the PLC a fault).
//! 3. Actions: a line is on when any action on it is on at `now`.
//! 4. Otherwise the line idles: off, except the healthy line, which is on.

use std::collections::VecDeque;
use std::time::Duration;

use safe_yolo_domain::OutputId;
use serde::Serialize;

use crate::spec::{
    AckTarget, ActionSpec, Ending, OutputRole, OutputSpec, Pattern, SafeState, Source,
};

/// How many acknowledged sources are remembered, so that a rule re-sending an
/// already acknowledged event does not restart its siren.
const ACKED_MEMORY: usize = 256;

/// Why the driver refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Two outputs share an identifier.
    #[error("output {id} is configured twice")]
    DuplicateOutput {
        /// The repeated identifier.
        id: OutputId,
    },
    /// A healthy output must be off in the safe state, or a PLC could not see a fault.
    #[error("output {id} has role healthy, so its safe_state must be off")]
    HealthySafeOn {
        /// The offending output.
        id: OutputId,
    },
    /// The health timeout is zero.
    #[error("the health timeout must be greater than zero")]
    ZeroHealthTimeout,
    /// The request names an output that is not configured.
    #[error("output {id} is not configured")]
    UnknownOutput {
        /// The unknown identifier.
        id: OutputId,
    },
    /// The request asks a healthy output to follow a rule action.
    #[error("output {id} has role healthy and cannot be driven by rule actions")]
    NotActionable {
        /// The offending output.
        id: OutputId,
    },
    /// A pulsed pattern with a zero on-time or off-time, or a zero duration.
    #[error("invalid action: {reason}")]
    InvalidAction {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An activation with no outputs.
    #[error("an activation must name at least one output")]
    NoOutputs,
    /// A manual test longer than allowed.
    #[error("a manual test lasts at most {max_ms} ms, {requested_ms} ms was requested")]
    TestTooLong {
        /// The requested duration in milliseconds.
        requested_ms: u128,
        /// The longest allowed duration in milliseconds.
        max_ms: u128,
    },
    /// A manual test while the outputs are held in their safe state.
    #[error("outputs are held in their safe state ({mode:?}); a manual test is refused")]
    NotRunning {
        /// The current mode.
        mode: Mode,
    },
    /// A request after shutdown.
    #[error("outputs are shut down")]
    ShutDown,
}

/// The driver's overall mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No heartbeat from the pipeline yet: safe state.
    Starting,
    /// The pipeline is alive: actions drive the outputs, the healthy line is on.
    Running,
    /// The pipeline reported a fault or missed its heartbeat: safe state.
    Faulted,
    /// Shut down for good: safe state.
    ShutDown,
}

/// Tunables of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverSettings {
    /// The pipeline is considered dead when no heartbeat arrived for this long.
    pub health_timeout: Duration,
    /// The longest manual test accepted.
    pub max_test: Duration,
    /// When set, a healthy output toggles with this half-period while the pipeline is
    /// alive instead of holding steady, for PLC watchdogs that must also catch a line
    /// frozen high (for example after a hard crash on a GPIO controller that keeps the
    /// last value of a released line).
    pub healthy_pulse: Option<Duration>,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            health_timeout: Duration::from_secs(2),
            max_test: Duration::from_secs(60),
            healthy_pulse: None,
        }
    }
}

/// What an activation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// The action is active (new, or refreshed if the source was already active).
    Applied,
    /// The source was acknowledged earlier; the repeated activation is ignored.
    AlreadyAcknowledged,
}

#[derive(Debug, Clone)]
struct Action {
    source: Source,
    output: usize,
    spec: ActionSpec,
    /// The phase origin of a pulsed pattern.
    started: Duration,
    /// The latest activation, from which a timed action's duration runs.
    refreshed: Duration,
}

impl Action {
    fn deadline(&self) -> Option<Duration> {
        match self.spec.ending {
            Ending::UntilAck => None,
            Ending::After { duration } => Some(self.refreshed.saturating_add(duration)),
        }
    }

    fn is_live(&self, now: Duration) -> bool {
        self.deadline().is_none_or(|d| now < d)
    }

    fn level(&self, now: Duration) -> bool {
        self.is_live(now) && self.spec.pattern.level_at(now.saturating_sub(self.started))
    }
}

#[derive(Debug, Clone, Copy)]
struct TestRun {
    output: usize,
    until: Duration,
}

/// The output state machine. See the module documentation for the rules it applies.
#[derive(Debug, Clone)]
pub struct Driver {
    specs: Vec<OutputSpec>,
    settings: DriverSettings,
    actions: Vec<Action>,
    tests: Vec<TestRun>,
    acked: VecDeque<Source>,
    alive: bool,
    last_beat: Option<Duration>,
    shut_down: bool,
    /// Some camera is watched. Without one the appliance runs but guards
    /// nothing, and the healthy line says so by staying off.
    guarding: bool,
}

impl Driver {
    /// Builds a driver in the [`Mode::Starting`] state (every line safe).
    pub fn new(specs: Vec<OutputSpec>, settings: DriverSettings) -> Result<Self, DriverError> {
        if settings.health_timeout.is_zero() {
            return Err(DriverError::ZeroHealthTimeout);
        }
        if settings.healthy_pulse.is_some_and(|p| p.is_zero()) {
            return Err(DriverError::InvalidAction {
                reason: "the healthy pulse half-period must be greater than zero",
            });
        }
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.id == s.id) {
                return Err(DriverError::DuplicateOutput { id: s.id.clone() });
            }
            if s.role == OutputRole::Healthy && s.safe_state == SafeState::On {
                return Err(DriverError::HealthySafeOn { id: s.id.clone() });
            }
        }
        Ok(Self {
            specs,
            settings,
            actions: Vec::new(),
            tests: Vec::new(),
            acked: VecDeque::new(),
            alive: false,
            last_beat: None,
            shut_down: false,
            guarding: true,
        })
    }

    /// Whether the appliance guards anything (at least one camera is watched).
    /// While it does not, the healthy line is off even though the pipeline is
    /// alive, so a PLC tells "running and guarding" from "not guarding"; rule
    /// actions and operator tests work as usual (commissioning tests the lines).
    pub fn set_guarding(&mut self, guarding: bool) {
        self.guarding = guarding;
    }

    /// The configured outputs, in the order of [`Driver::levels`].
    pub fn specs(&self) -> &[OutputSpec] {
        &self.specs
    }

    /// The driver's settings.
    pub fn settings(&self) -> DriverSettings {
        self.settings
    }

    fn index_of(&self, id: &OutputId) -> Result<usize, DriverError> {
        self.specs
            .iter()
            .position(|s| s.id == *id)
            .ok_or_else(|| DriverError::UnknownOutput { id: id.clone() })
    }

    /// Starts (or refreshes) `action` from `source` on every output in `outputs`.
    ///
    /// The request is checked as a whole before anything changes. Re-activating an active
    /// source on the same output keeps the pulse phase and restarts a timed action's
    /// duration; a changed pattern restarts the phase. A source acknowledged earlier is
    /// ignored, so a rule that repeats its event does not re-sound an acknowledged siren.
    pub fn activate(
        &mut self,
        now: Duration,
        source: &Source,
        outputs: &[OutputId],
        action: ActionSpec,
    ) -> Result<Activation, DriverError> {
        if self.shut_down {
            return Err(DriverError::ShutDown);
        }
        if outputs.is_empty() {
            return Err(DriverError::NoOutputs);
        }
        if let Pattern::Pulsed { on, off } = action.pattern
            && (on.is_zero() || off.is_zero())
        {
            return Err(DriverError::InvalidAction {
                reason: "a pulsed pattern needs a non-zero on-time and off-time",
            });
        }
        if let Ending::After { duration } = action.ending
            && duration.is_zero()
        {
            return Err(DriverError::InvalidAction {
                reason: "a timed action needs a non-zero duration",
            });
        }
        let mut indices = Vec::with_capacity(outputs.len());
        for id in outputs {
            let i = self.index_of(id)?;
            if !self.specs[i].role.accepts_actions() {
                return Err(DriverError::NotActionable { id: id.clone() });
            }
            indices.push(i);
        }
        if self.acked.contains(source) {
            return Ok(Activation::AlreadyAcknowledged);
        }
        for i in indices {
            let existing = self
                .actions
                .iter_mut()
                .find(|a| a.output == i && a.source == *source && a.is_live(now));
            match existing {
                Some(a) => {
                    if a.spec.pattern != action.pattern {
                        a.started = now;
                    }
                    a.spec = action;
                    a.refreshed = now;
                }
                None => self.actions.push(Action {
                    source: source.clone(),
                    output: i,
                    spec: action,
                    started: now,
                    refreshed: now,
                }),
            }
        }
        Ok(Activation::Applied)
    }

    /// Ends every action matched by `target`; returns how many (per output) ended.
    pub fn acknowledge(&mut self, target: &AckTarget) -> usize {
        let before = self.actions.len();
        let mut ended = Vec::new();
        self.actions.retain(|a| {
            let hit = target.matches(&a.source);
            if hit && !ended.contains(&a.source) {
                ended.push(a.source.clone());
            }
            !hit
        });
        for s in ended {
            if !self.acked.contains(&s) {
                if self.acked.len() == ACKED_MEMORY {
                    self.acked.pop_front();
                }
                self.acked.push_back(s);
            }
        }
        before - self.actions.len()
    }

    /// Starts an operator test of one output for `duration`.
    ///
    /// Refused unless the pipeline is alive: the safe state always wins.
    pub fn test(
        &mut self,
        now: Duration,
        id: &OutputId,
        duration: Duration,
    ) -> Result<(), DriverError> {
        if self.shut_down {
            return Err(DriverError::ShutDown);
        }
        let output = self.index_of(id)?;
        if duration.is_zero() {
            return Err(DriverError::InvalidAction {
                reason: "a manual test needs a non-zero duration",
            });
        }
        if duration > self.settings.max_test {
            return Err(DriverError::TestTooLong {
                requested_ms: duration.as_millis(),
                max_ms: self.settings.max_test.as_millis(),
            });
        }
        let mode = self.mode(now);
        if mode != Mode::Running {
            return Err(DriverError::NotRunning { mode });
        }
        self.tests.retain(|t| t.output != output);
        self.tests.push(TestRun {
            output,
            until: now.saturating_add(duration),
        });
        Ok(())
    }

    /// Records the pipeline's health: `true` is a heartbeat, `false` an explicit fault.
    pub fn heartbeat(&mut self, now: Duration, alive: bool) {
        self.alive = alive;
        if alive {
            self.last_beat = Some(now);
        }
    }

    /// Shuts the driver down for good: every line goes to its safe level.
    pub fn shutdown(&mut self) {
        self.shut_down = true;
        self.actions.clear();
        self.tests.clear();
    }

    /// The driver's mode at `now`.
    pub fn mode(&self, now: Duration) -> Mode {
        if self.shut_down {
            return Mode::ShutDown;
        }
        match self.last_beat {
            None => Mode::Starting,
            Some(beat) if self.alive && now.saturating_sub(beat) < self.settings.health_timeout => {
                Mode::Running
            }
            Some(_) => Mode::Faulted,
        }
    }

    /// Forgets actions and tests that have ended by `now`.
    pub fn prune(&mut self, now: Duration) {
        self.actions.retain(|a| a.is_live(now));
        self.tests.retain(|t| now < t.until);
    }

    /// The logical level of output `index` at `now`.
    fn level(&self, index: usize, now: Duration, running: bool) -> bool {
        let spec = &self.specs[index];
        if !running {
            return spec.safe_state.is_on();
        }
        if self
            .tests
            .iter()
            .any(|t| t.output == index && now < t.until)
        {
            return !spec.idle_level();
        }
        if spec.role == OutputRole::Healthy {
            return self.guarding
                && self
                    .settings
                    .healthy_pulse
                    .is_none_or(|p| Pattern::Pulsed { on: p, off: p }.level_at(now));
        }
        self.actions
            .iter()
            .any(|a| a.output == index && a.level(now))
    }

    /// The logical level of every output at `now`, in the order of [`Driver::specs`].
    pub fn levels(&self, now: Duration) -> Vec<bool> {
        let running = self.mode(now) == Mode::Running;
        (0..self.specs.len())
            .map(|i| self.level(i, now, running))
            .collect()
    }

    /// The earliest time after `now` at which a level may change by itself (a pulse edge,
    /// an expiry or the health timeout), so a runner can sleep until then.
    pub fn next_change(&self, now: Duration) -> Option<Duration> {
        let mut best: Option<Duration> = None;
        let mut consider = |t: Duration| {
            if t > now {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        if let (Some(beat), true, false) = (self.last_beat, self.alive, self.shut_down) {
            consider(beat.saturating_add(self.settings.health_timeout));
        }
        for t in &self.tests {
            consider(t.until);
        }
        if let Some(p) = self.settings.healthy_pulse
            && self.mode(now) == Mode::Running
            && self.specs.iter().any(|s| s.role == OutputRole::Healthy)
        {
            let half = p.as_nanos().max(1);
            let to_edge = half - now.as_nanos() % half;
            consider(now.saturating_add(Duration::from_nanos(
                u64::try_from(to_edge).unwrap_or(u64::MAX),
            )));
        }
        for a in self.actions.iter().filter(|a| a.is_live(now)) {
            if let Some(d) = a.deadline() {
                consider(d);
            }
            if let Pattern::Pulsed { on, off } = a.spec.pattern {
                let period = on.saturating_add(off).as_nanos();
                let elapsed = now.saturating_sub(a.started).as_nanos();
                if period > 0 {
                    let phase = elapsed % period;
                    let to_edge = if phase < on.as_nanos() {
                        on.as_nanos() - phase
                    } else {
                        period - phase
                    };
                    let to_edge = u64::try_from(to_edge).unwrap_or(u64::MAX);
                    consider(now.saturating_add(Duration::from_nanos(to_edge)));
                }
            }
        }
        best
    }

    /// A snapshot of the driver for status reporting.
    pub fn status(&self, now: Duration) -> DriverStatus {
        let levels = self.levels(now);
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        DriverStatus {
            mode: self.mode(now),
            guarding: self.guarding,
            outputs: self
                .specs
                .iter()
                .zip(levels)
                .map(|(s, on)| OutputStatus {
                    id: s.id.clone(),
                    role: s.role,
                    safe_state: s.safe_state,
                    on,
                })
                .collect(),
            actions: self
                .actions
                .iter()
                .filter(|a| a.is_live(now))
                .map(|a| ActionStatus {
                    source: a.source.clone(),
                    output: self.specs[a.output].id.clone(),
                    action: a.spec,
                    active_for_ms: millis(now.saturating_sub(a.started)),
                    remaining_ms: a.deadline().map(|d| millis(d.saturating_sub(now))),
                })
                .collect(),
            tests: self
                .tests
                .iter()
                .filter(|t| now < t.until)
                .map(|t| TestStatus {
                    output: self.specs[t.output].id.clone(),
                    remaining_ms: millis(t.until.saturating_sub(now)),
                })
                .collect(),
        }
    }
}

/// A snapshot of the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DriverStatus {
    /// The overall mode.
    pub mode: Mode,
    /// Some camera is watched (false: the healthy line is off, see
    /// [`Driver::set_guarding`]).
    pub guarding: bool,
    /// Every output with its desired logical level.
    pub outputs: Vec<OutputStatus>,
    /// The active actions, one entry per (source, output).
    pub actions: Vec<ActionStatus>,
    /// The running manual tests.
    pub tests: Vec<TestStatus>,
}

/// One output in a [`DriverStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OutputStatus {
    /// The output.
    pub id: OutputId,
    /// Its role.
    pub role: OutputRole,
    /// Its safe state.
    pub safe_state: SafeState,
    /// Its desired logical level.
    pub on: bool,
}

/// One active action in a [`DriverStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ActionStatus {
    /// Who asked for it.
    pub source: Source,
    /// The output it drives.
    pub output: OutputId,
    /// What it does.
    pub action: ActionSpec,
    /// Time since the pattern started.
    pub active_for_ms: u64,
    /// Time left for a timed action; `None` for a latch.
    pub remaining_ms: Option<u64>,
}

/// One running manual test in a [`DriverStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TestStatus {
    /// The output under test.
    pub output: OutputId,
    /// Time left.
    pub remaining_ms: u64,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use safe_yolo_domain::RuleId;

    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn out(id: &str, role: OutputRole, safe: SafeState) -> OutputSpec {
        OutputSpec {
            id: OutputId::new(id).unwrap(),
            role,
            safe_state: safe,
            active_low: false,
        }
    }

    fn specs() -> Vec<OutputSpec> {
        vec![
            out("siren", OutputRole::Siren, SafeState::Off),
            out("stop", OutputRole::Relay, SafeState::On),
            out("healthy", OutputRole::Healthy, SafeState::Off),
            out("lamp", OutputRole::Generic, SafeState::Off),
        ]
    }

    fn id(s: &str) -> OutputId {
        OutputId::new(s).unwrap()
    }

    fn src(rule: &str, event: &str) -> Source {
        Source {
            rule: RuleId::new(rule).unwrap(),
            event: event.into(),
        }
    }

    fn driver() -> Driver {
        Driver::new(specs(), DriverSettings::default()).unwrap()
    }

    /// A driver with the pipeline alive at t=0 and heartbeats every 100 ms up to `until`.
    fn alive_driver() -> Driver {
        let mut d = driver();
        d.heartbeat(ms(0), true);
        d
    }

    fn beat_until(d: &mut Driver, from: u64, until: u64) {
        let mut t = from;
        while t <= until {
            d.heartbeat(ms(t), true);
            t += 100;
        }
    }

    #[test]
    fn starts_in_safe_state() {
        let d = driver();
        assert_eq!(d.mode(ms(0)), Mode::Starting);
        assert_eq!(d.levels(ms(0)), vec![false, true, false, false]);
        assert_eq!(d.levels(ms(10_000)), vec![false, true, false, false]);
    }

    #[test]
    fn alive_pipeline_idles_with_healthy_on() {
        let d = alive_driver();
        assert_eq!(d.mode(ms(10)), Mode::Running);
        assert_eq!(d.levels(ms(10)), vec![false, false, true, false]);
    }

    #[test]
    fn missed_heartbeat_is_a_fault() {
        let mut d = alive_driver();
        assert_eq!(d.mode(ms(1999)), Mode::Running);
        assert_eq!(d.mode(ms(2000)), Mode::Faulted);
        assert_eq!(d.levels(ms(2000)), vec![false, true, false, false]);
        d.heartbeat(ms(2500), true);
        assert_eq!(d.levels(ms(2500)), vec![false, false, true, false]);
        d.heartbeat(ms(2600), false);
        assert_eq!(d.mode(ms(2600)), Mode::Faulted);
        assert_eq!(d.levels(ms(2600)), vec![false, true, false, false]);
    }

    #[test]
    fn pulsed_siren_for_a_duration() {
        let mut d = alive_driver();
        let a = ActionSpec {
            pattern: Pattern::Pulsed {
                on: ms(200),
                off: ms(300),
            },
            ending: Ending::After { duration: ms(1200) },
        };
        assert_eq!(
            d.activate(ms(100), &src("r", "1"), &[id("siren")], a),
            Ok(Activation::Applied)
        );
        beat_until(&mut d, 100, 2000);
        let siren = |d: &Driver, t| d.levels(ms(t))[0];
        assert!(siren(&d, 100));
        assert!(siren(&d, 299));
        assert!(!siren(&d, 300));
        assert!(!siren(&d, 599));
        assert!(siren(&d, 600));
        assert!(siren(&d, 1100));
        assert!(siren(&d, 1299));
        // The duration (1200 ms from t=100) ends at t=1300, in the middle of an on-phase.
        assert!(!siren(&d, 1300));
        assert!(!siren(&d, 1600));
        assert_eq!(d.next_change(ms(100)), Some(ms(300)));
        assert_eq!(d.next_change(ms(300)), Some(ms(600)));
        assert_eq!(d.next_change(ms(1250)), Some(ms(1300)));
        d.prune(ms(1300));
        assert!(d.status(ms(1300)).actions.is_empty());
    }

    #[test]
    fn latched_relay_holds_until_ack() {
        let mut d = alive_driver();
        d.activate(ms(0), &src("r", "1"), &[id("stop")], ActionSpec::latch())
            .unwrap();
        beat_until(&mut d, 0, 60_000);
        assert!(d.levels(ms(60_000))[1]);
        assert_eq!(d.acknowledge(&AckTarget::Event("2".into())), 0);
        assert!(d.levels(ms(60_000))[1]);
        assert_eq!(d.acknowledge(&AckTarget::Event("1".into())), 1);
        assert!(!d.levels(ms(60_000))[1]);
        // The same event again is ignored; a new event latches again.
        assert_eq!(
            d.activate(
                ms(60_000),
                &src("r", "1"),
                &[id("stop")],
                ActionSpec::latch()
            ),
            Ok(Activation::AlreadyAcknowledged)
        );
        assert!(!d.levels(ms(60_000))[1]);
        d.activate(
            ms(60_000),
            &src("r", "2"),
            &[id("stop")],
            ActionSpec::latch(),
        )
        .unwrap();
        assert!(d.levels(ms(60_000))[1]);
    }

    #[test]
    fn refresh_keeps_phase_and_extends_duration() {
        let mut d = alive_driver();
        let a = ActionSpec {
            pattern: Pattern::Pulsed {
                on: ms(100),
                off: ms(100),
            },
            ending: Ending::After { duration: ms(500) },
        };
        d.activate(ms(0), &src("r", "1"), &[id("siren")], a)
            .unwrap();
        d.activate(ms(350), &src("r", "1"), &[id("siren")], a)
            .unwrap();
        beat_until(&mut d, 0, 2000);
        assert!(
            !d.levels(ms(350))[0],
            "phase kept: 350 is in an off half of the original phase"
        );
        assert!(d.levels(ms(600))[0], "still live after the first deadline");
        assert!(d.levels(ms(849))[0]);
        assert!(!d.levels(ms(850))[0], "ended 500 ms after the refresh");
        assert_eq!(d.status(ms(350)).actions.len(), 1);
        // A changed pattern restarts the phase.
        d.activate(ms(370), &src("r", "1"), &[id("siren")], ActionSpec::latch())
            .unwrap();
        assert!(d.levels(ms(375))[0]);
        assert!(d.levels(ms(5000))[0] == (d.mode(ms(5000)) == Mode::Running));
    }

    #[test]
    fn not_guarding_keeps_healthy_off_but_actions_and_tests_work() {
        let mut d = driver();
        d.heartbeat(ms(0), true);
        d.set_guarding(false);
        assert_eq!(d.mode(ms(10)), Mode::Running);
        assert!(!d.status(ms(10)).guarding);
        let healthy = |d: &Driver, t| d.levels(ms(t))[2];
        assert!(!healthy(&d, 10), "healthy on while nothing is guarded");
        d.test(ms(10), &id("siren"), ms(500)).unwrap();
        assert!(
            d.levels(ms(20))[0],
            "an operator test works while not guarding"
        );
        d.set_guarding(true);
        assert!(healthy(&d, 20), "healthy back on once a camera is watched");
    }

    #[test]
    fn healthy_rejects_actions_and_tests_drop_it() {
        let mut d = alive_driver();
        assert_eq!(
            d.activate(
                ms(0),
                &src("r", "1"),
                &[id("siren"), id("healthy")],
                ActionSpec::latch()
            ),
            Err(DriverError::NotActionable { id: id("healthy") })
        );
        assert!(!d.levels(ms(0))[0], "a rejected request changes nothing");
        d.test(ms(0), &id("healthy"), ms(500)).unwrap();
        d.test(ms(0), &id("lamp"), ms(300)).unwrap();
        assert_eq!(d.levels(ms(10)), vec![false, false, false, true]);
        assert_eq!(d.levels(ms(300)), vec![false, false, false, false]);
        assert_eq!(d.levels(ms(500)), vec![false, false, true, false]);
        assert!(matches!(
            d.test(ms(0), &id("lamp"), ms(61_000)),
            Err(DriverError::TestTooLong { .. })
        ));
        assert!(matches!(
            d.test(ms(0), &id("nope"), ms(100)),
            Err(DriverError::UnknownOutput { .. })
        ));
        assert!(matches!(
            d.test(ms(5000), &id("lamp"), ms(100)),
            Err(DriverError::NotRunning {
                mode: Mode::Faulted
            })
        ));
    }

    #[test]
    fn healthy_pulse_toggles_only_while_alive() {
        let settings = DriverSettings {
            healthy_pulse: Some(ms(250)),
            ..DriverSettings::default()
        };
        let mut d = Driver::new(specs(), settings).unwrap();
        assert!(!d.levels(ms(0))[2], "safe (off) before the first heartbeat");
        d.heartbeat(ms(0), true);
        beat_until(&mut d, 0, 1000);
        let healthy: Vec<bool> = [0, 249, 250, 499, 500, 750]
            .iter()
            .map(|t| d.levels(ms(*t))[2])
            .collect();
        assert_eq!(healthy, vec![true, true, false, false, true, false]);
        assert_eq!(d.next_change(ms(260)), Some(ms(500)));
        d.heartbeat(ms(1000), false);
        assert!(!d.levels(ms(1000))[2]);
        assert!(!d.levels(ms(1100))[2], "no toggling while faulted");
        assert!(
            Driver::new(
                specs(),
                DriverSettings {
                    healthy_pulse: Some(ms(0)),
                    ..settings
                }
            )
            .is_err()
        );
    }

    #[test]
    fn rejects_bad_configuration_and_actions() {
        let mut s = specs();
        s.push(out("siren", OutputRole::Siren, SafeState::Off));
        assert!(matches!(
            Driver::new(s, DriverSettings::default()),
            Err(DriverError::DuplicateOutput { .. })
        ));
        let s = vec![out("h", OutputRole::Healthy, SafeState::On)];
        assert!(matches!(
            Driver::new(s, DriverSettings::default()),
            Err(DriverError::HealthySafeOn { .. })
        ));
        let mut d = alive_driver();
        let bad = ActionSpec {
            pattern: Pattern::Pulsed {
                on: ms(0),
                off: ms(10),
            },
            ending: Ending::UntilAck,
        };
        assert!(matches!(
            d.activate(ms(0), &src("r", "1"), &[id("siren")], bad),
            Err(DriverError::InvalidAction { .. })
        ));
        assert_eq!(
            d.activate(ms(0), &src("r", "1"), &[], ActionSpec::latch()),
            Err(DriverError::NoOutputs)
        );
    }

    #[test]
    fn fault_suspends_actions_and_recovery_resumes_latches() {
        let mut d = alive_driver();
        d.activate(ms(0), &src("r", "1"), &[id("siren")], ActionSpec::latch())
            .unwrap();
        assert!(d.levels(ms(10))[0]);
        d.heartbeat(ms(20), false);
        assert_eq!(d.levels(ms(20)), vec![false, true, false, false]);
        d.heartbeat(ms(30), true);
        assert!(d.levels(ms(30))[0]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Beat(bool),
        Activate {
            rule: u8,
            event: u8,
            outputs: Vec<usize>,
            action: ActionSpec,
        },
        Ack(Option<u8>),
        Test(usize, u64),
        Wait(u64),
    }

    fn action_strategy() -> impl Strategy<Value = ActionSpec> {
        let pattern = prop_oneof![
            Just(Pattern::Steady),
            (1u64..500, 1u64..500).prop_map(|(on, off)| Pattern::Pulsed {
                on: ms(on),
                off: ms(off)
            }),
        ];
        let ending = prop_oneof![
            Just(Ending::UntilAck),
            (1u64..5000).prop_map(|d| Ending::After { duration: ms(d) }),
        ];
        (pattern, ending).prop_map(|(pattern, ending)| ActionSpec { pattern, ending })
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<bool>().prop_map(Op::Beat),
            (
                0u8..3,
                0u8..4,
                proptest::collection::vec(0usize..4, 1..3),
                action_strategy()
            )
                .prop_map(|(rule, event, outputs, action)| Op::Activate {
                    rule,
                    event,
                    outputs,
                    action
                }),
            proptest::option::of(0u8..4).prop_map(Op::Ack),
            (0usize..4, 1u64..3000).prop_map(|(o, d)| Op::Test(o, d)),
            (0u64..1500).prop_map(Op::Wait),
        ]
    }

    fn apply(d: &mut Driver, now: &mut u64, op: &Op) {
        let all = specs();
        match op {
            Op::Beat(alive) => d.heartbeat(ms(*now), *alive),
            Op::Activate {
                rule,
                event,
                outputs,
                action,
            } => {
                let ids: Vec<_> = outputs.iter().map(|i| all[*i].id.clone()).collect();
                let _ = d.activate(
                    ms(*now),
                    &src(&format!("r{rule}"), &event.to_string()),
                    &ids,
                    *action,
                );
            }
            Op::Ack(None) => {
                d.acknowledge(&AckTarget::All);
            }
            Op::Ack(Some(e)) => {
                d.acknowledge(&AckTarget::Event(e.to_string()));
            }
            Op::Test(o, dur) => {
                let _ = d.test(ms(*now), &all[*o].id, ms(*dur));
            }
            Op::Wait(w) => *now += w,
        }
        if now.is_multiple_of(3) {
            d.prune(ms(*now));
        }
    }

    fn safe_levels() -> Vec<bool> {
        specs().iter().map(|s| s.safe_state.is_on()).collect()
    }

    proptest! {
        #[test]
        fn after_shutdown_every_line_is_safe(
            ops in proptest::collection::vec(op_strategy(), 0..40),
            later in proptest::collection::vec(op_strategy(), 0..20),
            probe in 0u64..100_000,
        ) {
            let mut d = driver();
            let mut now = 0;
            for op in &ops { apply(&mut d, &mut now, op); }
            d.shutdown();
            prop_assert_eq!(d.levels(ms(now)), safe_levels());
            for op in &later { apply(&mut d, &mut now, op); }
            prop_assert_eq!(d.mode(ms(now + probe)), Mode::ShutDown);
            prop_assert_eq!(d.levels(ms(now + probe)), safe_levels());
        }

        #[test]
        fn when_not_running_every_line_is_safe_and_healthy_is_off(
            ops in proptest::collection::vec(op_strategy(), 0..60),
        ) {
            let mut d = driver();
            let mut now = 0;
            for op in &ops {
                apply(&mut d, &mut now, op);
                let levels = d.levels(ms(now));
                if d.mode(ms(now)) == Mode::Running {
                    let healthy_test = d.status(ms(now)).tests.iter().any(|t| t.output.as_str() == "healthy");
                    prop_assert_eq!(levels[2], !healthy_test, "healthy on while running, unless tested");
                    prop_assert!(!levels[1] || d.status(ms(now)).actions.iter().any(|a| a.output.as_str() == "stop")
                        || d.status(ms(now)).tests.iter().any(|t| t.output.as_str() == "stop"));
                } else {
                    prop_assert_eq!(levels, safe_levels());
                }
            }
        }

        #[test]
        fn a_latched_relay_stays_on_until_acknowledged(
            ops in proptest::collection::vec(op_strategy(), 0..60),
        ) {
            // Heartbeats keep the pipeline alive; other sources come and go, tests run,
            // yet the relay latched by event 9 stays on at every step until an ack covers it.
            let mut d = alive_driver();
            let latch = src("latch", "9");
            d.activate(ms(0), &latch, &[id("stop")], ActionSpec::latch()).unwrap();
            let mut now = 0;
            let mut acked = false;
            for op in &ops {
                // Nothing else touches the relay: no other source, no test on it.
                let op = match op {
                    Op::Beat(_) => Op::Beat(true),
                    Op::Test(1, _) => Op::Wait(0),
                    Op::Activate { rule, event, outputs, action } => Op::Activate {
                        rule: *rule,
                        event: *event,
                        outputs: outputs.iter().map(|o| if *o == 1 { 0 } else { *o }).collect(),
                        action: *action,
                    },
                    other => other.clone(),
                };
                apply(&mut d, &mut now, &op);
                if let Op::Ack(target) = &op {
                    acked |= target.is_none();
                }
                d.heartbeat(ms(now), true);
                prop_assert_eq!(d.levels(ms(now))[1], !acked);
            }
        }

        #[test]
        fn next_change_predicts_every_level_change(
            ops in proptest::collection::vec(op_strategy(), 0..30),
            step in 1u64..50,
            pulse in proptest::option::of(1u64..400),
        ) {
            let settings = DriverSettings { healthy_pulse: pulse.map(ms), ..DriverSettings::default() };
            let mut d = Driver::new(specs(), settings).unwrap();
            let mut now = 0;
            for op in &ops { apply(&mut d, &mut now, op); }
            // Sample forward: a level change never happens before the predicted time.
            let mut t = now;
            for _ in 0..200 {
                let next = d.next_change(ms(t));
                let before = d.levels(ms(t));
                let t2 = t + step;
                if d.levels(ms(t2)) != before {
                    let next = next.map(|n| n.as_millis());
                    prop_assert!(next.is_some_and(|n| n <= u128::from(t2)), "change at {t2} not predicted ({next:?})");
                }
                t = t2;
            }
        }
    }
}

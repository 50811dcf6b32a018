//! The simulated backend: records every output transition with a timestamp.
//!
//! Outputs are driven through embedded-hal [`OutputPin`]s ([`SimPin`]) like any other
//! backend, so the active-low mapping is exercised too. A [`SimHandle`] shares the
//! recorded history with tests and the daemon's status, and injects input edges.
//! [`SimBackend::with_log_file`] also appends each transition as one JSON line to a
//! file, so a test in another process can check the levels a daemon left behind
//! (for example its safe state after SIGTERM).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use embedded_hal::digital::{ErrorType, OutputPin};
use parking_lot::Mutex;
use safe_yolo_domain::OutputId;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::backend::{BackendError, InputEdge, LineBackend, PinBank};
use crate::spec::{InputRole, OutputSpec, logical_level};

/// Why the simulated backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The transition log file could not be opened.
    #[error("cannot open the simulated-output log {path}")]
    OpenLog {
        /// The log file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output list names an output twice.
    #[error("simulated backend: {0}")]
    Outputs(#[source] BackendError),
}

/// One recorded output transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Time since the backend was created (tokio's clock, so paused-time tests are exact).
    #[serde(rename = "t_us", with = "micros")]
    pub at: Duration,
    /// Wall-clock time in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The output.
    pub output: OutputId,
    /// The new logical level.
    pub on: bool,
    /// The new electrical level (`true` = high), after the active-low mapping.
    pub high: bool,
}

mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

#[derive(Debug)]
struct LineSim {
    active_low: bool,
    high: Option<bool>,
}

#[derive(Debug)]
struct SimState {
    origin: Instant,
    lines: BTreeMap<OutputId, LineSim>,
    transitions: Vec<Transition>,
    writes: u64,
    fail_writes: u32,
    inputs: BTreeMap<InputRole, bool>,
    pending: VecDeque<InputEdge>,
    log: Option<(PathBuf, File)>,
}

impl SimState {
    fn record(&mut self, id: &OutputId, high: bool) -> Result<(), SimPinError> {
        if self.fail_writes > 0 {
            self.fail_writes -= 1;
            return Err(SimPinError::Injected);
        }
        self.writes += 1;
        let Some(line) = self.lines.get_mut(id) else {
            return Err(SimPinError::Unknown);
        };
        if line.high == Some(high) {
            return Ok(());
        }
        line.high = Some(high);
        let t = Transition {
            // Whole microseconds, as in the JSON log, so the two compare equal.
            at: Duration::from_micros(
                u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX),
            ),
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            output: id.clone(),
            on: logical_level(high, line.active_low),
            high,
        };
        if let Some((path, file)) = &mut self.log {
            let written = serde_json::to_string(&t)
                .map_err(std::io::Error::other)
                .and_then(|mut s| {
                    s.push('\n');
                    file.write_all(s.as_bytes())
                });
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "cannot append to the simulated-output log");
            }
        }
        self.transitions.push(t);
        Ok(())
    }
}

/// A shareable view of a [`SimBackend`]: history, current levels, input injection.
#[derive(Debug, Clone)]
pub struct SimHandle {
    state: Arc<Mutex<SimState>>,
}

impl SimHandle {
    /// Every transition recorded so far, in order.
    pub fn transitions(&self) -> Vec<Transition> {
        self.state.lock().transitions.clone()
    }

    /// The transitions of one output.
    pub fn transitions_of(&self, id: &OutputId) -> Vec<Transition> {
        self.state
            .lock()
            .transitions
            .iter()
            .filter(|t| t.output == *id)
            .cloned()
            .collect()
    }

    /// The current logical level of an output (`None` before its first write).
    pub fn level(&self, id: &OutputId) -> Option<bool> {
        let st = self.state.lock();
        let line = st.lines.get(id)?;
        line.high.map(|h| logical_level(h, line.active_low))
    }

    /// The number of successful pin writes (a write of an unchanged level counts).
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }

    /// Makes the next `n` pin writes fail, to exercise the runner's retry path.
    pub fn fail_next_writes(&self, n: u32) {
        self.state.lock().fail_writes = n;
    }

    /// Sets input `role` to the logical level `active`, queueing an edge if it changed.
    pub fn set_input(&self, role: InputRole, active: bool) {
        let mut st = self.state.lock();
        let old = st.inputs.insert(role, active);
        if old != Some(active) {
            st.pending.push_back(InputEdge { role, active });
        }
    }

    /// Queues a raw edge even if the level did not change (a bounce the kernel coalesced).
    pub fn push_edge(&self, role: InputRole, active: bool) {
        let mut st = self.state.lock();
        st.inputs.insert(role, active);
        st.pending.push_back(InputEdge { role, active });
    }
}

/// The error of a [`SimPin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimPinError {
    /// A failure injected with [`SimHandle::fail_next_writes`].
    #[error("injected write failure")]
    Injected,
    /// The pin's output is not registered (cannot happen through [`SimBackend`]).
    #[error("unknown simulated line")]
    Unknown,
}

impl embedded_hal::digital::Error for SimPinError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

/// A simulated output pin: an embedded-hal [`OutputPin`] recording into the shared state.
#[derive(Debug)]
pub struct SimPin {
    id: OutputId,
    state: Arc<Mutex<SimState>>,
}

impl ErrorType for SimPin {
    type Error = SimPinError;
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), SimPinError> {
        self.state.lock().record(&self.id, false)
    }
    fn set_high(&mut self) -> Result<(), SimPinError> {
        self.state.lock().record(&self.id, true)
    }
}

/// The simulated backend. See the module documentation.
#[derive(Debug)]
pub struct SimBackend {
    bank: PinBank<SimPin>,
    handle: SimHandle,
}

impl SimBackend {
    /// A backend with one simulated line per output and the given inputs (initially inactive).
    pub fn new(outputs: &[OutputSpec], inputs: &[InputRole]) -> Result<Self, SimError> {
        let state = Arc::new(Mutex::new(SimState {
            origin: Instant::now(),
            lines: BTreeMap::new(),
            transitions: Vec::new(),
            writes: 0,
            fail_writes: 0,
            inputs: inputs.iter().map(|r| (*r, false)).collect(),
            pending: VecDeque::new(),
            log: None,
        }));
        let mut bank = PinBank::new();
        for o in outputs {
            state.lock().lines.insert(
                o.id.clone(),
                LineSim {
                    active_low: o.active_low,
                    high: None,
                },
            );
            let pin = SimPin {
                id: o.id.clone(),
                state: Arc::clone(&state),
            };
            bank.add(o.id.clone(), o.active_low, pin)
                .map_err(SimError::Outputs)?;
        }
        Ok(Self {
            bank,
            handle: SimHandle { state },
        })
    }

    /// Also appends every transition as a JSON line to `path` (created if missing).
    pub fn with_log_file(self, path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| SimError::OpenLog {
                path: path.clone(),
                source,
            })?;
        self.handle.state.lock().log = Some((path, file));
        Ok(self)
    }

    /// A handle sharing this backend's history and inputs.
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }
}

/// Reads a JSON-lines transition log written by [`SimBackend::with_log_file`].
pub fn read_log(path: impl AsRef<Path>) -> Result<Vec<Transition>, std::io::Error> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
        .collect()
}

impl LineBackend for SimBackend {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn set_output(&mut self, id: &OutputId, on: bool) -> Result<(), BackendError> {
        self.bank.set(id, on)
    }

    fn read_inputs(&mut self) -> Result<Vec<(InputRole, bool)>, BackendError> {
        let mut st = self.handle.state.lock();
        st.pending.clear();
        Ok(st.inputs.iter().map(|(r, l)| (*r, *l)).collect())
    }

    fn poll_edges(&mut self, out: &mut Vec<InputEdge>) -> Result<(), BackendError> {
        out.extend(self.handle.state.lock().pending.drain(..));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::{OutputRole, SafeState};

    use super::*;

    fn spec(id: &str, active_low: bool) -> OutputSpec {
        OutputSpec {
            id: OutputId::new(id).unwrap(),
            role: OutputRole::Siren,
            safe_state: SafeState::Off,
            active_low,
        }
    }

    #[test]
    fn records_transitions_not_repeats_and_logs_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gpio.jsonl");
        let mut b = SimBackend::new(&[spec("a", false), spec("b", true)], &[])
            .unwrap()
            .with_log_file(&log)
            .unwrap();
        let h = b.handle();
        let a = OutputId::new("a").unwrap();
        let bb = OutputId::new("b").unwrap();
        b.set_output(&a, false).unwrap();
        b.set_output(&a, false).unwrap();
        b.set_output(&a, true).unwrap();
        b.set_output(&bb, true).unwrap();
        let t = h.transitions();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].on, t[0].high), (false, false));
        assert_eq!((t[1].on, t[1].high), (true, true));
        assert_eq!(
            (t[2].on, t[2].high),
            (true, false),
            "active-low: on is electrically low"
        );
        assert_eq!(h.writes(), 4);
        assert_eq!(h.level(&bb), Some(true));
        assert_eq!(read_log(&log).unwrap(), t);
    }

    #[test]
    fn injected_failures_surface_as_write_errors() {
        let mut b = SimBackend::new(&[spec("a", false)], &[]).unwrap();
        let h = b.handle();
        h.fail_next_writes(1);
        let a = OutputId::new("a").unwrap();
        assert!(matches!(
            b.set_output(&a, true),
            Err(BackendError::Write { .. })
        ));
        b.set_output(&a, true).unwrap();
        assert_eq!(h.level(&a), Some(true));
    }

    #[test]
    fn input_edges_are_queued_once_per_change() {
        let mut b = SimBackend::new(&[], &[InputRole::AckButton]).unwrap();
        let h = b.handle();
        assert_eq!(
            b.read_inputs().unwrap(),
            vec![(InputRole::AckButton, false)]
        );
        h.set_input(InputRole::AckButton, true);
        h.set_input(InputRole::AckButton, true);
        h.push_edge(InputRole::AckButton, true);
        let mut edges = Vec::new();
        b.poll_edges(&mut edges).unwrap();
        assert_eq!(edges.len(), 2);
        assert!(edges.iter().all(|e| e.active));
    }
}

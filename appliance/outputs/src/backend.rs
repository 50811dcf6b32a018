//! The backend seam: what the runner needs from hardware, and the embedded-hal bridge.
//!
//! Every backend drives its outputs through [`embedded_hal::digital::OutputPin`] via a
//! [`PinBank`], which owns the active-low mapping. A relay board behind an I2C GPIO
//! expander is therefore one more set of `OutputPin`s: wrap them in a [`PinBackend`]
//! and nothing above this module changes.

use embedded_hal::digital::{Error as _, ErrorKind, OutputPin, PinState};
use safe_yolo_domain::OutputId;

use crate::spec::{InputRole, physical_level};

/// A backend failure. The runner logs and counts these, and retries writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend has no line for this output.
    #[error("no line is configured for output {id}")]
    UnknownOutput {
        /// The output.
        id: OutputId,
    },
    /// The same output was added twice to a pin bank.
    #[error("output {id} has two pins")]
    DuplicateOutput {
        /// The output.
        id: OutputId,
    },
    /// Setting an output line failed.
    #[error("setting output {id} failed ({kind:?}): {detail}")]
    Write {
        /// The output.
        id: OutputId,
        /// The embedded-hal classification of the pin error.
        kind: ErrorKind,
        /// The pin error, rendered (embedded-hal errors are only `Debug`).
        detail: String,
    },
    /// Reading an input line or its edge events failed.
    #[error("reading input {role} failed: {detail}")]
    Read {
        /// The input.
        role: InputRole,
        /// The underlying error, rendered.
        detail: String,
    },
}

/// A debounce-free raw input edge reported by a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEdge {
    /// The input.
    pub role: InputRole,
    /// The line's logical level after the edge (`true` = active).
    pub active: bool,
}

/// The hardware seam owned by the runner.
///
/// Levels are logical (`true` = active); the backend maps them to electrical levels.
/// Methods must not block for long: the runner calls them every tick.
pub trait LineBackend: Send {
    /// A short name for logs and status ("gpio", "simulated", ...).
    fn kind(&self) -> &'static str;

    /// Sets output `id` to the logical level `on`.
    fn set_output(&mut self, id: &OutputId, on: bool) -> Result<(), BackendError>;

    /// The current logical level of every configured input (used once at start).
    fn read_inputs(&mut self) -> Result<Vec<(InputRole, bool)>, BackendError>;

    /// Appends the raw input edges that arrived since the last call, without waiting.
    fn poll_edges(&mut self, out: &mut Vec<InputEdge>) -> Result<(), BackendError>;
}

impl<B: LineBackend + ?Sized> LineBackend for Box<B> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn set_output(&mut self, id: &OutputId, on: bool) -> Result<(), BackendError> {
        (**self).set_output(id, on)
    }
    fn read_inputs(&mut self) -> Result<Vec<(InputRole, bool)>, BackendError> {
        (**self).read_inputs()
    }
    fn poll_edges(&mut self, out: &mut Vec<InputEdge>) -> Result<(), BackendError> {
        (**self).poll_edges(out)
    }
}

#[derive(Debug)]
struct BankPin<P> {
    id: OutputId,
    active_low: bool,
    pin: P,
}

/// Output pins keyed by output id; maps logical levels to [`PinState`]s (active-low aware).
#[derive(Debug)]
pub struct PinBank<P> {
    pins: Vec<BankPin<P>>,
}

impl<P> Default for PinBank<P> {
    fn default() -> Self {
        Self { pins: Vec::new() }
    }
}

impl<P: OutputPin> PinBank<P> {
    /// An empty bank.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the pin of output `id`.
    pub fn add(&mut self, id: OutputId, active_low: bool, pin: P) -> Result<(), BackendError> {
        if self.pins.iter().any(|p| p.id == id) {
            return Err(BackendError::DuplicateOutput { id });
        }
        self.pins.push(BankPin {
            id,
            active_low,
            pin,
        });
        Ok(())
    }

    /// Drives output `id` to the logical level `on`.
    pub fn set(&mut self, id: &OutputId, on: bool) -> Result<(), BackendError> {
        let p = self
            .pins
            .iter_mut()
            .find(|p| p.id == *id)
            .ok_or_else(|| BackendError::UnknownOutput { id: id.clone() })?;
        let state = PinState::from(physical_level(on, p.active_low));
        p.pin.set_state(state).map_err(|e| BackendError::Write {
            id: id.clone(),
            kind: e.kind(),
            detail: format!("{e:?}"),
        })
    }

    /// The outputs in this bank.
    pub fn ids(&self) -> impl Iterator<Item = &OutputId> {
        self.pins.iter().map(|p| &p.id)
    }
}

/// An outputs-only backend over any embedded-hal pins (for example an I2C expander's).
#[derive(Debug)]
pub struct PinBackend<P> {
    bank: PinBank<P>,
}

impl<P: OutputPin> PinBackend<P> {
    /// A backend driving the pins of `bank`.
    pub fn new(bank: PinBank<P>) -> Self {
        Self { bank }
    }
}

impl<P: OutputPin + Send> LineBackend for PinBackend<P> {
    fn kind(&self) -> &'static str {
        "embedded-hal"
    }
    fn set_output(&mut self, id: &OutputId, on: bool) -> Result<(), BackendError> {
        self.bank.set(id, on)
    }
    fn read_inputs(&mut self) -> Result<Vec<(InputRole, bool)>, BackendError> {
        Ok(Vec::new())
    }
    fn poll_edges(&mut self, _out: &mut Vec<InputEdge>) -> Result<(), BackendError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use embedded_hal::digital::ErrorType;

    use super::*;

    /// A pin that records the electrical states it is set to.
    #[derive(Debug, Default)]
    struct Recorder(Vec<bool>);

    impl ErrorType for Recorder {
        type Error = Infallible;
    }

    impl OutputPin for Recorder {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.push(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.push(true);
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Broken;

    impl ErrorType for Broken {
        type Error = ErrorKind;
    }

    impl OutputPin for Broken {
        fn set_low(&mut self) -> Result<(), ErrorKind> {
            Err(ErrorKind::Other)
        }
        fn set_high(&mut self) -> Result<(), ErrorKind> {
            Err(ErrorKind::Other)
        }
    }

    #[test]
    fn bank_maps_active_low() {
        let mut bank = PinBank::new();
        let hi = OutputId::new("hi").unwrap();
        let lo = OutputId::new("lo").unwrap();
        bank.add(hi.clone(), false, Recorder::default()).unwrap();
        bank.add(lo.clone(), true, Recorder::default()).unwrap();
        assert!(matches!(
            bank.add(lo.clone(), true, Recorder::default()),
            Err(BackendError::DuplicateOutput { .. })
        ));
        for on in [true, false] {
            bank.set(&hi, on).unwrap();
            bank.set(&lo, on).unwrap();
        }
        assert_eq!(bank.pins[0].pin.0, vec![true, false]);
        assert_eq!(bank.pins[1].pin.0, vec![false, true]);
        assert!(matches!(
            bank.set(&OutputId::new("x").unwrap(), true),
            Err(BackendError::UnknownOutput { .. })
        ));
    }

    #[test]
    fn pin_errors_become_write_errors() {
        let mut bank = PinBank::new();
        let id = OutputId::new("relay").unwrap();
        bank.add(id.clone(), false, Broken).unwrap();
        let mut b = PinBackend::new(bank);
        let e = b.set_output(&id, true).unwrap_err();
        assert!(
            matches!(
                e,
                BackendError::Write {
                    kind: ErrorKind::Other,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("relay"), "{e}");
    }
}

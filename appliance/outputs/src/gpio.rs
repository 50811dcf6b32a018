//! The Linux GPIO character-device backend (uAPI v2, through `gpiocdev`).
//!
//! Lines are requested by chip plus offset or line name, with consumer label
//! `safe-yolo`. Outputs are requested active-high with their initial value set to
//! their electrical safe level, so the line never glitches to the unsafe level between
//! the request and the runner's first write; the active-low mapping is done above the
//! pins (in [`PinBank`]) so [`OutputPin::set_high`] really means "electrically high", as
//! embedded-hal specifies. Inputs are requested with edge detection on both edges and a
//! kernel debounce period (the kernel debounces in software when the chip cannot);
//! the runner debounces again in software.
//!
//! The pure parts (chip selection, line resolution, request configurations) are
//! separate functions so they are unit tested without hardware; the real path is
//! exercised in a VM with `gpio-sim`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use embedded_hal::digital::{ErrorType, OutputPin};
use gpiocdev::Chip;
use gpiocdev::line::{EdgeDetection, EdgeKind, Offset, Value};
use gpiocdev::request::{Config, Request};

use crate::backend::{BackendError, InputEdge, LineBackend, PinBank};
use crate::config::{LineRef, ValidatedOutputs};
use crate::spec::{InputRole, logical_level, physical_level};

/// The consumer label set on every requested line.
pub const CONSUMER: &str = "safe-yolo";

/// Most edge events read from the kernel per poll, so a chattering input cannot stall a tick.
const MAX_EVENTS_PER_POLL: usize = 64;

/// Why the GPIO backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// No chip matches the configured path, name or label.
    #[error("no GPIO chip matches {chip:?} (available: {available})")]
    ChipNotFound {
        /// The configured chip.
        chip: String,
        /// The chips found, as `name [label]`.
        available: String,
    },
    /// A chip could not be opened or queried.
    #[error("GPIO chip {path}: {what} failed")]
    Chip {
        /// The chip.
        path: PathBuf,
        /// The operation.
        what: &'static str,
        /// The cause.
        #[source]
        source: gpiocdev::Error,
    },
    /// A configured offset is beyond the chip's lines.
    #[error("{field}: offset {offset} is out of range; chip {chip} has {num_lines} lines")]
    OffsetOutOfRange {
        /// The configuration field.
        field: String,
        /// The offset.
        offset: u32,
        /// The chip.
        chip: String,
        /// The chip's line count.
        num_lines: u32,
    },
    /// No line of the chip has the configured name.
    #[error("{field}: chip {chip} has no line named {name:?}")]
    NameNotFound {
        /// The configuration field.
        field: String,
        /// The name.
        name: String,
        /// The chip.
        chip: String,
    },
    /// Several lines of the chip have the configured name.
    #[error(
        "{field}: chip {chip} has several lines named {name:?} (offsets {offsets:?}); use an offset"
    )]
    NameAmbiguous {
        /// The configuration field.
        field: String,
        /// The name.
        name: String,
        /// The chip.
        chip: String,
        /// The matching offsets.
        offsets: Vec<u32>,
    },
    /// Two configured lines resolve to the same offset.
    #[error("{field} and {other} are both offset {offset}")]
    SameLine {
        /// The configuration field.
        field: String,
        /// The earlier field with the same offset.
        other: String,
        /// The shared offset.
        offset: u32,
    },
    /// A configured line is already requested by another consumer.
    #[error("{field}: line {offset} of chip {chip} is in use by {consumer:?}")]
    Busy {
        /// The configuration field.
        field: String,
        /// The offset.
        offset: u32,
        /// The chip.
        chip: String,
        /// The other consumer's label.
        consumer: String,
    },
    /// The kernel refused the line request.
    #[error("requesting the {what} lines {offsets:?} on {path} failed")]
    Request {
        /// "output" or "input".
        what: &'static str,
        /// The chip.
        path: PathBuf,
        /// The offsets requested.
        offsets: Vec<u32>,
        /// The cause.
        #[source]
        source: gpiocdev::Error,
    },
    /// Reading the initial level of an input failed.
    #[error("reading the initial level of input {role} failed")]
    InitialRead {
        /// The input.
        role: InputRole,
        /// The cause.
        #[source]
        source: gpiocdev::Error,
    },
    /// The pin bank rejected an output.
    #[error("setting up the output pins failed")]
    Pins(#[source] BackendError),
}

/// How the configured chip string selects a chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChipSelector {
    /// An absolute or relative path to the character device.
    Path(PathBuf),
    /// A name under /dev (`gpiochip0`) or, failing that, a chip label (`gpio-sim.0-node0`).
    NameOrLabel(String),
}

impl ChipSelector {
    /// Interprets the configured chip string: anything with a `/` is a path.
    pub fn parse(chip: &str) -> Self {
        let chip = chip.trim();
        if chip.contains('/') {
            Self::Path(PathBuf::from(chip))
        } else {
            Self::NameOrLabel(chip.to_owned())
        }
    }
}

/// What the resolver needs to know about one line of the chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipLine {
    /// The line's offset.
    pub offset: u32,
    /// Its name (may be empty).
    pub name: String,
    /// Whether another consumer holds it.
    pub used: bool,
    /// That consumer's label.
    pub consumer: String,
}

/// Resolves configured line references to offsets on a chip described by `lines`
/// (one entry per line, in offset order). `refs` pairs each reference with its
/// configuration field, used in error messages.
pub fn resolve_lines(
    chip: &str,
    lines: &[ChipLine],
    refs: &[(String, LineRef)],
) -> Result<Vec<u32>, GpioError> {
    let num_lines = u32::try_from(lines.len()).unwrap_or(u32::MAX);
    let mut out: Vec<u32> = Vec::with_capacity(refs.len());
    for (field, r) in refs {
        let offset = match r {
            LineRef::Offset(o) => {
                if *o >= num_lines {
                    return Err(GpioError::OffsetOutOfRange {
                        field: field.clone(),
                        offset: *o,
                        chip: chip.to_owned(),
                        num_lines,
                    });
                }
                *o
            }
            LineRef::Name(name) => {
                let hits: Vec<u32> = lines
                    .iter()
                    .filter(|l| l.name == *name)
                    .map(|l| l.offset)
                    .collect();
                match hits.as_slice() {
                    [] => {
                        return Err(GpioError::NameNotFound {
                            field: field.clone(),
                            name: name.clone(),
                            chip: chip.to_owned(),
                        });
                    }
                    [one] => *one,
                    _ => {
                        return Err(GpioError::NameAmbiguous {
                            field: field.clone(),
                            name: name.clone(),
                            chip: chip.to_owned(),
                            offsets: hits,
                        });
                    }
                }
            }
        };
        if let Some(i) = out.iter().position(|o| *o == offset) {
            return Err(GpioError::SameLine {
                field: field.clone(),
                other: refs[i].0.clone(),
                offset,
            });
        }
        if let Some(l) = lines.iter().find(|l| l.offset == offset)
            && l.used
        {
            return Err(GpioError::Busy {
                field: field.clone(),
                offset,
                chip: chip.to_owned(),
                consumer: l.consumer.clone(),
            });
        }
        out.push(offset);
    }
    Ok(out)
}

/// The request configuration for output lines: `(offset, electrically high)` pairs give
/// each line's initial value, which must be its safe level.
pub fn output_request_config(chip: &Path, lines: &[(u32, bool)]) -> Config {
    let mut cfg = Config::default();
    cfg.on_chip(chip);
    for (offset, high) in lines {
        cfg.with_line(*offset).as_active_high().as_output(if *high {
            Value::Active
        } else {
            Value::Inactive
        });
    }
    cfg
}

/// The request configuration for input lines: `(offset, debounce)` pairs.
pub fn input_request_config(chip: &Path, lines: &[(u32, Duration)]) -> Config {
    let mut cfg = Config::default();
    cfg.on_chip(chip);
    for (offset, debounce) in lines {
        cfg.with_line(*offset)
            .as_active_high()
            .as_input()
            .with_edge_detection(EdgeDetection::BothEdges);
        if !debounce.is_zero() {
            cfg.with_debounce_period(*debounce);
        }
    }
    cfg
}

/// The logical level after an edge on a line requested active-high.
pub fn edge_level(kind: EdgeKind, active_low: bool) -> bool {
    logical_level(kind == EdgeKind::Rising, active_low)
}

fn open_chip(chip: &str) -> Result<Chip, GpioError> {
    match ChipSelector::parse(chip) {
        ChipSelector::Path(p) => Chip::from_path(&p).map_err(|source| GpioError::Chip {
            path: p,
            what: "open",
            source,
        }),
        ChipSelector::NameOrLabel(n) => {
            if let Ok(c) = Chip::from_name(&n) {
                return Ok(c);
            }
            let mut available = Vec::new();
            for path in gpiocdev::chip::chips().unwrap_or_default() {
                let Ok(c) = Chip::from_path(&path) else {
                    continue;
                };
                let Ok(info) = c.info() else { continue };
                if info.label == n || info.name == n {
                    return Ok(c);
                }
                available.push(format!("{} [{}]", info.name, info.label));
            }
            Err(GpioError::ChipNotFound {
                chip: n,
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            })
        }
    }
}

fn chip_lines(chip: &Chip) -> Result<Vec<ChipLine>, GpioError> {
    let err = |what, source| GpioError::Chip {
        path: chip.path().to_path_buf(),
        what,
        source,
    };
    let info = chip.info().map_err(|e| err("reading chip info", e))?;
    (0..info.num_lines)
        .map(|offset| {
            let li = chip
                .line_info(offset)
                .map_err(|e| err("reading line info", e))?;
            Ok(ChipLine {
                offset,
                name: li.name,
                used: li.used,
                consumer: li.consumer,
            })
        })
        .collect()
}

/// The error of a [`CdevPin`].
#[derive(Debug, thiserror::Error)]
#[error("setting line {offset} failed")]
pub struct CdevPinError {
    /// The line.
    pub offset: u32,
    /// The cause.
    #[source]
    pub source: gpiocdev::Error,
}

impl embedded_hal::digital::Error for CdevPinError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

/// One output line of a shared uAPI v2 request, as an embedded-hal [`OutputPin`].
///
/// `set_high` drives the line electrically high (the request is active-high).
#[derive(Debug, Clone)]
pub struct CdevPin {
    request: Arc<Request>,
    offset: Offset,
}

impl CdevPin {
    /// A pin for `offset` of `request` (which must hold that line as an output).
    pub fn new(request: Arc<Request>, offset: Offset) -> Self {
        Self { request, offset }
    }
}

impl ErrorType for CdevPin {
    type Error = CdevPinError;
}

impl OutputPin for CdevPin {
    fn set_low(&mut self) -> Result<(), CdevPinError> {
        self.request
            .set_value(self.offset, Value::Inactive)
            .map_err(|source| CdevPinError {
                offset: self.offset,
                source,
            })
    }
    fn set_high(&mut self) -> Result<(), CdevPinError> {
        self.request
            .set_value(self.offset, Value::Active)
            .map_err(|source| CdevPinError {
                offset: self.offset,
                source,
            })
    }
}

#[derive(Debug)]
struct CdevInput {
    role: InputRole,
    offset: Offset,
    active_low: bool,
}

/// The GPIO character-device backend. See the module documentation.
#[derive(Debug)]
pub struct GpioCdevBackend {
    bank: PinBank<CdevPin>,
    inputs: Option<Request>,
    input_lines: Vec<CdevInput>,
    chip: PathBuf,
}

impl GpioCdevBackend {
    /// Opens the configured chip and requests every output (at its safe level) and input.
    pub fn open(cfg: &ValidatedOutputs) -> Result<Self, GpioError> {
        let chip = open_chip(&cfg.config.chip)?;
        let path = chip.path().to_path_buf();
        let lines = chip_lines(&chip)?;
        let mut refs: Vec<(String, LineRef)> = cfg
            .config
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("outputs.lines[{i}].line"), l.line.clone()))
            .collect();
        let inputs: Vec<_> = cfg.config.inputs.iter().collect();
        refs.extend(
            inputs
                .iter()
                .map(|(role, c)| (format!("outputs.inputs.{role}.line"), c.line.clone())),
        );
        let offsets = resolve_lines(&cfg.config.chip, &lines, &refs)?;
        let (out_offsets, in_offsets) = offsets.split_at(cfg.specs.len());

        let mut bank = PinBank::new();
        if !out_offsets.is_empty() {
            let initial: Vec<(u32, bool)> = cfg
                .specs
                .iter()
                .zip(out_offsets)
                .map(|(s, o)| (*o, physical_level(s.safe_state.is_on(), s.active_low)))
                .collect();
            let request = Request::from_config(output_request_config(&path, &initial))
                .with_consumer(CONSUMER)
                .request()
                .map_err(|source| GpioError::Request {
                    what: "output",
                    path: path.clone(),
                    offsets: out_offsets.to_vec(),
                    source,
                })?;
            let request = Arc::new(request);
            for (s, o) in cfg.specs.iter().zip(out_offsets) {
                bank.add(
                    s.id.clone(),
                    s.active_low,
                    CdevPin::new(Arc::clone(&request), *o),
                )
                .map_err(GpioError::Pins)?;
            }
        }

        let mut input_lines = Vec::new();
        let mut input_request = None;
        if !in_offsets.is_empty() {
            let lines: Vec<(u32, Duration)> = inputs
                .iter()
                .zip(in_offsets)
                .map(|((_, c), o)| (*o, c.debounce))
                .collect();
            let request = Request::from_config(input_request_config(&path, &lines))
                .with_consumer(CONSUMER)
                .request()
                .map_err(|source| GpioError::Request {
                    what: "input",
                    path: path.clone(),
                    offsets: in_offsets.to_vec(),
                    source,
                })?;
            input_lines = inputs
                .iter()
                .zip(in_offsets)
                .map(|((role, c), o)| CdevInput {
                    role: *role,
                    offset: *o,
                    active_low: c.active_low,
                })
                .collect();
            input_request = Some(request);
        }
        tracing::info!(
            chip = %path.display(),
            outputs = ?out_offsets,
            inputs = ?in_offsets,
            "GPIO lines requested"
        );
        Ok(Self {
            bank,
            inputs: input_request,
            input_lines,
            chip: path,
        })
    }

    /// The chip's character device.
    pub fn chip_path(&self) -> &Path {
        &self.chip
    }
}

impl LineBackend for GpioCdevBackend {
    fn kind(&self) -> &'static str {
        "gpio"
    }

    fn set_output(
        &mut self,
        id: &safe_yolo_domain::OutputId,
        on: bool,
    ) -> Result<(), BackendError> {
        self.bank.set(id, on)
    }

    fn read_inputs(&mut self) -> Result<Vec<(InputRole, bool)>, BackendError> {
        let Some(req) = &self.inputs else {
            return Ok(Vec::new());
        };
        self.input_lines
            .iter()
            .map(|l| {
                req.value(l.offset)
                    .map(|v| (l.role, logical_level(bool::from(v), l.active_low)))
                    .map_err(|e| BackendError::Read {
                        role: l.role,
                        detail: e.to_string(),
                    })
            })
            .collect()
    }

    fn poll_edges(&mut self, out: &mut Vec<InputEdge>) -> Result<(), BackendError> {
        let Some(req) = &self.inputs else {
            return Ok(());
        };
        let role = self
            .input_lines
            .first()
            .map_or(InputRole::AckButton, |l| l.role);
        let read_err = |e: gpiocdev::Error| BackendError::Read {
            role,
            detail: e.to_string(),
        };
        for _ in 0..MAX_EVENTS_PER_POLL {
            if !req.has_edge_event().map_err(read_err)? {
                break;
            }
            let ev = req.read_edge_event().map_err(read_err)?;
            if let Some(l) = self.input_lines.iter().find(|l| l.offset == ev.offset) {
                out.push(InputEdge {
                    role: l.role,
                    active: edge_level(ev.kind, l.active_low),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chip(names: &[&str]) -> Vec<ChipLine> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ChipLine {
                offset: u32::try_from(i).unwrap(),
                name: (*n).to_owned(),
                used: false,
                consumer: String::new(),
            })
            .collect()
    }

    fn r(field: &str, l: LineRef) -> (String, LineRef) {
        (field.to_owned(), l)
    }

    #[test]
    fn chip_selector() {
        assert_eq!(
            ChipSelector::parse("/dev/gpiochip0"),
            ChipSelector::Path("/dev/gpiochip0".into())
        );
        assert_eq!(
            ChipSelector::parse("gpiochip1"),
            ChipSelector::NameOrLabel("gpiochip1".into())
        );
        assert_eq!(
            ChipSelector::parse(" gpio-sim.0-node0 "),
            ChipSelector::NameOrLabel("gpio-sim.0-node0".into())
        );
    }

    #[test]
    fn resolves_offsets_and_names() {
        let lines = chip(&["", "SIREN", "RELAY", "", "ACK"]);
        let got = resolve_lines(
            "c",
            &lines,
            &[
                r("a", LineRef::Name("RELAY".into())),
                r("b", LineRef::Offset(3)),
                r("c", LineRef::Name("ACK".into())),
            ],
        )
        .unwrap();
        assert_eq!(got, vec![2, 3, 4]);
    }

    #[test]
    fn resolution_errors_name_the_field() {
        let mut lines = chip(&["X", "X", "SIREN", ""]);
        let e = resolve_lines("c", &lines, &[r("f1", LineRef::Offset(4))]).unwrap_err();
        assert!(
            matches!(
                e,
                GpioError::OffsetOutOfRange {
                    offset: 4,
                    num_lines: 4,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("f1: "), "{e}");
        let e = resolve_lines("c", &lines, &[r("f2", LineRef::Name("NOPE".into()))]).unwrap_err();
        assert!(matches!(e, GpioError::NameNotFound { .. }), "{e}");
        let e = resolve_lines("c", &lines, &[r("f3", LineRef::Name("X".into()))]).unwrap_err();
        assert!(
            matches!(&e, GpioError::NameAmbiguous { offsets, .. } if *offsets == vec![0, 1]),
            "{e}"
        );
        let e = resolve_lines(
            "c",
            &lines,
            &[
                r("f4", LineRef::Name("SIREN".into())),
                r("f5", LineRef::Offset(2)),
            ],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "f5 and f4 are both offset 2");
        lines[3].used = true;
        lines[3].consumer = "gpioset".into();
        let e = resolve_lines("c", &lines, &[r("f6", LineRef::Offset(3))]).unwrap_err();
        assert!(e.to_string().contains("in use by \"gpioset\""), "{e}");
    }

    #[test]
    fn output_config_starts_each_line_at_its_electrical_safe_level() {
        // A siren safe off, active-low: electrically high at request time.
        // A stop relay safe on, active-high: high. A healthy line safe off: low.
        let safe = [
            (5, physical_level(false, true)),
            (6, physical_level(true, false)),
            (7, physical_level(false, false)),
        ];
        let cfg = output_request_config(Path::new("/dev/gpiochip9"), &safe);
        assert_eq!(cfg.chip(), Path::new("/dev/gpiochip9"));
        assert_eq!(cfg.lines().to_vec(), vec![5, 6, 7]);
        let lc = |o| cfg.line_config(o).unwrap().clone();
        assert_eq!(lc(5).value, Some(Value::Active));
        assert_eq!(lc(6).value, Some(Value::Active));
        assert_eq!(lc(7).value, Some(Value::Inactive));
        for o in [5, 6, 7] {
            assert!(!lc(o).active_low, "mapping is done above the pins");
            assert_eq!(lc(o).direction, Some(gpiocdev::line::Direction::Output));
        }
    }

    #[test]
    fn input_config_detects_both_edges_with_kernel_debounce() {
        let cfg = input_request_config(
            Path::new("/dev/gpiochip0"),
            &[(1, Duration::from_millis(30)), (2, Duration::ZERO)],
        );
        let l1 = cfg.line_config(1).unwrap();
        assert_eq!(l1.direction, Some(gpiocdev::line::Direction::Input));
        assert_eq!(l1.edge_detection, Some(EdgeDetection::BothEdges));
        assert_eq!(l1.debounce_period, Some(Duration::from_millis(30)));
        assert!(!l1.active_low);
        let l2 = cfg.line_config(2).unwrap();
        assert_eq!(l2.debounce_period, None);
        assert_eq!(l2.edge_detection, Some(EdgeDetection::BothEdges));
    }

    #[test]
    fn edges_map_through_active_low() {
        assert!(edge_level(EdgeKind::Rising, false));
        assert!(!edge_level(EdgeKind::Falling, false));
        assert!(!edge_level(EdgeKind::Rising, true));
        assert!(
            edge_level(EdgeKind::Falling, true),
            "a pressed active-low button pulls the line down"
        );
    }

    #[test]
    fn missing_chip_path_is_a_clear_error() {
        let cfg = crate::config::OutputsConfig {
            backend: crate::config::BackendKind::Gpio,
            chip: "/nonexistent/gpiochip42".into(),
            ..crate::config::OutputsConfig::simulated()
        }
        .validate()
        .unwrap();
        let e = GpioCdevBackend::open(&cfg).unwrap_err();
        assert!(matches!(e, GpioError::Chip { what: "open", .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/gpiochip42"), "{e}");
    }
}

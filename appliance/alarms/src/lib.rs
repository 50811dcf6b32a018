//! From detections to alarms.
//!
//! - [`analysis`]: the task that tracks people per camera and evaluates the
//!   rules on every detected frame (and on camera health while a camera is
//!   silent).
//! - [`dispatch`]: turns the engine's decisions into physical actions
//!   (immediately, without waiting for disk), stored events with an
//!   annotated snapshot, and notices for subscribers (API, live view).
//! - [`inputs`]: the acknowledge button and the door contact, routed to the
//!   dispatcher's acknowledge path and the door rules.
//! - [`interlocks`]: the machine states that arm rules, as their sources say
//!   them (fail-safe: unknown or stale arms).
//! - [`draw`]: boxes and zone outlines burnt into snapshot frames.
//!
//! Invariant: nothing here blocks the async reactor. JPEG encoding runs on
//! the blocking pool, database work in the store's writer thread, and the
//! outputs are commanded through a non-blocking queue.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod dispatch;
pub mod draw;
pub mod inputs;
pub mod interlocks;

pub use analysis::{Analysis, AnalysisError, AnalysisInputs, RulesControl};
pub use dispatch::{
    AlarmNotice, AlarmOutputs, DispatchError, Dispatcher, DispatcherConfig, EventSink, NoticeKind,
};
pub use inputs::InputRouting;
pub use interlocks::Interlocks;

//! Pure value types shared by every stage of the appliance.
//!
//! Nothing here does I/O, reads a clock or can fail after construction: ids,
//! geometry (boxes, normalised points, validated polygons and lines), detections
//! and decoded frames. Validation happens once, at construction, so a value of
//! these types is always valid ("validate at the door").
#![forbid(unsafe_code)]

pub mod alarm;
pub mod detection;
pub mod error;
pub mod frame;
pub mod geometry;
pub mod ids;
pub mod millis;
pub mod vocabulary;
pub mod weekday;

pub use detection::Detection;
pub use error::{ErrorChain, error_chain};
pub use frame::{FrameMeta, RgbFrame};
pub use geometry::{BBox, Line, NormPoint, Polygon, PolygonError};
pub use ids::{CameraId, IdError, InterlockId, OutputId, RuleId, ZoneId};
pub use vocabulary::{Named, Severity};
pub use weekday::Weekday;

// The macro `named_vocabulary!` reaches serde and schemars through these, so the
// crates that declare a vocabulary need neither as a direct dependency.
#[doc(hidden)]
pub use schemars as __schemars;
#[doc(hidden)]
pub use serde as __serde;

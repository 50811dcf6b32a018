//! Live edits: zones, lines and rules edited through the API, laid over the file's.
//!
//! The edits are raw forms (the very documents the API takes), laid over the file's
//! raw model before validation: the layered configuration is checked by the same
//! code as the file alone, so an edit can never make a configuration the file could
//! not describe.

use std::collections::BTreeMap;

use crate::lines::RawLine;
use crate::rules::RawRule;
use crate::zones::RawZone;

/// Edits by id: `Some` replaces the file's object of that id (or adds one), `None`
/// removes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    /// Zone edits.
    pub zones: BTreeMap<String, Option<RawZone>>,
    /// Line edits.
    pub lines: BTreeMap<String, Option<RawLine>>,
    /// Rule edits.
    pub rules: BTreeMap<String, Option<RawRule>>,
}

/// The zones, lines and rules of a layered configuration as written (the file's,
/// with the edits laid over them), by id, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Documents {
    /// Zones.
    pub zones: Vec<(String, RawZone)>,
    /// Lines.
    pub lines: Vec<(String, RawLine)>,
    /// Rules.
    pub rules: Vec<(String, RawRule)>,
}

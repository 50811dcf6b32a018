//! The seam through which settings edits reach the running pipeline.
//!
//! The documents are typed: cameras, zones, lines and rules travel as the
//! configuration's own raw forms ([`RawCamera`], [`RawZone`], [`RawLine`],
//! [`RawRule`]: a file entry without its id), which are also the API's wire
//! documents and what the store keeps.

use safe_yolo_config::{IntegrationsConfig, RawCamera, RawIntegrations, RawLine, RawRule, RawZone};
use safe_yolo_store::SettingKind;
use serde::Serialize;

/// A settings document, typed by its kind: the body of a `PUT` and an object of a `GET`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Document {
    /// A camera.
    Camera(Box<RawCamera>),
    /// A zone.
    Zone(RawZone),
    /// A counting line.
    Line(RawLine),
    /// A rule.
    Rule(Box<RawRule>),
    /// The integration settings (`[integrations]`), one document.
    Integrations(Box<RawIntegrations>),
}

impl Document {
    /// The kind of the document.
    pub fn kind(&self) -> SettingKind {
        match self {
            Document::Camera(_) => SettingKind::Camera,
            Document::Zone(_) => SettingKind::Zone,
            Document::Line(_) => SettingKind::Line,
            Document::Rule(_) => SettingKind::Rule,
            Document::Integrations(_) => SettingKind::Integrations,
        }
    }
}

/// One settings edit, already stored-to-be; the daemon applies it to the running system.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingsChange {
    /// A document was created or replaced.
    Put {
        /// The object's id.
        id: String,
        /// The new document; its kind is the object's.
        doc: Document,
    },
    /// A document was deleted.
    Delete {
        /// The kind.
        kind: SettingKind,
        /// The object's id.
        id: String,
    },
}

/// One thing wrong with a settings edit, at the key path of the configuration it
/// would make (`rules.dock-intrusion.zone`): the configuration's own problem.
pub use safe_yolo_config::Problem;

/// Why the running system refused a settings edit.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The kind cannot change while running.
    #[error("{kind} are wiring: change them in the configuration file and restart the daemon")]
    Wiring {
        /// The kind, plural (`cameras`).
        kind: &'static str,
    },
    /// The configuration with the edit has problems; all of them are listed.
    #[error("{}", problems.iter().map(|p| format!("{}: {}", p.path, p.reason)).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// Every problem, each with its key path.
        problems: Vec<Problem>,
        /// The path prefix of the edited object (`rules.dock-intrusion`).
        object: String,
    },
    /// The running pipeline did not take the change.
    #[error("the running pipeline refused the change")]
    Refused {
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Implemented by the daemon: validates a change against the whole configuration and
/// applies it (rule engine `replace`, pipeline restart of one camera, ...).
///
/// `apply` is called inside the store transaction that records the change and its audit
/// row, as its last step: an `Err` aborts the transaction, so a refused change is never
/// stored. It must not block for long (it runs on the blocking pool). Known gap: if the
/// commit itself fails after a successful `apply` (an I/O error), the running rules are
/// ahead of the store until the next restart, which applies the stored edits only.
pub trait Control: Send + Sync {
    /// Validates and applies `change`; `Err` lists every problem with its key path.
    fn apply(&self, change: SettingsChange) -> Result<(), ControlError>;

    /// The objects of `kind` as the running system has them (config file plus edits),
    /// as `(id, document)` pairs.
    fn current(&self, kind: SettingKind) -> Vec<(String, Document)>;

    /// The integrations as running (validated), for the views that describe them
    /// (the Modbus register map, the interlocks); `None`: the API's start-up
    /// settings describe them.
    fn integrations(&self) -> Option<IntegrationsConfig> {
        None
    }

    /// Why the Modbus server does not run (its port cannot be bound, say), if it does
    /// not; the integrations' delivery status shows it.
    fn modbus_error(&self) -> Option<String> {
        None
    }
}

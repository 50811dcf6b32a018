//! The seam through which settings edits reach the running pipeline.

use safe_yolo_store::SettingKind;

/// One settings edit, already stored-to-be; the daemon applies it to the running system.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingsChange {
    /// A document was created or replaced.
    Put {
        /// The kind.
        kind: SettingKind,
        /// The object's id.
        id: String,
        /// The new document (API wire form).
        doc: serde_json::Value,
    },
    /// A document was deleted.
    Delete {
        /// The kind.
        kind: SettingKind,
        /// The object's id.
        id: String,
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
    /// Validates and applies `change`; `Err` carries a reason naming the field.
    fn apply(&self, change: SettingsChange) -> Result<(), String>;

    /// The objects of `kind` as the running system has them (config file plus edits),
    /// as `(id, document)` pairs.
    fn current(&self, kind: SettingKind) -> Vec<(String, serde_json::Value)>;
}

//! Audit rows: built from the caller and committed with the change they describe.

use safe_yolo_store::{AuditResult, NewAudit, now_ms};

use crate::auth::Principal;

/// An audit row for a successful change by `p`.
pub fn row(
    p: &Principal,
    action: &str,
    target: impl Into<String>,
    before: Option<String>,
    after: Option<String>,
) -> NewAudit {
    NewAudit {
        at: now_ms(),
        actor: p.actor.clone(),
        role: Some(p.role),
        source: Some(p.source.to_string()),
        action: action.to_owned(),
        target: target.into(),
        before,
        after,
        result: AuditResult::Ok,
    }
}

/// An audit row for a change the appliance made by itself (actor `system`),
/// e.g. replacing a key or certificate it could not use.
pub fn system_row(
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
) -> NewAudit {
    NewAudit {
        at: now_ms(),
        actor: "system".into(),
        role: None,
        source: None,
        action: action.to_owned(),
        target: target.to_owned(),
        before,
        after,
        result: AuditResult::Ok,
    }
}

/// A compact JSON summary of a value for the before/after columns (at most 2 KiB).
pub fn summary<T: serde::Serialize>(v: &T) -> Option<String> {
    let mut s = serde_json::to_string(v).ok()?;
    if s.len() > 2048 {
        let mut cut = 2048;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    Some(s)
}

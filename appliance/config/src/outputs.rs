//! `[outputs]`: the physical outputs (`[[outputs.lines]]`) and inputs, read into the
//! outputs crate's own model and checked by its own validator, whose problems carry
//! this file's key paths.

use std::time::Duration;

use safe_yolo_domain::OutputId;
use serde::Deserialize;

use crate::check::Ctx;
use crate::raw::At;

pub use safe_yolo_outputs::config::{
    BackendKind, InputConfig, InputsConfig, LineConfig as OutputLineConfig, LineRef, OutputsConfig,
};
pub use safe_yolo_outputs::{OutputRole, SafeState};

/// One `[[outputs.lines]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutputLine {
    pub id: String,
    pub role: String,
    pub offset: Option<i64>,
    pub name: Option<String>,
    pub active_low: Option<bool>,
    pub safe_state: Option<String>,
}

/// An input (`ack_button`, `door_contact`, `machine_state`) as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInput {
    pub offset: Option<i64>,
    pub name: Option<String>,
    pub active_low: Option<bool>,
    pub debounce_ms: Option<i64>,
}

/// `[outputs]` as written, without its `lines`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutputsHead {
    pub backend: Option<String>,
    pub chip: Option<String>,
    pub sim_log: Option<String>,
    pub ack_button: Option<RawInput>,
    pub door_contact: Option<RawInput>,
    pub machine_state: Option<RawInput>,
}

/// A chip line, by offset or by name, at `path`.
fn line_ref(
    ctx: &mut Ctx<'_>,
    path: &str,
    offset: Option<i64>,
    name: Option<&str>,
) -> Option<LineRef> {
    match (offset, name) {
        (Some(o), None) => ctx
            .int_in::<u32>(&format!("{path}.offset"), Some(o), 0, 0, 511)
            .map(LineRef::Offset),
        (None, Some(n)) if !n.trim().is_empty() => Some(LineRef::Name(n.to_owned())),
        (None, Some(_)) => {
            ctx.bad(format!("{path}.name"), "must not be empty");
            None
        }
        (Some(_), Some(_)) => {
            ctx.bad(path, "give either `offset` or `name`, not both");
            None
        }
        (None, None) => {
            ctx.bad(path, "needs the line's `offset` on the chip or its `name`");
            None
        }
    }
}

fn validate_input(ctx: &mut Ctx<'_>, path: &str, raw: &RawInput) -> Option<InputConfig> {
    let line = line_ref(ctx, path, raw.offset, raw.name.as_deref());
    let debounce = ctx.int_in::<u64>(&format!("{path}.debounce_ms"), raw.debounce_ms, 30, 0, 1000);
    Some(InputConfig {
        line: line?,
        active_low: raw.active_low.unwrap_or(false),
        debounce: Duration::from_millis(debounce?),
    })
}

/// The outputs section, read into the outputs crate's model and checked by its
/// validator, whose problems carry this file's key paths.
pub(crate) fn validate_outputs(
    ctx: &mut Ctx<'_>,
    head: &RawOutputsHead,
    output_lines: &[At<RawOutputLine>],
    health_timeout: Duration,
) -> OutputsConfig {
    let backend = ctx
        .named(
            "outputs.backend",
            head.backend.as_deref(),
            BackendKind::Simulated,
        )
        .unwrap_or(BackendKind::Simulated);
    let mut complete = true;
    let mut lines = Vec::new();
    for o in output_lines {
        let (p, v) = (&o.path, &o.value);
        let id = ctx.id(&format!("{p}.id"), &v.id, OutputId::new);
        let role = ctx.named(
            &format!("{p}.role"),
            Some(v.role.as_str()),
            OutputRole::Relay,
        );
        let line = line_ref(ctx, p, v.offset, v.name.as_deref());
        let safe_state = ctx.named(
            &format!("{p}.safe_state"),
            v.safe_state.as_deref(),
            SafeState::Off,
        );
        if let (Some(id), Some(role), Some(line), Some(safe_state)) = (id, role, line, safe_state) {
            lines.push(OutputLineConfig {
                id,
                role,
                line,
                active_low: v.active_low.unwrap_or(false),
                safe_state,
            });
        } else {
            complete = false;
        }
    }
    let mut input = |path: &str, raw: &Option<RawInput>| match raw {
        None => None,
        Some(i) => {
            let v = validate_input(ctx, path, i);
            complete &= v.is_some();
            v
        }
    };
    let inputs = InputsConfig {
        ack_button: input("outputs.ack_button", &head.ack_button),
        door_contact: input("outputs.door_contact", &head.door_contact),
        machine_state: input("outputs.machine_state", &head.machine_state),
    };
    let outputs = OutputsConfig {
        backend,
        chip: head.chip.clone().unwrap_or_default(),
        lines,
        inputs,
        health_timeout,
        sim_log: head.sim_log.as_deref().map(|p| ctx.path(p)),
    };
    // The outputs' own checks need every line: their paths count lines by position.
    if complete {
        for p in outputs.problems() {
            ctx.bad(p.field, p.reason);
        }
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{check, paths};

    fn line(id: &str, offset: Option<i64>, name: Option<&str>) -> At<RawOutputLine> {
        At {
            path: format!("outputs.lines[{id}]"),
            value: RawOutputLine {
                id: id.into(),
                role: "siren".into(),
                offset,
                name: name.map(str::to_owned),
                active_low: None,
                safe_state: None,
            },
        }
    }

    #[test]
    fn a_line_is_named_by_offset_or_name() {
        let head = RawOutputsHead::default();
        let lines = [
            line("a", Some(1), Some("SIREN")),
            line("b", None, None),
            line("c", Some(600), None),
            line("d", None, Some("SIREN")),
        ];
        let (o, p) = check(|ctx| validate_outputs(ctx, &head, &lines, Duration::from_secs(10)));
        assert_eq!(
            paths(&p),
            vec![
                "outputs.lines[a]",
                "outputs.lines[b]",
                "outputs.lines[c].offset"
            ]
        );
        assert_eq!(o.lines.len(), 1);
        assert_eq!(o.lines[0].line, LineRef::Name("SIREN".into()));
    }
}

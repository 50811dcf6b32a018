//! Raw -> validated, section by section, collecting every problem. Each section's
//! checks live in its module; this runs them in order and builds what the
//! cross-references need (ids of cameras, zones, lines and outputs).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::Problem;
use crate::api::validate_api;
use crate::cameras::{KnownCameras, validate_camera};
use crate::check::{Ctx, unique};
use crate::detector::validate_detector;
use crate::features::Features;
use crate::integrations::validate_integrations;
use crate::lines::validate_line;
use crate::model::Config;
use crate::outputs::validate_outputs;
use crate::raw::RawConfig;
use crate::rules::{RuleContext, no_ppe, validate_rule};
use crate::storage::validate_storage;
use crate::system::validate_system;
use crate::zones::validate_zone;

pub(crate) fn validate(raw: &RawConfig, base: &Path, problems: &mut Vec<Problem>) -> Config {
    let mut ctx = Ctx { problems, base };
    let incomplete = raw.incomplete;

    let system = validate_system(&mut ctx, &raw.system);
    let detector = validate_detector(
        &mut ctx,
        &raw.detector,
        raw.failed_sections.contains(&"detector"),
    );
    let storage = validate_storage(&mut ctx, &raw.storage);
    let features = Features::from(&raw.features);

    unique(
        &mut ctx,
        "camera",
        raw.cameras.iter().map(|c| (c.path.as_str(), c.id.as_str())),
    );
    let cameras = raw
        .cameras
        .iter()
        .filter_map(|c| validate_camera(&mut ctx, &c.path, &c.id, &c.value, &storage.media_dir))
        .collect();
    let known = KnownCameras {
        ids: raw.cameras.iter().map(|c| c.id.as_str()).collect(),
        incomplete,
    };

    // Zones and lines share one namespace: a rule names either.
    unique(
        &mut ctx,
        "zone or line",
        raw.zones
            .iter()
            .map(|z| (z.path.as_str(), z.id.as_str()))
            .chain(raw.lines.iter().map(|l| (l.path.as_str(), l.id.as_str()))),
    );
    let zones = raw
        .zones
        .iter()
        .filter_map(|z| validate_zone(&mut ctx, &z.path, &z.id, &z.value, &known))
        .collect();
    let lines = raw
        .lines
        .iter()
        .filter_map(|l| validate_line(&mut ctx, &l.path, &l.id, &l.value, &known))
        .collect();

    let outputs = validate_outputs(
        &mut ctx,
        &raw.outputs,
        &raw.output_lines,
        system.stall_timeout,
    );

    unique(
        &mut ctx,
        "rule",
        raw.rules.iter().map(|r| (r.path.as_str(), r.id.as_str())),
    );
    let zone_cams: HashMap<&str, (&str, bool)> = raw
        .zones
        .iter()
        .map(|z| (z.id.as_str(), (z.value.camera.as_str(), false)))
        .chain(
            raw.lines
                .iter()
                .map(|l| (l.id.as_str(), (l.value.camera.as_str(), true))),
        )
        .collect();
    let integrations = validate_integrations(&mut ctx, &raw.integrations);
    if outputs.inputs.machine_state.is_none()
        && let Some(i) = integrations
            .interlocks
            .iter()
            .position(|i| i.source == crate::InterlockSource::Gpio)
    {
        ctx.bad(
            format!("integrations.interlocks[{i}].source"),
            "a gpio interlock needs an [outputs.machine_state] input",
        );
    }
    let output_ids: HashSet<&str> = raw
        .output_lines
        .iter()
        .map(|o| o.value.id.as_str())
        .collect();
    let rc = RuleContext {
        zones: zone_cams,
        cameras: known.ids,
        outputs: output_ids,
        no_ppe: no_ppe(features, &detector),
        has_door: outputs.inputs.door_contact.is_some(),
        interlocks: integrations
            .interlocks
            .iter()
            .map(|i| i.id.as_str().to_owned())
            .collect(),
        incomplete,
    };
    let rules = raw
        .rules
        .iter()
        .filter_map(|r| validate_rule(&mut ctx, &r.path, &r.id, &r.value, &rc))
        .collect();

    let api = validate_api(&mut ctx, &raw.api);

    Config {
        system,
        detector,
        cameras,
        zones,
        lines,
        rules,
        outputs,
        api,
        storage,
        features,
        integrations,
    }
}

//! Camera health changes and output changes, as outbox entries.
//!
//! Both are records of their own (nothing else is stored with them), each written in a
//! transaction of its own ([`safe_yolo_store::Store::record_outbox`]) off the reactor.
//! While the store is not open these changes are not recorded (the next change is).
//!
//! An output is *active* while an alarm action drives it (a pulsed siren is one active
//! period, not one entry per pulse); the healthy line is active while it is on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use safe_yolo_alarms::Dispatcher;
use safe_yolo_config::OutputRole;
use safe_yolo_domain::alarm::CameraHealth;
use safe_yolo_domain::{CameraId, OutputId, ZoneId};
use safe_yolo_outputs::OutputsStatus;
use safe_yolo_pipeline::CameraTaps;
use safe_yolo_store::{OutboxMessage, Storage};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often camera health and zone counts are looked at.
const HEALTH_EVERY: Duration = Duration::from_millis(500);
/// Least time between two zone-count entries of one zone (the newest count wins).
const ZONE_COUNT_EVERY: Duration = Duration::from_secs(1);

async fn record(storage: &Storage, message: OutboxMessage) {
    let Some(store) = storage.current() else {
        return;
    };
    if let Err(e) = store.run(move |s| s.record_outbox(message)).await {
        tracing::warn!(error = %safe_yolo_domain::error_chain(&e), "cannot record a change for the integrations");
    }
}

/// Records each camera's health when it changes (and when a camera starts).
pub async fn camera_health(taps: CameraTaps, storage: Storage, stop: CancellationToken) {
    let mut known: HashMap<CameraId, CameraHealth> = HashMap::new();
    loop {
        let now: Vec<(CameraId, CameraHealth)> = taps
            .current()
            .iter()
            .map(|t| (t.id.clone(), t.health.borrow().alarm_health()))
            .collect();
        for (id, health) in now {
            if known.get(&id) != Some(&health) {
                known.insert(id.clone(), health);
                record(&storage, OutboxMessage::CameraHealth { camera: id, health }).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(HEALTH_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Records each area zone's person count when it changes: at most once a second per
/// zone, and always the count a zone settles on. `dispatcher` names the zones (lines
/// count crossings, not persons: they are left out).
pub async fn zone_counts(
    taps: CameraTaps,
    dispatcher: Dispatcher,
    storage: Storage,
    stop: CancellationToken,
) {
    let mut counts: HashMap<ZoneId, (u32, Instant)> = HashMap::new();
    loop {
        let areas = dispatcher.zone_ids();
        let now: Vec<(ZoneId, u32)> = taps
            .zone_counts()
            .into_iter()
            .filter(|(z, _)| areas.contains(z))
            .collect();
        for (zone, count) in now {
            let due = counts
                .get(&zone)
                .is_none_or(|(c, at)| *c != count && at.elapsed() >= ZONE_COUNT_EVERY);
            if due {
                counts.insert(zone.clone(), (count, Instant::now()));
                record(&storage, OutboxMessage::ZoneCount { zone, count }).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(HEALTH_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Which outputs are active in `status`.
pub fn active_outputs(status: &OutputsStatus) -> Vec<(OutputId, bool)> {
    status
        .driver
        .outputs
        .iter()
        .map(|o| {
            let active = match o.role {
                OutputRole::Healthy => o.on,
                _ => status.driver.actions.iter().any(|a| a.output == o.id),
            };
            (o.id.clone(), active)
        })
        .collect()
}

/// Records each output when it becomes active or inactive.
pub async fn outputs(
    mut status: watch::Receiver<OutputsStatus>,
    storage: Storage,
    stop: CancellationToken,
) {
    let mut known: HashMap<OutputId, bool> = HashMap::new();
    loop {
        let now = active_outputs(&status.borrow_and_update());
        for (id, active) in now {
            if known.get(&id) != Some(&active) {
                known.insert(id.clone(), active);
                record(&storage, OutboxMessage::Output { output: id, active }).await;
            }
        }
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}

//! The interlocks' levels as the box knows them now: written by their sources (a
//! PLC's coil write, an MQTT message), expired when stale, and read by the analysis
//! with every frame ([`InterlockStates`]).
//!
//! Fail-safe ([`safe_yolo_rules::interlock`]): every interlock starts
//! [`InterlockLevel::Unknown`] (armed) at each start of the daemon, a level not renewed
//! within its `stale_after` goes back to unknown, and only an explicit *disarmed*
//! disarms. Nothing is stored: after a restart the sources say it again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use safe_yolo_config::{InterlockConfig, InterlockSource};
use safe_yolo_domain::{InterlockId, Named};
pub use safe_yolo_rules::{InterlockLevel, InterlockStates};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often stale levels are looked for.
const STALE_CHECK: Duration = Duration::from_millis(250);

/// A level change, for the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChange {
    /// The level before.
    pub before: InterlockLevel,
    /// The level now.
    pub after: InterlockLevel,
}

#[derive(Debug)]
struct Slot {
    spec: InterlockConfig,
    level: InterlockLevel,
    at: Option<Instant>,
}

#[derive(Debug)]
struct Inner {
    slots: Mutex<Vec<Slot>>,
    tx: watch::Sender<InterlockStates>,
}

/// The interlocks (cheap to clone; clones share state).
#[derive(Debug, Clone)]
pub struct Interlocks {
    inner: Arc<Inner>,
}

impl Interlocks {
    /// The interlocks of `specs`, each unknown (armed).
    pub fn new(specs: &[InterlockConfig]) -> Self {
        let slots: Vec<Slot> = specs
            .iter()
            .map(|s| Slot {
                spec: s.clone(),
                level: InterlockLevel::Unknown,
                at: None,
            })
            .collect();
        let (tx, _) = watch::channel(states(&slots));
        Self {
            inner: Arc::new(Inner {
                slots: Mutex::new(slots),
                tx,
            }),
        }
    }

    /// Replaces the configured interlocks (the integration settings were edited):
    /// an interlock whose spec is unchanged keeps its level; a new or changed one
    /// starts unknown (armed); a removed one is gone.
    pub fn replace(&self, specs: &[InterlockConfig]) {
        let mut slots = self.inner.slots.lock();
        let new: Vec<Slot> = specs
            .iter()
            .map(|spec| {
                let old = slots.iter().find(|s| &s.spec == spec);
                Slot {
                    spec: spec.clone(),
                    level: old.map_or(InterlockLevel::Unknown, |s| s.level),
                    at: old.and_then(|s| s.at),
                }
            })
            .collect();
        *slots = new;
        self.inner.tx.send_replace(states(&slots));
    }

    /// The levels now, and each change.
    pub fn watch(&self) -> watch::Receiver<InterlockStates> {
        self.inner.tx.subscribe()
    }

    /// The configured interlocks.
    pub fn specs(&self) -> Vec<InterlockConfig> {
        self.inner
            .slots
            .lock()
            .iter()
            .map(|s| s.spec.clone())
            .collect()
    }

    /// The interlock a Modbus `coil` writes, if any.
    pub fn by_coil(&self, coil: u16) -> Option<InterlockId> {
        self.inner
            .slots
            .lock()
            .iter()
            .find(|s| s.spec.source == InterlockSource::ModbusCoil { coil })
            .map(|s| s.spec.id.clone())
    }

    /// The interlock the `[outputs.machine_state]` GPIO input sets, if any.
    pub fn gpio(&self) -> Option<InterlockId> {
        self.inner
            .slots
            .lock()
            .iter()
            .find(|s| s.spec.source == InterlockSource::Gpio)
            .map(|s| s.spec.id.clone())
    }

    /// The level of `id` (unknown for an id not configured).
    pub fn level(&self, id: &InterlockId) -> InterlockLevel {
        self.inner.tx.borrow().level(id)
    }

    /// Records a level said by `by` (its source); renews the level's age. Returns the
    /// change, if the level changed; `None` also for an id not configured.
    pub fn set(&self, id: &InterlockId, armed: bool, by: &str) -> Option<LevelChange> {
        let after = if armed {
            InterlockLevel::Armed
        } else {
            InterlockLevel::Disarmed
        };
        let mut slots = self.inner.slots.lock();
        let slot = slots.iter_mut().find(|s| &s.spec.id == id)?;
        slot.at = Some(Instant::now());
        let before = slot.level;
        if before == after {
            return None;
        }
        slot.level = after;
        self.inner.tx.send_replace(states(&slots));
        drop(slots);
        tracing::warn!(
            interlock = %id,
            by,
            before = before.as_str(),
            after = after.as_str(),
            "interlock changed: the rules it arms are {}",
            if after.arms() { "armed" } else { "DISARMED" }
        );
        Some(LevelChange { before, after })
    }

    /// Sets every interlock whose level is older than its `stale_after` back to
    /// unknown (armed), as of `now`; returns the ids that went stale.
    pub fn expire(&self, now: Instant) -> Vec<InterlockId> {
        let mut slots = self.inner.slots.lock();
        let mut gone = Vec::new();
        for s in slots.iter_mut() {
            if let (Some(after), Some(at)) = (s.spec.stale_after, s.at)
                && s.level != InterlockLevel::Unknown
                && now.saturating_duration_since(at) >= after
            {
                s.level = InterlockLevel::Unknown;
                gone.push(s.spec.id.clone());
            }
        }
        if !gone.is_empty() {
            self.inner.tx.send_replace(states(&slots));
            drop(slots);
            for id in &gone {
                tracing::warn!(interlock = %id, "interlock stale: not renewed in time; the rules it arms are armed (fail-safe)");
            }
        }
        gone
    }

    /// Sets every interlock of a source that went away (its connection lost) back to
    /// unknown (armed) at once, whatever its `stale_after`.
    pub fn forget(&self, ids: &[InterlockId], why: &str) {
        let mut slots = self.inner.slots.lock();
        let mut changed = false;
        for s in slots.iter_mut().filter(|s| ids.contains(&s.spec.id)) {
            if s.level != InterlockLevel::Unknown {
                s.level = InterlockLevel::Unknown;
                s.at = None;
                changed = true;
                tracing::warn!(interlock = %s.spec.id, why, "interlock unknown; the rules it arms are armed (fail-safe)");
            }
        }
        if changed {
            self.inner.tx.send_replace(states(&slots));
        }
    }

    /// Expires stale levels until `stop`.
    pub async fn run_expiry(self, stop: CancellationToken) {
        if self
            .inner
            .slots
            .lock()
            .iter()
            .all(|s| s.spec.stale_after.is_none())
        {
            return;
        }
        let mut tick = tokio::time::interval(STALE_CHECK);
        loop {
            tokio::select! {
                _ = tick.tick() => { self.expire(Instant::now()); }
                () = stop.cancelled() => return,
            }
        }
    }
}

fn states(slots: &[Slot]) -> InterlockStates {
    InterlockStates::new(slots.iter().map(|s| (s.spec.id.clone(), s.level)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    fn spec(id: &str, stale: Option<u64>) -> InterlockConfig {
        InterlockConfig {
            id: InterlockId::new(id).unwrap(),
            name: id.into(),
            source: InterlockSource::ModbusCoil { coil: 1 },
            stale_after: stale.map(Duration::from_secs),
        }
    }

    #[test]
    fn levels_start_unknown_change_once_and_go_stale() {
        let il = Interlocks::new(&[spec("press", Some(5)), spec("loto", None)]);
        let press = InterlockId::new("press").unwrap();
        let loto = InterlockId::new("loto").unwrap();
        let rx = il.watch();
        assert_eq!(rx.borrow().level(&press), InterlockLevel::Unknown);
        let c = il.set(&press, false, "modbus 10.0.5.7").unwrap();
        assert_eq!(
            (c.before, c.after),
            (InterlockLevel::Unknown, InterlockLevel::Disarmed)
        );
        assert!(il.set(&press, false, "again").is_none(), "no change");
        assert!(!rx.borrow().arms(Some(&press)));
        assert!(
            il.set(&InterlockId::new("other").unwrap(), false, "x")
                .is_none()
        );
        il.set(&loto, false, "x");
        // Five seconds later the press level is stale: armed again; loto never is.
        let later = Instant::now() + Duration::from_secs(6);
        assert_eq!(il.expire(later), std::slice::from_ref(&press));
        assert_eq!(il.level(&press), InterlockLevel::Unknown);
        assert_eq!(il.level(&loto), InterlockLevel::Disarmed);
        il.forget(std::slice::from_ref(&loto), "source lost");
        assert!(rx.borrow().arms(Some(&loto)));
    }

    /// New settings: an unchanged interlock keeps its level, a changed one starts
    /// unknown (armed), a removed one is no longer there, a new one is unknown.
    #[test]
    fn replaced_interlocks_keep_only_unchanged_levels() {
        let il = Interlocks::new(&[spec("press", None), spec("loto", None)]);
        let press = InterlockId::new("press").unwrap();
        let loto = InterlockId::new("loto").unwrap();
        let door = InterlockId::new("door").unwrap();
        il.set(&press, false, "x");
        il.set(&loto, false, "x");
        let mut changed = spec("loto", None);
        changed.source = InterlockSource::ModbusCoil { coil: 2 };
        il.replace(&[spec("press", None), changed, spec("door", None)]);
        assert_eq!(il.level(&press), InterlockLevel::Disarmed);
        assert_eq!(il.level(&loto), InterlockLevel::Unknown);
        assert_eq!(il.level(&door), InterlockLevel::Unknown);
        il.replace(&[spec("door", None)]);
        assert_eq!(il.specs().len(), 1);
        assert!(il.set(&press, false, "x").is_none(), "press is gone");
        assert!(il.watch().borrow().arms(Some(&press)));
    }
}

//! Heartbeats from the pipeline's stages.
//!
//! Every long-running stage registers a [`Heartbeat`] and beats it at least
//! once a second, also when it is idle (its waits use timeouts). The systemd
//! watchdog and the "healthy" output are fed only while every registered
//! heartbeat is fresher than the stall timeout. A heartbeat dropped without
//! [`Heartbeat::retire`] (its task ended or panicked) counts as stalled for
//! good: a stage that died is a fault, not a reason to stop watching it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const DEAD: u64 = u64::MAX;

#[derive(Debug)]
struct Slot {
    name: String,
    /// Milliseconds since the registry's epoch of the last beat, or `DEAD`.
    last_ms: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    slots: Mutex<Vec<Arc<Slot>>>,
}

/// The registry of heartbeats. Cheap to clone; pass it explicitly.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

/// One stage's heartbeat.
#[derive(Debug)]
pub struct Heartbeat {
    slot: Arc<Slot>,
    inner: Arc<Inner>,
    retired: bool,
}

/// Stages whose last beat is older than the timeout, or that died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// Their names with the age of their last beat (`None`: died).
    pub stages: Vec<(String, Option<Duration>)>,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .stages
            .iter()
            .map(|(n, age)| match age {
                Some(a) => format!("{n} (silent {:.1} s)", a.as_secs_f64()),
                None => format!("{n} (ended)"),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                slots: Mutex::new(Vec::new()),
            }),
        }
    }

    fn now_ms(inner: &Inner, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(inner.epoch).as_millis()).unwrap_or(DEAD - 1)
    }

    /// Registers a stage; it counts as fresh from now.
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let slot = Arc::new(Slot {
            name: name.into(),
            last_ms: AtomicU64::new(Self::now_ms(&self.inner, Instant::now())),
        });
        self.inner.slots.lock().push(Arc::clone(&slot));
        Heartbeat {
            slot,
            inner: Arc::clone(&self.inner),
            retired: false,
        }
    }

    /// `Ok` when every stage beat within `timeout` of `now`.
    pub fn check(&self, now: Instant, timeout: Duration) -> Result<(), Stale> {
        let now_ms = Self::now_ms(&self.inner, now);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let stages: Vec<(String, Option<Duration>)> = self
            .inner
            .slots
            .lock()
            .iter()
            .filter_map(|s| {
                let last = s.last_ms.load(Ordering::Acquire);
                if last == DEAD {
                    Some((s.name.clone(), None))
                } else {
                    let age = now_ms.saturating_sub(last);
                    (age > timeout_ms).then(|| (s.name.clone(), Some(Duration::from_millis(age))))
                }
            })
            .collect();
        if stages.is_empty() {
            Ok(())
        } else {
            Err(Stale { stages })
        }
    }

    /// Names of the registered stages.
    pub fn stages(&self) -> Vec<String> {
        self.inner
            .slots
            .lock()
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }
}

impl Heartbeat {
    /// Records that the stage is making progress.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// [`Heartbeat::beat`] with an explicit time (tests).
    pub fn beat_at(&self, now: Instant) {
        self.slot
            .last_ms
            .store(Liveness::now_ms(&self.inner, now), Ordering::Release);
    }

    /// Removes the stage from the registry: it ended on purpose.
    pub fn retire(mut self) {
        self.retired = true;
        let mut slots = self.inner.slots.lock();
        slots.retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if !self.retired {
            self.slot.last_ms.store(DEAD, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_then_stale_then_fresh() {
        let l = Liveness::new();
        let t0 = Instant::now();
        let hb = l.register("camera/a/detect");
        hb.beat_at(t0);
        assert!(
            l.check(t0 + Duration::from_secs(1), Duration::from_secs(2))
                .is_ok()
        );
        let stale = l
            .check(t0 + Duration::from_secs(3), Duration::from_secs(2))
            .unwrap_err();
        assert_eq!(stale.stages.len(), 1);
        assert_eq!(stale.stages[0].0, "camera/a/detect");
        hb.beat_at(t0 + Duration::from_secs(3));
        assert!(
            l.check(t0 + Duration::from_secs(3), Duration::from_secs(2))
                .is_ok()
        );
    }

    #[test]
    fn dropped_heartbeat_is_a_fault_retired_is_not() {
        let l = Liveness::new();
        let a = l.register("a");
        let b = l.register("b");
        a.retire();
        assert!(l.check(Instant::now(), Duration::from_secs(5)).is_ok());
        drop(b);
        let stale = l.check(Instant::now(), Duration::from_secs(5)).unwrap_err();
        assert_eq!(stale.stages, vec![("b".to_string(), None)]);
        assert!(stale.to_string().contains("b (ended)"));
    }
}
